//! The game economy behind the [`Game`] trait: player profiles, the shop, the pack, using
//! goods, battles, leaderboards, notices and score changes. Every change of coins, score, exp
//! or an item count happens in one database transaction together with its ledger rows.
//!
//! Concurrency: each change starts by updating the player's row, which locks it (row lock on
//! MariaDB and PostgreSQL, the database on SQLite) until the transaction ends, so changes of
//! one player are serialised and a purchase can never spend the same coins twice.

use std::sync::Arc;

use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Db, Row, StoreError, Tx};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::battle::{self, Fighter, WarInfo};
use crate::data::{DataStore, Effect, GameData, Goods, Kind, Level, Notice, Rewards, Slot};
use crate::inbox::{InboxPage, NewMail};

/// A player's profile, as `getPack` and battles show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Player {
    /// The account.
    pub user_id: i64,
    /// Level.
    pub level: i64,
    /// Total experience.
    pub exp: i64,
    /// Coins.
    pub coins: i64,
    /// Score.
    pub score: i64,
    /// Hit points now.
    pub hp: i64,
    /// Maximum hit points.
    pub max_hp: i64,
    /// Base attack (without equipment and buffs).
    pub attack: i64,
    /// Base defence (without equipment).
    pub defence: i64,
    /// Equipped weapon (goods id, 0 none).
    pub weapon: i64,
    /// Equipped armor (goods id, 0 none).
    pub armor: i64,
    /// Attack added by a buff, until `buffUntil`.
    pub buff_attack: i64,
    /// When the buff ends, unix milliseconds.
    pub buff_until: i64,
}

/// One stack in the pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackItem {
    /// The goods.
    pub goods: Goods,
    /// How many.
    pub count: i64,
    /// Whether it is equipped.
    pub equipped: bool,
}

/// `getPack`: the profile and the items.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pack {
    /// The profile.
    pub player: Player,
    /// Attack with equipment and buffs.
    pub total_attack: i64,
    /// Defence with equipment.
    pub total_defence: i64,
    /// The items.
    pub items: Vec<PackItem>,
    /// The total experience at which the player's level began (for an experience bar).
    pub level_exp: i64,
    /// The total experience the next level needs; 0 at the top level.
    pub next_level_exp: i64,
}

/// A shop listing with its goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShopItem {
    /// Listing id (what `buyGoods` takes).
    pub id: i64,
    /// Price in coins.
    pub price: i64,
    /// The goods.
    pub goods: Goods,
}

/// A battle's outcome: go-game's `warInfo` plus what it granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BattleResult {
    /// The level fought.
    pub level_id: i64,
    /// The request id it ran under.
    pub request_id: String,
    /// The fight.
    pub war_info: WarInfo,
    /// What winning granted (nothing on a loss).
    pub rewards: Rewards,
}

/// One level's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The level.
    pub level_id: i64,
    /// Its name.
    pub name: String,
    /// Battles won.
    pub wins: i64,
    /// Battles lost.
    pub losses: i64,
    /// Fewest rounds in a win (0: never won).
    pub best_rounds: i64,
    /// Whether the player's level allows it.
    pub unlocked: bool,
}

/// Which leaderboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RankBy {
    /// By score.
    Score,
    /// By level, then experience.
    Level,
}

/// A leaderboard line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RankEntry {
    /// 1-based rank.
    pub rank: i64,
    /// The account.
    pub user_id: i64,
    /// The value ranked (score, or level).
    pub value: i64,
}

/// A page of a leaderboard, and the caller's own line when known.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ranking {
    /// This page.
    pub list: Vec<RankEntry>,
    /// The caller's line, when a caller is known and has a profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub me: Option<RankEntry>,
}

/// What a reward grants (the world's kills): none of it negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// Experience (level-ups included).
    pub exp: i64,
    /// Coins.
    pub coins: i64,
    /// Leaderboard score.
    pub score: i64,
}

/// The most one change may move an asset, either way. Far above anything a game grants,
/// far below where 64-bit arithmetic wraps: a larger amount is a bug or an attack.
pub const MAX_DELTA: i64 = 1_000_000_000_000;
/// The most any balance may hold (coins, score, exp, an item count).
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;

/// A ledger check's finding: a balance that its ledger does not add up to, or one that is
/// negative (`balance < 0`), which no change may leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The account.
    pub user_id: i64,
    /// The asset.
    pub asset: String,
    /// What the balance says.
    pub balance: i64,
    /// What the ledger adds up to.
    pub ledger: i64,
}

/// What the game service does; the REST API and (later) the world and gRPC call it.
#[async_trait::async_trait]
pub trait Game: Send + Sync {
    /// The player's profile, created on first use.
    async fn player(&self, user_id: i64) -> Result<Player>;
    /// The shop.
    async fn shop(&self) -> Result<Vec<ShopItem>>;
    /// Buys `count` of a listing: coins taken and items added together, or neither.
    async fn buy(&self, user_id: i64, listing_id: i64, count: i64) -> Result<Pack>;
    /// The profile and items.
    async fn pack(&self, user_id: i64) -> Result<Pack>;
    /// Uses a consumable (its effect) or equips equipment.
    async fn use_goods(&self, user_id: i64, goods_id: i64) -> Result<Pack>;
    /// The levels.
    async fn levels(&self) -> Result<Vec<Level>>;
    /// The player's progress on each level.
    async fn my_battles(&self, user_id: i64) -> Result<Vec<Progress>>;
    /// Fights a level; a retry with the same request id gets the same result and nothing twice.
    async fn battle(&self, user_id: i64, level_id: i64, request_id: &str) -> Result<BattleResult>;
    /// A leaderboard page (and the caller's line).
    async fn rank(&self, by: RankBy, page: i64, page_size: i64, me: Option<i64>) -> Result<Ranking>;
    /// The notices showing now.
    async fn notices(&self) -> Result<Vec<Notice>>;
    /// Changes coins and score: for server-side callers (the world, admin tools) only.
    async fn change_score(&self, user_id: i64, coins: i64, score: i64, reason: &str, reference: &str)
    -> Result<Player>;
    /// Grants experience (level-ups included), coins and score: the world's kill rewards.
    /// Idempotent by `reference` (with `reason`): granting one again changes nothing and
    /// returns the player as it is, so a caller may retry after a lost answer.
    async fn reward(&self, user_id: i64, grant: Grant, reason: &str, reference: &str) -> Result<Player>;
    /// Saves the world's hit points, each clamped to 0..=max_hp (write-behind, in batches).
    async fn save_hp(&self, entries: &[(i64, i64)]) -> Result<()>;
    /// Puts a message in a player's inbox: for server-side callers (game nodes, operators)
    /// only; its id. Idempotent by a non-empty `reference` per player. The node holding the
    /// player, if it is online, pushes a MailNotice.
    async fn send_mail(&self, mail: NewMail) -> Result<i64>;
    /// A page of the player's inbox, newest first: messages with ids below `before` (0: the
    /// newest), at most `limit` (1 to 100).
    async fn inbox(&self, user_id: i64, before: i64, limit: i64) -> Result<InboxPage>;
    /// Marks the player's messages read.
    async fn read_mail(&self, user_id: i64, ids: &[i64]) -> Result<()>;
    /// Claims a message's attachment into the player's balances, once (400521 after that,
    /// 400522 once expired); the player after it.
    async fn claim_mail(&self, user_id: i64, id: i64) -> Result<Player>;
    /// Deletes the player's messages; one whose attachment is unclaimed is refused (400523).
    async fn delete_mail(&self, user_id: i64, ids: &[i64]) -> Result<()>;
    /// Keeps a guild chat message of the sender's guild; the members to deliver it to
    /// (400201 when the sender is in no guild).
    async fn guild_chat(&self, m: crate::guild::GuildChat) -> Result<Vec<i64>>;
    /// The player's guild's chat before `before` (unix ms; 0: now), newest last.
    async fn guild_chat_history(&self, user_id: i64, before: i64, limit: u64) -> Result<Vec<crate::guild::GuildChat>>;
}

const PLAYER_COLS: [&str; 13] = [
    "user_id",
    "level",
    "exp",
    "coins",
    "score",
    "hp",
    "max_hp",
    "attack",
    "defence",
    "weapon",
    "armor",
    "buff_attack",
    "buff_until",
];

fn player_row(r: &Row) -> std::result::Result<Player, StoreError> {
    Ok(Player {
        user_id: r.i64("user_id")?,
        level: r.i64("level")?,
        exp: r.i64("exp")?,
        coins: r.i64("coins")?,
        score: r.i64("score")?,
        hp: r.i64("hp")?,
        max_hp: r.i64("max_hp")?,
        attack: r.i64("attack")?,
        defence: r.i64("defence")?,
        weapon: r.i64("weapon")?,
        armor: r.i64("armor")?,
        buff_attack: r.i64("buff_attack")?,
        buff_until: r.i64("buff_until")?,
    })
}

use rsgame_kit::time::unix_ms as now_ms;

fn bad(msg: &str) -> Error {
    Error::bad_param(msg)
}

/// The in-process game service.
#[derive(Clone)]
pub struct GameLogic {
    db: Db,
    data: DataStore,
    ranks: Option<crate::ranks::RedisRanks>,
    events: Option<rsgame_store::Bus>,
    presence: Option<rsgame_store::Cache>,
}

/// The changes one transaction makes to a player, applied with their ledger rows.
#[derive(Default)]
pub(crate) struct Change {
    pub(crate) coins: i64,
    pub(crate) score: i64,
    pub(crate) exp: i64,
    pub(crate) items: Vec<(i64, i64)>,
}

impl GameLogic {
    /// Over the database and the game data.
    pub fn new(db: Db, data: DataStore) -> GameLogic {
        GameLogic { db, data, ranks: None, events: None, presence: None }
    }

    /// Keeps the leaderboards in Redis sorted sets when `cache` is Redis (the database
    /// otherwise).
    pub fn with_rank_cache(mut self, cache: rsgame_store::Cache) -> GameLogic {
        self.ranks = cache.is_shared().then(|| crate::ranks::RedisRanks::new(cache));
        self
    }

    /// Reads players' presence (which game node they are on) from `cache`, where the game
    /// nodes keep it: the guild members' online status.
    pub fn with_presence(mut self, cache: rsgame_store::Cache) -> GameLogic {
        self.presence = Some(cache);
        self
    }

    /// Which of `users` are online, as the game nodes' presence says (all false without it,
    /// or when the cache does not answer: the status is a hint, never a failure).
    pub(crate) async fn online(&self, users: &[i64]) -> Vec<bool> {
        let Some(cache) = &self.presence else { return vec![false; users.len()] };
        let keys: Vec<String> = users.iter().map(|u| rsgame_store::cache::presence_key(*u)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match cache.get_many::<String>(&refs).await {
            Ok(v) => v.into_iter().map(|p| p.is_some()).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "presence not read");
                vec![false; users.len()]
            }
        }
    }

    /// Announces what game nodes show live on `bus`: a message put in an inbox
    /// ([`MailArrived`](rsgame_proto::events::MailArrived)), pushed to the player if online.
    pub fn with_events(mut self, bus: rsgame_store::Bus) -> GameLogic {
        self.events = Some(bus);
        self
    }

    /// Tells the game nodes a message arrived. The message is stored whatever happens here;
    /// a lost announcement costs the live push only (the player sees it at the next list),
    /// so it is counted and logged, not retried.
    pub(crate) async fn announce_mail(&self, m: &crate::inbox::NewMail, id: i64) {
        let Some(bus) = &self.events else { return };
        let event = rsgame_proto::events::MailArrived {
            user_id: m.user_id,
            mail_id: id,
            kind: m.kind.clone(),
            title: m.title.trim().to_owned(),
            attachment: m.coins > 0 || !m.goods.is_empty(),
        };
        let topic = rsgame_proto::events::MAIL_ARRIVED_TOPIC;
        if let Err(e) = bus.publish(topic, &prost::Message::encode_to_vec(&event)).await {
            metrics::counter!(crate::metrics::MAIL_NOTICE_ERRORS).increment(1);
            tracing::warn!(user_id = m.user_id, mail = id, error = %e, "inbox message stored but not announced");
        }
    }

    /// Tells the game nodes a guild changed, for their members online. The change is
    /// committed whatever happens here; a lost announcement costs the live push only (the
    /// members see it at their next look), so it is counted and logged, not retried.
    pub(crate) async fn announce_guild(&self, guild_id: i64, name: &str, event: i32, subject: i64, users: Vec<i64>) {
        let Some(bus) = &self.events else { return };
        let e = rsgame_proto::events::GuildChanged { guild_id, name: name.to_owned(), event, subject, users };
        let topic = rsgame_proto::events::GUILD_CHANGED_TOPIC;
        if let Err(err) = bus.publish(topic, &prost::Message::encode_to_vec(&e)).await {
            metrics::counter!(crate::metrics::GUILD_NOTICE_ERRORS).increment(1);
            tracing::warn!(guild = guild_id, error = %err, "guild change committed but not announced");
        }
    }

    /// After a committed change: the player's new values on the Redis boards. A failure is
    /// logged; the boards are rebuilt from the database when Redis comes back empty.
    pub(crate) async fn ranked(&self, user_id: i64) {
        if let Some(r) = &self.ranks {
            let res = match self.pack_of(user_id).await {
                Ok(p) => r.update(&p.player).await.map_err(Error::from),
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                tracing::warn!(user_id, error = %e, "leaderboard not updated");
            }
        }
    }

    async fn rank_db(&self, by: RankBy, page: i64, page_size: i64, me: Option<i64>) -> Result<Ranking> {
        if !(1..=1_000_000).contains(&page) || !(1..=100).contains(&page_size) {
            return Err(bad("page: 1 to 1000000; pageSize: 1 to 100"));
        }
        let (col, tie) = match by {
            RankBy::Score => ("score", "level"),
            RankBy::Level => ("level", "exp"),
        };
        let q = Query::select()
            .columns(["user_id", col])
            .from("game_player")
            .order_by(col, Order::Desc)
            .order_by(tie, Order::Desc)
            .order_by("user_id", Order::Asc)
            .limit(page_size as u64)
            .offset(((page - 1) * page_size) as u64)
            .to_owned();
        let mut list = Vec::new();
        for (i, r) in self.db.fetch_all(&q).await?.iter().enumerate() {
            list.push(RankEntry {
                rank: (page - 1) * page_size + i as i64 + 1,
                user_id: r.i64("user_id")?,
                value: r.i64(col)?,
            });
        }
        let me = match me {
            None => None,
            Some(user_id) => {
                let q = Query::select()
                    .columns(["user_id", col, tie])
                    .from("game_player")
                    .and_where(Expr::col("user_id").eq(user_id))
                    .to_owned();
                match self.db.fetch_optional(&q).await? {
                    None => None,
                    Some(r) => {
                        let (v, t) = (r.i64(col)?, r.i64(tie)?);
                        // Ahead of me: a higher value, or the same value and a higher tie-break,
                        // or both equal and a smaller id.
                        let ahead = Query::select()
                            .expr_as(Expr::col("user_id").count(), "n")
                            .from("game_player")
                            .and_where(Expr::col(col).gt(v).or(Expr::col(col).eq(v).and(Expr::col(tie).gt(t))).or(
                                Expr::col(col).eq(v).and(Expr::col(tie).eq(t)).and(Expr::col("user_id").lt(user_id)),
                            ))
                            .to_owned();
                        let n = self.db.fetch_optional(&ahead).await?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
                        Some(RankEntry { rank: n + 1, user_id, value: v })
                    }
                }
            }
        };
        Ok(Ranking { list, me })
    }

    /// The bus game nodes read, when set ([`GameLogic::with_events`]).
    pub fn events(&self) -> Option<&rsgame_store::Bus> {
        self.events.as_ref()
    }

    /// The database it keeps players in.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The game data in use.
    pub fn data(&self) -> Arc<GameData> {
        self.data.get()
    }

    /// Where the game data comes from (its files, for operators who replace one).
    pub fn data_store(&self) -> &DataStore {
        &self.data
    }

    async fn load(&self, tx: &mut Tx, user_id: i64) -> Result<Player> {
        let q = Query::select()
            .columns(PLAYER_COLS)
            .from("game_player")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        let row = tx.fetch_optional(&q).await?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(player_row(&row)?)
    }

    /// Creates the profile if missing (outside any transaction; a concurrent creation wins
    /// harmlessly through the unique key).
    pub(crate) async fn ensure(&self, user_id: i64) -> Result<()> {
        if user_id <= 0 {
            return Err(bad("userId: an account id"));
        }
        let exists = Query::select()
            .column("user_id")
            .from("game_player")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        if self.db.fetch_optional(&exists).await?.is_some() {
            return Ok(());
        }
        self.create(user_id).await
    }

    /// Creates the profile at the start values, with its ledger line; one that exists
    /// already (a concurrent creation) is left as it is.
    async fn create(&self, user_id: i64) -> Result<()> {
        let data = self.data.get();
        let s = data.exp.start;
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let mut q = Query::insert();
        q.into_table("game_player")
            .columns(["user_id", "level", "coins", "hp", "max_hp", "attack", "defence", "created_at", "updated_at"])
            .values([
                Expr::val(user_id),
                Expr::val(1),
                Expr::val(s.coins),
                Expr::val(s.max_hp),
                Expr::val(s.max_hp),
                Expr::val(s.attack),
                Expr::val(s.defence),
                Expr::val(now),
                Expr::val(now),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        match tx.insert_id(&q).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(()), // created by a concurrent request
            Err(e) => return Err(e.into()),
        }
        if s.coins != 0 {
            ledger(&mut tx, user_id, "coins", s.coins, s.coins, "start", "").await?;
        }
        tx.commit().await?;
        self.ranked(user_id).await;
        Ok(())
    }

    /// Whether a grant with this reason and reference is in the player's ledger. Locks the
    /// player's row first, so two grants of one reference run one after the other and the
    /// second sees the first.
    pub(crate) async fn granted(&self, tx: &mut Tx, user_id: i64, reason: &str, reference: &str) -> Result<bool> {
        lock_player(tx, user_id).await?;
        let q = Query::select()
            .column("id")
            .from("game_ledger")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("reference").eq(reference))
            .and_where(Expr::col("reason").eq(reason))
            .limit(1)
            .to_owned();
        Ok(tx.fetch_optional(&q).await?.is_some())
    }

    /// Applies `c` to the (locked) player inside `tx`, with ledger rows, level-ups included.
    pub(crate) async fn apply(
        &self,
        tx: &mut Tx,
        data: &GameData,
        user_id: i64,
        c: &Change,
        reason: &str,
        reference: &str,
    ) -> Result<Player> {
        let deltas = [c.coins, c.score, c.exp].into_iter().chain(c.items.iter().map(|&(_, d)| d));
        if deltas.into_iter().any(|d| !(-MAX_DELTA..=MAX_DELTA).contains(&d)) {
            return Err(bad("an amount is out of range"));
        }
        // Conditional: coins and items never go below zero, and no balance passes
        // MAX_BALANCE, whatever races. (Deltas are bounded above, so `-d` cannot wrap.)
        let mut up = Query::update();
        up.table("game_player")
            .value("coins", Expr::col("coins").add(c.coins))
            .value("score", Expr::col("score").add(c.score))
            .value("exp", Expr::col("exp").add(c.exp))
            .value("updated_at", now_ms())
            .and_where(Expr::col("user_id").eq(user_id));
        if c.coins < 0 {
            up.and_where(Expr::col("coins").gte(-c.coins));
        }
        for (col, d) in [("coins", c.coins), ("score", c.score), ("exp", c.exp)] {
            if d > 0 {
                up.and_where(Expr::col(col).lte(MAX_BALANCE - d));
            }
        }
        if tx.execute(&up).await? == 0 {
            let p = self.load(tx, user_id).await?;
            return Err(if p.coins + c.coins < 0 {
                Error::new(Code::NotEnoughCoins)
            } else {
                Error::msg(Code::Forbidden, "a balance would pass its limit")
            });
        }
        for &(goods_id, delta) in &c.items {
            let mut q = Query::update();
            q.table("game_item")
                .value("count", Expr::col("count").add(delta))
                .and_where(Expr::col("user_id").eq(user_id))
                .and_where(Expr::col("goods_id").eq(goods_id));
            if delta < 0 {
                q.and_where(Expr::col("count").gte(-delta));
            } else {
                q.and_where(Expr::col("count").lte(MAX_BALANCE - delta));
            }
            if tx.execute(&q).await? == 0 {
                if delta < 0 {
                    return Err(Error::new(Code::NotEnoughItems));
                }
                let exists = item_row(user_id, goods_id);
                if tx.fetch_optional(&exists).await?.is_some() {
                    return Err(Error::msg(Code::Forbidden, "a balance would pass its limit"));
                }
                let mut ins = Query::insert();
                ins.into_table("game_item")
                    .columns(["user_id", "goods_id", "count"])
                    .values([Expr::val(user_id), Expr::val(goods_id), Expr::val(delta)])
                    .map_err(|e| Error::internal(Code::InsertFailed, e))?;
                tx.insert_id(&ins).await?;
            }
        }
        let mut p = self.load(tx, user_id).await?;
        // Level-ups from the experience gained: stats grow, hp refills.
        let level = data.level_for(p.exp);
        if level > p.level {
            let n = level - p.level;
            let per = data.exp.per_level;
            // Values computed here from the locked row: MariaDB applies SET assignments left to
            // right, so `hp = max_hp + x` would read the already raised max_hp.
            let max_hp = p.max_hp + per.max_hp * n;
            let mut q = Query::update();
            q.table("game_player")
                .value("level", level)
                .value("max_hp", max_hp)
                .value("hp", max_hp)
                .value("attack", p.attack + per.attack * n)
                .value("defence", p.defence + per.defence * n)
                .and_where(Expr::col("user_id").eq(user_id));
            tx.execute(&q).await?;
            p = self.load(tx, user_id).await?;
        }
        for (asset, delta, balance) in [("coins", c.coins, p.coins), ("score", c.score, p.score), ("exp", c.exp, p.exp)]
        {
            if delta != 0 {
                ledger(tx, user_id, asset, delta, balance, reason, reference).await?;
            }
        }
        for &(goods_id, delta) in &c.items {
            let q = item_row(user_id, goods_id);
            let balance = tx.fetch_optional(&q).await?.map(|r| r.i64("count")).transpose()?.unwrap_or(0);
            ledger(tx, user_id, &format!("item:{goods_id}"), delta, balance, reason, reference).await?;
        }
        Ok(p)
    }

    pub(crate) async fn pack_of(&self, user_id: i64) -> Result<Pack> {
        let data = self.data.get();
        let q = Query::select()
            .columns(PLAYER_COLS)
            .from("game_player")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        let player = player_row(&self.db.fetch_optional(&q).await?.ok_or_else(|| Error::new(Code::NotFound))?)?;
        let q = Query::select()
            .columns(["goods_id", "count"])
            .from("game_item")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("count").gt(0))
            .order_by("goods_id", Order::Asc)
            .to_owned();
        let mut items = Vec::new();
        for r in self.db.fetch_all(&q).await? {
            let id = r.i64("goods_id")?;
            // Goods removed from the catalogue stay in the ledger but are not shown.
            if let Some(g) = data.goods.get(&id) {
                items.push(PackItem {
                    goods: g.clone(),
                    count: r.i64("count")?,
                    equipped: id == player.weapon || id == player.armor,
                });
            }
        }
        let (total_attack, total_defence) = totals(&data, &player);
        let (level_exp, next_level_exp) = data.level_span(player.level);
        Ok(Pack { player, total_attack, total_defence, items, level_exp, next_level_exp })
    }

    /// Checks every balance against its ledger: coins, score, exp and each item count must be
    /// the sum of their ledger deltas. Returns what does not add up.
    pub async fn check_ledger(&self) -> Result<Vec<Mismatch>> {
        // SUM of BIGINT is a decimal on MariaDB and PostgreSQL: cast it back to a 64-bit
        // integer (spelled SIGNED on MariaDB).
        let int = if self.db.backend() == rsgame_store::Backend::MySql { "SIGNED" } else { "BIGINT" };
        let sums = Query::select()
            .columns(["user_id", "asset"])
            .expr_as(Expr::col("delta").sum().cast_as(int), "total")
            .from("game_ledger")
            .group_by_col("user_id")
            .group_by_col("asset")
            .to_owned();
        let mut ledger = std::collections::HashMap::new();
        for r in self.db.fetch_all(&sums).await? {
            let total = r.i64("total")?;
            ledger.insert((r.i64("user_id")?, r.string("asset")?), total);
        }
        let mut out = Vec::new();
        let mut check = |user_id: i64, asset: String, balance: i64| {
            let l = ledger.remove(&(user_id, asset.clone())).unwrap_or(0);
            if l != balance || balance < 0 {
                out.push(Mismatch { user_id, asset, balance, ledger: l });
            }
        };
        let q = Query::select().columns(["user_id", "coins", "score", "exp"]).from("game_player").to_owned();
        for r in self.db.fetch_all(&q).await? {
            let u = r.i64("user_id")?;
            check(u, "coins".into(), r.i64("coins")?);
            check(u, "score".into(), r.i64("score")?);
            check(u, "exp".into(), r.i64("exp")?);
        }
        let q = Query::select().columns(["user_id", "goods_id", "count"]).from("game_item").to_owned();
        for r in self.db.fetch_all(&q).await? {
            check(r.i64("user_id")?, format!("item:{}", r.i64("goods_id")?), r.i64("count")?);
        }
        // Ledger entries with no balance left to hold them.
        for ((user_id, asset), l) in ledger {
            if l != 0 {
                out.push(Mismatch { user_id, asset, balance: 0, ledger: l });
            }
        }
        out.sort_by(|a, b| (a.user_id, &a.asset).cmp(&(b.user_id, &b.asset)));
        Ok(out)
    }
}

/// Attack and defence with equipment and an active buff.
fn totals(data: &GameData, p: &Player) -> (i64, i64) {
    let gear = |id: i64| data.goods.get(&id).map(|g| (g.attack, g.defence)).unwrap_or((0, 0));
    let buff = if p.buff_until > now_ms() { p.buff_attack } else { 0 };
    (p.attack + gear(p.weapon).0 + gear(p.armor).0 + buff, p.defence + gear(p.weapon).1 + gear(p.armor).1)
}

/// The count of one item a player holds (no row: none).
fn item_row(user_id: i64, goods_id: i64) -> sea_query::SelectStatement {
    Query::select()
        .column("count")
        .from("game_item")
        .and_where(Expr::col("user_id").eq(user_id))
        .and_where(Expr::col("goods_id").eq(goods_id))
        .to_owned()
}

/// Writes the player's row first in a transaction: it serialises that player's changes
/// (and on SQLite takes the write lock before any read, so the transaction never has to
/// upgrade one).
pub(crate) async fn lock_player(tx: &mut Tx, user_id: i64) -> Result<()> {
    let touch = Query::update()
        .table("game_player")
        .value("updated_at", now_ms())
        .and_where(Expr::col("user_id").eq(user_id))
        .to_owned();
    tx.execute(&touch).await?;
    Ok(())
}

async fn ledger(
    tx: &mut Tx,
    user_id: i64,
    asset: &str,
    delta: i64,
    balance: i64,
    reason: &str,
    reference: &str,
) -> Result<()> {
    let mut q = Query::insert();
    q.into_table("game_ledger")
        .columns(["user_id", "asset", "delta", "balance", "reason", "reference", "created_at"])
        .values([
            Expr::val(user_id),
            Expr::val(asset),
            Expr::val(delta),
            Expr::val(balance),
            Expr::val(reason),
            Expr::val(reference),
            Expr::val(now_ms()),
        ])
        .map_err(|e| Error::internal(Code::InsertFailed, e))?;
    tx.insert_id(&q).await?;
    Ok(())
}

#[async_trait::async_trait]
impl Game for GameLogic {
    async fn player(&self, user_id: i64) -> Result<Player> {
        Ok(self.pack(user_id).await?.player)
    }

    async fn shop(&self) -> Result<Vec<ShopItem>> {
        let data = self.data.get();
        Ok(data
            .shop
            .iter()
            .filter_map(|l| {
                data.goods.get(&l.goods_id).map(|g| ShopItem { id: l.id, price: l.price, goods: g.clone() })
            })
            .collect())
    }

    async fn buy(&self, user_id: i64, listing_id: i64, count: i64) -> Result<Pack> {
        if !(1..=99).contains(&count) {
            return Err(bad("count: 1 to 99"));
        }
        let data = self.data.get();
        let listing = data
            .shop
            .iter()
            .find(|l| l.id == listing_id)
            .ok_or_else(|| Error::msg(Code::NotFound, "no such listing"))?;
        self.ensure(user_id).await?;
        let change =
            Change { coins: -listing.price * count, items: vec![(listing.goods_id, count)], ..Change::default() };
        let mut tx = self.db.begin().await?;
        self.apply(&mut tx, &data, user_id, &change, "buy", &format!("shop:{listing_id}")).await?;
        tx.commit().await?;
        self.pack_of(user_id).await
    }

    async fn pack(&self, user_id: i64) -> Result<Pack> {
        // Read first: a returning player's row is there (every world login reads its pack,
        // so a login storm saves a query per login); only a first visit creates it, with no
        // second look (the insert is refused harmlessly if it exists by then).
        if user_id <= 0 {
            return Err(bad("userId: an account id"));
        }
        match self.pack_of(user_id).await {
            Err(e) if e.code() == Code::NotFound => {}
            read => return read,
        }
        self.create(user_id).await?;
        self.pack_of(user_id).await
    }

    async fn use_goods(&self, user_id: i64, goods_id: i64) -> Result<Pack> {
        let data = self.data.get();
        let goods = data.goods.get(&goods_id).ok_or_else(|| Error::msg(Code::NotFound, "no such goods"))?.clone();
        self.ensure(user_id).await?;
        let mut tx = self.db.begin().await?;
        match (goods.kind, &goods.effect, goods.slot) {
            (Kind::Consumable, Some(effect), _) => {
                let exp = if let Effect::Exp(n) = effect { *n } else { 0 };
                let change = Change { exp, items: vec![(goods_id, -1)], ..Change::default() };
                let p = self.apply(&mut tx, &data, user_id, &change, "use", &format!("goods:{goods_id}")).await?;
                let mut q = Query::update();
                q.table("game_player").and_where(Expr::col("user_id").eq(user_id));
                match effect {
                    Effect::Heal(n) => {
                        q.value("hp", Ord::min(p.hp + n, p.max_hp));
                    }
                    Effect::Buff { attack, secs } => {
                        q.value("buff_attack", *attack).value("buff_until", now_ms() + secs * 1000);
                    }
                    Effect::Exp(_) => {
                        q.value("updated_at", now_ms());
                    }
                }
                tx.execute(&q).await?;
            }
            (Kind::Equipment, _, Some(slot)) => {
                lock_player(&mut tx, user_id).await?;
                // Equipping keeps the item; it must be in the pack.
                let have = Query::select()
                    .column("count")
                    .from("game_item")
                    .and_where(Expr::col("user_id").eq(user_id))
                    .and_where(Expr::col("goods_id").eq(goods_id))
                    .and_where(Expr::col("count").gt(0))
                    .to_owned();
                if tx.fetch_optional(&have).await?.is_none() {
                    return Err(Error::new(Code::NotEnoughItems));
                }
                let col = if slot == Slot::Weapon { "weapon" } else { "armor" };
                let q = Query::update()
                    .table("game_player")
                    .value(col, goods_id)
                    .and_where(Expr::col("user_id").eq(user_id))
                    .to_owned();
                tx.execute(&q).await?;
            }
            _ => return Err(Error::msg(Code::Forbidden, "this goods cannot be used")),
        }
        tx.commit().await?;
        self.ranked(user_id).await;
        self.pack_of(user_id).await
    }

    async fn levels(&self) -> Result<Vec<Level>> {
        Ok(self.data.get().levels.clone())
    }

    async fn my_battles(&self, user_id: i64) -> Result<Vec<Progress>> {
        let data = self.data.get();
        let player = self.player(user_id).await?;
        let q = Query::select()
            .columns(["level_id", "wins", "losses", "best_rounds"])
            .from("game_progress")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        let mut rows = std::collections::HashMap::new();
        for r in self.db.fetch_all(&q).await? {
            rows.insert(r.i64("level_id")?, (r.i64("wins")?, r.i64("losses")?, r.i64("best_rounds")?));
        }
        Ok(data
            .levels
            .iter()
            .map(|l| {
                let (wins, losses, best_rounds) = rows.get(&l.id).copied().unwrap_or_default();
                Progress {
                    level_id: l.id,
                    name: l.name.clone(),
                    wins,
                    losses,
                    best_rounds,
                    unlocked: player.level >= l.min_level,
                }
            })
            .collect())
    }

    async fn battle(&self, user_id: i64, level_id: i64, request_id: &str) -> Result<BattleResult> {
        if request_id.is_empty() || request_id.len() > 64 || !request_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("requestId: 1 to 64 visible characters, unique per battle"));
        }
        let stored = |r: Row| -> Result<BattleResult> {
            let record = r.string("record")?;
            serde_json::from_str(&record).map_err(|e| Error::internal(Code::Failed, e))
        };
        let find = Query::select()
            .column("record")
            .from("game_battle")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("request_id").eq(request_id))
            .to_owned();
        if let Some(r) = self.db.fetch_optional(&find).await? {
            return stored(r); // a retry: the same answer, nothing granted again
        }
        let data = self.data.get();
        let level = data.level(level_id).ok_or_else(|| Error::msg(Code::NotFound, "no such level"))?.clone();
        self.ensure(user_id).await?;

        let mut tx = self.db.begin().await?;
        // The player's row first: it serialises this player's changes (see the module docs),
        // so the fight below uses the player as it is now, not a snapshot another request
        // is changing.
        lock_player(&mut tx, user_id).await?;
        let before = self.load(&mut tx, user_id).await?;
        if before.level < level.min_level {
            return Err(Error::new(Code::LevelTooLow));
        }
        let (attack, defence) = totals(&data, &before);
        let me = Fighter { name: format!("player-{user_id}"), hp: Ord::max(before.hp, 1), attack, defence };
        // A fresh random seed, kept with the record: a client cannot search request ids
        // offline for a winning fight, and a retry is answered from the stored record.
        let seed: u64 = rand::random();
        let war = battle::simulate(seed, &me, &level.enemies);
        let rewards = if war.win { level.rewards.clone() } else { Rewards::default() };
        let result = BattleResult {
            level_id,
            request_id: request_id.to_owned(),
            war_info: war.clone(),
            rewards: rewards.clone(),
        };
        let record = serde_json::to_string(&result).map_err(|e| Error::internal(Code::Failed, e))?;

        let mut ins = Query::insert();
        ins.into_table("game_battle")
            .columns(["user_id", "level_id", "request_id", "seed", "win", "record", "created_at"])
            .values([
                Expr::val(user_id),
                Expr::val(level_id),
                Expr::val(request_id),
                Expr::val(seed as i64),
                Expr::val(i32::from(war.win)),
                Expr::val(&record),
                Expr::val(now_ms()),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        match tx.insert_id(&ins).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => {
                // The same request ran concurrently and got there first: answer with its record.
                drop(tx);
                let r = self.db.fetch_optional(&find).await?.ok_or_else(|| Error::new(Code::Failed))?;
                return stored(r);
            }
            Err(e) => return Err(e.into()),
        }
        let reference = format!("battle:{request_id}");
        let change = Change {
            coins: rewards.coins,
            score: rewards.score,
            exp: rewards.exp,
            items: rewards.items.iter().map(|i| (i.goods_id, i.count)).collect(),
        };
        let p = self.apply(&mut tx, &data, user_id, &change, "battle", &reference).await?;
        // The fight's damage stays (a level-up during it refilled hp already).
        if p.level == before.level {
            let hp = Query::update()
                .table("game_player")
                .value("hp", Ord::max(war.player_hp, 1))
                .and_where(Expr::col("user_id").eq(user_id))
                .to_owned();
            tx.execute(&hp).await?;
        }
        let up = Query::update()
            .table("game_progress")
            .value("wins", Expr::col("wins").add(i64::from(war.win)))
            .value("losses", Expr::col("losses").add(i64::from(!war.win)))
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("level_id").eq(level_id))
            .to_owned();
        if tx.execute(&up).await? == 0 {
            let mut ins = Query::insert();
            ins.into_table("game_progress")
                .columns(["user_id", "level_id", "wins", "losses", "best_rounds", "first_win_at"])
                .values([
                    Expr::val(user_id),
                    Expr::val(level_id),
                    Expr::val(i64::from(war.win)),
                    Expr::val(i64::from(!war.win)),
                    Expr::val(if war.win { i64::from(war.rounds) } else { 0 }),
                    Expr::val(if war.win { now_ms() } else { 0 }),
                ])
                .map_err(|e| Error::internal(Code::InsertFailed, e))?;
            tx.insert_id(&ins).await?;
        } else if war.win {
            let best = Query::update()
                .table("game_progress")
                .value("best_rounds", i64::from(war.rounds))
                .and_where(Expr::col("user_id").eq(user_id))
                .and_where(Expr::col("level_id").eq(level_id))
                .and_where(Expr::col("best_rounds").eq(0).or(Expr::col("best_rounds").gt(i64::from(war.rounds))))
                .to_owned();
            tx.execute(&best).await?;
        }
        tx.commit().await?;
        self.ranked(user_id).await;
        Ok(result)
    }

    async fn rank(&self, by: RankBy, page: i64, page_size: i64, me: Option<i64>) -> Result<Ranking> {
        if !(1..=1_000_000).contains(&page) || !(1..=100).contains(&page_size) {
            return Err(bad("page: 1 to 1000000; pageSize: 1 to 100"));
        }
        if let Some(r) = &self.ranks {
            let redis = async {
                r.ensure(&self.db).await?;
                let list = r.page(by, page, page_size).await?;
                let me = match me {
                    Some(u) => match self.pack_of(u).await {
                        Ok(p) => r.of(by, &p.player).await?,
                        Err(e) if e.code() == Code::NotFound => None,
                        Err(e) => return Err(e),
                    },
                    None => None,
                };
                Ok::<_, Error>(Ranking { list, me })
            };
            match redis.await {
                Ok(r) => return Ok(r),
                Err(e) => tracing::warn!(error = %e, "leaderboard from Redis failed; reading the database"),
            }
        }
        self.rank_db(by, page, page_size, me).await
    }

    async fn notices(&self) -> Result<Vec<Notice>> {
        use rsgame_kit::time::parse_rfc3339;
        // Compared as instants: as text, `…07Z` sorts after `…07.767Z` and zones differ. The
        // loader refuses times that do not parse.
        let now = rsgame_kit::time::unix_ms();
        let at = |s: &str| parse_rfc3339(s).unwrap_or(i64::MAX);
        let mut v: Vec<Notice> = self
            .data
            .get()
            .notices
            .iter()
            .filter(|n| at(&n.start) <= now && n.end.as_deref().is_none_or(|e| at(e) > now))
            .cloned()
            .collect();
        v.sort_by(|a, b| at(&b.start).cmp(&at(&a.start)).then(b.id.cmp(&a.id)));
        Ok(v)
    }

    async fn change_score(
        &self,
        user_id: i64,
        coins: i64,
        score: i64,
        reason: &str,
        reference: &str,
    ) -> Result<Player> {
        if reason.is_empty() || reason.len() > 32 || reference.len() > 128 {
            return Err(bad("reason: 1 to 32 characters; reference: at most 128"));
        }
        let data = self.data.get();
        self.ensure(user_id).await?;
        let mut tx = self.db.begin().await?;
        let p = self
            .apply(&mut tx, &data, user_id, &Change { coins, score, ..Change::default() }, reason, reference)
            .await?;
        if p.score < 0 {
            return Err(Error::msg(Code::Forbidden, "score cannot go below zero"));
        }
        tx.commit().await?;
        self.ranked(user_id).await;
        Ok(p)
    }

    async fn reward(&self, user_id: i64, grant: Grant, reason: &str, reference: &str) -> Result<Player> {
        if reason.is_empty() || reason.len() > 32 || reference.len() > 128 {
            return Err(bad("reason: 1 to 32 characters; reference: at most 128"));
        }
        let Grant { exp, coins, score } = grant;
        if exp < 0 || coins < 0 || score < 0 {
            return Err(bad("exp, coins, score: rewards are not negative"));
        }
        let data = self.data.get();
        self.ensure(user_id).await?;
        let mut tx = self.db.begin().await?;
        if !reference.is_empty() && self.granted(&mut tx, user_id, reason, reference).await? {
            // Granted before (a retry after a lost answer): the same result, nothing twice.
            let p = self.load(&mut tx, user_id).await?;
            tx.rollback().await?;
            return Ok(p);
        }
        let p = self
            .apply(&mut tx, &data, user_id, &Change { coins, exp, score, ..Change::default() }, reason, reference)
            .await?;
        tx.commit().await?;
        self.ranked(user_id).await;
        Ok(p)
    }

    async fn save_hp(&self, entries: &[(i64, i64)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // One transaction for the batch the world hands over (it keeps them small).
        let mut tx = self.db.begin().await?;
        for &(user_id, hp) in entries {
            // Clamped in SQL against the row's own max_hp: a level-up may have raised it.
            let hp = Ord::max(hp, 0);
            let mut q = Query::update();
            q.table("game_player")
                .value("hp", Expr::case(Expr::col("max_hp").lt(hp), Expr::col("max_hp")).finally(Expr::val(hp)))
                .value("updated_at", now_ms())
                .and_where(Expr::col("user_id").eq(user_id));
            tx.execute(&q).await?;
        }
        tx.commit().await?;
        Ok(())
    }
    async fn send_mail(&self, mail: NewMail) -> Result<i64> {
        let (id, new) = self.store_mail(&mail).await?;
        if new {
            self.announce_mail(&mail, id).await;
        }
        Ok(id)
    }

    async fn inbox(&self, user_id: i64, before: i64, limit: i64) -> Result<InboxPage> {
        self.inbox_page(user_id, before, limit).await
    }

    async fn read_mail(&self, user_id: i64, ids: &[i64]) -> Result<()> {
        self.mark_read(user_id, ids).await
    }

    async fn claim_mail(&self, user_id: i64, id: i64) -> Result<Player> {
        let p = self.claim(user_id, id).await?;
        self.ranked(user_id).await;
        Ok(p)
    }

    async fn delete_mail(&self, user_id: i64, ids: &[i64]) -> Result<()> {
        self.delete(user_id, ids).await
    }

    async fn guild_chat(&self, m: crate::guild::GuildChat) -> Result<Vec<i64>> {
        self.guild_chat_post(&m).await
    }

    async fn guild_chat_history(&self, user_id: i64, before: i64, limit: u64) -> Result<Vec<crate::guild::GuildChat>> {
        GameLogic::guild_chat_history(self, user_id, before, limit).await
    }
}
