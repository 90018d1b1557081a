//! Parties on a game node: PartyCreate, PartyInvite, PartyJoin, PartyLeave and PartyKick,
//! each answered with the party as it is now and pushed to its members (over the bus for
//! members on other nodes), party chat (chatType 4), and a member leaving when its stay ends.

use super::*;
use crate::matchmaker::Member;
use crate::party::Party;
use crate::party::store::{LocalParties, PartyStore, RedisParties, change, in_a_party};
use pb::PartyEvent;

/// Where this node keeps parties: Redis when it is one of several, in process otherwise.
pub(super) fn store(cluster: Option<&Cluster>) -> Arc<dyn PartyStore> {
    match cluster.and_then(|c| RedisParties::new(c.cache())) {
        Some(s) => Arc::new(s),
        None => Arc::new(LocalParties::default()),
    }
}

/// A party id from the request: checked before it reaches the store.
fn party_id(id: &str) -> Result<&str> {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok { Ok(id) } else { Err(Error::msg(Code::NotFound, "no such party")) }
}

impl World {
    fn member(&self, uid: PlayerId) -> Member {
        let nickname = lock(&self.0.players).get(&uid).map(|p| p.profile.nickname.clone()).unwrap_or_default();
        Member { user: uid.get(), nickname }
    }

    /// Pushes `update` to `users` here, and over the bus for those elsewhere.
    async fn tell_party(&self, users: Vec<i64>, update: pb::PartyUpdate) {
        self.on_party_news(&users, &update);
        if let Some(c) = &self.0.cluster {
            c.publish(What::Party { users, update }).await;
        }
    }

    /// A party's news: pushed to those of `users` on this node.
    pub(super) fn on_party_news(&self, users: &[i64], update: &pb::PartyUpdate) {
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            users.iter().filter_map(|u| players.get(&PlayerId::new(*u))).filter_map(|p| p.session.clone()).collect()
        };
        send_many(&sessions, ids::PARTY_UPDATE, update);
    }

    pub(super) async fn party_create(self, session: Session, msg: pb::PartyCreate) -> Result<()> {
        let uid = World::me(&session)?;
        let id = format!("{}-{}", self.0.env.run, self.0.party_seq.fetch_add(1, Ordering::Relaxed));
        let party = Party::new(id.clone(), self.member(uid), msg.open, msg.max_size)?;
        match self.0.parties.put(&id, 0, Some(&party), &[uid.get()], &[]).await? {
            crate::party::store::Put::Done => {}
            _ => return Err(in_a_party(uid.get())),
        }
        tracing::debug!(user = %uid, party = %id, "party created");
        session.push(ids::PARTY_UPDATE, &party.to_pb(PartyEvent::Created, uid.get()));
        Ok(())
    }

    pub(super) async fn party_invite(self, session: Session, msg: pb::PartyInvite) -> Result<()> {
        let uid = World::me(&session)?;
        let id = party_id(&msg.party_id)?;
        if msg.user_id <= 0 || msg.user_id == uid.get() {
            return Err(Error::bad_param("userId: another player's id"));
        }
        // A real account: invitations to made-up ids would only fill the list.
        self.0.directory.profile(msg.user_id).await?;
        let now = unix_ms();
        let (after, ()) = change(self.0.parties.as_ref(), id, |mut p| {
            p.invite(uid.get(), msg.user_id, now)?;
            Ok((Some(p), vec![], vec![], ()))
        })
        .await?;
        let Some(p) = after else { return Ok(()) };
        let mut to = p.users();
        to.push(msg.user_id);
        self.tell_party(to, p.to_pb(PartyEvent::Invited, msg.user_id)).await;
        Ok(())
    }

    pub(super) async fn party_join(self, session: Session, msg: pb::PartyJoin) -> Result<()> {
        let uid = World::me(&session)?;
        let id = party_id(&msg.party_id)?;
        let me = self.member(uid);
        let now = unix_ms();
        let (after, ()) = change(self.0.parties.as_ref(), id, |mut p| {
            p.join(me.clone(), now)?;
            Ok((Some(p), vec![uid.get()], vec![], ()))
        })
        .await?;
        if let Some(p) = after {
            self.tell_party(p.users(), p.to_pb(PartyEvent::Joined, uid.get())).await;
            // A ticket queued before the join does not hold the new member.
            self.drop_party_ticket(PlayerId::new(p.leader)).await;
        }
        Ok(())
    }

    pub(super) async fn party_leave(self, session: Session, msg: pb::PartyLeave) -> Result<()> {
        let uid = World::me(&session)?;
        let id = party_id(&msg.party_id)?;
        self.leave_party_id(uid, id).await
    }

    async fn leave_party_id(&self, uid: PlayerId, id: &str) -> Result<()> {
        let (after, last) = change(self.0.parties.as_ref(), id, |mut p| {
            let stays = p.leave(uid.get())?;
            let last = p.clone();
            Ok((stays.then_some(p), vec![], vec![uid.get()], last))
        })
        .await?;
        // The leaver hears it too, so every client sees the same last word.
        let (mut to, update) = match &after {
            Some(p) => (p.users(), p.to_pb(PartyEvent::Left, uid.get())),
            None => (Vec::new(), last.to_pb(PartyEvent::Closed, uid.get())),
        };
        to.push(uid.get());
        self.tell_party(to, update).await;
        // A party queued for a match is no longer the party that queued.
        self.drop_party_ticket(uid).await;
        Ok(())
    }

    /// Takes out of the queue the ticket `uid` is in (its party's), if any.
    async fn drop_party_ticket(&self, uid: PlayerId) {
        match self.0.matching.queue.remove_player(uid.get()).await {
            Ok(Some(t)) => tracing::debug!(user = %uid, ticket = %t.id, "party ticket dropped: the party changed"),
            Ok(None) => {}
            Err(e) => tracing::warn!(user = %uid, error = %e, "party ticket not dropped: it may still be matched"),
        }
    }

    /// The player's stay ended: it leaves its party (a dropped connection within the grace
    /// keeps it).
    pub(super) async fn leave_party(&self, uid: PlayerId) {
        let id = match self.0.parties.party_of(uid.get()).await {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(user = %uid, error = %e, "party not left: the store is away");
                return;
            }
        };
        if let Err(e) = self.leave_party_id(uid, &id).await {
            tracing::warn!(user = %uid, party = %id, error = %e, "party not left");
        }
    }

    pub(super) async fn party_kick(self, session: Session, msg: pb::PartyKick) -> Result<()> {
        let uid = World::me(&session)?;
        let id = party_id(&msg.party_id)?;
        let (after, ()) = change(self.0.parties.as_ref(), id, |mut p| {
            p.kick(uid.get(), msg.user_id)?;
            Ok((Some(p), vec![], vec![msg.user_id], ()))
        })
        .await?;
        if let Some(p) = after {
            let mut to = p.users();
            to.push(msg.user_id);
            self.tell_party(to, p.to_pb(PartyEvent::Kicked, msg.user_id)).await;
        }
        self.drop_party_ticket(PlayerId::new(msg.user_id)).await;
        Ok(())
    }

    /// The party `uid` is in, if any.
    pub(super) async fn party_of(&self, uid: PlayerId) -> Result<Option<Party>> {
        match self.0.parties.party_of(uid.get()).await? {
            Some(id) => Ok(self.0.parties.get(&id).await?.filter(|p| p.has(uid.get()))),
            None => Ok(None),
        }
    }

    /// Party chat: to every other member, here or on other nodes (blacklists honoured here).
    pub(super) async fn party_chat(&self, uid: PlayerId, m: pb::ChatMsg) -> Result<()> {
        let party = self.party_of(uid).await?.ok_or_else(|| Error::msg(Code::NotFound, "not in a party"))?;
        let users: Vec<i64> = party.users().into_iter().filter(|u| *u != uid.get()).collect();
        self.on_group_chat(&users, &m);
        if let Some(c) = &self.0.cluster {
            c.publish(What::GroupChat { users, msg: m }).await;
        }
        Ok(())
    }

    /// Party or guild chat from a member: to those of `users` here who did not blacklist
    /// the sender.
    pub(super) fn on_group_chat(&self, users: &[i64], m: &pb::ChatMsg) {
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            users
                .iter()
                .filter_map(|u| players.get(&PlayerId::new(*u)))
                .filter(|p| !p.blocked.contains(&m.user_id))
                .filter_map(|p| p.session.clone())
                .collect()
        };
        send_many(&sessions, ids::reply(ids::CHAT_MSG), &pb::ChatMsgResp { msg_list: vec![m.clone()] });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    async fn update(p: &mut super::super::testing::Player) -> pb::PartyUpdate {
        p.expect::<pb::PartyUpdate>(ids::PARTY_UPDATE).await
    }

    #[tokio::test]
    async fn a_queued_party_that_changes_leaves_the_queue() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=all").await;
        let b = f.login(2, "caps=all").await;
        let c = f.login(3, "caps=all").await;
        f.world
            .clone()
            .party_create(a.session.clone(), pb::PartyCreate { open: true, max_size: 0 })
            .await
            .expect("party");
        let id = update(&mut a).await.party_id;
        f.world.clone().party_join(b.session.clone(), pb::PartyJoin { party_id: id.clone() }).await.expect("joined");
        let arena = pb::MatchAdd { mode: "arena2v2".into(), ..Default::default() };
        f.world.clone().match_add(a.session.clone(), arena.clone()).await.expect("queued");
        assert_eq!(f.world.0.matching.queue.all().await.expect("queue").len(), 1);
        // b leaves: the ticket that held it goes.
        f.world.clone().party_leave(b.session.clone(), pb::PartyLeave { party_id: id.clone() }).await.expect("left");
        assert!(f.world.0.matching.queue.all().await.expect("queue").is_empty(), "the old party's ticket is gone");
        // Queued again, then c joins: that ticket goes too.
        f.world.clone().match_add(a.session.clone(), arena).await.expect("queued again");
        f.world.clone().party_join(c.session.clone(), pb::PartyJoin { party_id: id }).await.expect("joined");
        assert!(f.world.0.matching.queue.all().await.expect("queue").is_empty(), "a ticket without c is gone");
    }

    #[tokio::test]
    async fn a_party_forms_chats_queues_as_one_ticket_and_survives_a_reconnect() {
        let f = Fixture::new(WorldConfig::default()).await;
        let mut a = f.login(1, "caps=all").await;
        let mut b = f.login(2, "caps=all").await;
        let mut c = f.login(3, "caps=all").await;
        f.world
            .clone()
            .party_create(a.session.clone(), pb::PartyCreate { open: false, max_size: 4 })
            .await
            .expect("created");
        let created = update(&mut a).await;
        assert_eq!((created.event, created.leader), (PartyEvent::Created as i32, 1));
        let id = created.party_id.clone();
        let join = |p: &super::super::testing::Player| {
            f.world.clone().party_join(p.session.clone(), pb::PartyJoin { party_id: id.clone() })
        };
        assert_eq!(join(&b).await.expect_err("by invitation").code(), Code::Forbidden);
        let invite = pb::PartyInvite { party_id: id.clone(), user_id: 2 };
        f.world.clone().party_invite(a.session.clone(), invite).await.expect("invited");
        let told = update(&mut b).await;
        assert_eq!((told.event, told.subject), (PartyEvent::Invited as i32, 2));
        join(&b).await.expect("joins");
        let joined = update(&mut a).await;
        assert!(joined.event == PartyEvent::Invited as i32 || joined.event == PartyEvent::Joined as i32);
        // One party per player.
        f.world
            .clone()
            .party_create(c.session.clone(), pb::PartyCreate { open: true, max_size: 0 })
            .await
            .expect("c's own");
        let cs = update(&mut c).await;
        let taken =
            f.world.clone().party_join(b.session.clone(), pb::PartyJoin { party_id: cs.party_id.clone() }).await;
        assert_eq!(taken.expect_err("b is in a's party").code(), Code::Failed);
        // Party chat reaches the members, not the outsider.
        let hi = pb::ChatMsg { chat_type: ChatType::Party as i32, msg_type: 1, msg: "gg".into(), ..Default::default() };
        f.world.clone().chat(a.session.clone(), hi).await.expect("party chat");
        b.expect_where(ids::reply(ids::CHAT_MSG), |m: &pb::ChatMsgResp| m.msg_list.iter().any(|x| x.msg == "gg")).await;
        // Only the leader queues; the party is one ticket with both players. With c (a party
        // of one) and d alone, they make the arena's 2v2.
        let arena = pb::MatchAdd { mode: "arena2v2".into(), ..Default::default() };
        let refused = f.world.clone().match_add(b.session.clone(), arena.clone()).await;
        assert_eq!(refused.expect_err("not the leader").code(), Code::Forbidden);
        f.world.clone().match_add(a.session.clone(), arena.clone()).await.expect("the party queued");
        let queued = f.world.0.matching.queue.all().await.expect("queue");
        assert_eq!(queued.len(), 1, "one ticket");
        assert_eq!(queued[0].players.iter().map(|m| m.user).collect::<Vec<_>>(), [1, 2]);
        let mut d = f.login(4, "caps=all").await;
        f.world.clone().match_add(c.session.clone(), arena.clone()).await.expect("c queued");
        f.world.clone().match_add(d.session.clone(), arena).await.expect("d queued");
        f.world.match_pass().await.expect("pass");
        let mut rooms = Vec::new();
        for p in [&mut a, &mut b, &mut c, &mut d] {
            let found: pb::MatchFound = p.expect(ids::MATCH_FOUND).await;
            assert_eq!(found.players.len(), 4);
            rooms.push(found.room_id);
        }
        rooms.dedup();
        assert_eq!(rooms.len(), 1, "the party and the others land in one match");
        // b drops and comes back within the grace: still a member.
        f.world.on_disconnect(&b.session, rsgame_gate::CloseReason::ClientClosed);
        let _b2 = f.login(2, "caps=all").await;
        assert!(f.world.party_of(PlayerId::new(2)).await.expect("store").is_some_and(|p| p.has(2)));
        // The leader logs out: b leads, and c's party is still c's.
        f.world.clone().logout(a.session.clone(), pb::Logout::default()).await.expect("logout");
        let p = f.world.party_of(PlayerId::new(2)).await.expect("store").expect("still a party");
        assert_eq!((p.leader, p.users()), (2, vec![2]));
        assert_eq!(f.world.party_of(PlayerId::new(3)).await.expect("store").map(|p| p.leader), Some(3));
    }
}
