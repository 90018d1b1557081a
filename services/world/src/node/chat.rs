//! Chat: world, room and private messages (checked, rate-limited, blacklists honoured,
//! private ones stored for offline players) and their history.

use super::*;

impl World {
    pub(super) fn check_chat(&self, msg: &pb::ChatMsg) -> Result<()> {
        if !matches!(
            ChatType::try_from(msg.chat_type),
            Ok(ChatType::World | ChatType::Room | ChatType::Private | ChatType::Party | ChatType::Guild)
        ) {
            return Err(Error::bad_param("chatType: 1 world, 2 room, 3 private, 4 party, 5 guild"));
        }
        if pb::ChatMsgType::try_from(msg.msg_type).is_err() || msg.msg_type == pb::ChatMsgType::None as i32 {
            return Err(Error::bad_param("msgType: 1 text … 6 video call"));
        }
        let len = msg.msg.chars().count();
        if len > self.0.cfg.chat_max_len {
            return Err(Error::bad_param(format!("msg: at most {} characters", self.0.cfg.chat_max_len)));
        }
        if msg.msg.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::bad_param("msg: no control characters"));
        }
        if len == 0 && msg.url.is_empty() {
            return Err(Error::bad_param("msg: empty"));
        }
        // Attachments are the basic service's own uploads, by their relative link: no
        // arbitrary sites in other players' chat.
        if !msg.url.is_empty()
            && (msg.url.len() > 512
                || !msg.url.starts_with("/basic/")
                || msg.url.contains("..")
                || msg.url.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(Error::bad_param("url: a link to an upload (/basic/…)"));
        }
        Ok(())
    }

    pub(super) fn remember(ring: &mut VecDeque<pb::ChatMsg>, m: &pb::ChatMsg, keep: usize) {
        ring.push_back(m.clone());
        while ring.len() > keep {
            ring.pop_front();
        }
    }

    pub(super) async fn chat(self, session: Session, msg: pb::ChatMsg) -> Result<()> {
        let uid = World::me(&session)?;
        self.check_chat(&msg)?;
        self.check_muted(uid).await?;
        let m = pb::ChatMsg {
            user_id: uid.get(),
            obj_id: msg.obj_id,
            chat_type: msg.chat_type,
            msg_type: msg.msg_type,
            msg: msg.msg,
            url: msg.url,
            send_time: unix_ms(),
        };
        let (burst, per_min, keep) = (self.0.cfg.chat_burst, self.0.cfg.chat_per_min, self.0.cfg.chat_history);
        let reply = pb::ChatMsgResp { msg_list: vec![m.clone()] };
        match ChatType::try_from(m.chat_type) {
            Ok(ChatType::World | ChatType::Room) => {
                let (room, sessions): (i64, Vec<Session>) = {
                    let mut players = lock(&self.0.players);
                    let me = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                    if !me.chat.take(burst, per_min) {
                        return Err(Error::msg(Code::TooManyRequests, "chatting too fast"));
                    }
                    let room = me.room;
                    let to: Vec<PlayerId> = if m.chat_type == ChatType::World as i32 {
                        Self::remember(&mut lock(&self.0.world_chat), &m, keep);
                        players.keys().copied().collect()
                    } else {
                        let mut rooms = lock(&self.0.rooms);
                        let r = rooms.get_mut(&room).ok_or_else(|| Error::new(Code::NotFound))?;
                        Self::remember(&mut r.chat, &m, keep);
                        r.members.iter().copied().collect()
                    };
                    let sessions = to
                        .iter()
                        .filter(|t| **t != uid)
                        .filter_map(|t| players.get(t))
                        .filter(|p| !p.blocked.contains(&uid.get()))
                        .filter_map(|p| p.session.clone())
                        .collect();
                    (room, sessions)
                };
                send_many(&sessions, ids::reply(ids::CHAT_MSG), &reply);
                self.log_chat(&m, room);
                if let Some(c) = self.0.cluster.as_ref().filter(|_| m.chat_type == ChatType::World as i32) {
                    c.publish(What::World(m.clone())).await;
                }
            }
            Ok(ChatType::Party | ChatType::Guild) => {
                {
                    let mut players = lock(&self.0.players);
                    let me = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                    if !me.chat.take(burst, per_min) {
                        return Err(Error::msg(Code::TooManyRequests, "chatting too fast"));
                    }
                }
                if m.chat_type == ChatType::Party as i32 {
                    self.party_chat(uid, m.clone()).await?;
                } else {
                    self.guild_chat(uid, m.clone()).await?;
                }
            }
            _ => {
                let to = m.obj_id;
                if to <= 0 || to == uid.get() {
                    return Err(Error::bad_param("objId: another player's id"));
                }
                {
                    let mut players = lock(&self.0.players);
                    let me = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                    if !me.chat.take(burst, per_min) {
                        return Err(Error::msg(Code::TooManyRequests, "chatting too fast"));
                    }
                }
                let online = lock(&self.0.players)
                    .get(&PlayerId::new(to))
                    .map(|p| (p.blocked.contains(&uid.get()), p.session.clone()));
                let blocked = match &online {
                    Some((b, _)) => *b,
                    None => {
                        self.0.directory.profile(to).await?;
                        self.0.store.blocks(to, uid.get()).await?
                    }
                };
                let here = online.is_some();
                let live = online.and_then(|(_, s)| s).filter(|_| !blocked);
                let delivered = live.as_ref().is_some_and(|s| s.send(ids::reply(ids::CHAT_MSG), &reply).is_ok());
                {
                    let stored = StoredChat {
                        id: 0,
                        from: uid.get(),
                        to,
                        msg_type: m.msg_type,
                        msg: m.msg.clone(),
                        url: m.url.clone(),
                        sent_at: m.send_time,
                    };
                    // Kept either way, so the sender's history looks the same; a withheld one
                    // is never delivered nor shown to its receiver.
                    let state = match (blocked, delivered) {
                        (true, _) => crate::store::WITHHELD,
                        (false, true) => crate::store::DELIVERED,
                        (false, false) => crate::store::PENDING,
                    };
                    let id = self.0.store.store_chat(&stored, state).await?;
                    // Not here: the node the receiver is on delivers it and marks it.
                    if let Some(c) = self.0.cluster.as_ref().filter(|_| !here && state == crate::store::PENDING)
                        && c.where_is(to).await.is_some_and(|n| n != c.node())
                    {
                        c.publish(What::Private { to, stored: id, msg: m.clone() }).await;
                    }
                }
                // The sender learns nothing about a blacklist: its echo is the same.
            }
        }
        session.push(ids::reply(ids::CHAT_MSG), &reply);
        Ok(())
    }

    pub(super) async fn chat_history(self, session: Session, msg: pb::ChatHistory) -> Result<()> {
        let uid = World::me(&session)?;
        let limit = msg.limit.clamp(1, 100) as usize;
        let before = if msg.before <= 0 { i64::MAX } else { msg.before };
        let recent = |ring: &VecDeque<pb::ChatMsg>, blocked: &HashSet<i64>| -> Vec<pb::ChatMsg> {
            let mut v: Vec<pb::ChatMsg> = ring
                .iter()
                .rev()
                .filter(|m| m.send_time < before && !blocked.contains(&m.user_id))
                .take(limit)
                .cloned()
                .collect();
            v.reverse();
            v
        };
        let msg_list = match ChatType::try_from(msg.chat_type) {
            Ok(ChatType::World | ChatType::Room) => {
                let players = lock(&self.0.players);
                let me = players.get(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                if msg.chat_type == ChatType::World as i32 {
                    recent(&lock(&self.0.world_chat), &me.blocked)
                } else {
                    let rooms = lock(&self.0.rooms);
                    rooms.get(&me.room).map(|r| recent(&r.chat, &me.blocked)).unwrap_or_default()
                }
            }
            Ok(ChatType::Private) => {
                if msg.obj_id <= 0 {
                    return Err(Error::bad_param("objId: the other player's id"));
                }
                let v = self.0.store.history(uid.get(), msg.obj_id, before, limit as u64).await?;
                v.into_iter().map(chat_msg).collect()
            }
            Ok(ChatType::Guild) => self.guild_history(uid, msg.before, limit).await?,
            _ => return Err(Error::bad_param("chatType: 1 world, 2 room, 3 private, 5 guild")),
        };
        session.push(ids::reply(ids::CHAT_HISTORY), &pb::ChatMsgResp { msg_list });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    fn says(chat_type: ChatType, to: i64, text: &str) -> pb::ChatMsg {
        pb::ChatMsg { chat_type: chat_type as i32, obj_id: to, msg_type: 1, msg: text.into(), ..Default::default() }
    }

    #[tokio::test]
    async fn world_chat_reaches_all_but_those_who_blocked_the_sender_and_is_rate_limited() {
        let cfg = WorldConfig { chat_burst: 2, chat_per_min: 1, ..WorldConfig::default() };
        let f = Fixture::new(cfg).await;
        let (a, mut b, mut c) = (f.login(1, "").await, f.login(2, "").await, f.login(3, "").await);
        let block = pb::AddFriend { user_id: 1, r#type: pb::FriendType::Blacklist as i32 };
        f.world.clone().add_friend(c.session.clone(), block).await.expect("c blocks a");
        c.expect::<pb::AddFriendResp>(ids::reply(ids::ADD_FRIEND)).await;
        f.world.clone().chat(a.session.clone(), says(ChatType::World, 0, "hello")).await.expect("sent");
        let got: pb::ChatMsgResp = b.expect(ids::reply(ids::CHAT_MSG)).await;
        assert_eq!((got.msg_list[0].user_id, got.msg_list[0].msg.as_str()), (1, "hello"), "stamped with the sender");
        assert!(!c.ids_within(Duration::from_millis(200)).await.contains(&ids::reply(ids::CHAT_MSG)), "blocked");
        f.world.clone().chat(a.session.clone(), says(ChatType::World, 0, "again")).await.expect("burst of 2");
        let third = f.world.clone().chat(a.session.clone(), says(ChatType::World, 0, "spam")).await;
        assert_eq!(third.map_err(|e| e.code()), Err(Code::TooManyRequests));
        // Bad messages are refused before anything is sent.
        for bad in [says(ChatType::None, 0, "x"), says(ChatType::World, 0, ""), says(ChatType::World, 0, "a\u{7}b")] {
            let e = f.world.clone().chat(b.session.clone(), bad).await.expect_err("refused");
            assert_eq!(e.code(), Code::BadParam);
        }
        let mut link = says(ChatType::World, 0, "see");
        link.url = "https://evil.example/x".into();
        assert_eq!(f.world.clone().chat(b.session.clone(), link).await.map_err(|e| e.code()), Err(Code::BadParam));
    }

    #[tokio::test]
    async fn a_private_message_to_an_offline_player_waits_for_its_login() {
        let f = Fixture::new(WorldConfig::default()).await;
        let a = f.login(1, "").await;
        f.world.clone().chat(a.session.clone(), says(ChatType::Private, 2, "are you there?")).await.expect("kept");
        let to_nobody = f.world.clone().chat(a.session.clone(), says(ChatType::Private, 55, "hi")).await;
        assert_eq!(to_nobody.map_err(|e| e.code()), Err(Code::NotFound), "no such account");
        let mut b = f.login(2, "").await;
        let got: pb::ChatMsgResp = b.expect(ids::reply(ids::CHAT_MSG)).await;
        assert_eq!(got.msg_list[0].msg, "are you there?");
        // Delivered once: the history has it, a new login does not get it again.
        let h = pb::ChatHistory { chat_type: ChatType::Private as i32, obj_id: 1, before: 0, limit: 10 };
        f.world.clone().chat_history(b.session.clone(), h).await.expect("history");
        let hist: pb::ChatMsgResp = b.expect(ids::reply(ids::CHAT_HISTORY)).await;
        assert_eq!(hist.msg_list.len(), 1);
        let mut again = f.login(2, "").await;
        assert!(!again.ids_within(Duration::from_millis(200)).await.contains(&ids::reply(ids::CHAT_MSG)));
    }
}
