//! What operators see of this node and do to it. Its status (players, rooms, whether it is
//! draining) goes to the shared cache every few seconds, where the console reads every
//! node's; their commands come over the bus: drain (new game logins are refused, so the
//! node directory and the clients' retries send players to other nodes, while those here
//! play on) and close a created room (its players go back to the scene they came from).
//! A drain lasts until it is lifted or the node restarts.

use rsgame_proto::events::{NODE_COMMAND_TOPIC, NodeCommand, NodeDrain};
use serde::{Deserialize, Serialize};

use super::*;

/// The cache key of the nodes that wrote a status lately: a map of node id to when (unix
/// ms). Each node rewrites it with its own entry (and without entries older than
/// [`STATUS_TTL`]) each time it writes its status; two nodes writing at once may drop one
/// entry, which its node puts back a few seconds later. (Read-modify-write rather than a
/// sorted set: the in-process cache has none.)
pub const NODE_STATUS_INDEX: &str = "node-status";

/// The cache key of a node's status.
pub fn node_status_key(node: &str) -> String {
    format!("node-status:{node}")
}

/// How often a node writes its status, and how long one lasts unrefreshed.
const STATUS_EVERY: Duration = Duration::from_secs(3);
/// A status older than this is a node that went away.
pub const STATUS_TTL: Duration = Duration::from_secs(15);

/// The cache keys locate answers go to start with this.
pub const LOCATE_PREFIX: &str = "locate:";

/// Where a player is, as the node that holds it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Whereabouts {
    /// The node.
    pub node: String,
    /// The scene or room it is in.
    pub room: i64,
    /// Its name.
    pub name: String,
    /// A scene of the world (not a room players created).
    pub permanent: bool,
    /// Its connection is up (false: dropped, inside its reconnect grace).
    pub connected: bool,
}

/// A node as operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's id.
    pub id: String,
    /// Players online (a dropped one inside its grace period included).
    pub players: usize,
    /// New game logins are refused.
    pub draining: bool,
    /// Its scenes and rooms.
    pub rooms: Vec<RoomStatus>,
    /// When this was written, unix ms.
    pub at: i64,
}

/// A scene or room on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomStatus {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// go-game's type: 1 public, 2 private; 3 lockstep, 4 private lockstep.
    pub kind: i32,
    /// A scene of the world (not a room players created).
    pub permanent: bool,
    /// A formed match's room.
    pub matched: bool,
    /// Players in it.
    pub players: usize,
}

impl World {
    /// Whether new game logins are refused.
    pub fn draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    /// Starts or ends draining.
    pub fn set_draining(&self, on: bool) {
        if self.0.draining.swap(on, Ordering::Relaxed) != on {
            tracing::warn!(draining = on, "node drain changed by an operator");
        }
    }

    /// Refuses a game login while draining.
    pub(super) fn check_open(&self) -> Result<()> {
        if self.draining() {
            return Err(Error::msg(
                Code::Unavailable,
                "this game node is draining: log in again to be sent to another",
            ));
        }
        Ok(())
    }

    /// This node now.
    pub fn status(&self, id: &str) -> NodeStatus {
        let players = self.online();
        let rooms = lock(&self.0.rooms)
            .iter()
            .map(|(id, r)| RoomStatus {
                id: *id,
                name: r.name.clone(),
                kind: r.kind_code,
                permanent: r.permanent,
                matched: r.seats.is_some(),
                players: r.members.len(),
            })
            .collect();
        NodeStatus { id: id.to_owned(), players, draining: self.draining(), rooms, at: unix_ms() }
    }

    /// Writes this node's status to `cache` every few seconds, for as long as the world runs.
    pub(super) async fn publish_status(self, cache: rsgame_store::Cache, node: String) {
        let mut tick = tokio::time::interval(STATUS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let key = node_status_key(&node);
        loop {
            tick.tick().await;
            let s = self.status(&node);
            let written = async {
                cache.set(&key, &s, Some(STATUS_TTL)).await?;
                let mut index: BTreeMap<String, i64> = cache.get(NODE_STATUS_INDEX).await?.unwrap_or_default();
                let fresh = s.at - STATUS_TTL.as_millis() as i64;
                index.retain(|_, at| *at >= fresh);
                index.insert(node.clone(), s.at);
                cache.set(NODE_STATUS_INDEX, &index, Some(STATUS_TTL)).await
            };
            if let Err(e) = written.await {
                tracing::debug!(error = %e, "node status not written");
            }
        }
    }

    /// Acts on the operators' commands for `node` (or for every node) until the bus
    /// subscription ends; answers locate requests in `cache`.
    pub(super) async fn follow_commands(self, bus: Bus, node: String, cache: rsgame_store::Cache) {
        let (w, me, cache) = (&self, node.as_str(), &cache);
        follow(&bus, NODE_COMMAND_TOPIC, me, "node-command", |c: NodeCommand| async move {
            if c.node == me {
                w.command(&c).await
            }
            if c.locate != 0 && (c.node.is_empty() || c.node == me) {
                w.locate(cache, me, c.locate, &c.reply_key).await
            }
        })
        .await
    }

    /// Where player `user_id` is on this node, if it is here.
    pub fn whereabouts(&self, node: &str, user_id: i64) -> Option<Whereabouts> {
        let players = lock(&self.0.players);
        let p = players.get(&PlayerId::new(user_id))?;
        let rooms = lock(&self.0.rooms);
        let r = rooms.get(&p.room);
        Some(Whereabouts {
            node: node.to_owned(),
            room: p.room,
            name: r.map(|r| r.name.clone()).unwrap_or_default(),
            permanent: r.is_some_and(|r| r.permanent),
            connected: p.session.is_some(),
        })
    }

    async fn locate(&self, cache: &rsgame_store::Cache, node: &str, user_id: i64, reply_key: &str) {
        // Only a key of the console's making: nothing else in the cache is written here.
        if !reply_key.starts_with(LOCATE_PREFIX) || reply_key.len() > 64 {
            return;
        }
        let Some(w) = self.whereabouts(node, user_id) else { return };
        if let Err(e) = cache.set(reply_key, &w, Some(STATUS_EVERY)).await {
            tracing::debug!(error = %e, "whereabouts not written");
        }
    }

    async fn command(&self, c: &NodeCommand) {
        match NodeDrain::try_from(c.drain) {
            Ok(NodeDrain::On) => self.set_draining(true),
            Ok(NodeDrain::Off) => self.set_draining(false),
            _ => {}
        }
        if c.close_room != 0
            && let Err(e) = self.close_room(c.close_room, &c.remark).await
        {
            tracing::warn!(room = c.close_room, error = %e, "room not closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    #[tokio::test]
    async fn a_draining_node_refuses_logins_and_a_closed_room_sends_its_players_home() {
        let f = Fixture::new(WorldConfig::default()).await;
        let (mut a, b) = (f.login(1, "caps=all").await, f.login(2, "caps=all").await);
        let create = pb::CreateRoom { name: "party".into(), r#type: 1, max_user: 4, ..Default::default() };
        f.world.clone().create_room(a.session.clone(), create).await.expect("created");
        let made: pb::CreateRoomResp = a.expect(ids::reply(ids::CREATE_ROOM)).await;
        let room: i64 = made.msg.parse().expect("the room id");
        f.world
            .clone()
            .enter_room(b.session.clone(), pb::EnterRoom { room_id: room, ..Default::default() })
            .await
            .expect("b in");
        let status = f.world.status("n1");
        let r = status.rooms.iter().find(|r| r.id == room).expect("listed");
        assert_eq!((r.players, r.permanent), (2, false), "{status:?}");
        assert!(status.rooms.iter().any(|r| r.permanent && r.id == 1000));
        let w = f.world.whereabouts("n1", 2).expect("b is here");
        assert_eq!((w.room, w.permanent, w.connected), (room, false, true), "{w:?}");
        assert!(f.world.whereabouts("n1", 9).is_none(), "not here");

        // Scenes cannot be closed; a room can: both players go back where they came from.
        assert_eq!(f.world.close_room(1000, "x").await.map_err(|e| e.code()), Err(Code::BadParam));
        assert_eq!(f.world.close_room(room, "closed by the GM").await.expect("closed"), 2);
        let told: pb::QuitRoomResp = a.expect(ids::reply(ids::QUIT_ROOM)).await;
        assert_eq!(told.remark, "closed by the GM");
        f.until("the room is gone", |w| !w.status("n1").rooms.iter().any(|r| r.id == room)).await;

        // Draining: a new login is refused; those here play on; lifted, logins work again.
        f.world.set_draining(true);
        let mut c = f.connect(3);
        let login = pb::GameLogin { user_id: 3, token: f.token(3), plat: "test".into(), param: "caps=all".into() };
        let refused = f.world.clone().login(c.session.clone(), login.clone()).await;
        assert_eq!(refused.map_err(|e| e.code()), Err(Code::Unavailable));
        assert!(f.world.status("n1").draining);
        f.world
            .clone()
            .chat(
                a.session.clone(),
                pb::ChatMsg { chat_type: 1, msg_type: 1, msg: "still here".into(), ..Default::default() },
            )
            .await
            .expect("plays on");
        f.world.set_draining(false);
        f.world.clone().login(c.session.clone(), login).await.expect("open again");
        let _: pb::UserInfo = c.expect(ids::reply(ids::GAME_LOGIN)).await;
    }
}
