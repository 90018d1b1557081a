//! `uc_identity`: the ways into an account besides its username and password (devices,
//! phone, email, WeChat), each owned by one account, and the account's own password as one
//! more way in.
//!
//! Every change to an account's ways in runs in one transaction that first writes the
//! account's row: concurrent binds and unbinds of one account queue behind each other (a row
//! lock on MariaDB and PostgreSQL, the write lock on SQLite), so two unbinds at once cannot
//! both see the other's identity and leave the account with none. Concurrent binds of one
//! identity to two accounts are decided by the unique index on `(kind, ident)`: one commits,
//! the other gets [`StoreError::Conflict`].

use rsgame_store::{Db, StoreError, Tx};
use sea_query::{Expr, ExprTrait as _, Query};

use crate::model::{self, LoginRecord, User, now_ms};

/// A way into an account other than its username and password (`uc_identity.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A device id, stored as its SHA-256 (it is a bearer secret).
    Device,
    /// A phone number proven by an SMS code, as written (digits, optionally after `+`).
    Phone,
    /// An email address proven by a code, in lower case.
    Email,
    /// A WeChat openid (one per mini-game).
    Wechat,
    /// A WeChat unionid (one per WeChat user across a studio's apps), when WeChat gives one.
    WechatUnion,
}

impl IdentityKind {
    /// Every kind.
    pub const ALL: [IdentityKind; 5] = [
        IdentityKind::Device,
        IdentityKind::Phone,
        IdentityKind::Email,
        IdentityKind::Wechat,
        IdentityKind::WechatUnion,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Device => "device",
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
            IdentityKind::Wechat => "wechat",
            IdentityKind::WechatUnion => "wechat_union",
        }
    }

    /// The kind a stored name names.
    pub fn parse(s: &str) -> Option<IdentityKind> {
        IdentityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `mem_user` column go-game kept this identity in, if any: filled on bind and
    /// cleared on unbind, so go-game's `getUserAuthByAuthKey` finds it.
    fn user_column(self) -> Option<&'static str> {
        match self {
            IdentityKind::Phone => Some("mobile"),
            IdentityKind::Email => Some("email"),
            _ => None,
        }
    }

    /// Whether an account holds at most one of this kind (a new one replaces the old). An
    /// account may have several devices, and an openid per mini-game of the studio.
    fn one_per_account(self) -> bool {
        matches!(self, IdentityKind::Phone | IdentityKind::Email | IdentityKind::WechatUnion)
    }
}

/// One identity of an account, as stored.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its kind.
    pub kind: IdentityKind,
    /// Its key (a device's SHA-256, a phone number, an email, an openid).
    pub ident: String,
    /// When it was bound, unix ms.
    pub created_at: i64,
}

/// The account an identity opens, read in one query (the login path's only read).
pub async fn account_of(db: &Db, kind: IdentityKind, ident: &str) -> Result<Option<User>, StoreError> {
    let mut q = Query::select();
    for c in model::USER_COLS {
        q.column(("mem_user", c));
    }
    q.from("uc_identity")
        .inner_join("mem_user", Expr::col(("mem_user", "id")).equals(("uc_identity", "user_id")))
        .and_where(Expr::col(("uc_identity", "kind")).eq(kind.as_str()))
        .and_where(Expr::col(("uc_identity", "ident")).eq(ident))
        .and_where(Expr::col(("mem_user", "deleted_at")).is_null());
    db.fetch_optional(&q).await?.as_ref().map(model::user).transpose()
}

/// The account an identity belongs to (a deleted account's identities lead nowhere).
pub async fn user_of(db: &Db, kind: IdentityKind, ident: &str) -> Result<Option<i64>, StoreError> {
    Ok(account_of(db, kind, ident).await?.map(|u| u.id))
}

/// An account and its identities (oldest first) in one query: `detail` is the most frequent
/// authenticated call, and a second round trip for the identities cost it a quarter of its
/// throughput on SQLite.
pub async fn account_with_identities(db: &Db, user_id: i64) -> Result<Option<(User, Vec<Identity>)>, StoreError> {
    let mut q = Query::select();
    for c in model::USER_COLS {
        q.column(("mem_user", c));
    }
    q.columns([("uc_identity", "kind"), ("uc_identity", "ident"), ("uc_identity", "created_at")])
        .from("mem_user")
        .left_join("uc_identity", Expr::col(("uc_identity", "user_id")).equals(("mem_user", "id")))
        .and_where(Expr::col(("mem_user", "id")).eq(user_id))
        .and_where(Expr::col(("mem_user", "deleted_at")).is_null())
        .order_by(("uc_identity", "id"), sea_query::Order::Asc);
    let rows = db.fetch_all(&q).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let user = model::user(first)?;
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        // No identity: the left join's one row has NULLs there.
        if let Some(kind) = r.opt_string("kind")?.as_deref().and_then(IdentityKind::parse) {
            ids.push(Identity { kind, ident: r.string("ident")?, created_at: r.i64("created_at")? });
        }
    }
    Ok(Some((user, ids)))
}

/// Creates an account that only `identities` open (its password matches nothing) and records
/// its first login, in one transaction: when one of them is already taken (another request
/// made it a moment ago) the result is [`StoreError::Conflict`] and nothing is left behind.
pub async fn insert_user_with(
    db: &Db,
    username: &str,
    nickname: &str,
    identities: &[(IdentityKind, &str)],
    login: &LoginRecord<'_>,
) -> Result<i64, StoreError> {
    let ip = login.ip;
    let now = now_ms();
    let mut user = Query::insert();
    user.into_table("mem_user")
        .columns([
            "username",
            "password",
            "nickname",
            "login_ip",
            "login_count",
            "login_at",
            "created_at",
            "updated_at",
        ])
        // "!" is no PHC string: no password ever verifies against it.
        .values([
            Expr::val(username),
            Expr::val("!"),
            Expr::val(nickname),
            Expr::val(ip),
            Expr::val(1),
            Expr::val(now),
            Expr::val(now),
            Expr::val(now),
        ])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    let mut tx = db.begin().await?;
    let id = tx.insert_id(&user).await?;
    for (kind, ident) in identities {
        // A conflict returns before the commit: dropping the transaction rolls it all back.
        insert(&mut tx, id, *kind, ident, now).await?;
    }
    model::write_login(&mut tx, id, login).await?;
    tx.commit().await?;
    Ok(id)
}

async fn insert(tx: &mut Tx, user_id: i64, kind: IdentityKind, ident: &str, now: i64) -> Result<(), StoreError> {
    let mut q = Query::insert();
    q.into_table("uc_identity")
        .columns(["kind", "ident", "user_id", "created_at"])
        .values([Expr::val(kind.as_str()), Expr::val(ident), Expr::val(user_id), Expr::val(now)])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    tx.execute(&q).await?;
    if let Some(col) = kind.user_column() {
        let q = Query::update().table("mem_user").value(col, ident).and_where(Expr::col("id").eq(user_id)).to_owned();
        tx.execute(&q).await?;
    }
    Ok(())
}

/// Starts a change to an account's ways in: writes its row first so that concurrent changes
/// of the same account wait for this one. `None` when the account is gone or closed.
async fn lock_account(db: &Db, user_id: i64) -> Result<Option<Tx>, StoreError> {
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table("mem_user")
        .value("updated_at", now_ms())
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("deleted_at").is_null())
        .and_where(Expr::col("closed_at").is_null())
        .to_owned();
    Ok((tx.execute(&q).await? == 1).then_some(tx))
}

/// How many ways into the account there are, inside its locked transaction.
async fn ways_in(tx: &mut Tx, user_id: i64) -> Result<i64, StoreError> {
    let q = Query::select().column("password").from("mem_user").and_where(Expr::col("id").eq(user_id)).to_owned();
    let has_password =
        tx.fetch_optional(&q).await?.map(|r| r.string("password")).transpose()?.is_some_and(|p| p != "!");
    let q = Query::select()
        .expr_as(Expr::col("id").count(), "n")
        .from("uc_identity")
        .and_where(Expr::col("user_id").eq(user_id))
        .to_owned();
    let n = tx.fetch_optional(&q).await?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
    Ok(n + i64::from(has_password))
}

/// What a change to an account's ways in came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Applied.
    Done,
    /// The account is gone or closed.
    NoAccount,
    /// It would leave the account no way in; nothing changed.
    LastWayIn,
    /// The account has nothing of that kind.
    NothingThere,
}

/// Binds `identities` (a WeChat openid with its unionid, or one other) to the account; one
/// already on another account is [`StoreError::Conflict`] and nothing changes. A kind the
/// account holds one of (phone, email, WeChat) replaces the one it had.
pub async fn bind(db: &Db, user_id: i64, identities: &[(IdentityKind, &str)]) -> Result<Change, StoreError> {
    // Two accounts binding one email at once may deadlock on MariaDB (each deleted its old
    // one, then both insert): the loser is rolled back and runs again, to find the winner's
    // row and report the conflict.
    let mut tries = 0;
    loop {
        match bind_once(db, user_id, identities).await {
            Err(e) if e.is_retryable() && tries < 3 => tries += 1,
            done => return done,
        }
    }
}

async fn bind_once(db: &Db, user_id: i64, identities: &[(IdentityKind, &str)]) -> Result<Change, StoreError> {
    let Some(mut tx) = lock_account(db, user_id).await? else { return Ok(Change::NoAccount) };
    let now = now_ms();
    for (kind, ident) in identities {
        if kind.one_per_account() {
            let q = Query::delete()
                .from_table("uc_identity")
                .and_where(Expr::col("user_id").eq(user_id))
                .and_where(Expr::col("kind").eq(kind.as_str()))
                .to_owned();
            tx.execute(&q).await?;
        }
        insert(&mut tx, user_id, *kind, ident, now).await?;
    }
    tx.commit().await?;
    Ok(Change::Done)
}

/// Removes the account's identities of `kinds` (with `ident`, only that one), unless that
/// would leave it no way in.
pub async fn unbind(db: &Db, user_id: i64, kinds: &[IdentityKind], ident: Option<&str>) -> Result<Change, StoreError> {
    let Some(mut tx) = lock_account(db, user_id).await? else { return Ok(Change::NoAccount) };
    let before = ways_in(&mut tx, user_id).await?;
    let mut removed = 0;
    for kind in kinds {
        let mut q = Query::delete();
        q.from_table("uc_identity")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("kind").eq(kind.as_str()));
        if let Some(ident) = ident {
            q.and_where(Expr::col("ident").eq(ident));
        }
        let n = tx.execute(&q).await?;
        if n > 0
            && let Some(col) = kind.user_column()
        {
            let q = Query::update().table("mem_user").value(col, "").and_where(Expr::col("id").eq(user_id)).to_owned();
            tx.execute(&q).await?;
        }
        removed += n as i64;
    }
    if removed == 0 {
        return Ok(Change::NothingThere);
    }
    if before - removed < 1 {
        // Dropped without a commit: rolled back.
        return Ok(Change::LastWayIn);
    }
    tx.commit().await?;
    Ok(Change::Done)
}

/// Gives an account without a password (a guest) a username and password; a taken username
/// is [`StoreError::Conflict`]. [`Change::NothingThere`] when it already has a password.
pub async fn set_login(db: &Db, user_id: i64, username: &str, hash: &str) -> Result<Change, StoreError> {
    let Some(mut tx) = lock_account(db, user_id).await? else { return Ok(Change::NoAccount) };
    let q = Query::update()
        .table("mem_user")
        .value("username", username)
        .value("password", hash)
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("password").eq("!"))
        .to_owned();
    if tx.execute(&q).await? == 0 {
        return Ok(Change::NothingThere);
    }
    tx.commit().await?;
    Ok(Change::Done)
}

/// Removes an account's password (its username becomes `guest_name`) when another way in
/// remains.
pub async fn drop_password(db: &Db, user_id: i64, guest_name: &str) -> Result<Change, StoreError> {
    let Some(mut tx) = lock_account(db, user_id).await? else { return Ok(Change::NoAccount) };
    let before = ways_in(&mut tx, user_id).await?;
    let q = Query::update()
        .table("mem_user")
        .value("username", guest_name)
        .value("password", "!")
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("password").ne("!"))
        .to_owned();
    if tx.execute(&q).await? == 0 {
        return Ok(Change::NothingThere);
    }
    if before < 2 {
        return Ok(Change::LastWayIn);
    }
    tx.commit().await?;
    Ok(Change::Done)
}
