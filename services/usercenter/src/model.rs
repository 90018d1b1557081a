//! usercenter's tables: `mem_user`, `mem_logs` (go-game's), `uc_refresh_token` and
//! `uc_identity`.

use rsgame_store::{Db, Row, StoreError};
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
}

impl User {
    /// Whether its status lets it log in: 3 (login banned) and 5 (closed) do not.
    pub fn may_log_in(&self) -> bool {
        self.status != 3 && self.status != 5
    }
}

const USER_COLS: [&str; 10] =
    ["id", "username", "password", "nickname", "realname", "email", "mobile", "sex", "avatar", "status"];

fn user(r: &Row) -> Result<User, StoreError> {
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

/// A way into an account other than its username and password (`uc_identity.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A device id, stored as its SHA-256.
    Device,
}

impl IdentityKind {
    fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Device => "device",
        }
    }
}

/// The account an identity belongs to (a deleted account's identities lead nowhere).
pub async fn identity_user(db: &Db, kind: IdentityKind, ident: &str) -> Result<Option<i64>, StoreError> {
    let q = Query::select()
        .column(("uc_identity", "user_id"))
        .from("uc_identity")
        .inner_join("mem_user", Expr::col(("mem_user", "id")).equals(("uc_identity", "user_id")))
        .and_where(Expr::col(("uc_identity", "kind")).eq(kind.as_str()))
        .and_where(Expr::col(("uc_identity", "ident")).eq(ident))
        .and_where(Expr::col(("mem_user", "deleted_at")).is_null())
        .to_owned();
    db.fetch_optional(&q).await?.map(|r| r.i64("user_id")).transpose()
}

/// Creates an account that only the identity opens (its password matches nothing), in one
/// transaction: when the identity is already taken (another request made it a moment ago)
/// the result is [`StoreError::Conflict`] and nothing is left behind.
pub async fn insert_user_with_identity(
    db: &Db,
    username: &str,
    nickname: &str,
    ip: &str,
    kind: IdentityKind,
    ident: &str,
) -> Result<i64, StoreError> {
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
    let mut identity = Query::insert();
    identity
        .into_table("uc_identity")
        .columns(["kind", "ident", "user_id", "created_at"])
        .values([Expr::val(kind.as_str()), Expr::val(ident), Expr::val(id), Expr::val(now)])
        .map_err(|e| StoreError::Config(e.to_string()))?;
    // A conflict returns before the commit: dropping the transaction rolls the account back.
    tx.execute(&identity).await?;
    tx.commit().await?;
    Ok(id)
}

/// Records a successful login on the account.
pub async fn touch_login(db: &Db, id: i64, ip: &str) -> Result<(), StoreError> {
    let now = now_ms();
    let q = Query::update()
        .table("mem_user")
        .value("login_ip", ip)
        .value("login_count", Expr::col("login_count").add(1))
        .value("login_at", now)
        .value("updated_at", now)
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    db.execute(&q).await.map(|_| ())
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

/// Sets an account's status (1 approved, 3 login banned, 5 closed).
pub async fn set_status(db: &Db, user_id: i64, status: i32) -> Result<(), StoreError> {
    let q = Query::update().table("mem_user").value("status", status).and_where(Expr::col("id").eq(user_id)).to_owned();
    db.execute(&q).await.map(drop)
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
