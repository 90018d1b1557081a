//! What an operator (the console) does to a player's economy: grants and takes of coins and
//! goods through the ledger, each in one transaction and idempotent by its reference, and
//! a player's ledger history to read. The game nodes are told, so a live player's numbers
//! change at once.

use rsgame_kit::{Code, Error, Result};
use rsgame_proto::events::{PLAYER_CHANGED_TOPIC, PlayerChanged};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::data::ItemCount;
use crate::logic::{Change, GameLogic, MAX_DELTA, Pack};

/// The ledger's reason of an operator's change.
pub const REASON: &str = "operator";

/// A grant (positive) or take (negative) of coins and goods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    /// Coins to add (negative: to take).
    #[serde(default)]
    pub coins: i64,
    /// Goods to add (a negative count: to take); at most 20 lines.
    #[serde(default)]
    pub goods: Vec<ItemCount>,
}

/// One row of a player's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Row id (pages go backwards from it).
    pub id: i64,
    /// `coins`, `score`, `exp` or `item:<goods id>`.
    pub asset: String,
    /// The change.
    pub delta: i64,
    /// The balance after it.
    pub balance: i64,
    /// Why: `kill`, `buy`, `use`, `mail`, `operator`…
    pub reason: String,
    /// The request it came from (its idempotency key).
    pub reference: String,
    /// Unix ms.
    pub created_at: i64,
}

fn bad(msg: &str) -> Error {
    Error::bad_param(msg)
}

impl GameLogic {
    /// Applies an operator's adjustment: coins and goods move together or not at all, never
    /// below zero. Idempotent by `reference` (required): the same reference again changes
    /// nothing and answers the pack as it is, with `false`.
    pub async fn adjust(&self, user_id: i64, a: &Adjustment, reference: &str) -> Result<(Pack, bool)> {
        if reference.is_empty() || reference.len() > 128 {
            return Err(bad("requestId: 1 to 128 characters"));
        }
        if a.coins == 0 && a.goods.iter().all(|g| g.count == 0) {
            return Err(bad("nothing to change: coins or a goods count other than 0"));
        }
        if a.goods.len() > 20 {
            return Err(bad("goods: at most 20 lines"));
        }
        if !(-MAX_DELTA..=MAX_DELTA).contains(&a.coins)
            || a.goods.iter().any(|g| !(-MAX_DELTA..=MAX_DELTA).contains(&g.count))
        {
            return Err(bad("an amount is out of range"));
        }
        let data = self.data();
        let mut items: Vec<(i64, i64)> = Vec::new();
        for g in a.goods.iter().filter(|g| g.count != 0) {
            if !data.goods.contains_key(&g.goods_id) {
                return Err(Error::msg(Code::NotFound, format!("no goods {}", g.goods_id)));
            }
            // One line per goods: two lines of one goods would write two ledger rows.
            match items.iter_mut().find(|(id, _)| *id == g.goods_id) {
                Some((_, n)) => *n = n.saturating_add(g.count),
                None => items.push((g.goods_id, g.count)),
            }
        }
        self.ensure(user_id).await?;
        let mut tx = self.db().begin().await?;
        if self.granted(&mut tx, user_id, REASON, reference).await? {
            tx.rollback().await?;
            return Ok((self.pack_of(user_id).await?, false));
        }
        let change = Change { coins: a.coins, items, ..Change::default() };
        self.apply(&mut tx, &data, user_id, &change, REASON, reference).await?;
        tx.commit().await?;
        self.ranked(user_id).await;
        self.announce_change(user_id).await;
        Ok((self.pack_of(user_id).await?, true))
    }

    /// The player's pack, or none for an account that never played (none is created).
    pub async fn existing_pack(&self, user_id: i64) -> Result<Option<Pack>> {
        match self.pack_of(user_id).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.code() == Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A page of the player's ledger, newest first, from before row `before` (0: the newest).
    pub async fn ledger_page(&self, user_id: i64, before: i64, limit: u64) -> Result<Vec<LedgerEntry>> {
        let mut q = Query::select();
        q.columns(["id", "asset", "delta", "balance", "reason", "reference", "created_at"])
            .from("game_ledger")
            .and_where(Expr::col("user_id").eq(user_id))
            .order_by("id", Order::Desc)
            .limit(limit.clamp(1, 200));
        if before > 0 {
            q.and_where(Expr::col("id").lt(before));
        }
        let rows = self.db().fetch_all(&q).await?;
        rows.iter()
            .map(|r| {
                Ok(LedgerEntry {
                    id: r.i64("id")?,
                    asset: r.string("asset")?,
                    delta: r.i64("delta")?,
                    balance: r.i64("balance")?,
                    reason: r.string("reason")?,
                    reference: r.string("reference")?,
                    created_at: r.i64("created_at")?,
                })
            })
            .collect()
    }

    /// Tells the game nodes the player's numbers changed (the node holding it shows them);
    /// a lost announcement costs the live update only: the change is stored.
    async fn announce_change(&self, user_id: i64) {
        let Some(bus) = self.events() else { return };
        let event = PlayerChanged { user_id, hp_delta: 0, reason: REASON.to_owned(), id: rand::random() };
        if let Err(e) = bus.publish(PLAYER_CHANGED_TOPIC, &prost::Message::encode_to_vec(&event)).await {
            metrics::counter!(crate::metrics::PLAYER_CHANGED_ERRORS).increment(1);
            tracing::error!(user_id, error = %e, "game nodes not told of an operator's change");
        }
    }
}
