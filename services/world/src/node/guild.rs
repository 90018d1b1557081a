//! Guilds on a game node: the game service keeps them (REST `/game/v1/guild/…`) and announces
//! each change ([`GuildChanged`] on the bus, read by every node); the node pushes a
//! `GuildNotice` (200420) to those of its players it concerns whose client asked for them
//! (capability `guild`). Guild chat (chatType 5) is kept by the game service, which names the
//! members to deliver it to: those here get it at once, the others over the bus.

use rsgame_proto::events::{GUILD_CHANGED_TOPIC, GuildChanged};

use super::*;

impl World {
    /// Pushes guild notices to players on this node, until the bus subscription ends.
    pub(super) async fn follow_guilds(self, bus: Bus, node: String) {
        follow(&bus, GUILD_CHANGED_TOPIC, &node, "guild-changed", |e: GuildChanged| {
            self.guild_changed(&e);
            async {}
        })
        .await
    }

    /// Tells those of `e.users` here whose clients take guild notices.
    pub(super) fn guild_changed(&self, e: &GuildChanged) {
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            e.users
                .iter()
                .filter_map(|u| players.get(&PlayerId::new(*u)))
                .filter(|p| p.caps.has(Caps::GUILD))
                .filter_map(|p| p.session.clone())
                .collect()
        };
        let notice = pb::GuildNotice { guild_id: e.guild_id, name: e.name.clone(), event: e.event, subject: e.subject };
        send_many(&sessions, ids::GUILD_NOTICE, &notice);
    }

    /// Guild chat: kept by the game service, delivered to the other members here and on
    /// other nodes.
    pub(super) async fn guild_chat(&self, uid: PlayerId, m: pb::ChatMsg) -> Result<()> {
        let kept = rsgame_game::guild::GuildChat {
            user_id: uid.get(),
            msg_type: m.msg_type,
            msg: m.msg.clone(),
            url: m.url.clone(),
            sent_at: m.send_time,
        };
        let users: Vec<i64> = self.0.game.guild_chat(kept).await?.into_iter().filter(|u| *u != uid.get()).collect();
        self.on_group_chat(&users, &m);
        if let Some(c) = &self.0.cluster {
            c.publish(What::GroupChat { users, msg: m }).await;
        }
        Ok(())
    }

    /// The player's guild's chat history, from the game service.
    pub(super) async fn guild_history(&self, uid: PlayerId, before: i64, limit: usize) -> Result<Vec<pb::ChatMsg>> {
        let blocked = lock(&self.0.players).get(&uid).map(|p| p.blocked.clone()).unwrap_or_default();
        let v = self.0.game.guild_chat_history(uid.get(), before, limit as u64).await?;
        Ok(v.into_iter()
            .filter(|m| !blocked.contains(&m.user_id))
            .map(|m| pb::ChatMsg {
                user_id: m.user_id,
                obj_id: 0,
                chat_type: ChatType::Guild as i32,
                msg_type: m.msg_type,
                msg: m.msg,
                url: m.url,
                send_time: m.sent_at,
            })
            .collect())
    }
}
