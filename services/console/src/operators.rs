//! Operator accounts (`console_operator`): not players, never in `mem_user`. Passwords are
//! argon2id like players'; the first operator comes from the command line
//! (`rsgame admin create-operator`), the others from the console.

use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Db, Row, StoreError};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::audit::{self, json};
use crate::players::reason;
use crate::roles::Role;
use crate::sessions::Session;

/// An operator as the console shows it (never its password nor its TOTP secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operator {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Whether a second factor (TOTP) is set.
    pub totp: bool,
    /// A disabled operator cannot log in; its sessions are ended.
    pub disabled: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; 0: never.
    pub last_login_at: i64,
}

/// An operator with its secrets, for the login check.
pub(crate) struct Stored {
    pub(crate) op: Operator,
    pub(crate) password: String,
    pub(crate) totp: String,
}

const COLS: [&str; 8] = ["id", "username", "password", "role", "totp", "disabled", "created_at", "last_login_at"];

fn stored(r: &Row) -> Result<Stored, StoreError> {
    let totp = r.string("totp")?;
    Ok(Stored {
        op: Operator {
            id: r.i64("id")?,
            username: r.string("username")?,
            role: Role::from_code(r.i64("role")?),
            totp: !totp.is_empty(),
            disabled: r.i64("disabled")? != 0,
            created_at: r.i64("created_at")?,
            last_login_at: r.i64("last_login_at")?,
        },
        password: r.string("password")?,
        totp,
    })
}

/// 3 to 32 letters, digits, `_`, `-` or `.`.
pub fn check_username(name: &str) -> Result<()> {
    let ok = (3..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { Ok(()) } else { Err(Error::bad_param("username: 3 to 32 letters, digits, _, - or .")) }
}

/// At least 12 characters (an operator holds the keys to every account), at most 128.
pub fn check_password(p: &str) -> Result<()> {
    let n = p.chars().count();
    if (12..=128).contains(&n) && !p.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::bad_param("password: 12 to 128 characters"))
    }
}

/// Creates an operator; a taken name is 400506.
pub async fn create(db: &Db, username: &str, password: &str, role: Role) -> Result<Operator> {
    check_username(username)?;
    check_password(password)?;
    if by_name(db, username).await?.is_some() {
        return Err(Error::msg(Code::UsernameTaken, "an operator has that name"));
    }
    let phc = rsgame_usercenter::logic::hash_password(password.to_owned()).await?;
    let now = unix_ms();
    let q = Query::insert()
        .into_table("console_operator")
        .columns(["username", "password", "role", "totp", "disabled", "created_at", "last_login_at"])
        .values_panic([
            username.into(),
            phc.into(),
            role.code().into(),
            "".into(),
            0i64.into(),
            now.into(),
            0i64.into(),
        ])
        .to_owned();
    match db.insert_id(&q).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(Error::msg(Code::UsernameTaken, "an operator has that name")),
        Err(e) => return Err(e.into()),
    }
    let op = by_name(db, username).await?.ok_or_else(|| Error::new(Code::NotFound))?.op;
    Ok(op)
}

pub(crate) async fn by_name(db: &Db, username: &str) -> Result<Option<Stored>> {
    let q =
        Query::select().columns(COLS).from("console_operator").and_where(Expr::col("username").eq(username)).to_owned();
    Ok(db.fetch_optional(&q).await?.as_ref().map(stored).transpose()?)
}

pub(crate) async fn by_id(db: &Db, id: i64) -> Result<Option<Stored>> {
    let q = Query::select().columns(COLS).from("console_operator").and_where(Expr::col("id").eq(id)).to_owned();
    Ok(db.fetch_optional(&q).await?.as_ref().map(stored).transpose()?)
}

/// Every operator, by id.
pub async fn list(db: &Db) -> Result<Vec<Operator>> {
    let q = Query::select().columns(COLS).from("console_operator").order_by("id", Order::Asc).to_owned();
    let rows = db.fetch_all(&q).await?;
    Ok(rows.iter().map(|r| stored(r).map(|s| s.op)).collect::<Result<_, _>>()?)
}

/// How many operators there are (the first one may only come from the command line).
pub async fn count(db: &Db) -> Result<i64> {
    let q = Query::select().expr_as(Expr::col("id").count(), "n").from("console_operator").to_owned();
    let row = db.fetch_optional(&q).await?;
    Ok(row.map(|r| r.i64("n")).transpose()?.unwrap_or(0))
}

/// Sets one column of an operator; false when there is none.
pub(crate) async fn set(db: &Db, id: i64, col: &str, value: sea_query::Value) -> Result<bool> {
    let q = Query::update()
        .table("console_operator")
        .value(col.to_owned(), Expr::val(value))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    Ok(db.execute(&q).await? > 0)
}

impl crate::Console {
    /// An admin creates an operator.
    pub async fn create_operator(
        &self,
        s: &Session,
        ip: &str,
        username: &str,
        password: &str,
        role: Role,
        why: &str,
    ) -> Result<Operator> {
        let why = reason(why)?;
        let op = create(self.db(), username, password, role).await?;
        let c = audit::Change::by(s, ip, "operator.create", format!("operator:{}", op.id));
        audit::record(self.db(), audit::Change { after: json(&op), reason: why, ..c }).await?;
        Ok(op)
    }

    /// An admin changes an operator's role, state, password or second factor; the
    /// operator's sessions end, so the change holds from its next request.
    pub async fn update_operator(
        &self,
        s: &Session,
        ip: &str,
        id: i64,
        c: &crate::api::OperatorChange,
    ) -> Result<Operator> {
        let why = reason(&c.reason)?;
        let before = by_id(self.db(), id).await?.ok_or_else(|| Error::msg(Code::NotFound, "no such operator"))?.op;
        if id == s.operator.id && (c.role.is_some_and(|r| r != Role::Admin) || c.disabled == Some(true)) {
            // The last admin could otherwise lock everyone out of the console.
            return Err(Error::msg(Code::Forbidden, "an admin cannot demote or disable itself"));
        }
        if let Some(p) = &c.password {
            check_password(p)?;
        }
        if let Some(r) = c.role {
            set(self.db(), id, "role", r.code().into()).await?;
        }
        if let Some(d) = c.disabled {
            set(self.db(), id, "disabled", i64::from(d).into()).await?;
        }
        if let Some(p) = &c.password {
            let phc = rsgame_usercenter::logic::hash_password(p.clone()).await?;
            set(self.db(), id, "password", phc.into()).await?;
        }
        if c.clear_totp {
            set(self.db(), id, "totp", "".into()).await?;
        }
        self.end_sessions(id).await?;
        let after = by_id(self.db(), id).await?.ok_or_else(|| Error::new(Code::NotFound))?.op;
        let mut shown = serde_json::to_value(&after).unwrap_or_default();
        if c.password.is_some() {
            shown["password"] = "changed".into();
        }
        let change = audit::Change::by(s, ip, "operator.update", format!("operator:{id}"));
        let change = audit::Change { before: json(&before), after: shown.to_string(), reason: why, ..change };
        audit::record(self.db(), change).await?;
        Ok(after)
    }

    /// An operator changes its own password (the old one proves it is them); every session
    /// of it ends, this one too.
    pub async fn change_password(&self, s: &Session, ip: &str, old: &str, new: &str) -> Result<()> {
        let stored = by_id(self.db(), s.operator.id).await?.ok_or_else(|| Error::new(Code::Unauthorized))?;
        if !rsgame_usercenter::logic::verify_password(old.to_owned(), Some(stored.password)).await {
            return Err(Error::new(Code::LoginFailed));
        }
        check_password(new)?;
        let phc = rsgame_usercenter::logic::hash_password(new.to_owned()).await?;
        set(self.db(), s.operator.id, "password", phc.into()).await?;
        self.end_sessions(s.operator.id).await?;
        let c = audit::Change::by(s, ip, "operator.password", format!("operator:{}", s.operator.id));
        audit::record(self.db(), audit::Change { after: "\"changed\"".into(), reason: "own password", ..c }).await
    }

    /// A new second-factor secret for the operator, held ten minutes for `totp_enable`.
    pub async fn totp_begin(&self, s: &Session) -> Result<crate::api::TotpSetup> {
        let secret = crate::totp::new_secret();
        let ttl = std::time::Duration::from_secs(600);
        self.cache.set(&format!("console:totp:{}", s.operator.id), &secret, Some(ttl)).await?;
        Ok(crate::api::TotpSetup { link: crate::totp::link(&secret, &s.operator.username), secret })
    }

    /// Turns the second factor on, once a code proves the app holds the secret.
    pub async fn totp_enable(&self, s: &Session, ip: &str, code: &str) -> Result<()> {
        let key = format!("console:totp:{}", s.operator.id);
        let secret: String =
            self.cache.get(&key).await?.ok_or_else(|| Error::msg(Code::NotFound, "start with totp/begin"))?;
        if !crate::totp::verify(&secret, code, rsgame_kit::time::unix_ms() / 1000) {
            return Err(Error::bad_param("code: not the app's current code for this secret"));
        }
        set(self.db(), s.operator.id, "totp", secret.into()).await?;
        let _ = self.cache.delete(&[&key]).await;
        let c = audit::Change::by(s, ip, "operator.totp", format!("operator:{}", s.operator.id));
        audit::record(self.db(), audit::Change { after: "\"on\"".into(), reason: "second factor", ..c }).await
    }
}
