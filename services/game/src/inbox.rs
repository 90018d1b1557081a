//! The inbox: messages that wait for a player (system notices, operators' mail, and later
//! friend requests, guild invitations and match results), each with an optional attachment
//! of coins and goods that the player claims once, through the ledger.
//!
//! A send is idempotent by its reference (the same reference to the same player is the same
//! message), so a sender may retry after a lost answer. A claim locks the player's row, marks
//! the message claimed and applies the attachment in one transaction, with ledger rows under
//! the reference `mail:{id}`: two claims at once give the goods once, the other gets 400521.

use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Row, StoreError};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::data::ItemCount;
use crate::logic::{Change, GameLogic, MAX_DELTA, Player, lock_player};
use rsgame_kit::time::unix_ms as now_ms;

/// The longest title, in characters.
pub const MAX_TITLE: usize = 100;
/// The longest text, in characters.
pub const MAX_BODY: usize = 2000;
/// The most different goods one attachment carries.
pub const MAX_GOODS: usize = 20;
/// The most messages one page lists.
pub const MAX_PAGE: i64 = 100;
/// The most messages one read or delete names.
pub const MAX_IDS: usize = 100;

/// A message to put in a player's inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMail {
    /// The player.
    pub user_id: i64,
    /// What it is: 1 to 16 of `a-z`, `0-9`, `_` (`system`, `gm`, `friend`, `guild`, `match`…).
    pub kind: String,
    /// 1 to [`MAX_TITLE`] characters, no control characters.
    pub title: String,
    /// Up to [`MAX_BODY`] characters; line breaks allowed.
    pub body: String,
    /// Coins attached (0: none).
    pub coins: i64,
    /// Goods attached, each known to the game data, at most [`MAX_GOODS`] different.
    pub goods: Vec<ItemCount>,
    /// When it expires, unix ms (0: never). An expired message is no longer listed and its
    /// attachment can no longer be claimed.
    pub expires_at: i64,
    /// Makes the send idempotent for this player (empty: every send is a new message); at
    /// most 128 bytes.
    pub reference: String,
}

/// A message as its player sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    /// The message's id (newer messages have larger ids).
    pub id: i64,
    /// What it is (`system`, `gm`, …).
    pub kind: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Coins attached.
    pub coins: i64,
    /// Goods attached.
    pub goods: Vec<ItemCount>,
    /// When it was sent, unix ms.
    pub created_at: i64,
    /// When it expires, unix ms (0: never).
    pub expires_at: i64,
    /// Whether the player opened it.
    pub read: bool,
    /// Whether its attachment was claimed (false when it has none).
    pub claimed: bool,
}

impl Mail {
    /// Whether it carries anything to claim.
    pub fn has_attachment(&self) -> bool {
        self.coins > 0 || !self.goods.is_empty()
    }
}

/// A page of a player's inbox, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxPage {
    /// The messages.
    pub mails: Vec<Mail>,
    /// Unread messages in the whole inbox.
    pub unread: i64,
    /// The `before` of the next page; 0 when this is the last.
    pub next: i64,
}

const MAIL_COLS: [&str; 11] = [
    "id",
    "kind",
    "title",
    "body",
    "coins",
    "goods",
    "created_at",
    "expires_at",
    "read_at",
    "claimed_at",
    "deleted_at",
];

fn mail_row(r: &Row) -> std::result::Result<Mail, StoreError> {
    let goods = r.string("goods")?;
    let goods = if goods.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&goods).map_err(|e| StoreError::Column { column: "goods".into(), msg: e.to_string() })?
    };
    Ok(Mail {
        id: r.i64("id")?,
        kind: r.string("kind")?,
        title: r.string("title")?,
        body: r.string("body")?,
        coins: r.i64("coins")?,
        goods,
        created_at: r.i64("created_at")?,
        expires_at: r.i64("expires_at")?,
        read: r.i64("read_at")? != 0,
        claimed: r.i64("claimed_at")? != 0,
    })
}

/// Messages of `user_id` that are not deleted and not expired at `now`.
fn live(q: &mut sea_query::SelectStatement, user_id: i64, now: i64) {
    q.and_where(Expr::col("user_id").eq(user_id))
        .and_where(Expr::col("deleted_at").eq(0))
        .and_where(Expr::col("expires_at").eq(0).or(Expr::col("expires_at").gt(now)));
}

fn bad(msg: &str) -> Error {
    Error::bad_param(msg)
}

fn ids_ok(ids: &[i64]) -> Result<()> {
    if ids.is_empty() || ids.len() > MAX_IDS || ids.iter().any(|&id| id <= 0) {
        return Err(bad("ids: 1 to 100 message ids"));
    }
    Ok(())
}

impl GameLogic {
    /// Checks a message before it is stored: what a sender gets back names the field.
    pub(crate) fn check_mail(&self, m: &NewMail) -> Result<()> {
        if m.user_id <= 0 {
            return Err(bad("userId: an account id"));
        }
        let kind_ok = (1..=16).contains(&m.kind.len())
            && m.kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !kind_ok {
            return Err(bad("kind: 1 to 16 of a-z, 0-9 and _"));
        }
        let title = m.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
            return Err(bad("title: 1 to 100 characters, no control characters"));
        }
        if m.body.chars().count() > MAX_BODY || m.body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(bad("body: at most 2000 characters; line breaks and tabs are the only control characters"));
        }
        if !(0..=MAX_DELTA).contains(&m.coins) {
            return Err(bad("coins: 0 or more, within the ledger's limit"));
        }
        let data = self.data();
        if m.goods.len() > MAX_GOODS {
            return Err(bad("goods: at most 20 entries"));
        }
        for (i, g) in m.goods.iter().enumerate() {
            if !data.goods.contains_key(&g.goods_id) {
                return Err(bad(&format!("goods: no goods {} in the game data", g.goods_id)));
            }
            if !(1..=MAX_DELTA).contains(&g.count) {
                return Err(bad("goods: each count is 1 or more, within the ledger's limit"));
            }
            if m.goods[..i].iter().any(|o| o.goods_id == g.goods_id) {
                return Err(bad("goods: each goods once"));
            }
        }
        if m.expires_at != 0 && m.expires_at <= now_ms() {
            return Err(bad("expiresAt: 0 (never) or a time to come, unix ms"));
        }
        if m.reference.len() > 128 {
            return Err(bad("reference: at most 128 bytes"));
        }
        Ok(())
    }

    /// Puts a message in a player's inbox; its id, and whether it is new. The same non-empty
    /// reference to the same player returns the first message's id and stores nothing more.
    pub(crate) async fn store_mail(&self, m: &NewMail) -> Result<(i64, bool)> {
        self.check_mail(m)?;
        let reference = (!m.reference.is_empty()).then(|| m.reference.clone());
        if let Some(id) = self.mail_by_reference(m.user_id, reference.as_deref()).await? {
            return Ok((id, false));
        }
        let goods = if m.goods.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&m.goods).map_err(|e| Error::internal(Code::InsertFailed, e))?
        };
        let mut q = Query::insert();
        q.into_table("game_mail")
            .columns(["user_id", "kind", "title", "body", "coins", "goods", "reference", "created_at", "expires_at"])
            .values([
                Expr::val(m.user_id),
                Expr::val(m.kind.as_str()),
                Expr::val(m.title.trim()),
                Expr::val(m.body.as_str()),
                Expr::val(m.coins),
                Expr::val(goods),
                Expr::val(reference.clone()),
                Expr::val(now_ms()),
                Expr::val(m.expires_at),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        match self.db().insert_id(&q).await {
            Ok(id) => Ok((id, true)),
            // The same reference sent at the same moment: the other send stored it.
            Err(StoreError::Conflict(_)) => self
                .mail_by_reference(m.user_id, reference.as_deref())
                .await?
                .map(|id| (id, false))
                .ok_or_else(|| Error::msg(Code::InsertFailed, "the message could not be stored")),
            Err(e) => Err(e.into()),
        }
    }

    async fn mail_by_reference(&self, user_id: i64, reference: Option<&str>) -> Result<Option<i64>> {
        let Some(reference) = reference else { return Ok(None) };
        let q = Query::select()
            .column("id")
            .from("game_mail")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("reference").eq(reference))
            .to_owned();
        Ok(self.db().fetch_optional(&q).await?.map(|r| r.i64("id")).transpose()?)
    }

    /// A page of the player's inbox: live messages with ids below `before` (0: the newest),
    /// newest first.
    pub(crate) async fn inbox_page(&self, user_id: i64, before: i64, limit: i64) -> Result<InboxPage> {
        if user_id <= 0 {
            return Err(bad("userId: an account id"));
        }
        if !(1..=MAX_PAGE).contains(&limit) || before < 0 {
            return Err(bad("limit: 1 to 100; before: a message id, or 0 for the newest"));
        }
        if before == 0 {
            // The first page: mail to every player sent since the last look lands first.
            self.deliver_broadcasts(user_id).await?;
        }
        let now = now_ms();
        let mut q = Query::select();
        q.columns(MAIL_COLS).from("game_mail");
        live(&mut q, user_id, now);
        if before > 0 {
            q.and_where(Expr::col("id").lt(before));
        }
        // One more than asked: whether there is a next page.
        q.order_by("id", Order::Desc).limit((limit + 1) as u64);
        let rows = self.db().fetch_all(&q).await?;
        let mut mails = rows.iter().map(mail_row).collect::<std::result::Result<Vec<_>, _>>()?;
        let next = if mails.len() as i64 > limit {
            mails.truncate(limit as usize);
            mails.last().map_or(0, |m| m.id)
        } else {
            0
        };
        let mut q = Query::select();
        q.expr_as(Expr::col("id").count(), "n").from("game_mail");
        live(&mut q, user_id, now);
        q.and_where(Expr::col("read_at").eq(0));
        let unread = self.db().fetch_optional(&q).await?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
        Ok(InboxPage { mails, unread, next })
    }

    /// Marks the player's messages read (others' ids change nothing).
    pub(crate) async fn mark_read(&self, user_id: i64, ids: &[i64]) -> Result<()> {
        ids_ok(ids)?;
        let q = Query::update()
            .table("game_mail")
            .value("read_at", now_ms())
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("id").is_in(ids.iter().copied()))
            .and_where(Expr::col("read_at").eq(0))
            .to_owned();
        self.db().execute(&q).await?;
        Ok(())
    }

    /// Claims a message's attachment: coins and goods added, the message marked claimed
    /// (and read), with ledger rows, all in one transaction; the player after it.
    pub(crate) async fn claim(&self, user_id: i64, id: i64) -> Result<Player> {
        if id <= 0 {
            return Err(bad("id: a message id"));
        }
        let data = self.data();
        self.ensure(user_id).await?;
        let mut tx = self.db().begin().await?;
        // The player's row first: a second claim of the same message waits here and then
        // finds it claimed.
        lock_player(&mut tx, user_id).await?;
        let q = Query::select()
            .columns(MAIL_COLS)
            .from("game_mail")
            .and_where(Expr::col("id").eq(id))
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("deleted_at").eq(0))
            .to_owned();
        // Another player's message is "not found" as much as one that never was.
        let mail = mail_row(&tx.fetch_optional(&q).await?.ok_or_else(|| Error::new(Code::NotFound))?)?;
        if mail.claimed {
            return Err(Error::new(Code::AlreadyClaimed));
        }
        let now = now_ms();
        if mail.expires_at != 0 && mail.expires_at <= now {
            return Err(Error::new(Code::MailExpired));
        }
        if !mail.has_attachment() {
            return Err(bad("that message has nothing to claim"));
        }
        let mark = Query::update()
            .table("game_mail")
            .value("claimed_at", now)
            .value("read_at", Expr::case(Expr::col("read_at").eq(0), now).finally(Expr::col("read_at")))
            .and_where(Expr::col("id").eq(id))
            .and_where(Expr::col("claimed_at").eq(0))
            .to_owned();
        if tx.execute(&mark).await? == 0 {
            return Err(Error::new(Code::AlreadyClaimed));
        }
        let change = Change {
            coins: mail.coins,
            items: mail.goods.iter().map(|g| (g.goods_id, g.count)).collect(),
            ..Change::default()
        };
        let p = self.apply(&mut tx, &data, user_id, &change, "mail", &format!("mail:{id}")).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Deletes the player's messages. One that still holds an unclaimed attachment (and has
    /// not expired) is refused with 400523, and then nothing is deleted.
    pub(crate) async fn delete(&self, user_id: i64, ids: &[i64]) -> Result<()> {
        ids_ok(ids)?;
        let now = now_ms();
        // Checked before the update, outside a transaction: nothing gives a stored message
        // an attachment, so what is deletable now stays deletable.
        let mut q = Query::select();
        q.columns(MAIL_COLS).from("game_mail").and_where(Expr::col("id").is_in(ids.iter().copied()));
        live(&mut q, user_id, now);
        for r in self.db().fetch_all(&q).await? {
            let m = mail_row(&r)?;
            if m.has_attachment() && !m.claimed {
                return Err(Error::msg(Code::AttachmentUnclaimed, format!("message {} holds an attachment", m.id)));
            }
        }
        let q = Query::update()
            .table("game_mail")
            .value("deleted_at", now)
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("id").is_in(ids.iter().copied()))
            .and_where(Expr::col("deleted_at").eq(0))
            .to_owned();
        self.db().execute(&q).await?;
        Ok(())
    }
    /// Removes messages deleted or expired before `before` (unix ms); how many. Their
    /// claims' ledger rows stay, with the reference `mail:{id}`.
    pub async fn purge_mail(&self, before: i64) -> Result<u64> {
        let q = Query::delete()
            .from_table("game_mail")
            .cond_where(
                Expr::col("deleted_at")
                    .gt(0)
                    .and(Expr::col("deleted_at").lt(before))
                    .or(Expr::col("expires_at").gt(0).and(Expr::col("expires_at").lt(before))),
            )
            .to_owned();
        Ok(self.db().execute(&q).await?)
    }
}
