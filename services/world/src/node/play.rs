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

    // Moves, attacks and respawns only queue a command for the scene: synchronous routes, no
    // future allocated for the most frequent messages a client sends.
    pub(super) fn on_move(&self, session: &Session, msg: pb::Move) -> Result<()> {
        let uid = World::me(session)?;
        let site = msg.site.ok_or_else(|| Error::bad_param("site: required"))?;
        World::my_scene(session)?
            .tell(uid.get(), SceneInput::Cmd(Command::Move { id: uid.entity(), x: site.x, z: site.z }))
    }

    pub(super) fn attack(&self, session: &Session, msg: pb::Attack) -> Result<()> {
        let uid = World::me(session)?;
        if msg.obj_id <= 0 {
            return Err(Error::bad_param("objId: the target's id"));
        }
        let cmd = Command::Attack { id: uid.entity(), target: msg.obj_id as crate::aoi::EntityId };
        World::my_scene(session)?.tell(uid.get(), SceneInput::Cmd(cmd))
    }

    pub(super) fn respawn(&self, session: &Session, _msg: pb::Respawn) -> Result<()> {
        let uid = World::me(session)?;
        World::my_scene(session)?.tell(uid.get(), SceneInput::Cmd(Command::Respawn { id: uid.entity() }))
    }

    pub(super) fn lockstep_room(session: &Session) -> Result<RoomHandle<LockstepRoom>> {
        match session.get::<Here>() {
            Some(Here(Handle::Lockstep(h))) => Ok(h),
            _ => Err(Error::msg(Code::Failed, "not in a lockstep room")),
        }
    }

    pub(super) async fn lockstep_input(self, session: Session, msg: pb::LockstepInput) -> Result<()> {
        let uid = World::me(&session)?;
        World::lockstep_room(&session)?.input(uid.get(), LockstepCmd::Input(msg.data)).await
    }

    pub(super) async fn lockstep_sync(self, session: Session, msg: pb::LockstepSync) -> Result<()> {
        let uid = World::me(&session)?;
        let from = u64::try_from(msg.from).map_err(|_| Error::bad_param("from: a frame number"))?;
        World::lockstep_room(&session)?.input(uid.get(), LockstepCmd::Sync(from)).await
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
        f.world.on_move(&go.session, step).expect("told");
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
        let e = f.world.on_move(&rs.session, pb::Move { user_id: 1, site: None });
        assert_eq!(e.map_err(|e| e.code()), Err(Code::BadParam));
        assert!(!go.session.error_frames() && rs.session.error_frames());
    }

    #[tokio::test]
    async fn a_go_game_client_sees_players_by_go_games_grid() {
        let f = Fixture::new(WorldConfig::default()).await;
        // Scene 1000: rsgame's cells are 32.5 square, go-game's 32.5 wide and 16.25 deep.
        // 2 is one rsgame row from 1 but three go-game rows; 3 is in the next go-game row.
        let at = |x: f32, z: f32| crate::store::Place { scene_id: 1000, x, z };
        let places = [(1, at(190.0, 80.0)), (2, at(190.0, 125.0)), (3, at(190.0, 100.0)), (4, at(190.0, 82.0))];
        f.world.0.store.save_places(&places).await.expect("places");
        let mut go = f.login(1, "").await;
        let (b, c) = (f.login(2, "caps=all").await, f.login(3, "caps=all").await);
        let mut rs = f.login(4, "caps=all").await;
        for step in 1..=4 {
            let x = 190.0 + step as f32;
            for (p, z) in [(&b, 125.0), (&c, 100.0)] {
                let m = pb::Move { user_id: p.id, site: Some(pb::Site { x, y: 0.0, z, v: 0.0 }) };
                f.world.on_move(&p.session, m).expect("told");
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        // rsgame's client, next to the go-game one, sees both movers.
        let has = |id: i64| move |m: &pb::MoveResp| m.site_list.iter().any(|u| u.user_id == id);
        rs.expect_where(ids::reply(ids::MOVE), has(2)).await;
        rs.expect_where(ids::reply(ids::MOVE), has(3)).await;
        // The go-game client sees the one in its nine go-game cells, never the other.
        let mut seen = std::collections::BTreeSet::new();
        for (id, body) in go.frames_within(Duration::from_millis(300)).await {
            if id == ids::reply(ids::MOVE) {
                let m = <pb::MoveResp as prost::Message>::decode(body).expect("MoveResp");
                seen.extend(m.site_list.iter().map(|u| u.user_id));
            }
        }
        assert!(seen.contains(&3), "the mover in go-game's view: {seen:?}");
        assert!(!seen.contains(&2), "the mover outside go-game's view: {seen:?}");
    }
}
