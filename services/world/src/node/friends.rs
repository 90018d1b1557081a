//! Friends by consent and blacklists: a friend request waits in the other player's inbox
//! until it adds the requester back (the acceptance) or declines; the friend list shows
//! online status and room to mutual friends only; the online/offline notices.

use rsgame_game::inbox::NewMail;

use crate::store::{FRIEND, TEMPORARY};

use super::*;

/// The most friends a player keeps (friends and temporary friends, requests included).
pub(crate) const MAX_FRIENDS: usize = 200;
/// The most requests of one player that wait for an answer.
pub(crate) const MAX_PENDING: usize = 50;
/// A request to the same player is mailed at most once in this long (ms): asking again and
/// again fills nobody's inbox.
const REQUEST_MAIL_EVERY_MS: i64 = 3_600_000;

impl World {
    /// Tells the online players who have `uid` as a friend, and whom `uid` has as a friend in
    /// turn, that it came or went. Consent runs both ways: adding someone is one-sided, so
    /// it must not let the adder watch them.
    pub(super) async fn notify_friends(
        &self,
        uid: PlayerId,
        profile: &Profile,
        online: bool,
        blocked: Option<&HashSet<i64>>,
    ) {
        let followers = match self.mutual_friends(uid).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(user = %uid, error = %e, "friends not told");
                return;
            }
        };
        let mine = match blocked {
            Some(b) => b.clone(),
            None => lock(&self.0.players).get(&uid).map(|p| p.blocked.clone()).unwrap_or_default(),
        };
        let info = World::user_info(uid.get(), profile, "", online, 0);
        if let Some(c) = &self.0.cluster {
            let what = What::Friend {
                user: uid.get(),
                info: info.clone(),
                followers: followers.clone(),
                blocked: mine.iter().copied().collect(),
            };
            c.publish(what).await;
        }
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            // Not to those it blacklisted, nor to those who blacklisted it.
            followers
                .iter()
                .filter(|f| !mine.contains(f))
                .filter_map(|f| players.get(&PlayerId::new(*f)))
                .filter(|p| p.caps.has(Caps::FRIENDS) && !p.blocked.contains(&uid.get()))
                .filter_map(|p| p.session.clone())
                .collect()
        };
        send_many(&sessions, ids::FRIEND_STATUS, &info);
    }

    /// Who has `uid` as a friend and is one of `uid`'s friends: the players who may see its
    /// status and room.
    pub(super) async fn mutual_friends(
        &self,
        uid: PlayerId,
    ) -> std::result::Result<Vec<i64>, rsgame_store::StoreError> {
        let followers = self.0.store.followers(uid.get(), 5000).await?;
        if followers.is_empty() {
            return Ok(followers);
        }
        let mine: HashSet<i64> = self
            .0
            .store
            .relations(uid.get(), 0, 5000)
            .await?
            .into_iter()
            .filter(|(_, kind)| *kind == crate::store::FRIEND || *kind == crate::store::TEMPORARY)
            .map(|(other, _)| other)
            .collect();
        Ok(followers.into_iter().filter(|f| mine.contains(f)).collect())
    }

    pub(super) async fn add_friend(self, session: Session, msg: pb::AddFriend) -> Result<()> {
        let uid = World::me(&session)?;
        let Ok(kind) = pb::FriendType::try_from(msg.r#type) else {
            return Err(Error::bad_param("type: 0 forget, 1 friend, 2 blacklist, 3 temporary, 4 decline"));
        };
        if msg.user_id <= 0 || msg.user_id == uid.get() {
            return Err(Error::bad_param("userId: another player's id"));
        }
        let other = msg.user_id;
        self.0.directory.profile(other).await?;
        let text = match kind {
            pb::FriendType::Friend => self.request_or_accept(uid, other).await?,
            pb::FriendType::Request => {
                self.decline(uid, other).await?;
                "declined"
            }
            _ => {
                self.0.store.set_relation(uid.get(), other, msg.r#type).await?;
                "ok"
            }
        };
        if let Some(p) = lock(&self.0.players).get_mut(&uid) {
            if msg.r#type == BLACKLIST {
                p.blocked.insert(other);
            } else if kind != pb::FriendType::Request {
                p.blocked.remove(&other);
            }
        }
        let (status, text) = status(true, text);
        session.push(ids::reply(ids::ADD_FRIEND), &pb::AddFriendResp { status, msg: text });
        Ok(())
    }

    /// `uid` adds `other` as a friend: the answer to `other`'s request if it asked first,
    /// otherwise a request that waits in `other`'s inbox. What the client is told.
    async fn request_or_accept(&self, uid: PlayerId, other: i64) -> Result<&'static str> {
        let me = uid.get();
        let mine = self.0.store.relations(me, 0, (MAX_FRIENDS + MAX_PENDING) as u64 * 4).await?;
        let asked_me: HashSet<i64> = self.0.store.followers(me, 5000).await?.into_iter().collect();
        if mine.iter().any(|&(o, k)| o == other && k == FRIEND) {
            // Asked again: nothing changes.
            return Ok(if asked_me.contains(&other) { "already friends" } else { "request sent" });
        }
        let friends = mine.iter().filter(|&&(_, k)| k == FRIEND || k == TEMPORARY).count();
        if friends >= MAX_FRIENDS {
            return Err(Error::msg(Code::Forbidden, format!("a friend list holds at most {MAX_FRIENDS}")));
        }
        if asked_me.contains(&other) {
            self.0.store.set_relation(me, other, FRIEND).await?;
            // Mutual now: each sees the other; `other` hears that `uid` is online.
            let profile = lock(&self.0.players).get(&uid).map(|p| p.profile.clone());
            if let Some(profile) = profile {
                self.notify_friends(uid, &profile, true, None).await;
            }
            return Ok("friends now");
        }
        let pending = mine.iter().filter(|&&(o, k)| k == FRIEND && !asked_me.contains(&o)).count();
        if pending >= MAX_PENDING {
            return Err(Error::msg(Code::TooManyRequests, format!("at most {MAX_PENDING} friend requests may wait")));
        }
        self.0.store.set_relation(me, other, FRIEND).await?;
        // One who blacklisted the requester is not told; the requester is not told either.
        if self.0.store.blocks(other, me).await? {
            return Ok("request sent");
        }
        let name = match self.0.directory.profile(me).await {
            Ok(p) if !p.nickname.is_empty() => p.nickname,
            Ok(p) => p.username,
            Err(_) => format!("Player {me}"),
        };
        let mail = NewMail {
            user_id: other,
            kind: "friend".into(),
            title: format!("{name} wants to be your friend"),
            body: format!("Add {name} back to accept (AddFriend type 1, userId {me}), or decline (type 4)."),
            reference: format!("friend:{me}:{}", rsgame_kit::time::unix_ms() / REQUEST_MAIL_EVERY_MS),
            ..NewMail::default()
        };
        if let Err(e) = self.0.game.send_mail(mail).await {
            // Not half done: without its mail the request is taken back, and the client
            // hears that it failed.
            if let Err(undo) = self.0.store.set_relation(me, other, 0).await {
                tracing::warn!(user = %uid, other, error = %undo, "an unmailed friend request stays listed");
            }
            return Err(e);
        }
        Ok("request sent")
    }

    /// `uid` declines `other`'s request: `other`'s side of it goes.
    async fn decline(&self, uid: PlayerId, other: i64) -> Result<()> {
        let me = uid.get();
        let asked_me = self.0.store.followers(me, 5000).await?;
        let mine = self.0.store.relations(me, 0, (MAX_FRIENDS + MAX_PENDING) as u64 * 4).await?;
        let friends = mine.iter().any(|&(o, k)| o == other && (k == FRIEND || k == TEMPORARY));
        if !asked_me.contains(&other) || friends {
            return Err(Error::msg(Code::NotFound, "no friend request from that player"));
        }
        self.0.store.set_relation(other, me, 0).await?;
        Ok(())
    }

    pub(super) async fn my_friends(self, session: Session, msg: pb::MyFriend) -> Result<()> {
        let uid = World::me(&session)?;
        let Ok(kind) = pb::FriendType::try_from(msg.r#type) else {
            return Err(Error::bad_param("type: 0 all, 1 friends, 2 blacklist, 3 temporary, 4 requests to me"));
        };
        let key = msg.search_key.trim().to_lowercase();
        let relations = if kind == pb::FriendType::Request {
            // Who asked and has no answer yet: neither a friend of the asker's nor blocked.
            let mine: HashSet<i64> =
                self.0.store.relations(uid.get(), 0, 5000).await?.into_iter().map(|(o, _)| o).collect();
            let asked = self.0.store.followers(uid.get(), 5000).await?;
            asked.into_iter().filter(|o| !mine.contains(o)).take(500).map(|o| (o, msg.r#type)).collect()
        } else {
            self.0.store.relations(uid.get(), msg.r#type, 500).await?
        };
        // Only those who have the asker as a friend too show whether and where they are.
        let consenting: HashSet<i64> = self.0.store.followers(uid.get(), 5000).await?.into_iter().collect();
        let mut user_list = Vec::with_capacity(relations.len());
        for (other, _) in relations {
            // Who blacklisted the asker, or never befriended it, shows as offline to it, and
            // where it is stays hidden.
            let live = lock(&self.0.players).get(&PlayerId::new(other)).map(|p| {
                let shown = p.session.is_some() && !p.blocked.contains(&uid.get()) && consenting.contains(&other);
                (p.profile.clone(), shown, p.room)
            });
            let (profile, online, room) = match live {
                Some(v) => v,
                None => match self.0.directory.profile(other).await {
                    Ok(p) => (p, false, 0),
                    Err(_) => continue, // the account is gone
                },
            };
            if !key.is_empty()
                && !profile.username.to_lowercase().contains(&key)
                && !profile.nickname.to_lowercase().contains(&key)
            {
                continue;
            }
            user_list.push(World::user_info(other, &profile, "", online, if online { room } else { 0 }));
        }
        session.push(ids::reply(ids::MY_FRIEND), &pb::MyFriendResp { user_list });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    async fn befriend(f: &Fixture, s: &Session, other: i64) {
        let msg = pb::AddFriend { user_id: other, r#type: pb::FriendType::Friend as i32 };
        f.world.clone().add_friend(s.clone(), msg).await.expect("added");
    }

    async fn list(f: &Fixture, p: &mut super::super::testing::Player) -> Vec<pb::UserInfo> {
        let msg = pb::MyFriend { r#type: pb::FriendType::Friend as i32, search_key: String::new() };
        f.world.clone().my_friends(p.session.clone(), msg).await.expect("listed");
        p.expect::<pb::MyFriendResp>(ids::reply(ids::MY_FRIEND)).await.user_list
    }

    #[tokio::test]
    async fn status_shows_to_mutual_friends_only_and_pushes_to_those_who_asked() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=friends").await;
        let mut c = f.login(3, "").await;
        befriend(&f, &a.session, 2).await;
        befriend(&f, &c.session, 2).await;
        // One-sided so far: 2 shows offline to 1 even when online.
        let b = f.login(2, "").await;
        let l = list(&f, &mut a).await;
        assert_eq!((l.len(), l[0].online, l[0].room_id), (1, 0, 0), "no consent, nothing shown: {l:?}");
        // 2 befriends 1 back (not 3): now 1 sees it, 3 still does not.
        befriend(&f, &b.session, 1).await;
        let l = list(&f, &mut a).await;
        assert_eq!((l[0].online, l[0].room_id), (1, 1000));
        assert_eq!(list(&f, &mut c).await[0].online, 0);
        // 2 logs out: 1 (asked for friend pushes) is told; 3 is not, nor would a go-game client be.
        f.world.clone().logout(b.session.clone(), pb::Logout::default()).await.expect("logout");
        let gone: pb::UserInfo = a.expect(ids::FRIEND_STATUS).await;
        assert_eq!((gone.user_id, gone.online), (2, 0));
        assert!(!c.ids_within(Duration::from_millis(200)).await.contains(&ids::FRIEND_STATUS));
        // Refused: oneself, a bad type, an unknown account.
        for (user, kind) in [(1, 1), (2, 7), (404, 1)] {
            let e = f.world.clone().add_friend(a.session.clone(), pb::AddFriend { user_id: user, r#type: kind }).await;
            assert!(e.is_err(), "{user} {kind}");
        }
    }
    async fn add(f: &Fixture, s: &Session, other: i64, kind: pb::FriendType) -> std::result::Result<(), Code> {
        let msg = pb::AddFriend { user_id: other, r#type: kind as i32 };
        f.world.clone().add_friend(s.clone(), msg).await.map_err(|e| e.code())
    }

    async fn requests(f: &Fixture, p: &mut super::super::testing::Player) -> Vec<i64> {
        let msg = pb::MyFriend { r#type: pb::FriendType::Request as i32, search_key: String::new() };
        f.world.clone().my_friends(p.session.clone(), msg).await.expect("listed");
        p.expect::<pb::MyFriendResp>(ids::reply(ids::MY_FRIEND)).await.user_list.iter().map(|u| u.user_id).collect()
    }

    #[tokio::test]
    async fn a_request_waits_in_the_inbox_until_accepted_or_declined() {
        use pb::FriendType::{Blacklist, Friend, Request};
        let f = Fixture::new(WorldConfig::default()).await;
        let (mut a, mut b, c) = (f.login(1, "caps=all").await, f.login(2, "caps=all").await, f.login(3, "").await);
        let game = f.world.0.game.clone();
        // 1 asks 2: the request is mailed to 2 (once, however often 1 asks) and listed.
        add(&f, &a.session, 2, Friend).await.expect("request");
        add(&f, &a.session, 2, Friend).await.expect("asked again");
        let inbox = game.inbox(2, 0, 10).await.expect("inbox");
        assert_eq!(inbox.mails.len(), 1, "{inbox:?}");
        assert_eq!(
            (inbox.mails[0].kind.as_str(), inbox.mails[0].title.as_str()),
            ("friend", "Nick1 wants to be your friend")
        );
        assert_eq!(requests(&f, &mut b).await, [1]);
        assert_eq!(list(&f, &mut a).await[0].online, 0, "not accepted: nothing shown");
        // 2 accepts by adding 1 back: both see each other, and 1 hears 2 is online.
        add(&f, &b.session, 1, Friend).await.expect("accept");
        let r: pb::AddFriendResp = b.expect(ids::reply(ids::ADD_FRIEND)).await;
        assert_eq!(r.msg, "friends now");
        let seen: pb::UserInfo = a.expect(ids::FRIEND_STATUS).await;
        assert_eq!((seen.user_id, seen.online), (2, 1));
        assert_eq!(list(&f, &mut a).await[0].online, 1);
        assert!(requests(&f, &mut b).await.is_empty(), "answered");
        // Accepting twice changes nothing.
        add(&f, &b.session, 1, Friend).await.expect("again");
        // 3 asks 1, and 1 declines: 3's request is gone; declining again finds none.
        add(&f, &c.session, 1, Friend).await.expect("request");
        assert_eq!(requests(&f, &mut a).await, [3]);
        add(&f, &a.session, 3, Request).await.expect("decline");
        assert!(requests(&f, &mut a).await.is_empty());
        assert_eq!(add(&f, &a.session, 3, Request).await, Err(Code::NotFound));
        assert_eq!(add(&f, &a.session, 2, Request).await, Err(Code::NotFound), "a friend is not a request");
        // One who blacklisted the requester is not told, nor is its request listed.
        add(&f, &a.session, 4, Blacklist).await.expect("block");
        let d = f.login(4, "").await;
        add(&f, &d.session, 1, Friend).await.expect("sent, as far as 4 knows");
        assert!(requests(&f, &mut a).await.is_empty());
        assert!(game.inbox(1, 0, 10).await.expect("inbox").mails.iter().all(|m| !m.title.starts_with("Nick4")));
    }

    #[tokio::test]
    async fn a_request_to_an_offline_player_waits_for_its_next_login() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=all").await;
        // 5 is not online: the request is kept for it.
        add(&f, &a.session, 5, pb::FriendType::Friend).await.expect("request");
        let mut e = f.login(5, "caps=all").await;
        assert_eq!(requests(&f, &mut e).await, [1], "listed at the next login");
        // It drops and comes back within the grace: still there, and answered from there.
        f.world.on_disconnect(&e.session, rsgame_gate::CloseReason::ClientClosed);
        let mut e = f.login(5, "caps=all").await;
        assert_eq!(requests(&f, &mut e).await, [1]);
        add(&f, &e.session, 1, pb::FriendType::Friend).await.expect("accept");
        let seen: pb::UserInfo = a.expect(ids::FRIEND_STATUS).await;
        assert_eq!((seen.user_id, seen.online), (5, 1));
    }

    #[tokio::test]
    async fn requests_waiting_for_an_answer_are_limited() {
        let f = Fixture::new(WorldConfig::default()).await;
        let a = f.login(1, "").await;
        // Accounts beyond the fixture's nine, as the directory knows them.
        for id in 100..100 + MAX_PENDING as i64 + 1 {
            f.add_account(id);
        }
        for id in 100..100 + MAX_PENDING as i64 {
            add(&f, &a.session, id, pb::FriendType::Friend).await.expect("request");
        }
        let over = add(&f, &a.session, 100 + MAX_PENDING as i64, pb::FriendType::Friend).await;
        assert_eq!(over, Err(Code::TooManyRequests));
    }
}
