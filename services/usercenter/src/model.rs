//! usercenter's tables: `mem_user`, `mem_logs` (go-game's) and `uc_refresh_token`
//! (`uc_identity` is [`crate::identity`]'s).

use rsgame_store::{Db, Row, StoreError, Tx};
use sea_query::{Expr, ExprTrait as _, Query};

/// `mem_logs.type` values (go-game's).
#[derive(Debug, Clone, Copy)]
pub enum LogKind {
    /// A login (successful, or failed: see the remark).
    Login = 1,
    /// A logout.
    Logout = 2,
    /// A registration.
    NewUser = 3,
}

/// An account as stored. The password hash never leaves this crate's logic.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string.
    pub password: String,
    /// Display name.
    pub nickname: String,
    /// Real name.
    pub realname: String,
    /// Email.
    pub email: String,
    /// Mobile number.
    pub mobile: String,
    /// 0 unknown, 1 male, 2 female.
    pub sex: i32,
    /// Avatar URL.
    pub avatar: String,
    /// go-game's status: 1 approved; 3 login banned and 5 closed cannot log in.
    pub status: i32,
    /// With status 3: when the ban ends, unix ms (0: never).
    pub ban_until: i64,
    /// With status 3: why, as the operator wrote it (shown to the player).
    pub ban_reason: String,
    /// When its owner closed it, unix ms.
    pub closed_at: Option<i64>,
}

/// go-game's `mem_user.status` values that rsgame acts on.
pub mod status {
    /// Approved: may log in.
    pub const ACTIVE: i32 = 1;
    /// Login banned (until `ban_until`, when set).
    pub const BANNED: i32 = 3;
    /// Closed by its owner.
    pub const CLOSED: i32 = 5;
}

impl User {
    /// Why it may not log in at `now_ms`, if it may not: a ban still running, or closed.
    pub fn refusal(&self, now_ms: i64) -> Option<rsgame_kit::Error> {
        use rsgame_kit::{Code, Error};
        if self.status == status::CLOSED || self.closed_at.is_some() {
            return Some(Error::new(Code::AccountClosed));
        }
        if self.banned_at(now_ms) {
            let until = if self.ban_until > 0 { format!(" until {} (unix ms)", self.ban_until) } else { String::new() };
            let why = if self.ban_reason.is_empty() { String::new() } else { format!(": {}", self.ban_reason) };
            return Some(Error::msg(Code::AccountBanned, format!("this account is banned{until}{why}")));
        }
        None
    }

    /// Whether a ban holds at `now_ms` (one with an end in the past has lapsed).
    pub fn banned_at(&self, now_ms: i64) -> bool {
        self.status == status::BANNED && (self.ban_until == 0 || self.ban_until > now_ms)
    }
}

pub(crate) const USER_COLS: [&str; 13] = [
    "id",
    "username",
    "password",
    "nickname",
    "realname",
    "email",
    "mobile",
    "sex",
    "avatar",
    "status",
    "ban_until",
    "ban_reason",
    "closed_at",
];

pub(crate) fn user(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: r.i64("id")?,
        username: r.string("username")?,
        password: r.string("password")?,
        nickname: r.string("nickname")?,
        realname: r.string("realname")?,
        email: r.string("email")?,
        mobile: r.string("mobile")?,
        sex: r.i32("sex")?,
        avatar: r.string("avatar")?,
        status: r.i32("status")?,
        ban_until: r.i64("ban_until")?,
        ban_reason: r.string("ban_reason")?,
        closed_at: r.opt_i64("closed_at")?,
    })
}

pub use rsgame_kit::time::unix_ms as now_ms;

/// The account with this username (not deleted).
pub async fn user_by_name(db: &Db, username: &str) -> Result<Option<User>, StoreError> {
    let q = Query::select()
        .columns(USER_COLS)
        .from("mem_user")
        .and_where(Expr::col("username").eq(username))
        .and_where(Expr::col("deleted_at").is_null())
        .to_owned();
    db.fetch_optional(&q).await?.as_ref().map(user).transpose()
}

/// The account with this id (not deleted).
pub async fn user_by_id(db: &Db, id: i64) -> Result<Option<User>, StoreError> {
    let q = Query::select()
        .columns(USER_COLS)
        .from("mem_user")
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("deleted_at").is_null())
        .to_owned();
    db.fetch_optional(&q).await?.as_ref().map(user).transpose()
}

/// The live (not closed, not erased) accounts among `ids`: id, nickname, avatar.
pub async fn public_profiles(db: &Db, ids: &[i64]) -> Result<Vec<(i64, String, String)>, StoreError> {
    let q = Query::select()
        .columns(["id", "nickname", "avatar"])
        .from("mem_user")
        .and_where(Expr::col("id").is_in(ids.iter().copied()))
        .and_where(Expr::col("deleted_at").is_null())
        .and_where(Expr::col("closed_at").is_null())
        .to_owned();
    db.fetch_all(&q).await?.iter().map(|r| Ok((r.i64("id")?, r.string("nickname")?, r.string("avatar")?))).collect()
}

/// The account with this mobile number or email (go-game's auth keys).
pub async fn user_by_field(db: &Db, field: &str, value: &str) -> Result<Option<User>, StoreError> {
    let q = Query::select()
        .columns(USER_COLS)
        .from("mem_user")
        .and_where(Expr::col(field.to_owned()).eq(value))
        .and_where(Expr::col("deleted_at").is_null())
        .limit(1)
        .to_owned();
    db.fetch_optional(&q).await?.as_ref().map(user).transpose()
}

/// Inserts an account; a taken username is [`StoreError::Conflict`].
pub async fn insert_user(db: &Db, username: &str, hash: &str, nickname: &str, ip: &str) -> Result<i64, StoreError> {
    let now = now_ms();
    let mut q = Query::insert();
    q.into_table("mem_user")
        .columns(["username", "password", "nickname", "login_ip", "created_at", "updated_at"])
        .values([
            Expr::val(username),
            Expr::val(hash),
            Expr::val(nickname),
            Expr::val(ip),
            Expr::val(now),
            Expr::val(now),
        ])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    db.insert_id(&q).await
}

/// What a login writes beside the tokens it hands out: its `mem_logs` row and its refresh
/// token's hash.
#[derive(Debug, Clone, Copy)]
pub struct LoginRecord<'a> {
    /// The client's address.
    pub ip: &'a str,
    /// A login, or the sign-up that logged in.
    pub kind: LogKind,
    /// How (for the log): "device login", "code sign-up", …
    pub remark: &'a str,
    /// The refresh token's rotation family.
    pub family: &'a str,
    /// The refresh token's SHA-256.
    pub refresh_hash: &'a str,
    /// When the refresh token expires, unix ms.
    pub expires_at: i64,
}

/// Writes a login's log row and refresh token inside `tx` (with the login's account row).
pub(crate) async fn write_login(tx: &mut Tx, user_id: i64, rec: &LoginRecord<'_>) -> Result<(), StoreError> {
    let now = now_ms();
    let mut q = Query::insert();
    q.into_table("mem_logs")
        .columns(["user_id", "type", "remark", "ip", "created_at"])
        .values([
            Expr::val(user_id),
            Expr::val(rec.kind as i32),
            Expr::val(rec.remark),
            Expr::val(rec.ip),
            Expr::val(now),
        ])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    tx.execute(&q).await?;
    let mut q = Query::insert();
    q.into_table("uc_refresh_token")
        .columns(["user_id", "family", "token_hash", "expires_at", "created_at"])
        .values([
            Expr::val(user_id),
            Expr::val(rec.family),
            Expr::val(rec.refresh_hash),
            Expr::val(rec.expires_at),
            Expr::val(now),
        ])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    tx.execute(&q).await.map(drop)
}

/// Records a login in one transaction: the account's login count, address and time, its log
/// row and its refresh token. One commit instead of three: on SQLite each commit is a wait
/// for the single writer and a sync to disk, and three of them capped device logins below
/// 800/s.
pub async fn record_login(db: &Db, user_id: i64, rec: &LoginRecord<'_>) -> Result<(), StoreError> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table("mem_user")
        .value("login_ip", rec.ip)
        .value("login_count", Expr::col("login_count").add(1))
        .value("login_at", now)
        .value("updated_at", now)
        .and_where(Expr::col("id").eq(user_id))
        .to_owned();
    tx.execute(&q).await?;
    write_login(&mut tx, user_id, rec).await?;
    tx.commit().await
}

/// Appends to `mem_logs`.
pub async fn log(db: &Db, user_id: i64, kind: LogKind, remark: &str, ip: &str) -> Result<(), StoreError> {
    let mut q = Query::insert();
    q.into_table("mem_logs")
        .columns(["user_id", "type", "remark", "ip", "created_at"])
        .values([Expr::val(user_id), Expr::val(kind as i32), Expr::val(remark), Expr::val(ip), Expr::val(now_ms())])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    db.insert_id(&q).await.map(|_| ())
}

/// Stores a refresh token's hash.
pub async fn insert_refresh(
    db: &Db,
    user_id: i64,
    family: &str,
    hash: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let mut q = Query::insert();
    q.into_table("uc_refresh_token")
        .columns(["user_id", "family", "token_hash", "expires_at", "created_at"])
        .values([Expr::val(user_id), Expr::val(family), Expr::val(hash), Expr::val(expires_at), Expr::val(now_ms())])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    db.insert_id(&q).await.map(|_| ())
}

/// A refresh token's row.
#[derive(Debug)]
pub struct Refresh {
    /// Owner.
    pub user_id: i64,
    /// Rotation family.
    pub family: String,
    /// Whether it was already used (rotated).
    pub used: bool,
}

/// Marks a live refresh token used, atomically: `Some` only for the one caller that got it.
pub async fn use_refresh(db: &Db, hash: &str) -> Result<Option<Refresh>, StoreError> {
    let now = now_ms();
    let q = Query::update()
        .table("uc_refresh_token")
        .value("used_at", now)
        .and_where(Expr::col("token_hash").eq(hash))
        .and_where(Expr::col("used_at").is_null())
        .and_where(Expr::col("revoked_at").is_null())
        .and_where(Expr::col("expires_at").gt(now))
        .to_owned();
    if db.execute(&q).await? == 0 {
        return Ok(None);
    }
    refresh_by_hash(db, hash).await
}

/// A refresh token's row, whatever its state.
pub async fn refresh_by_hash(db: &Db, hash: &str) -> Result<Option<Refresh>, StoreError> {
    let q = Query::select()
        .columns(["user_id", "family", "used_at"])
        .from("uc_refresh_token")
        .and_where(Expr::col("token_hash").eq(hash))
        .to_owned();
    db.fetch_optional(&q)
        .await?
        .map(|r| {
            Ok(Refresh {
                user_id: r.i64("user_id")?,
                family: r.string("family")?,
                used: r.opt_i64("used_at")?.is_some(),
            })
        })
        .transpose()
}

/// Revokes every live token of a family (a replay, or a logout).
pub async fn revoke_family(db: &Db, family: &str) -> Result<u64, StoreError> {
    let q = Query::update()
        .table("uc_refresh_token")
        .value("revoked_at", now_ms())
        .and_where(Expr::col("family").eq(family))
        .and_where(Expr::col("revoked_at").is_null())
        .to_owned();
    db.execute(&q).await
}

/// Whether any token of a family was revoked.
pub async fn family_revoked(db: &Db, family: &str) -> Result<bool, StoreError> {
    let q = Query::select()
        .column("id")
        .from("uc_refresh_token")
        .and_where(Expr::col("family").eq(family))
        .and_where(Expr::col("revoked_at").is_not_null())
        .limit(1)
        .to_owned();
    Ok(db.fetch_optional(&q).await?.is_some())
}

/// Bans an account until `until_ms` (0: no end) for `reason`, or lifts its ban.
pub async fn set_ban(db: &Db, user_id: i64, ban: Option<(i64, &str)>) -> Result<(), StoreError> {
    let (st, until, reason) = match ban {
        Some((until, reason)) => (status::BANNED, until, reason),
        None => (status::ACTIVE, 0, ""),
    };
    let q = Query::update()
        .table("mem_user")
        .value("status", st)
        .value("ban_until", until)
        .value("ban_reason", reason)
        .value("updated_at", now_ms())
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("closed_at").is_null())
        .to_owned();
    db.execute(&q).await.map(drop)
}

/// Closes an account (its owner asked): nobody logs into it from now on. False when it was
/// already closed or is gone.
pub async fn close(db: &Db, user_id: i64) -> Result<bool, StoreError> {
    let now = now_ms();
    let q = Query::update()
        .table("mem_user")
        .value("status", status::CLOSED)
        .value("closed_at", now)
        .value("updated_at", now)
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("closed_at").is_null())
        .and_where(Expr::col("deleted_at").is_null())
        .to_owned();
    Ok(db.execute(&q).await? == 1)
}

/// Accounts closed before `before_ms` whose personal data is still there, at most `limit`.
pub async fn closed_before(db: &Db, before_ms: i64, limit: u64) -> Result<Vec<i64>, StoreError> {
    let q = Query::select()
        .column("id")
        .from("mem_user")
        .and_where(Expr::col("closed_at").lt(before_ms))
        .and_where(Expr::col("deleted_at").is_null())
        .limit(limit)
        .to_owned();
    db.fetch_all(&q).await?.iter().map(|r| r.i64("id")).collect()
}

/// Erases a closed account's personal data in one transaction: its profile, ways in, tokens
/// and the addresses in its logs. The row stays, as `deleted-<id>`, so that the ledger, the
/// game's records and the logs keep a bare id that names nobody.
pub async fn erase(db: &Db, user_id: i64) -> Result<(), StoreError> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table("mem_user")
        .value("username", format!("deleted-{user_id}"))
        .value("password", "!")
        .value("nickname", "")
        .value("realname", "")
        .value("email", "")
        .value("mobile", "")
        .value("avatar", "")
        .value("sex", 0)
        .value("login_ip", "")
        .value("ban_reason", "")
        .value("deleted_at", now)
        .value("updated_at", now)
        .and_where(Expr::col("id").eq(user_id))
        .and_where(Expr::col("closed_at").is_not_null())
        .and_where(Expr::col("deleted_at").is_null())
        .to_owned();
    if tx.execute(&q).await? == 0 {
        return Ok(());
    }
    for table in ["uc_identity", "uc_refresh_token"] {
        tx.execute(&Query::delete().from_table(table).and_where(Expr::col("user_id").eq(user_id)).to_owned()).await?;
    }
    let q = Query::update().table("mem_logs").value("ip", "").and_where(Expr::col("user_id").eq(user_id)).to_owned();
    tx.execute(&q).await?;
    tx.commit().await
}

/// Sets an account's profile fields.
pub async fn set_profile(db: &Db, user_id: i64, nickname: &str, avatar: &str, sex: i32) -> Result<(), StoreError> {
    let q = Query::update()
        .table("mem_user")
        .value("nickname", nickname)
        .value("avatar", avatar)
        .value("sex", sex)
        .value("updated_at", now_ms())
        .and_where(Expr::col("id").eq(user_id))
        .to_owned();
    db.execute(&q).await.map(drop)
}

/// Whether an account other than `user_id` goes by `nickname`.
pub async fn nickname_taken(db: &Db, nickname: &str, user_id: i64) -> Result<bool, StoreError> {
    let q = Query::select()
        .column("id")
        .from("mem_user")
        .and_where(Expr::col("nickname").eq(nickname))
        .and_where(Expr::col("id").ne(user_id))
        .and_where(Expr::col("deleted_at").is_null())
        .limit(1)
        .to_owned();
    Ok(db.fetch_optional(&q).await?.is_some())
}

/// Replaces an account's password hash.
pub async fn set_password(db: &Db, user_id: i64, hash: &str) -> Result<(), StoreError> {
    let q = Query::update()
        .table("mem_user")
        .value("password", hash)
        .value("updated_at", now_ms())
        .and_where(Expr::col("id").eq(user_id))
        .to_owned();
    db.execute(&q).await.map(drop)
}

/// Revokes every refresh token of a user (logout without a refresh token).
pub async fn revoke_user(db: &Db, user_id: i64) -> Result<u64, StoreError> {
    let q = Query::update()
        .table("uc_refresh_token")
        .value("revoked_at", now_ms())
        .and_where(Expr::col("user_id").eq(user_id))
        .and_where(Expr::col("revoked_at").is_null())
        .to_owned();
    db.execute(&q).await
}
