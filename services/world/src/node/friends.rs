//! Friends and blacklists: relations, the friend list with online status shown to mutual
//! friends only, and the online/offline notices.

use super::*;

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
        if pb::FriendType::try_from(msg.r#type).is_err() {
            return Err(Error::bad_param("type: 0 stranger, 1 friend, 2 blacklist, 3 temporary"));
        }
        if msg.user_id <= 0 || msg.user_id == uid.get() {
            return Err(Error::bad_param("userId: another player's id"));
        }
        self.0.directory.profile(msg.user_id).await?;
        self.0.store.set_relation(uid.get(), msg.user_id, msg.r#type).await?;
        if let Some(p) = lock(&self.0.players).get_mut(&uid) {
            if msg.r#type == BLACKLIST {
                p.blocked.insert(msg.user_id);
            } else {
                p.blocked.remove(&msg.user_id);
            }
        }
        let (status, text) = status(true, "ok");
        session.push(ids::reply(ids::ADD_FRIEND), &pb::AddFriendResp { status, msg: text });
        Ok(())
    }

    pub(super) async fn my_friends(self, session: Session, msg: pb::MyFriend) -> Result<()> {
        let uid = World::me(&session)?;
        if pb::FriendType::try_from(msg.r#type).is_err() {
            return Err(Error::bad_param("type: 0 all, 1 friends, 2 blacklist, 3 temporary"));
        }
        let key = msg.search_key.trim().to_lowercase();
        let relations = self.0.store.relations(uid.get(), msg.r#type, 500).await?;
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
}
