//! The room registry: scenes and created rooms, moving players between them (checked:
//! exists, capacity, password), creating, listing and quitting rooms, and the shutdown's
//! flush of every scene.

use super::*;

impl World {
    /// The rooms players created on this node (id, name), for the node directory.
    pub fn created_rooms(&self) -> Vec<(i64, String)> {
        lock(&self.0.rooms)
            .iter()
            .filter(|(_, r)| !r.permanent && r.seats.is_none())
            .map(|(id, r)| (*id, r.name.clone()))
            .collect()
    }

    /// Grants the kill rewards queued so far, saves every player's place and hit points, and
    /// waits for the writes (graceful shutdown). Reports, by player, what could not be done.
    pub async fn flush(&self) -> std::result::Result<(), Unflushed> {
        let mut undone = Unflushed::default();
        // Kill rewards first (a level-up changes hit points); then every scene saves.
        let (done, granted) = oneshot::channel();
        let failed: Vec<RewardJob> = match self.0.env.rewards.send(RewardMsg::Flush(done)) {
            Ok(()) => granted.await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        undone.rewards = failed.into_iter().map(|j| (j.user, j.reference)).collect();
        let scenes: Vec<RoomHandle<SceneRoom>> = lock(&self.0.rooms)
            .values()
            .filter_map(|r| match &r.handle {
                Handle::Scene(h) => Some(h.clone()),
                Handle::Lockstep(_) => None,
            })
            .collect();
        for h in scenes {
            // An ended scene has no players left to save.
            let _ = h.call(|r, _| r.save(true)).await;
        }
        undone.unsaved = self.saved().await;
        if undone == Unflushed::default() { Ok(()) } else { Err(undone) }
    }

    /// Waits until everything queued for the saver so far is written or given up on;
    /// returns the players whose latest state is not in the database.
    pub(super) async fn saved(&self) -> Vec<i64> {
        let (done, wait) = oneshot::channel();
        if self.0.env.saver.send(SaveMsg::Barrier(done)).is_err() {
            return Vec::new();
        }
        wait.await.unwrap_or_default()
    }

    pub(super) fn room_handle(&self, room: i64) -> Option<Handle> {
        lock(&self.0.rooms).get(&room).map(|r| r.handle.clone())
    }

    /// Takes the player out of `room` and waits until its state is saved; closes a created
    /// room left empty (a match's room mails its players the match's record).
    pub(super) async fn leave_room(&self, uid: PlayerId, room: i64) {
        let (handle, close, ended) = {
            let mut rooms = lock(&self.0.rooms);
            let Some(r) = rooms.get_mut(&room) else { return };
            r.members.remove(&uid);
            let close = !r.permanent && r.members.is_empty();
            let handle = r.handle.clone();
            let ended = if close { rooms.remove(&room).and_then(|r| r.seats) } else { None };
            (handle, close, ended)
        };
        if let Some(seats) = ended {
            self.match_over(seats);
        }
        handle.leave(uid).await;
        if let Handle::Scene(_) = handle {
            // The scene queued the player's last state at its leave; the saver writes in
            // order, so once this answers, that state is written (or reported unsaved).
            let unsaved = self.saved().await;
            if unsaved.contains(&uid.get()) {
                tracing::error!(user = %uid, room, "player left with its state unsaved");
            }
        }
        if close {
            // The last handle goes with `handle`: the room's task ends.
            metrics::gauge!(crate::metrics::ROOMS).decrement(1.0);
        }
    }

    /// Where a new player appears: within `radius` of the scene's respawn point, spread by
    /// account so a crowd does not stack on one spot (go-game: 160..210, 134..184). The
    /// scene clamps it to its bounds.
    pub(super) fn spawn_point(uid: PlayerId, at: (f32, f32), radius: f32) -> (f32, f32) {
        let h = (uid.get() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let unit = |bits: u64| (bits % 10_001) as f32 / 10_000.0 * 2.0 - 1.0;
        (at.0 + unit(h >> 7) * radius, at.1 + unit(h >> 35) * radius)
    }

    pub(super) fn room_resp(
        &self,
        id: i64,
        r: &Room,
        players: &HashMap<PlayerId, Online>,
        viewer: PlayerId,
    ) -> pb::EnterRoomResp {
        // Scenes hold crowds: their member list is what the AOI shows, not this reply. Who is
        // in a private room is for its members only.
        let user_list = if r.permanent || (r.password.is_some() && !r.members.contains(&viewer)) {
            Vec::new()
        } else {
            r.members
                .iter()
                .map(|m| {
                    let p = players.get(m);
                    let profile = p.map(|p| p.profile.clone()).unwrap_or_default();
                    World::user_info(m.get(), &profile, "", p.is_some_and(|p| p.session.is_some()), id)
                })
                .collect()
        };
        pb::EnterRoomResp {
            room_id: id,
            r#type: r.kind_code,
            name: r.name.clone(),
            max_user: r.max_users,
            password: String::new(),
            image: String::new(),
            user_list,
        }
    }

    pub(super) fn hash_password(&self, password: &str) -> [u8; 32] {
        hmac_sha256(&self.0.password_key, &[password.as_bytes()])
    }

    /// Moves a player into `target` (checked: exists, room for it, password), saving it out
    /// of the room it leaves. The caller holds the player's transition lock.
    pub(super) async fn move_to(
        &self,
        uid: PlayerId,
        session: &Session,
        target: i64,
        password: Option<&str>,
    ) -> Result<()> {
        // Everything that can fail on the way comes first, before the player is touched.
        let is_scene = lock(&self.0.rooms)
            .get(&target)
            .map(|r| matches!(r.handle, Handle::Scene(_)))
            .ok_or_else(|| Error::msg(Code::NotFound, "no such room"))?;
        if !is_scene && !session.get::<Caps>().unwrap_or_default().has(Caps::LOCKSTEP) {
            // Its frames are rsgame's messages: a client must ask for them (caps=lockstep).
            return Err(Error::msg(Code::NotFound, "no such room"));
        }
        let early = if is_scene { Some(Stats::from_pack(&self.0.game.pack(uid.get()).await?)) } else { None };
        let (from, resp, handle, spawn, returning) = {
            let mut players = lock(&self.0.players);
            let p = players.get(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
            let from = p.room;
            if from == target {
                return Err(Error::msg(Code::Failed, "already in this room"));
            }
            let mut rooms = lock(&self.0.rooms);
            let r = rooms.get(&target).ok_or_else(|| Error::msg(Code::NotFound, "no such room"))?;
            if let Some(expected) = &r.password {
                let given = password.map(|p| self.hash_password(p)).unwrap_or_default();
                if !constant_time_eq(&given, expected) {
                    return Err(Error::msg(Code::Forbidden, "wrong room password"));
                }
            }
            if let Some(seats) = &r.seats {
                if !seats.players.contains(&uid) {
                    return Err(Error::msg(Code::Forbidden, "only the match's players may enter its room"));
                }
                if unix_ms() > seats.until {
                    return Err(Error::msg(Code::NotFound, "no such room: the match's seats have expired"));
                }
            }
            if r.max_users > 0 && r.members.len() >= r.max_users as usize {
                return Err(Error::msg(Code::Forbidden, "the room is full"));
            }
            let r = rooms.get_mut(&target).ok_or_else(|| Error::new(Code::NotFound))?;
            r.members.insert(uid);
            let (handle, spawn, permanent) = (r.handle.clone(), (r.spawn, r.spawn_radius), r.permanent);
            let p = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
            p.room = target;
            if permanent {
                p.home = target;
            }
            let resp = rooms.get(&target).map(|r| self.room_resp(target, r, &players, uid)).unwrap_or_default();
            (from, resp, handle, spawn, permanent)
        };
        self.leave_room(uid, from).await;
        // Its numbers as it left: the hit points it had there are saved by now (leave_room
        // waits for the write), so the new scene does not bring back older ones.
        let stats = match early {
            Some(early) => self.0.game.pack(uid.get()).await.map(|p| Stats::from_pack(&p)).unwrap_or(early),
            None => Stats::default(),
        };
        let name = lock(&self.0.players).get(&uid).map(|p| p.profile.nickname.clone()).unwrap_or_default();
        // Back in a world scene (from a room or a match): where it stood when it left, as that
        // scene saved it; a first visit starts near the respawn point.
        let saved = if returning { self.0.store.place(uid.get()).await.ok().flatten() } else { None };
        let (x, z) = match saved {
            Some(p) if i64::from(p.scene_id) == target => (p.x, p.z),
            _ => World::spawn_point(uid, spawn.0, spawn.1),
        };
        handle.enter(uid, session, Greet::Enter(resp), Some((name, x, z, stats))).await
    }

    /// A new room's task: lockstep, or a scene laid out like `template` (the first scene's
    /// without one); and where its players appear.
    pub(super) fn room_task(
        &self,
        id: i64,
        lockstep: bool,
        max_users: i32,
        template: Option<crate::scene::SceneConfig>,
    ) -> (Handle, (f32, f32)) {
        if lockstep {
            let ls = Lockstep::new(LockstepConfig {
                fps: self.0.cfg.lockstep_fps.clamp(1, 60),
                max_players: max_users as usize,
                max_input: 256,
                keep_frames: self.0.cfg.lockstep_keep_frames.max(1),
            });
            let handle = Handle::Lockstep(rsgame_gate::room::spawn(LockstepRoom::new(id, ls), QUEUE));
            (handle, self.0.template.respawn)
        } else {
            let mut cfg = template.unwrap_or_else(|| self.0.template.clone());
            cfg.id = id as i32;
            let spawn = cfg.respawn;
            let (scene, env) = (Scene::new(cfg), self.0.env.clone());
            (Handle::Scene(rsgame_gate::room::spawn_with(|me| SceneRoom::new(scene, false, env, me), QUEUE)), spawn)
        }
    }

    pub(super) async fn enter_room(self, session: Session, msg: pb::EnterRoom) -> Result<()> {
        let uid = World::me(&session)?;
        let _t = self.transition(uid).await;
        let password = (!msg.password.is_empty()).then_some(msg.password.as_str());
        self.open_match_room(uid, msg.room_id).await?;
        self.move_to(uid, &session, msg.room_id, password).await
    }

    pub(super) async fn create_room(self, session: Session, msg: pb::CreateRoom) -> Result<()> {
        let uid = World::me(&session)?;
        let name = msg.name.trim();
        if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
            return Err(Error::bad_param("name: 1 to 32 characters"));
        }
        let lockstep_ok = session.get::<Caps>().unwrap_or_default().has(Caps::LOCKSTEP);
        let (lockstep, private) = match pb::RoomType::try_from(msg.r#type) {
            Ok(pb::RoomType::Public) => (false, false),
            Ok(pb::RoomType::Private) => (false, true),
            Ok(pb::RoomType::Lockstep) => (true, false),
            Ok(pb::RoomType::PrivateLockstep) => (true, true),
            _ => return Err(Error::bad_param("type: 1 public, 2 private, 3 lockstep, 4 private lockstep")),
        };
        if lockstep && !lockstep_ok {
            return Err(Error::bad_param("type: 3 and 4 (lockstep) need caps=lockstep at login"));
        }
        if private && (msg.password.is_empty() || msg.password.len() > 64) {
            return Err(Error::bad_param("password: 1 to 64 characters for a private room"));
        }
        let cap = self.0.cfg.max_room_users.max(2);
        let max_users = if msg.max_user <= 0 { cap } else { msg.max_user.clamp(2, cap) };
        let id = {
            let rooms = lock(&self.0.rooms);
            if rooms.values().filter(|r| !r.permanent).count() >= self.0.cfg.max_rooms {
                return Err(Error::msg(Code::TooManyRequests, "too many rooms on this node"));
            }
            self.0.next_room.fetch_add(1, Ordering::Relaxed)
        };
        let (handle, spawn) = self.room_task(id, lockstep, max_users, None);
        let room = Room {
            name: name.to_owned(),
            kind_code: msg.r#type,
            password: private.then(|| self.hash_password(&msg.password)),
            max_users,
            owner: uid,
            permanent: false,
            members: BTreeSet::new(),
            handle,
            chat: VecDeque::new(),
            spawn,
            spawn_radius: 25.0,
            seats: None,
        };
        let full = {
            let mut rooms = lock(&self.0.rooms);
            // Checked again where it is inserted: concurrent creations cannot pass the cap.
            let full = rooms.values().filter(|r| !r.permanent).count() >= self.0.cfg.max_rooms;
            if !full {
                rooms.insert(id, room);
            }
            full
        };
        if full {
            // Its handle was dropped with the refused entry: the room's task has ended.
            return Err(Error::msg(Code::TooManyRequests, "too many rooms on this node"));
        }
        metrics::gauge!(crate::metrics::ROOMS).increment(1.0);
        tracing::info!(user = %uid, room = id, r#type = msg.r#type, "room created");
        session.push(ids::reply(ids::CREATE_ROOM), &{
            let (status, msg) = status(true, &id.to_string());
            pb::CreateRoomResp { status, msg }
        });
        let entered = {
            let _t = self.transition(uid).await;
            self.move_to(uid, &session, id, private.then_some(msg.password.as_str())).await
        };
        if entered.is_err() {
            // Its creator could not enter: close it again, unless someone else did.
            let removed = {
                let mut rooms = lock(&self.0.rooms);
                match rooms.get(&id) {
                    Some(r) if r.members.is_empty() => rooms.remove(&id),
                    _ => None,
                }
            };
            if removed.is_some() {
                // Dropping the entry dropped the room's last handle.
                metrics::gauge!(crate::metrics::ROOMS).decrement(1.0);
            }
        }
        entered
    }

    pub(super) async fn room_list(self, session: Session, msg: pb::RoomList) -> Result<()> {
        let uid = World::me(&session)?;
        // Lockstep rooms are rsgame's: listed only to clients that take them.
        let lockstep = session.get::<Caps>().unwrap_or_default().has(Caps::LOCKSTEP);
        let room_list = {
            let players = lock(&self.0.players);
            let rooms = lock(&self.0.rooms);
            rooms
                .iter()
                .filter(|(_, r)| msg.r#type == pb::RoomType::Any as i32 || r.kind_code == msg.r#type)
                .filter(|(_, r)| lockstep || matches!(r.handle, Handle::Scene(_)))
                .filter(|(_, r)| r.seats.is_none())
                .take(500)
                .map(|(id, r)| self.room_resp(*id, r, &players, uid))
                .collect()
        };
        session.push(ids::reply(ids::ROOM_LIST), &pb::RoomListResp { room_list });
        Ok(())
    }

    pub(super) async fn quit_room(self, session: Session, msg: pb::QuitRoom) -> Result<()> {
        let uid = World::me(&session)?;
        let target = if msg.user_id == 0 { uid } else { PlayerId::new(msg.user_id) };
        let remark: String = msg.remark.chars().take(100).collect();
        // The target's transition lock: it may be moving, logging in or out right now.
        let _t = self.transition(target).await;
        let (room, home, target_session) = {
            let players = lock(&self.0.players);
            let me = players.get(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
            let room = if msg.room_id == 0 { me.room } else { msg.room_id };
            let rooms = lock(&self.0.rooms);
            let r = rooms.get(&room).ok_or_else(|| Error::msg(Code::NotFound, "no such room"))?;
            if r.permanent {
                return Err(Error::msg(Code::Failed, "a scene cannot be quit: enter another room"));
            }
            if target != uid && r.owner != uid {
                return Err(Error::msg(Code::Forbidden, "only the room's owner can remove others"));
            }
            let t = players
                .get(&target)
                .filter(|t| t.room == room)
                .ok_or_else(|| Error::msg(Code::NotFound, "not in this room"))?;
            (room, t.home, t.session.clone())
        };
        let resp = pb::QuitRoomResp { user_id: target.get(), remark: remark.clone() };
        if target != uid {
            tracing::info!(owner = %uid, user = %target, room, "removed from room");
        }
        self.send_home(target, room, home, target_session, (target != uid).then_some(&resp)).await?;
        session.push(ids::reply(ids::QUIT_ROOM), &resp);
        Ok(())
    }

    /// Takes `target` out of created room `room` back to `home`, telling it `told` first if
    /// given; a player in its grace period has its stay end (its next login starts in its
    /// saved scene). The caller holds the target's transition lock.
    async fn send_home(
        &self,
        target: PlayerId,
        room: i64,
        home: i64,
        target_session: Option<Session>,
        told: Option<&pb::QuitRoomResp>,
    ) -> Result<()> {
        match target_session {
            Some(ts) => {
                if let Some(resp) = told {
                    ts.push(ids::reply(ids::QUIT_ROOM), resp);
                }
                self.move_to(target, &ts, home, None).await?;
            }
            None => {
                // Dropped and in its grace period: its stay ends now; its next login starts
                // in its saved scene.
                let gone = {
                    let mut players = lock(&self.0.players);
                    match players.get(&target) {
                        Some(p) if p.session.is_none() && p.room == room => players.remove(&target),
                        _ => None,
                    }
                };
                if let Some(p) = gone {
                    self.leave_room(target, room).await;
                    self.notify_friends(target, &p.profile, false, Some(&p.blocked)).await;
                }
            }
        }
        Ok(())
    }

    /// An operator closes created room `room`: each player in it goes back to the scene it
    /// came from, told with a QuitRoomResp carrying `remark`. Returns how many were moved.
    /// A permanent scene cannot be closed (drain the node instead).
    pub async fn close_room(&self, room: i64, remark: &str) -> Result<usize> {
        let members: Vec<PlayerId> = {
            let rooms = lock(&self.0.rooms);
            let r = rooms.get(&room).ok_or_else(|| Error::msg(Code::NotFound, "no such room on this node"))?;
            if r.permanent {
                return Err(Error::bad_param("a permanent scene cannot be closed: drain the node instead"));
            }
            r.members.iter().copied().collect()
        };
        let remark: String = remark.chars().take(100).collect();
        let mut moved = 0;
        for target in members {
            let _t = self.transition(target).await;
            let here =
                lock(&self.0.players).get(&target).filter(|p| p.room == room).map(|p| (p.home, p.session.clone()));
            let Some((home, session)) = here else { continue };
            let resp = pb::QuitRoomResp { user_id: target.get(), remark: remark.clone() };
            match self.send_home(target, room, home, session, Some(&resp)).await {
                Ok(()) => moved += 1,
                Err(e) => tracing::warn!(user = %target, room, error = %e, "player not moved out of a closed room"),
            }
        }
        tracing::info!(room, moved, "room closed by an operator");
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;
    use rsgame_proto::pb::RoomType;

    async fn create(f: &Fixture, s: &Session, kind: RoomType, max: i32, password: &str) -> Result<()> {
        let msg = pb::CreateRoom { name: "den".into(), r#type: kind as i32, max_user: max, password: password.into() };
        f.world.clone().create_room(s.clone(), msg).await
    }

    async fn enter(f: &Fixture, s: &Session, room: i64, password: &str) -> Result<()> {
        let msg = pb::EnterRoom { room_id: room, user_id: 0, password: password.into() };
        f.world.clone().enter_room(s.clone(), msg).await
    }

    #[tokio::test]
    async fn a_private_room_checks_its_password_and_size_and_closes_when_empty() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=all").await;
        let (b, c) = (f.login(2, "caps=all").await, f.login(3, "caps=all").await);
        assert_eq!(create(&f, &a.session, RoomType::Private, 2, "").await.map_err(|e| e.code()), Err(Code::BadParam));
        create(&f, &a.session, RoomType::Private, 2, "pw").await.expect("created");
        let made: pb::CreateRoomResp = a.expect(ids::reply(ids::CREATE_ROOM)).await;
        assert_eq!(made.status, pb::ReplyStatus::Ok as i32);
        let room: i64 = made.msg.parse().expect("the room id");
        let entered: pb::EnterRoomResp = a.expect(ids::reply(ids::ENTER_ROOM)).await;
        assert_eq!((entered.room_id, entered.password.as_str()), (room, ""), "the password is never sent back");

        let wrong = enter(&f, &b.session, room, "nope").await;
        assert_eq!(wrong.map_err(|e| e.code()), Err(Code::Forbidden));
        enter(&f, &b.session, room, "pw").await.expect("b enters");
        let full = enter(&f, &c.session, room, "pw").await;
        assert_eq!(full.map_err(|e| e.code()), Err(Code::Forbidden), "two at most");
        assert_eq!(f.world.created_rooms().len(), 1);

        // Only the owner removes others; the last one out closes it.
        let quit = |s: &Session, user: i64| {
            let msg = pb::QuitRoom { room_id: room, user_id: user, ..Default::default() };
            f.world.clone().quit_room(s.clone(), msg)
        };
        assert_eq!(quit(&b.session, 1).await.map_err(|e| e.code()), Err(Code::Forbidden));
        quit(&a.session, 2).await.expect("the owner removes b");
        assert_eq!(
            lock(&f.world.0.players).get(&PlayerId::new(2)).map(|p| p.room),
            Some(1000),
            "b is back in its scene"
        );
        quit(&a.session, 0).await.expect("a leaves");
        assert!(f.world.created_rooms().is_empty(), "closed when empty");
        assert_eq!(enter(&f, &c.session, room, "pw").await.map_err(|e| e.code()), Err(Code::NotFound));
    }

    #[tokio::test]
    async fn back_from_a_room_a_player_stands_where_it_left_its_scene() {
        let f = Fixture::new(WorldConfig::default()).await;
        let far = crate::store::Place { scene_id: 1000, x: 330.0, z: 310.0 };
        f.world.0.store.save_places(&[(1, far)]).await.expect("place");
        let mut a = f.login(1, "caps=all").await;
        let me = |m: &pb::MoveResp| m.site_list.iter().any(|u| u.user_id == 1 && u.action == "spawn");
        a.expect_where(ids::reply(ids::MOVE), me).await;
        create(&f, &a.session, RoomType::Public, 4, "").await.expect("created");
        a.expect::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM)).await;
        a.expect_where(ids::reply(ids::MOVE), me).await; // in the room, at its spawn point
        f.world.clone().quit_room(a.session.clone(), pb::QuitRoom::default()).await.expect("quit");
        // Its own spawn in the scene's first batch: where it stood, not the respawn point.
        let back = a.expect_where(ids::reply(ids::MOVE), me).await;
        let site = back.site_list.iter().find(|u| u.user_id == 1).and_then(|u| u.site).expect("site");
        assert_eq!((site.x, site.z), (330.0, 310.0), "back where it left");
    }

    #[tokio::test]
    async fn rooms_are_bounded_and_names_checked() {
        let cfg = WorldConfig { max_rooms: 1, ..WorldConfig::default() };
        let f = Fixture::new(cfg).await;
        let (a, b) = (f.login(1, "caps=lockstep").await, f.login(2, "").await);
        let go_lockstep = create(&f, &b.session, RoomType::Lockstep, 4, "").await;
        assert_eq!(go_lockstep.map_err(|e| e.code()), Err(Code::BadParam), "a go-game client makes no lockstep room");
        let long = pb::CreateRoom { name: "x".repeat(33), r#type: 1, ..Default::default() };
        assert_eq!(
            f.world.clone().create_room(a.session.clone(), long).await.map_err(|e| e.code()),
            Err(Code::BadParam)
        );
        let odd = pb::CreateRoom { name: "ok".into(), r#type: 9, ..Default::default() };
        assert_eq!(
            f.world.clone().create_room(a.session.clone(), odd).await.map_err(|e| e.code()),
            Err(Code::BadParam)
        );
        create(&f, &a.session, RoomType::Lockstep, 4, "").await.expect("one room");
        let second = create(&f, &b.session, RoomType::Public, 4, "").await;
        assert_eq!(second.map_err(|e| e.code()), Err(Code::TooManyRequests), "world.max_rooms");
        // The lockstep room is neither listed to nor open to a go-game client.
        let room = f.world.created_rooms()[0].0;
        assert_eq!(enter(&f, &b.session, room, "").await.map_err(|e| e.code()), Err(Code::NotFound));
        f.world.clone().room_list(b.session.clone(), pb::RoomList { r#type: 0 }).await.expect("listed");
        let mut b = b;
        let list: pb::RoomListResp = b.expect(ids::reply(ids::ROOM_LIST)).await;
        assert!(list.room_list.iter().all(|r| r.room_id != room), "hidden: {list:?}");
        // Scenes are listed with the rooms; a scene cannot be quit.
        let quit = pb::QuitRoom { room_id: 1000, ..Default::default() };
        assert_eq!(f.world.clone().quit_room(b.session.clone(), quit).await.map_err(|e| e.code()), Err(Code::Failed));
    }
}
