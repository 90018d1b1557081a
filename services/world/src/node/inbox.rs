//! What other game nodes send this one (the cluster's bus topic): world chat, private
//! messages, friend notices, kicks and their answers; and this node's presence kept alive.

use super::*;

/// How long a node alone keeps a player's presence without a refresh.
pub(super) const LOCAL_PRESENCE: Duration = Duration::from_secs(60);

impl World {
    /// Handles what other nodes send, until the bus subscription ends.
    pub(super) async fn follow_cluster(self, cluster: Arc<Cluster>) {
        let mut sub = subscribe(cluster.bus(), crate::cluster::TOPIC, cluster.node()).await;
        tracing::info!(node = cluster.node(), "following the other game nodes");
        while let Some(d) = sub.next().await {
            if let Some((what, sent_at, from)) = cluster.decode(&d.payload) {
                self.on_cluster(what, sent_at, from).await;
            }
            if let Err(e) = d.ack().await {
                tracing::debug!(error = %e, "cluster message not acknowledged");
            }
        }
    }

    /// Keeps the presence of every player on this node alive in the shared cache.
    pub(super) async fn refresh_presence(self, cluster: Arc<Cluster>) {
        let mut tick = tokio::time::interval(cluster.presence_ttl() / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let here: Vec<PlayerId> = lock(&self.0.players).keys().copied().collect();
            for uid in here {
                // Still here (not kicked to another node since the list was taken), so the
                // refresh cannot point presence back at this node wrongly.
                if lock(&self.0.players).contains_key(&uid) {
                    cluster.arrived(uid.get()).await;
                }
            }
        }
    }

    /// Keeps the presence of every player here alive for other services, on a node alone.
    pub(super) async fn refresh_local_presence(self) {
        let Some(cache) = self.0.presence.clone() else { return };
        let mut tick = tokio::time::interval(LOCAL_PRESENCE / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let here: Vec<PlayerId> = lock(&self.0.players).keys().copied().collect();
            for uid in here {
                if let Err(e) =
                    cache.set(&crate::cluster::presence_key(uid.get()), &"local", Some(LOCAL_PRESENCE)).await
                {
                    tracing::debug!(user = %uid, error = %e, "presence not written");
                }
            }
        }
    }

    /// One message from another node.
    pub(super) async fn on_cluster(&self, what: What, sent_at: i64, from: String) {
        match what {
            What::World(m) => {
                let reply = pb::ChatMsgResp { msg_list: vec![m.clone()] };
                Self::remember(&mut lock(&self.0.world_chat), &m, self.0.cfg.chat_history);
                let sessions: Vec<Session> = lock(&self.0.players)
                    .values()
                    .filter(|p| !p.blocked.contains(&m.user_id))
                    .filter_map(|p| p.session.clone())
                    .collect();
                send_many(&sessions, ids::reply(ids::CHAT_MSG), &reply);
            }
            What::Private { to, stored, msg } => {
                let live = lock(&self.0.players)
                    .get(&PlayerId::new(to))
                    .filter(|p| !p.blocked.contains(&msg.user_id))
                    .and_then(|p| p.session.clone());
                let reply = pb::ChatMsgResp { msg_list: vec![msg] };
                if live.is_some_and(|s| s.send(ids::reply(ids::CHAT_MSG), &reply).is_ok())
                    && let Err(e) = self.0.store.mark_delivered(&[stored]).await
                {
                    tracing::warn!(user = to, error = %e, "private message not marked delivered: it comes again at login");
                }
            }
            What::Friend { user, info, followers, blocked } => {
                let sessions: Vec<Session> = {
                    let players = lock(&self.0.players);
                    followers
                        .iter()
                        .filter(|f| !blocked.contains(f))
                        .filter_map(|f| players.get(&PlayerId::new(*f)))
                        .filter(|p| p.caps.has(Caps::FRIENDS) && !p.blocked.contains(&user))
                        .filter_map(|p| p.session.clone())
                        .collect()
                };
                send_many(&sessions, ids::FRIEND_STATUS, &info);
            }
            What::Kick { user } => {
                self.kick_here(PlayerId::new(user), sent_at).await;
                // Saved (or never here): the node that asked may load the place now.
                if let Some(c) = &self.0.cluster {
                    c.publish(What::Left { user, to: from }).await;
                }
            }
            What::Left { user, to } => {
                if self.0.cluster.as_ref().is_some_and(|c| c.node() == to)
                    && let Some(waiting) = lock(&self.0.leaving).remove(&PlayerId::new(user))
                {
                    // The login stopped waiting (it timed out): it loaded the last save anyway.
                    let _ = waiting.send(());
                }
            }
            news @ (What::Matched(_) | What::MatchTimedOut { .. }) => self.on_match_news(&news),
            What::Party { users, update } => self.on_party_news(&users, &update),
            What::GroupChat { users, msg } => self.on_group_chat(&users, &msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    #[tokio::test]
    async fn another_nodes_chat_reaches_players_here_and_its_kick_ends_an_older_stay() {
        let f = Fixture::new(WorldConfig::default()).await;
        let (mut a, mut b) = (f.login(1, "").await, f.login(2, "").await);
        let block = pb::AddFriend { user_id: 9, r#type: pb::FriendType::Blacklist as i32 };
        f.world.clone().add_friend(b.session.clone(), block).await.expect("b blocks 9");
        let from_9 =
            pb::ChatMsg { user_id: 9, chat_type: ChatType::World as i32, msg: "hi all".into(), ..Default::default() };
        f.world.on_cluster(What::World(from_9), unix_ms(), "other".into()).await;
        let got: pb::ChatMsgResp = a.expect(ids::reply(ids::CHAT_MSG)).await;
        assert_eq!(got.msg_list[0].user_id, 9);
        assert!(!b.ids_within(Duration::from_millis(200)).await.contains(&ids::reply(ids::CHAT_MSG)), "blocked");
        // A kick sent before a's login is stale; one sent after ends its stay here.
        f.world.on_cluster(What::Kick { user: 1 }, 0, "other".into()).await;
        assert_eq!(f.world.online(), 2);
        f.world.on_cluster(What::Kick { user: 1 }, unix_ms() + 1, "other".into()).await;
        let out: pb::LogoutResp = a.expect(ids::reply(ids::LOGOUT)).await;
        assert_eq!(out.r#type, LogoutType::Elsewhere as i32);
        assert_eq!(f.world.online(), 1);
    }
}
