//! Chat moderation on this node. A mute is read from the database at every chat message a
//! player sends, so one set from the console holds on every node at once without a message
//! to miss. World and room lines go to the moderators' log in batches (a queue a slow
//! database cannot grow without bound; what is dropped is counted). A line an operator
//! removed is dropped from the history this node keeps and hidden on the screens of the
//! players here who could see it.

use rsgame_game::moderation::{Channel, ChatLine, Moderation};
use rsgame_proto::events::{CHAT_LINE_REMOVED_TOPIC, ChatLineRemoved};

use super::*;

/// Lines waiting for the log writer; beyond it they are dropped and counted.
const LOG_QUEUE: usize = 10_000;
/// Most lines in one insert.
const LOG_BATCH: usize = 500;
/// How long the writer gathers lines before it writes.
const LOG_EVERY: Duration = Duration::from_millis(250);
/// How often lines older than `world.chat_log_days` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the log writer (none when `days` is 0); its queue.
pub(super) fn start_log(m: Moderation, days: u32) -> Option<mpsc::Sender<ChatLine>> {
    if days == 0 {
        return None;
    }
    let (tx, rx) = mpsc::channel(LOG_QUEUE);
    tokio::spawn(write_log(m, rx, days));
    Some(tx)
}

async fn write_log(m: Moderation, mut rx: mpsc::Receiver<ChatLine>, days: u32) {
    let mut next_prune = Instant::now();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let gather = tokio::time::sleep(LOG_EVERY);
        tokio::pin!(gather);
        while batch.len() < LOG_BATCH {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => batch.push(l),
                    None => break,
                },
                _ = &mut gather => break,
            }
        }
        let mut written = false;
        for attempt in 1..=3u64 {
            match m.log(&batch).await {
                Ok(()) => {
                    written = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(attempt, lines = batch.len(), error = %e, "chat log not written yet");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        if !written {
            metrics::counter!(crate::metrics::CHAT_LOG_LOST).increment(batch.len() as u64);
            tracing::warn!(lines = batch.len(), "chat lines not written to the moderators' log");
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + PRUNE_EVERY;
            let before = unix_ms() - i64::from(days) * 86_400_000;
            match m.prune(before).await {
                Ok(n) if n > 0 => tracing::info!(lines = n, days, "old chat lines pruned from the log"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "old chat lines not pruned"),
            }
        }
    }
}

impl World {
    /// Refuses chat from a muted player, saying until when and why.
    pub(super) async fn check_muted(&self, uid: PlayerId) -> Result<()> {
        match self.0.moderation.mute(uid.get(), unix_ms()).await? {
            None => Ok(()),
            Some(m) => {
                let why = if m.reason.is_empty() { String::new() } else { format!(": {}", m.reason) };
                Err(Error::msg(Code::Muted, format!("muted until {} (unix ms){why}", m.until)))
            }
        }
    }

    /// Queues a world or room line for the moderators' log.
    pub(super) fn log_chat(&self, m: &pb::ChatMsg, room: i64) {
        let Some(log) = &self.0.chat_log else { return };
        let (channel, place) =
            if m.chat_type == ChatType::World as i32 { (Channel::World, 0) } else { (Channel::Room, room) };
        let line = ChatLine {
            id: 0,
            channel,
            place,
            user_id: m.user_id,
            msg_type: m.msg_type,
            msg: m.msg.clone(),
            url: m.url.clone(),
            sent_at: m.send_time,
        };
        if log.try_send(line).is_err() {
            metrics::counter!(crate::metrics::CHAT_LOG_LOST).increment(1);
        }
    }

    /// Applies the operators' removals until the bus subscription ends.
    pub(super) async fn follow_removals(self, bus: Bus, node: String) {
        follow(&bus, CHAT_LINE_REMOVED_TOPIC, &node, "chat-removal", |e: ChatLineRemoved| {
            self.line_removed(&e);
            async {}
        })
        .await
    }

    /// Drops a removed line from this node's history and hides it from those here who could
    /// see it. Applying one twice changes nothing.
    pub(super) fn line_removed(&self, e: &ChatLineRemoved) {
        let gone =
            |ring: &mut VecDeque<pb::ChatMsg>| ring.retain(|m| !(m.user_id == e.user_id && m.send_time == e.send_time));
        let push = pb::ChatRemoved { chat_type: e.chat_type, user_id: e.user_id, send_time: e.send_time };
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            let to: Vec<PlayerId> = match ChatType::try_from(e.chat_type) {
                Ok(ChatType::World) => {
                    gone(&mut lock(&self.0.world_chat));
                    players.keys().copied().collect()
                }
                Ok(ChatType::Room) => {
                    let mut rooms = lock(&self.0.rooms);
                    match rooms.get_mut(&e.channel) {
                        Some(r) => {
                            gone(&mut r.chat);
                            r.members.iter().copied().collect()
                        }
                        None => Vec::new(),
                    }
                }
                Ok(ChatType::Guild) => e.users.iter().map(|u| PlayerId::new(*u)).collect(),
                _ => Vec::new(),
            };
            // A go-game client knows no such push: only those that asked for it get it.
            to.iter()
                .filter_map(|t| players.get(t))
                .filter(|p| p.caps.has(Caps::MODERATION))
                .filter_map(|p| p.session.clone())
                .collect()
        };
        send_many(&sessions, ids::CHAT_REMOVED, &push);
        tracing::info!(
            chat_type = e.chat_type,
            user = e.user_id,
            sent = e.send_time,
            told = sessions.len(),
            "chat line removed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use super::*;

    fn says(chat_type: ChatType, text: &str) -> pb::ChatMsg {
        pb::ChatMsg { chat_type: chat_type as i32, msg_type: 1, msg: text.into(), ..Default::default() }
    }

    #[tokio::test]
    async fn a_muted_player_cannot_chat_and_a_removed_line_leaves_history_and_screens() {
        let f = Fixture::new(WorldConfig::default()).await;
        let (a, mut b) = (f.login(1, "").await, f.login(2, "caps=moderation").await);
        let mut go_game = f.login(3, "").await;
        f.world.clone().chat(a.session.clone(), says(ChatType::World, "hello")).await.expect("sent");
        let seen: pb::ChatMsgResp = b.expect(ids::reply(ids::CHAT_MSG)).await;
        let line = seen.msg_list[0].clone();

        // The line reaches the moderators' log.
        let m = Moderation::new(f.db.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        let logged = loop {
            let l = m.lines(&Default::default()).await.expect("lines");
            if !l.is_empty() {
                break l;
            }
            assert!(Instant::now() < deadline, "the line is logged in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((logged[0].user_id, logged[0].msg.as_str(), logged[0].sent_at), (1, "hello", line.send_time));

        // Removed: b is told, and the history no longer holds it.
        f.world.line_removed(&ChatLineRemoved {
            chat_type: ChatType::World as i32,
            user_id: 1,
            send_time: line.send_time,
            ..Default::default()
        });
        let removed: pb::ChatRemoved = b.expect(ids::CHAT_REMOVED).await;
        assert_eq!((removed.user_id, removed.send_time), (1, line.send_time));
        assert!(!go_game.ids_within(Duration::from_millis(200)).await.contains(&ids::CHAT_REMOVED), "not asked for");
        let h = pb::ChatHistory { chat_type: ChatType::World as i32, ..Default::default() };
        f.world.clone().chat_history(b.session.clone(), h).await.expect("history");
        let history: pb::ChatMsgResp = b.expect(ids::reply(ids::CHAT_HISTORY)).await;
        assert!(history.msg_list.is_empty(), "{history:?}");

        // Muted: every kind of chat is refused with 400526, until the mute is lifted.
        m.set_mute(1, unix_ms() + 60_000, "spam", "test").await.expect("mute");
        for kind in [ChatType::World, ChatType::Room] {
            let e = f.world.clone().chat(a.session.clone(), says(kind, "again")).await.expect_err("muted");
            assert_eq!(e.code(), Code::Muted, "{e:?}");
            assert!(e.to_string().contains("spam"), "{e}");
        }
        let mut private = says(ChatType::Private, "psst");
        private.obj_id = 2;
        assert_eq!(f.world.clone().chat(a.session.clone(), private).await.map_err(|e| e.code()), Err(Code::Muted));
        m.set_mute(1, 0, "served", "test").await.expect("lift");
        f.world.clone().chat(a.session.clone(), says(ChatType::World, "back")).await.expect("sent again");
        let back: pb::ChatMsgResp = b.expect(ids::reply(ids::CHAT_MSG)).await;
        assert_eq!(back.msg_list[0].msg, "back");
    }
}
