//! Chat moderation: recent world, room and guild lines with filters, removing a line (the
//! game nodes drop it from history and screens), and muting a player until a time. Each
//! change is audited with the line or the mute before and after.

use rsgame_game::moderation::{Channel, ChatFilter, ChatLine, Mute};
use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use serde::{Deserialize, Serialize};

use crate::Console;
use crate::audit::{self, Change, json};
use crate::players::reason;
use crate::sessions::Session;

/// A line with its sender's name.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    /// The line.
    #[serde(flatten)]
    pub line: ChatLine,
    /// The sender's nickname (empty for a closed account).
    pub nickname: String,
}

/// A line to remove.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReq {
    /// world, room or guild.
    pub channel: Channel,
    /// The line's id.
    pub id: i64,
    /// Why.
    pub reason: String,
}

/// A mute, or its end.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteReq {
    /// Until when, unix ms; 0 lifts the mute.
    pub until: i64,
    /// Why (the player is told it with every refused message).
    pub reason: String,
}

/// The longest mute: ten years (a longer one is a ban).
const MAX_MUTE_MS: i64 = 10 * 366 * 86_400_000;

impl Console {
    /// Lines matching `f`, newest first, with their senders' names.
    pub async fn chat_lines(&self, f: &ChatFilter) -> Result<Vec<ChatView>> {
        let lines = self.game.moderation().lines(f).await?;
        let mut ids: Vec<i64> = lines.iter().map(|l| l.user_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let names = self.names(&ids).await?;
        Ok(lines
            .into_iter()
            .map(|line| ChatView { nickname: names.get(&line.user_id).cloned().unwrap_or_default(), line })
            .collect())
    }

    /// Removes a line everywhere; the line as it was.
    pub async fn remove_chat(&self, s: &Session, ip: &str, r: &RemoveReq) -> Result<ChatLine> {
        let why = reason(&r.reason)?;
        let (line, told) = self
            .game
            .remove_chat_line(r.channel, r.id)
            .await?
            .ok_or_else(|| Error::msg(Code::NotFound, "no such line (removed already?)"))?;
        let change = Change::by(s, ip, "chat.remove", format!("user:{}", line.user_id));
        let after = serde_json::json!({"removed": true, "nodesTold": told});
        audit::record(self.db(), Change { before: json(&line), after: json(&after), reason: why, ..change }).await?;
        if !told {
            return Err(Error::msg(
                Code::Unavailable,
                "the line is removed from the log, but the game nodes were not told: players online see it until they reconnect",
            ));
        }
        Ok(line)
    }

    /// Mutes a player until a time, or lifts its mute; the mute now in force.
    pub async fn mute(&self, s: &Session, ip: &str, user_id: i64, r: &MuteReq) -> Result<Option<Mute>> {
        let why = reason(&r.reason)?;
        rsgame_usercenter::model::user_by_id(self.db(), user_id)
            .await?
            .ok_or_else(|| Error::msg(Code::NotFound, "no such player"))?;
        let now = unix_ms();
        if r.until != 0 && (r.until <= now || r.until > now + MAX_MUTE_MS) {
            return Err(Error::bad_param("until: a time in the next ten years (unix ms), or 0 to lift the mute"));
        }
        let m = self.game.moderation();
        let before = m.set_mute(user_id, r.until, why, &s.operator.username).await?;
        let after = m.mute(user_id, unix_ms()).await?;
        let action = if r.until == 0 { "player.unmute" } else { "player.mute" };
        let change = Change::by(s, ip, action, format!("user:{user_id}"));
        audit::record(self.db(), Change { before: json(&before), after: json(&after), reason: why, ..change }).await?;
        Ok(after)
    }
}
