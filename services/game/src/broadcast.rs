//! Mail to every player. One row per send; each player's copy is made in its own inbox (an
//! ordinary message, claimed once through the ledger) when it next lists the inbox, so a
//! send costs one insert however many accounts there are. A broadcast is for the accounts
//! that had played before it was sent; `game_broadcast_seen` keeps the newest one each
//! player's inbox was given, so a copy the player deleted (and the purge removed) is not
//! made again.

use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_store::StoreError;
use sea_query::{Expr, ExprTrait as _, OnConflict, Order, Query};

use crate::data::ItemCount;
use crate::inbox::NewMail;
use crate::logic::GameLogic;

/// The most broadcasts one inbox listing copies (older ones wait for the next listing).
const COPIES_PER_LIST: u64 = 50;

impl GameLogic {
    /// Sends `b` to every player who had played before now (its `user_id` is not read); the
    /// send's id, and whether it is new (the same reference again sends nothing more; one is
    /// required). Online players are told at once.
    pub async fn broadcast(&self, b: &NewMail) -> Result<(i64, bool)> {
        if b.reference.is_empty() {
            return Err(Error::bad_param("reference: required (a send is idempotent by it)"));
        }
        // The same checks as a message to one player.
        let one = NewMail { user_id: 1, ..b.clone() };
        self.check_mail(&one)?;
        if let Some(id) = self.broadcast_by_reference(&b.reference).await? {
            return Ok((id, false));
        }
        let goods = serde_json::to_string(&b.goods).map_err(|e| Error::internal(Code::InsertFailed, e))?;
        let mut q = Query::insert();
        q.into_table("game_broadcast")
            .columns(["kind", "title", "body", "coins", "goods", "reference", "created_at", "expires_at"])
            .values([
                Expr::val(b.kind.as_str()),
                Expr::val(b.title.trim()),
                Expr::val(b.body.as_str()),
                Expr::val(b.coins),
                Expr::val(goods),
                Expr::val(b.reference.as_str()),
                Expr::val(unix_ms()),
                Expr::val(b.expires_at),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        let id = match self.db().insert_id(&q).await {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => {
                let id = self.broadcast_by_reference(&b.reference).await?;
                return id.map(|id| (id, false)).ok_or_else(|| Error::msg(Code::InsertFailed, "not stored"));
            }
            Err(e) => return Err(e.into()),
        };
        // user 0: every player online; each lists its inbox, which makes its copy.
        self.announce_mail(&NewMail { user_id: 0, ..b.clone() }, id).await;
        Ok((id, true))
    }

    async fn broadcast_by_reference(&self, reference: &str) -> Result<Option<i64>> {
        let q = Query::select()
            .column("id")
            .from("game_broadcast")
            .and_where(Expr::col("reference").eq(reference))
            .to_owned();
        Ok(self.db().fetch_optional(&q).await?.map(|r| r.i64("id")).transpose()?)
    }

    /// Makes `user_id`'s copies of the broadcasts sent since its last listing (those sent
    /// after it began playing, not expired). A failure leaves the marker where it was: the
    /// next listing tries again, and copies are idempotent by reference.
    pub(crate) async fn deliver_broadcasts(&self, user_id: i64) -> Result<()> {
        let q = Query::select()
            .column("last_id")
            .from("game_broadcast_seen")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        let last = self.db().fetch_optional(&q).await?.map(|r| r.i64("last_id")).transpose()?.unwrap_or(0);
        let q = Query::select()
            .columns(["id", "kind", "title", "body", "coins", "goods", "created_at", "expires_at"])
            .from("game_broadcast")
            .and_where(Expr::col("id").gt(last))
            .order_by("id", Order::Asc)
            .limit(COPIES_PER_LIST)
            .to_owned();
        let rows = self.db().fetch_all(&q).await?;
        let Some(newest) = rows.last().map(|r| r.i64("id")).transpose()? else { return Ok(()) };
        let q = Query::select()
            .column("created_at")
            .from("game_player")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        // Never played: nothing sent before now is for it.
        let since = self.db().fetch_optional(&q).await?.map(|r| r.i64("created_at")).transpose()?.unwrap_or(i64::MAX);
        let now = unix_ms();
        for r in &rows {
            let (id, sent, expires) = (r.i64("id")?, r.i64("created_at")?, r.i64("expires_at")?);
            if sent < since || (expires != 0 && expires <= now) {
                continue;
            }
            let goods: Vec<ItemCount> = serde_json::from_str(&r.string("goods")?).unwrap_or_default();
            let copy = NewMail {
                user_id,
                kind: r.string("kind")?,
                title: r.string("title")?,
                body: r.string("body")?,
                coins: r.i64("coins")?,
                goods,
                expires_at: expires,
                reference: format!("broadcast:{id}"),
            };
            self.store_mail(&copy).await?;
        }
        let mut q = Query::insert();
        q.into_table("game_broadcast_seen")
            .columns(["user_id", "last_id"])
            .values([Expr::val(user_id), Expr::val(newest)])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?
            .on_conflict(OnConflict::column("user_id").update_columns(["last_id"]).to_owned());
        self.db().execute(&q).await?;
        Ok(())
    }
}
