//! Chat moderation's records: who is muted until when, and the log of public chat (world and
//! room lines; guild lines are kept by [`crate::guild`]) that operators read and remove lines
//! from. Game nodes write the log and read mutes straight from the database (no call to the
//! game service on the chat path); the console changes them, and tells the nodes of a removed
//! line on the bus ([`ChatLineRemoved`](rsgame_proto::events::ChatLineRemoved)).

use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Db, StoreError};
use sea_query::{Expr, ExprTrait as _, OnConflict, Order, Query};
use serde::{Deserialize, Serialize};

/// A mute in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mute {
    /// Unix ms.
    pub until: i64,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub by: String,
}

/// Which chat a line is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// World chat (every player).
    World,
    /// A room's or scene's chat.
    Room,
    /// A guild's chat.
    Guild,
}

impl Channel {
    /// The `pb.ChatType` of this channel.
    pub fn chat_type(self) -> rsgame_proto::pb::ChatType {
        use rsgame_proto::pb::ChatType;
        match self {
            Channel::World => ChatType::World,
            Channel::Room => ChatType::Room,
            Channel::Guild => ChatType::Guild,
        }
    }
}

/// A public chat line as moderators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine {
    /// The line's id within its channel's table.
    pub id: i64,
    /// world, room or guild.
    pub channel: Channel,
    /// The room's or the guild's id (0 for world chat).
    pub place: i64,
    /// The sender.
    pub user_id: i64,
    /// pb.ChatMsgType: 1 text …
    pub msg_type: i32,
    /// The text.
    pub msg: String,
    /// An attachment's link.
    pub url: String,
    /// Unix ms (the line's sendTime).
    pub sent_at: i64,
}

/// What to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ChatFilter {
    /// world (default), room or guild.
    pub channel: Option<Channel>,
    /// Only this sender.
    pub user_id: Option<i64>,
    /// Only this room or guild.
    pub place: Option<i64>,
    /// Only lines containing this text, without regard to case (ASCII letters on SQLite).
    pub text: Option<String>,
    /// Only lines older than this id (the next page).
    pub before_id: Option<i64>,
    /// At most this many (1 to 200; default 50).
    pub limit: Option<u64>,
}

/// The records, over the shared database.
#[derive(Clone)]
pub struct Moderation {
    db: Db,
}

impl Moderation {
    /// Over `db` (migrated).
    pub fn new(db: Db) -> Moderation {
        Moderation { db }
    }

    /// The mute in force on `user_id` at `now` (unix ms), if any.
    pub async fn mute(&self, user_id: i64, now: i64) -> Result<Option<Mute>> {
        let q = Query::select()
            .columns(["until", "reason", "by_whom"])
            .from("game_mute")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("until").gt(now))
            .to_owned();
        let row = self.db.fetch_optional(&q).await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Mute { until: r.i64("until")?, reason: r.string("reason")?, by: r.string("by_whom")? }))
    }

    /// Mutes `user_id` until `until` (unix ms; 0 or a past time lifts the mute). Returns the
    /// mute that was in force before.
    pub async fn set_mute(&self, user_id: i64, until: i64, reason: &str, by: &str) -> Result<Option<Mute>> {
        if until < 0 {
            return Err(Error::bad_param("until: unix ms, 0 to lift"));
        }
        let now = unix_ms();
        let before = self.mute(user_id, now).await?;
        if until <= now {
            let q = Query::delete().from_table("game_mute").and_where(Expr::col("user_id").eq(user_id)).to_owned();
            self.db.execute(&q).await?;
            return Ok(before);
        }
        let mut q = Query::insert();
        q.into_table("game_mute")
            .columns(["user_id", "until", "reason", "by_whom", "updated_at"])
            .values([Expr::val(user_id), Expr::val(until), Expr::val(reason), Expr::val(by), Expr::val(now)])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?
            .on_conflict(
                OnConflict::column("user_id").update_columns(["until", "reason", "by_whom", "updated_at"]).to_owned(),
            );
        self.db.execute(&q).await?;
        Ok(before)
    }

    /// Adds world and room lines to the log, in one statement.
    pub async fn log(&self, lines: &[ChatLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut q = Query::insert();
        q.into_table("game_chat_log").columns(["chat_type", "room_id", "user_id", "msg_type", "msg", "url", "sent_at"]);
        for l in lines {
            q.values([
                Expr::val(l.channel.chat_type() as i32),
                Expr::val(l.place),
                Expr::val(l.user_id),
                Expr::val(l.msg_type),
                Expr::val(l.msg.as_str()),
                Expr::val(l.url.as_str()),
                Expr::val(l.sent_at),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        }
        self.db.execute(&q).await?;
        Ok(())
    }

    /// Forgets logged lines sent before `before` (unix ms); how many.
    pub async fn prune(&self, before: i64) -> Result<u64> {
        let q = Query::delete().from_table("game_chat_log").and_where(Expr::col("sent_at").lt(before)).to_owned();
        Ok(self.db.execute(&q).await?)
    }

    /// Lines matching `f`, newest first.
    pub async fn lines(&self, f: &ChatFilter) -> Result<Vec<ChatLine>> {
        let channel = f.channel.unwrap_or(Channel::World);
        let limit = f.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(Error::bad_param("limit: 1 to 200"));
        }
        if f.text.as_ref().is_some_and(|t| t.chars().count() > 100) {
            return Err(Error::bad_param("text: at most 100 characters"));
        }
        let (table, place_col) = table_of(channel);
        let mut q = Query::select();
        q.columns(["id", place_col, "user_id", "msg_type", "msg", "url", "sent_at"]).from(table);
        if channel != Channel::Guild {
            q.and_where(Expr::col("chat_type").eq(channel.chat_type() as i32));
        }
        if let Some(u) = f.user_id {
            q.and_where(Expr::col("user_id").eq(u));
        }
        if let Some(p) = f.place {
            q.and_where(Expr::col(place_col).eq(p));
        }
        if let Some(b) = f.before_id {
            q.and_where(Expr::col("id").lt(b));
        }
        if let Some(t) = f.text.as_ref().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            // LIKE's own wildcards in the text are matched as themselves.
            let escaped = t.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let pattern = sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\');
            q.and_where(sea_query::Func::lower(Expr::col("msg")).like(pattern));
        }
        q.order_by("id", Order::Desc).limit(limit);
        let rows = self.db.fetch_all(&q).await?;
        rows.iter()
            .map(|r| {
                Ok(ChatLine {
                    id: r.i64("id")?,
                    channel,
                    place: r.i64(place_col)?,
                    user_id: r.i64("user_id")?,
                    msg_type: i32::try_from(r.i64("msg_type").or_else(|_| r.i32("msg_type").map(i64::from))?)
                        .unwrap_or(0),
                    msg: r.string("msg")?,
                    url: r.string("url")?,
                    sent_at: r.i64("sent_at")?,
                })
            })
            .collect::<std::result::Result<_, StoreError>>()
            .map_err(Error::from)
    }

    /// A guild's members (those a guild line's removal is told to).
    pub async fn guild_members(&self, guild_id: i64) -> Result<Vec<i64>> {
        let q = Query::select()
            .column("user_id")
            .from("game_guild_member")
            .and_where(Expr::col("guild_id").eq(guild_id))
            .to_owned();
        Ok(self.db.fetch_all(&q).await?.iter().map(|r| r.i64("user_id")).collect::<std::result::Result<_, _>>()?)
    }

    /// Removes line `id` of `channel`; the line as it was (None: no such line).
    pub async fn remove(&self, channel: Channel, id: i64) -> Result<Option<ChatLine>> {
        let (table, _) = table_of(channel);
        let found = self
            .lines(&ChatFilter {
                channel: Some(channel),
                before_id: Some(id.saturating_add(1)),
                limit: Some(1),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|l| l.id == id);
        let Some(line) = found else { return Ok(None) };
        let q = Query::delete().from_table(table).and_where(Expr::col("id").eq(id)).to_owned();
        if self.db.execute(&q).await? == 0 {
            return Ok(None);
        }
        Ok(Some(line))
    }
}

impl crate::logic::GameLogic {
    /// Chat moderation's records over this service's database.
    pub fn moderation(&self) -> Moderation {
        Moderation::new(self.db().clone())
    }

    /// Removes line `id` of `channel` and tells the game nodes, which drop it from the
    /// history they keep and tell the players who could see it. None: no such line. With the
    /// line comes whether the nodes were told: the announcement is tried three times, and if
    /// it still fails the line is gone from the log but players online keep it on screen.
    pub async fn remove_chat_line(&self, channel: Channel, id: i64) -> Result<Option<(ChatLine, bool)>> {
        let m = self.moderation();
        let Some(line) = m.remove(channel, id).await? else { return Ok(None) };
        let Some(bus) = self.events() else { return Ok(Some((line, true))) };
        let users = if channel == Channel::Guild { m.guild_members(line.place).await? } else { Vec::new() };
        let event = rsgame_proto::events::ChatLineRemoved {
            chat_type: channel.chat_type() as i32,
            channel: line.place,
            user_id: line.user_id,
            send_time: line.sent_at,
            users,
        };
        let payload = prost::Message::encode_to_vec(&event);
        for attempt in 1..=3u64 {
            match bus.publish(rsgame_proto::events::CHAT_LINE_REMOVED_TOPIC, &payload).await {
                Ok(_) => return Ok(Some((line, true))),
                Err(e) if attempt < 3 => {
                    tracing::debug!(attempt, error = %e, "chat removal not announced yet");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => tracing::warn!(line = id, error = %e, "chat line removed but the game nodes were not told"),
            }
        }
        Ok(Some((line, false)))
    }
}

/// A channel's table and the column naming its room or guild.
fn table_of(channel: Channel) -> (&'static str, &'static str) {
    match channel {
        Channel::Guild => ("game_guild_chat", "guild_id"),
        Channel::World | Channel::Room => ("game_chat_log", "room_id"),
    }
}
