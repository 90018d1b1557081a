//! Who is on this node: logins (token, claim across nodes, resume or fresh), the reconnect
//! grace after a dropped connection, logouts, kicks from other nodes and ended sessions, and
//! the private messages that waited for a player.

use super::*;

impl World {
    /// Closes the connections of accounts whose sessions the usercenter ended, until the bus
    /// subscription ends.
    pub(super) async fn follow_accounts(self, bus: Bus, node: String) {
        let w = &self;
        follow(&bus, SESSIONS_ENDED_TOPIC, &node, "ended-sessions", |e: SessionsEnded| async move {
            w.end_sessions(PlayerId::new(e.user_id), e.before_ms).await
        })
        .await
    }

    /// Ends the stay of `uid` if it logged in before `before_ms`: its token was issued before
    /// its sessions were ended. A login after that (with a newer token) stays.
    pub(super) async fn end_sessions(&self, uid: PlayerId, before_ms: i64) {
        let t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match players.get(&uid) {
                Some(p) if p.since_ms < before_ms => players.remove(&uid),
                _ => None,
            }
        };
        let Some(p) = gone else { return };
        if let Some(s) = &p.session {
            s.push(ids::reply(ids::LOGOUT), &pb::LogoutResp { r#type: LogoutType::Ended as i32, user_id: uid.get() });
            s.close(CloseReason::SessionEnded);
        }
        self.leave_node(uid, p.room).await;
        drop(t);
        self.unqueue(uid).await;
        self.leave_party(uid).await;
        self.notify_friends(uid, &p.profile, false, Some(&p.blocked)).await;
        tracing::info!(user = %uid, "player's session ended: the account's sessions were ended");
        metrics::gauge!(crate::metrics::ONLINE_PLAYERS).set(self.online() as f64);
    }

    /// Ends the stay of `uid` on this node: it logged in on another one at `sent_at`. A
    /// login here after that (the player came back) is newer and stays.
    pub(super) async fn kick_here(&self, uid: PlayerId, sent_at: i64) {
        let t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match players.get(&uid) {
                Some(p) if p.since_ms <= sent_at => players.remove(&uid),
                _ => None,
            }
        };
        let Some(p) = gone else { return };
        if let Some(s) = &p.session {
            s.push(
                ids::reply(ids::LOGOUT),
                &pb::LogoutResp { r#type: LogoutType::Elsewhere as i32, user_id: uid.get() },
            );
            s.close(CloseReason::Kicked);
        }
        self.leave_room(uid, p.room).await;
        drop(t);
        tracing::info!(user = %uid, "player moved to another node");
        metrics::gauge!(crate::metrics::ONLINE_PLAYERS).set(self.online() as f64);
    }

    /// The gate's disconnect hook: the player stays for the grace period, then leaves.
    pub fn on_disconnect(&self, session: &Session, reason: CloseReason) {
        let (Some(uid), Some(LoginGen(generation))) = (session.user().map(PlayerId::new), session.get::<LoginGen>())
        else {
            return;
        };
        // At shutdown the flush saves everyone; nobody is leaving.
        if reason == CloseReason::Shutdown {
            return;
        }
        let world = self.clone();
        let grace = Duration::from_secs(self.0.cfg.reconnect_grace_secs);
        tracing::debug!(user = %uid, reason = ?reason, "player dropped; waiting for a reconnect");
        let session_id = session.id();
        tokio::spawn(async move {
            {
                let _t = world.transition(uid).await;
                let room = {
                    let mut players = lock(&world.0.players);
                    let Some(p) = players.get_mut(&uid).filter(|p| p.generation == generation) else { return };
                    p.session = None;
                    p.room
                };
                // The one place a close is seen: the room the player is in now (read under
                // its transition lock, so a move cannot slip between) keeps it, away, until
                // it comes back or the grace ends.
                if let Some(h) = world.room_handle(room) {
                    h.disconnected(uid, session_id).await;
                }
            }
            // Its ticket goes now: a match formed without it would hold a seat for nobody.
            world.unqueue(uid).await;
            tokio::time::sleep(grace).await;
            world.expire(uid, generation).await;
        });
    }

    /// Ends a dropped player's stay if it did not come back.
    pub(super) async fn expire(&self, uid: PlayerId, generation: u64) {
        let _t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match players.get(&uid) {
                Some(p) if p.generation == generation && p.session.is_none() => players.remove(&uid),
                _ => None,
            }
        };
        if let Some(p) = gone {
            // The gauge follows every removal, this one too: without it a node whose players
            // all dropped went on reporting them online (seen in the idle benchmark).
            metrics::gauge!(crate::metrics::ONLINE_PLAYERS).set(self.online() as f64);
            tracing::debug!(user = %uid, "reconnect grace over: player leaves");
            self.leave_node(uid, p.room).await;
            self.leave_party(uid).await;
            self.notify_friends(uid, &p.profile, false, Some(&p.blocked)).await;
        }
    }

    /// Ends a stay on this node: out of `room` (saved), and no longer present here for the
    /// cluster.
    pub(super) async fn leave_node(&self, uid: PlayerId, room: i64) {
        self.leave_room(uid, room).await;
        if let Some(c) = &self.0.cluster {
            c.left(uid.get()).await;
        } else if let Some(cache) = &self.0.presence
            && let Err(e) = cache.delete(&[&crate::cluster::presence_key(uid.get())]).await
        {
            tracing::debug!(user = %uid, error = %e, "presence not removed: it expires");
        }
    }

    pub(super) async fn login(self, session: Session, msg: pb::GameLogin) -> Result<()> {
        if session.user().is_some() {
            return Err(Error::msg(Code::Forbidden, "this connection is logged in already"));
        }
        // A client that logs in as go-game's does is served exactly go-game's protocol, from
        // its first answer (a refused token included).
        let caps = Caps::parse(&msg.param);
        session.set(caps);
        session.set_error_frames(caps.has(Caps::ERRORS));
        let claims = self.0.auth.check(&msg.token).await.map_err(|e| {
            tracing::debug!(session = session.id(), reason = %e, "game login refused");
            Error::new(Code::TokenExpired)
        })?;
        if claims.user_id != msg.user_id {
            tracing::warn!(session = session.id(), claimed = msg.user_id, "game login with another account's token");
            return Err(Error::msg(Code::Forbidden, "the token belongs to another account"));
        }
        let uid = PlayerId::new(claims.user_id);
        self.check_open()?;
        if let Some(c) = &self.0.cluster
            && c.claim(uid.get()).await.is_some()
        {
            // On another node: that stay ends (its connection hears "logged in elsewhere"),
            // and its place is saved before this node loads it, so moving between nodes loses
            // nothing; a node that does not answer in time (dead) left its last save.
            let (tx, rx) = oneshot::channel();
            lock(&self.0.leaving).insert(uid, tx);
            c.publish(What::Kick { user: uid.get() }).await;
            if tokio::time::timeout(LEAVE_WAIT, rx).await.is_err() {
                tracing::debug!(user = %uid, "the previous node did not confirm the player left");
            }
            lock(&self.0.leaving).remove(&uid);
        }
        // Read under the account's transition lock: a logout or a grace end still saving
        // this player finishes first, so what is read is what it left.
        let _t = self.transition(uid).await;
        let profile = self.0.directory.profile(uid.get()).await?;
        let pack = self.0.game.pack(uid.get()).await?;
        let place = self.0.store.place(uid.get()).await?;
        let blocked: HashSet<i64> =
            self.0.store.relations(uid.get(), BLACKLIST, 10_000).await?.into_iter().map(|(id, _)| id).collect();
        let generation = self.0.generations.fetch_add(1, Ordering::Relaxed);

        enum Plan {
            Resume { old: Option<Session>, room: i64 },
            Fresh { room: i64, x: f32, z: f32 },
        }
        let plan = {
            let mut players = lock(&self.0.players);
            if let Some(p) = players.get_mut(&uid) {
                let old = p.session.replace(session.clone());
                p.caps = caps;
                p.generation = generation;
                p.since_ms = unix_ms();
                p.blocked = blocked;
                Plan::Resume { old, room: p.room }
            } else {
                let mut rooms = lock(&self.0.rooms);
                // The saved scene if it still exists, else the first one at its start point.
                let (room, x, z) = match place {
                    Some(pl) if rooms.get(&i64::from(pl.scene_id)).is_some_and(|r| r.permanent) => {
                        (i64::from(pl.scene_id), pl.x, pl.z)
                    }
                    _ => {
                        let (spawn, radius) = rooms
                            .get(&self.0.default_scene)
                            .map_or(((185.0, 159.0), 25.0), |r| (r.spawn, r.spawn_radius));
                        let (x, z) = World::spawn_point(uid, spawn, radius);
                        (self.0.default_scene, x, z)
                    }
                };
                if let Some(r) = rooms.get_mut(&room) {
                    r.members.insert(uid);
                }
                drop(rooms);
                players.insert(
                    uid,
                    Online {
                        session: Some(session.clone()),
                        generation,
                        room,
                        home: room,
                        profile: profile.clone(),
                        since_ms: unix_ms(),
                        blocked,
                        chat: Bucket { tokens: f64::from(self.0.cfg.chat_burst), last: Instant::now() },
                        caps,
                    },
                );
                Plan::Fresh { room, x, z }
            }
        };
        session.bind_user(uid.get());
        session.set(LoginGen(generation));
        match plan {
            Plan::Resume { old, room } => {
                if let Some(old) = old.filter(|o| o.id() != session.id()) {
                    old.push(
                        ids::reply(ids::LOGOUT),
                        &pb::LogoutResp { r#type: LogoutType::Elsewhere as i32, user_id: uid.get() },
                    );
                    old.close(CloseReason::Kicked);
                }
                tracing::info!(user = %uid, room, "player resumed");
                let info = World::user_info(uid.get(), &profile, &msg.plat, true, room);
                if let Some(h) = self.room_handle(room) {
                    h.enter(uid, &session, Greet::Login(info), None).await?;
                }
            }
            Plan::Fresh { room, x, z } => {
                tracing::info!(user = %uid, room, "player entered the world");
                let info = World::user_info(uid.get(), &profile, &msg.plat, true, room);
                if let Some(h) = self.room_handle(room) {
                    let name =
                        if profile.nickname.is_empty() { profile.username.clone() } else { profile.nickname.clone() };
                    // UserInfo first: what follows (offline messages) comes after it.
                    h.enter(uid, &session, Greet::Login(info), Some((name, x, z, Stats::from_pack(&pack)))).await?;
                }
                self.notify_friends(uid, &profile, true, None).await;
            }
        }
        metrics::gauge!(crate::metrics::ONLINE_PLAYERS).set(self.online() as f64);
        if let Some(c) = &self.0.cluster {
            c.arrived(uid.get()).await;
        } else if let Some(cache) = &self.0.presence {
            let key = crate::cluster::presence_key(uid.get());
            if let Err(e) = cache.set(&key, &"local", Some(inbox::LOCAL_PRESENCE)).await {
                tracing::debug!(user = %uid, error = %e, "presence not written");
            }
        }
        self.deliver_offline(uid, &session).await;
        // Its party, if it is in one (a reload or another device learns where it stands).
        match self.party_of(uid).await {
            Ok(Some(p)) => session.push(ids::PARTY_UPDATE, &p.to_pb(pb::PartyEvent::None, uid.get())),
            Ok(None) => {}
            Err(e) => tracing::warn!(user = %uid, error = %e, "party not read at login"),
        }
        Ok(())
    }

    /// Private messages that arrived while the player was away.
    pub(super) async fn deliver_offline(&self, uid: PlayerId, session: &Session) {
        loop {
            let waiting = match self.0.store.undelivered(uid.get(), 100).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(user = %uid, error = %e, "offline messages not loaded");
                    return;
                }
            };
            if waiting.is_empty() {
                return;
            }
            let ids_: Vec<i64> = waiting.iter().map(|m| m.id).collect();
            let msg_list = waiting.into_iter().map(chat_msg).collect();
            if session.send(ids::reply(ids::CHAT_MSG), &pb::ChatMsgResp { msg_list }).is_err() {
                return; // gone again: they stay undelivered
            }
            if let Err(e) = self.0.store.mark_delivered(&ids_).await {
                tracing::warn!(user = %uid, error = %e, "offline messages not marked delivered");
                return;
            }
            if ids_.len() < 100 {
                return;
            }
        }
    }

    pub(super) async fn logout(self, session: Session, _msg: pb::Logout) -> Result<()> {
        let uid = World::me(&session)?;
        let t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match session.get::<LoginGen>() {
                Some(LoginGen(g)) if players.get(&uid).is_some_and(|p| p.generation == g) => players.remove(&uid),
                _ => None,
            }
        };
        if let Some(p) = gone {
            self.leave_node(uid, p.room).await;
            drop(t);
            self.unqueue(uid).await;
            self.leave_party(uid).await;
            self.notify_friends(uid, &p.profile, false, Some(&p.blocked)).await;
            tracing::info!(user = %uid, "player logged out");
        }
        metrics::gauge!(crate::metrics::ONLINE_PLAYERS).set(self.online() as f64);
        session.push(ids::reply(ids::LOGOUT), &pb::LogoutResp { r#type: LogoutType::Quit as i32, user_id: uid.get() });
        session.close(CloseReason::Kicked);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;
    use crate::store::Place;

    fn grace(secs: u64) -> WorldConfig {
        WorldConfig { reconnect_grace_secs: secs, ..WorldConfig::default() }
    }

    #[tokio::test]
    async fn a_token_must_be_valid_and_belong_to_the_account_it_claims() {
        let f = Fixture::new(grace(30)).await;
        let p = f.connect(1);
        let theirs = pb::GameLogin { user_id: 1, token: f.token(2), ..Default::default() };
        let e = f.world.clone().login(p.session.clone(), theirs).await.expect_err("another account's token");
        assert_eq!(e.code(), Code::Forbidden);
        let junk = pb::GameLogin { user_id: 1, token: "junk".into(), ..Default::default() };
        let e = f.world.clone().login(p.session.clone(), junk).await.expect_err("not a token");
        assert_eq!(e.code(), Code::TokenExpired);
        assert_eq!(f.world.online(), 0);
        // An account the directory does not know cannot play, whatever its token.
        let ghost = pb::GameLogin { user_id: 77, token: f.token(77), ..Default::default() };
        let e = f.world.clone().login(p.session.clone(), ghost).await.expect_err("no such account");
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(f.world.online(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins_each_enter_at_their_own_saved_place() {
        let f = Fixture::new(grace(30)).await;
        let ids: Vec<i64> = (1..=40).collect();
        for &id in &ids {
            f.add_account(id);
        }
        // Inside scene 1000 (85..410 x 75..400), a different spot for each.
        let place = |id: i64| Place { scene_id: 1000, x: 100.0 + id as f32 * 5.0, z: 120.0 + id as f32 * 3.0 };
        let saved: Vec<(i64, Place)> = ids.iter().map(|&id| (id, place(id))).collect();
        f.world.0.store.save_places(&saved).await.expect("saved");
        let mut players: Vec<_> = ids.iter().map(|&id| f.connect(id)).collect();
        // All at once, on two threads: every login's reads interleave with the others'.
        let logins: Vec<_> = players
            .iter()
            .map(|p| {
                let msg = pb::GameLogin {
                    user_id: p.id,
                    token: f.token(p.id),
                    plat: "test".into(),
                    param: "caps=all".into(),
                };
                tokio::spawn(f.world.clone().login(p.session.clone(), msg))
            })
            .collect();
        for l in logins {
            l.await.expect("login task").expect("login");
        }
        for p in &mut players {
            let info: pb::UserInfo = p.expect(ids::reply(ids::GAME_LOGIN)).await;
            assert_eq!(info.user_id, p.id, "its own account");
            let at = info.position.expect("a position");
            let want = place(p.id);
            assert!(
                (at.x - want.x).abs() < 1e-3 && (at.z - want.z).abs() < 1e-3,
                "player {} entered at {at:?}; its saved place is {want:?}",
                p.id
            );
            assert_eq!(p.session.user(), Some(p.id));
        }
        assert_eq!(f.world.online(), ids.len());
    }

    #[tokio::test]
    async fn a_second_login_takes_over_and_a_dropped_player_resumes_within_the_grace() {
        let f = Fixture::new(grace(30)).await;
        let mut first = f.login(1, "caps=all").await;
        let second = f.login(1, "caps=all").await;
        let out: pb::LogoutResp = first.expect(ids::reply(ids::LOGOUT)).await;
        assert_eq!(out.r#type, LogoutType::Elsewhere as i32);
        assert!(first.session.is_closed(), "the first connection is closed");
        assert_eq!(f.world.online(), 1);
        // The first connection's late disconnect changes nothing: it was replaced.
        f.world.on_disconnect(&first.session, CloseReason::Kicked);
        // The second drops: the player stays, away, and a login resumes it where it was.
        second.session.close(CloseReason::ClientClosed);
        f.world.on_disconnect(&second.session, CloseReason::ClientClosed);
        f.until("marked away", |w| lock(&w.0.players).get(&PlayerId::new(1)).is_some_and(|p| p.session.is_none()))
            .await;
        let room = lock(&f.world.0.players).get(&PlayerId::new(1)).map(|p| p.room);
        let mut third = f.login(1, "caps=all").await;
        third.expect::<pb::PlayerStats>(ids::PLAYER_STATS).await;
        assert_eq!(lock(&f.world.0.players).get(&PlayerId::new(1)).map(|p| p.room), room, "same room");
        assert_eq!(f.world.online(), 1, "one player, no duplicate");
    }

    #[tokio::test]
    async fn the_online_gauge_falls_when_a_dropped_players_grace_ends() {
        // A current-thread runtime: the grace task runs on this thread, so it records here.
        let (metrics, _guard) = rsgame_kit::telemetry::metrics::Metrics::for_this_thread();
        let online = || {
            metrics
                .render()
                .lines()
                .find_map(|l| l.strip_prefix(crate::metrics::ONLINE_PLAYERS).and_then(|v| v.trim().parse::<f64>().ok()))
        };
        let f = Fixture::new(grace(0)).await;
        let p = f.login(1, "").await;
        assert_eq!(online(), Some(1.0));
        f.world.on_disconnect(&p.session, CloseReason::ClientClosed);
        f.until("gone once the grace is over", |w| w.online() == 0).await;
        assert_eq!(online(), Some(0.0), "the gauge follows the player out");
    }

    #[tokio::test]
    async fn the_grace_ends_a_stay_with_its_place_saved_and_a_logout_ends_it_at_once() {
        let f = Fixture::new(grace(0)).await;
        let p = f.login(1, "").await;
        f.world.on_disconnect(&p.session, CloseReason::ClientClosed);
        f.until("gone once the grace is over", |w| w.online() == 0).await;
        let place = f.world.0.store.place(1).await.expect("read");
        assert!(place.is_some_and(|pl| pl.scene_id == 1000), "saved on leaving: {place:?}");

        let mut q = f.login(2, "").await;
        f.world.clone().logout(q.session.clone(), pb::Logout::default()).await.expect("logout");
        let out: pb::LogoutResp = q.expect(ids::reply(ids::LOGOUT)).await;
        assert_eq!(out.r#type, LogoutType::Quit as i32);
        assert!(q.session.is_closed());
        assert_eq!(f.world.online(), 0);
    }

    #[tokio::test]
    async fn ended_sessions_close_logins_from_before_only() {
        let f = Fixture::new(grace(30)).await;
        let mut p = f.login(1, "").await;
        let before = unix_ms();
        // A login from before the end is closed and told (go-game's LogoutResp).
        f.world.end_sessions(PlayerId::new(1), before + 1).await;
        let out: pb::LogoutResp = p.expect(ids::reply(ids::LOGOUT)).await;
        assert_eq!(out.r#type, LogoutType::Ended as i32);
        assert_eq!(p.session.close_reason(), Some(CloseReason::SessionEnded));
        assert_eq!(f.world.online(), 0);
        // One after it stays.
        let _again = f.login(1, "").await;
        f.world.end_sessions(PlayerId::new(1), before).await;
        assert_eq!(f.world.online(), 1);
    }
}
