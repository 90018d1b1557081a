//! Play inside a room: moves, attacks and respawns told to the player's scene, inputs to its
//! lockstep room, each reached through the room on the player's session (no node lock).

use super::*;

impl World {
    /// The scene the connection's player stands in (moves in a lockstep room are refused).
    pub(super) fn my_scene(session: &Session) -> Result<RoomHandle<SceneRoom>> {
        match session.get::<Here>() {
            Some(Here(Handle::Scene(h))) => Ok(h),
            _ => Err(Error::msg(Code::Failed, "not in a scene")),
        }
    }

    pub(super) async fn on_move(self, session: Session, msg: pb::Move) -> Result<()> {
        let uid = World::me(&session)?;
        let site = msg.site.ok_or_else(|| Error::bad_param("site: required"))?;
        World::my_scene(&session)?
            .tell(uid, SceneInput::Cmd(Command::Move { id: uid as EntityId, x: site.x, z: site.z }))
    }

    pub(super) async fn attack(self, session: Session, msg: pb::Attack) -> Result<()> {
        let uid = World::me(&session)?;
        if msg.obj_id <= 0 {
            return Err(Error::bad_param("objId: the target's id"));
        }
        let cmd = Command::Attack { id: uid as EntityId, target: msg.obj_id as EntityId };
        World::my_scene(&session)?.tell(uid, SceneInput::Cmd(cmd))
    }

    pub(super) async fn respawn(self, session: Session, _msg: pb::Respawn) -> Result<()> {
        let uid = World::me(&session)?;
        World::my_scene(&session)?.tell(uid, SceneInput::Cmd(Command::Respawn { id: uid as EntityId }))
    }

    pub(super) fn lockstep_room(session: &Session) -> Result<RoomHandle<LockstepRoom>> {
        match session.get::<Here>() {
            Some(Here(Handle::Lockstep(h))) => Ok(h),
            _ => Err(Error::msg(Code::Failed, "not in a lockstep room")),
        }
    }

    pub(super) async fn lockstep_input(self, session: Session, msg: pb::LockstepInput) -> Result<()> {
        let uid = World::me(&session)?;
        World::lockstep_room(&session)?.input(uid, LockstepCmd::Input(msg.data)).await
    }

    pub(super) async fn lockstep_sync(self, session: Session, msg: pb::LockstepSync) -> Result<()> {
        let uid = World::me(&session)?;
        let from = u64::try_from(msg.from).map_err(|_| Error::bad_param("from: a frame number"))?;
        World::lockstep_room(&session)?.input(uid, LockstepCmd::Sync(from)).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    #[tokio::test]
    async fn moves_reach_neighbours_and_a_go_game_client_gets_only_go_game_messages() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut rs = f.login(1, "caps=all").await;
        let mut go = f.login(2, "").await;
        // Both start near the respawn point: in view of each other.
        rs.expect::<pb::PlayerStats>(ids::PLAYER_STATS).await;
        let step = pb::Move { user_id: 2, site: Some(pb::Site { x: 186.0, y: 0.0, z: 160.0, v: 0.0 }) };
        f.world.clone().on_move(go.session.clone(), step).await.expect("told");
        let has_2 = |m: &pb::MoveResp| m.site_list.iter().any(|u| u.user_id == 2);
        rs.expect_where(ids::reply(ids::MOVE), has_2).await;
        // The go-game client got go-game's messages only.
        for id in go.ids_within(Duration::from_millis(300)).await {
            assert!([ids::reply(ids::MOVE), ids::reply(ids::CHAT_MSG)].contains(&id), "a go-game client got {id}");
        }
        // Input for a lockstep room from a scene: refused, and said so only to clients that
        // take ErrorResp.
        let e = f.world.clone().lockstep_input(rs.session.clone(), pb::LockstepInput { data: vec![1] }).await;
        assert_eq!(e.map_err(|e| e.code()), Err(Code::Failed));
        let e = f.world.clone().on_move(rs.session.clone(), pb::Move { user_id: 1, site: None }).await;
        assert_eq!(e.map_err(|e| e.code()), Err(Code::BadParam));
        assert!(!go.session.error_frames() && rs.session.error_frames());
    }
}
