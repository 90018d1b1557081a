//! rsgame's protobuf messages, generated from `proto/game.proto` at build time: go-game's
//! game-connection messages with their field numbers, and rsgame's additions. Each type is
//! also serde-(de)serializable with the protobuf field names, for JSON bodies.
//!
//! [`ids`] holds the message ids that go with them (docs/protocol.md).

#![allow(missing_docs)]
#![allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]

/// go-game's messages (`package pb`).
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/pb.rs"));
}

/// Message ids. A client→server id `N` is answered or pushed as `N + 100000`, except the
/// gate's own ids below 10000.
pub mod ids {
    /// Ping → [`PING_RESP`].
    pub const PING: u32 = 1000;
    /// PingResp.
    pub const PING_RESP: u32 = 2000;
    /// rsgame: ErrorResp, the answer to a message the server could not handle.
    pub const ERROR: u32 = 9000;
    /// GameLogin → UserInfo.
    pub const GAME_LOGIN: u32 = 100_000;
    /// EnterRoom → EnterRoomResp.
    pub const ENTER_ROOM: u32 = 100_001;
    /// ChatMsg → ChatMsgResp.
    pub const CHAT_MSG: u32 = 100_002;
    /// CreateRoom → CreateRoomResp.
    pub const CREATE_ROOM: u32 = 100_003;
    /// RoomList → RoomListResp.
    pub const ROOM_LIST: u32 = 100_004;
    /// QuitRoom → QuitRoomResp.
    pub const QUIT_ROOM: u32 = 100_005;
    /// AddFriend → AddFriendResp.
    pub const ADD_FRIEND: u32 = 100_100;
    /// MyFriend → MyFriendResp.
    pub const MY_FRIEND: u32 = 100_101;
    /// Move → MoveResp.
    pub const MOVE: u32 = 100_200;
    /// Attack → AttackResp.
    pub const ATTACK: u32 = 100_201;
    /// rsgame: ChatHistory → ChatMsgResp (200006).
    pub const CHAT_HISTORY: u32 = 100_006;
    /// rsgame push: a friend's online status, a UserInfo (200102).
    pub const FRIEND_STATUS: u32 = 200_102;
    /// rsgame: Respawn → PlayerStats (200212).
    pub const RESPAWN: u32 = 100_202;
    /// rsgame push: SpawnResp, what came into view.
    pub const SPAWN: u32 = 200_210;
    /// rsgame push: DespawnResp, what left view.
    pub const DESPAWN: u32 = 200_211;
    /// rsgame push: PlayerStats, the player's own numbers.
    pub const PLAYER_STATS: u32 = 200_212;
    /// rsgame: LockstepInput (no reply).
    pub const LOCKSTEP_INPUT: u32 = 100_300;
    /// rsgame push: LockstepFrames (200300), also the reply to LockstepSync.
    pub const LOCKSTEP_FRAMES: u32 = 200_300;
    /// rsgame: LockstepSync → LockstepFrames.
    pub const LOCKSTEP_SYNC: u32 = 100_301;
    /// Logout → LogoutResp.
    pub const LOGOUT: u32 = 100_900;
    /// The reply (or push) id of a request id.
    pub const fn reply(id: u32) -> u32 {
        if id < 10_000 { id + 1000 } else { id + 100_000 }
    }
}

#[cfg(test)]
mod tests {
    use super::pb;
    use prost::Message as _;

    #[test]
    fn field_numbers_match_go_game() {
        // GameLogin{userId=1 (field 1, varint), token="t" (field 2, bytes)}
        let m = pb::GameLogin { user_id: 1, token: "t".into(), ..Default::default() };
        assert_eq!(m.encode_to_vec(), [0x08, 0x01, 0x12, 0x01, b't']);
        // Site.X is field 1, a 32-bit float.
        let s = pb::Site { x: 1.0, ..Default::default() };
        assert_eq!(s.encode_to_vec(), [0x0d, 0x00, 0x00, 0x80, 0x3f]);
    }

    #[test]
    fn json_uses_go_game_names() {
        let m = pb::Move { user_id: 7, site: Some(pb::Site { x: 1.5, y: 0.0, z: 2.0, v: 90.0 }) };
        let v = serde_json::to_value(m).expect("json");
        assert_eq!(v, serde_json::json!({"userId": 7, "site": {"X": 1.5, "Y": 0.0, "Z": 2.0, "V": 90.0}}));
        let back: pb::Move = serde_json::from_str(r#"{"userId":7}"#).expect("missing fields default");
        assert_eq!(back.user_id, 7);
        assert!(back.site.is_none());
    }

    #[test]
    fn reply_ids() {
        assert_eq!(super::ids::reply(super::ids::PING), super::ids::PING_RESP);
        assert_eq!(super::ids::reply(super::ids::CHAT_MSG), 200_002);
    }
}
