//! What the world keeps in the database: where each player was, friendships and
//! blacklists, and private chat (history, and delivery at the receiver's next login).

use rsgame_kit::time::unix_ms;
use rsgame_store::{Db, StoreError};
use sea_query::{Expr, ExprTrait as _, OnConflict, Order, Query};

/// A player's saved place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// The scene.
    pub scene_id: i32,
    /// Position.
    pub x: f32,
    /// Position.
    pub z: f32,
}

/// A relation kind (go-game's AddFriend type, `FriendType` in proto/game.proto).
pub const FRIEND: i32 = rsgame_proto::pb::FriendType::Friend as i32;
/// Blacklisted: the other's chat never arrives.
pub const BLACKLIST: i32 = rsgame_proto::pb::FriendType::Blacklist as i32;
/// A temporary friend.
pub const TEMPORARY: i32 = rsgame_proto::pb::FriendType::Temporary as i32;

/// A stored private message waiting for its receiver's next login.
pub const PENDING: i32 = 0;
/// Delivered (live, or at a login).
pub const DELIVERED: i32 = 1;
/// From a player the receiver blacklisted: kept for the sender's history only.
pub const WITHHELD: i32 = 2;

/// A stored private message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChat {
    /// Row id.
    pub id: i64,
    /// Sender.
    pub from: i64,
    /// Receiver.
    pub to: i64,
    /// go-game's msgType.
    pub msg_type: i32,
    /// Text.
    pub msg: String,
    /// Attachment link.
    pub url: String,
    /// Unix ms.
    pub sent_at: i64,
}

/// The world's tables.
#[derive(Clone)]
pub struct WorldStore {
    db: Db,
}

impl WorldStore {
    /// Over `db` (migrated).
    pub fn new(db: Db) -> WorldStore {
        WorldStore { db }
    }

    /// Where `user_id` was last saved.
    pub async fn place(&self, user_id: i64) -> Result<Option<Place>, StoreError> {
        let q = Query::select()
            .columns(["scene_id", "x", "z"])
            .from("world_state")
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        let Some(r) = self.db.fetch_optional(&q).await? else { return Ok(None) };
        Ok(Some(Place { scene_id: r.i64("scene_id")? as i32, x: r.f64("x")? as f32, z: r.f64("z")? as f32 }))
    }

    /// Saves places, all or none (one transaction per call).
    pub async fn save_places(&self, places: &[(i64, Place)]) -> Result<(), StoreError> {
        if places.is_empty() {
            return Ok(());
        }
        let now = unix_ms();
        let mut tx = self.db.begin().await?;
        for (user_id, p) in places {
            let mut q = Query::insert();
            q.into_table("world_state")
                .columns(["user_id", "scene_id", "x", "z", "updated_at"])
                .values([
                    Expr::val(*user_id),
                    Expr::val(i64::from(p.scene_id)),
                    Expr::val(f64::from(p.x)),
                    Expr::val(f64::from(p.z)),
                    Expr::val(now),
                ])
                .map_err(|e| StoreError::Query(e.to_string()))?
                .on_conflict(
                    OnConflict::column("user_id").update_columns(["scene_id", "x", "z", "updated_at"]).to_owned(),
                );
            tx.execute(&q).await?;
        }
        tx.commit().await
    }

    /// Sets how `user_id` regards `other`: a kind above, or 0 to forget it.
    pub async fn set_relation(&self, user_id: i64, other: i64, kind: i32) -> Result<(), StoreError> {
        let del = Query::delete()
            .from_table("world_friend")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("friend_id").eq(other))
            .to_owned();
        if kind == 0 {
            self.db.execute(&del).await?;
            return Ok(());
        }
        let mut q = Query::insert();
        q.into_table("world_friend")
            .columns(["user_id", "friend_id", "kind", "created_at"])
            .values([Expr::val(user_id), Expr::val(other), Expr::val(kind), Expr::val(unix_ms())])
            .map_err(|e| StoreError::Query(e.to_string()))?
            .on_conflict(OnConflict::columns(["user_id", "friend_id"]).update_columns(["kind"]).to_owned());
        self.db.execute(&q).await?;
        Ok(())
    }

    /// `user_id`'s relations of `kind` (0: all), (other, kind), at most `limit`.
    pub async fn relations(&self, user_id: i64, kind: i32, limit: u64) -> Result<Vec<(i64, i32)>, StoreError> {
        let mut q = Query::select();
        q.columns(["friend_id", "kind"])
            .from("world_friend")
            .and_where(Expr::col("user_id").eq(user_id))
            .order_by("id", Order::Asc)
            .limit(limit);
        if kind != 0 {
            q.and_where(Expr::col("kind").eq(kind));
        }
        self.db.fetch_all(&q).await?.iter().map(|r| Ok((r.i64("friend_id")?, r.i32("kind")?))).collect()
    }

    /// Who has `user_id` as a friend (to tell them it came online).
    pub async fn followers(&self, user_id: i64, limit: u64) -> Result<Vec<i64>, StoreError> {
        let q = Query::select()
            .column("user_id")
            .from("world_friend")
            .and_where(Expr::col("friend_id").eq(user_id))
            .and_where(Expr::col("kind").is_in([FRIEND, TEMPORARY]))
            .limit(limit)
            .to_owned();
        self.db.fetch_all(&q).await?.iter().map(|r| r.i64("user_id")).collect()
    }

    /// Whether `user_id` blacklisted `other`.
    pub async fn blocks(&self, user_id: i64, other: i64) -> Result<bool, StoreError> {
        let q = Query::select()
            .column("kind")
            .from("world_friend")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("friend_id").eq(other))
            .and_where(Expr::col("kind").eq(BLACKLIST))
            .to_owned();
        Ok(self.db.fetch_optional(&q).await?.is_some())
    }

    /// Stores a private message in a state: [`PENDING`], [`DELIVERED`] or [`WITHHELD`].
    pub async fn store_chat(&self, m: &StoredChat, state: i32) -> Result<i64, StoreError> {
        let mut q = Query::insert();
        q.into_table("world_chat")
            .columns(["from_id", "to_id", "msg_type", "msg", "url", "sent_at", "delivered"])
            .values([
                Expr::val(m.from),
                Expr::val(m.to),
                Expr::val(m.msg_type),
                Expr::val(m.msg.as_str()),
                Expr::val(m.url.as_str()),
                Expr::val(m.sent_at),
                Expr::val(state),
            ])
            .map_err(|e| StoreError::Query(e.to_string()))?;
        self.db.insert_id(&q).await
    }

    /// Private messages to `user_id` not delivered yet, oldest first, at most `limit`.
    pub async fn undelivered(&self, user_id: i64, limit: u64) -> Result<Vec<StoredChat>, StoreError> {
        let q = chat_select()
            .and_where(Expr::col("to_id").eq(user_id))
            .and_where(Expr::col("delivered").eq(PENDING))
            .order_by("id", Order::Asc)
            .limit(limit)
            .to_owned();
        self.db.fetch_all(&q).await?.iter().map(chat_row).collect()
    }

    /// Marks messages delivered (after they were queued to the receiver).
    pub async fn mark_delivered(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let q = Query::update()
            .table("world_chat")
            .value("delivered", DELIVERED)
            .and_where(Expr::col("id").is_in(ids.iter().copied()))
            .to_owned();
        self.db.execute(&q).await?;
        Ok(())
    }

    /// The private conversation of `a` and `b` as `a` sees it (without what `a` withheld by
    /// blacklisting `b`) before `before` (unix ms), the newest `limit`, oldest first.
    pub async fn history(&self, a: i64, b: i64, before: i64, limit: u64) -> Result<Vec<StoredChat>, StoreError> {
        let pair = Expr::col("from_id")
            .eq(a)
            .and(Expr::col("to_id").eq(b))
            .or(Expr::col("from_id").eq(b).and(Expr::col("to_id").eq(a)));
        let q = chat_select()
            .and_where(pair)
            .and_where(Expr::col("to_id").ne(a).or(Expr::col("delivered").ne(WITHHELD)))
            .and_where(Expr::col("sent_at").lt(before))
            .order_by("sent_at", Order::Desc)
            .order_by("id", Order::Desc)
            .limit(limit)
            .to_owned();
        let mut v: Vec<StoredChat> = self.db.fetch_all(&q).await?.iter().map(chat_row).collect::<Result<_, _>>()?;
        v.reverse();
        Ok(v)
    }
}

fn chat_select() -> sea_query::SelectStatement {
    Query::select()
        .columns(["id", "from_id", "to_id", "msg_type", "msg", "url", "sent_at"])
        .from("world_chat")
        .to_owned()
}

fn chat_row(r: &rsgame_store::Row) -> Result<StoredChat, StoreError> {
    Ok(StoredChat {
        id: r.i64("id")?,
        from: r.i64("from_id")?,
        to: r.i64("to_id")?,
        msg_type: r.i32("msg_type")?,
        msg: r.string("msg")?,
        url: r.string("url")?,
        sent_at: r.i64("sent_at")?,
    })
}
