//! Operators' logins and sessions: a random token in an HttpOnly, SameSite=Strict cookie
//! (stored only as its SHA-256), a CSRF token every change must echo in `X-CSRF-Token`, an
//! idle limit and a hard limit; failed logins locked out per address and operator, so a
//! stranger elsewhere cannot lock an operator out.

use std::time::Duration;

use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_usercenter::logic::{random_hex, sha256_hex, verify_password};
use sea_query::{Expr, ExprTrait as _, Query};
use serde::Deserialize;

use crate::Console;
use crate::config::ConsoleConfig;
use crate::operators::{self, Operator};

/// The session cookie's name.
pub const COOKIE: &str = "rsgame_console";

/// A live operator session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its row.
    pub id: i64,
    /// Who.
    pub operator: Operator,
    /// What changes must send back as `X-CSRF-Token`.
    pub csrf: String,
}

/// A login.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginReq {
    /// Operator name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The authenticator app's code, for an operator with a second factor.
    #[serde(default)]
    pub totp: String,
}

/// The `Set-Cookie` value that opens a session.
pub fn set_cookie(token: &str, cfg: &ConsoleConfig) -> String {
    let secure = if cfg.secure_cookie { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", cfg.session_hours * 3600)
}

/// The `Set-Cookie` value that closes it.
pub fn clear_cookie(cfg: &ConsoleConfig) -> String {
    let secure = if cfg.secure_cookie { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session token in a request's `Cookie` headers.
pub fn token_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, v)| v.to_owned())
}

impl Console {
    async fn failures(&self, key: &str) -> i64 {
        self.cache.get::<i64>(key).await.ok().flatten().unwrap_or(0)
    }

    /// One more failure under `key`; past `limit` the key is locked for `lock_secs`.
    async fn fail(&self, key: &str, limit: i64) {
        let ttl = Duration::from_secs(self.cfg.lock_secs);
        let n = self.cache.incr(key, 1, Some(ttl)).await.unwrap_or(0);
        if n >= limit {
            // The key holds no name: logs are no place for account names under attack.
            tracing::warn!(failures = n, "console login locked after repeated failures");
        }
    }

    /// Checks a login and opens a session: the token (for the cookie) and the session.
    /// A wrong name, password or code all answer 400507 alike; a locked address 400510.
    pub async fn login(&self, r: &LoginReq, ip: &str) -> Result<(String, Session)> {
        let name = r.username.trim();
        if name.len() > 64 || r.password.len() > 256 {
            return Err(Error::new(Code::LoginFailed));
        }
        // The address first, and never a `|`: no name can make two pairs share a key.
        let pair = format!("console:fail:pair:{ip}|{name}");
        let by_ip = format!("console:fail:ip:{ip}");
        if self.failures(&pair).await >= self.cfg.lock_after_failures
            || self.failures(&by_ip).await >= self.cfg.ip_lock_after_failures
        {
            return Err(Error::msg(
                Code::AccountLocked,
                "too many failed logins from this address: wait and try again",
            ));
        }
        let stored = operators::by_name(&self.db, name).await?;
        let ok = verify_password(r.password.clone(), stored.as_ref().map(|s| s.password.clone())).await;
        let stored = match stored {
            Some(s) if ok => s,
            _ => {
                self.fail(&pair, self.cfg.lock_after_failures).await;
                self.fail(&by_ip, self.cfg.ip_lock_after_failures).await;
                return Err(Error::new(Code::LoginFailed));
            }
        };
        if !stored.totp.is_empty() {
            if r.totp.is_empty() {
                // Not a failure: the password was right, the form asks for the code next.
                return Err(Error::msg(Code::Unauthorized, "totp: the code from your authenticator app"));
            }
            if !crate::totp::verify(&stored.totp, &r.totp, unix_ms() / 1000) {
                self.fail(&pair, self.cfg.lock_after_failures).await;
                self.fail(&by_ip, self.cfg.ip_lock_after_failures).await;
                return Err(Error::new(Code::LoginFailed));
            }
        }
        if stored.op.disabled {
            return Err(Error::msg(Code::Forbidden, "this operator is disabled"));
        }
        let _ = self.cache.delete(&[&pair]).await;
        let token = random_hex(32);
        let csrf = random_hex(16);
        let now = unix_ms();
        let expires = now + self.cfg.session_hours as i64 * 3_600_000;
        let q = Query::insert()
            .into_table("console_session")
            .columns(["token_hash", "operator_id", "csrf", "ip", "created_at", "seen_at", "expires_at"])
            .values_panic([
                sha256_hex(&token).into(),
                stored.op.id.into(),
                csrf.clone().into(),
                ip.chars().take(64).collect::<String>().into(),
                now.into(),
                now.into(),
                expires.into(),
            ])
            .to_owned();
        let id = self.db.insert_id(&q).await?;
        operators::set(&self.db, stored.op.id, "last_login_at", now.into()).await?;
        tracing::info!(operator = stored.op.id, "operator logged in to the console");
        Ok((token, Session { id, operator: stored.op, csrf }))
    }

    /// The session a cookie's token opens, if it is live: not past its hard limit nor idle
    /// too long, its operator not disabled.
    pub async fn session(&self, token: &str) -> Result<Session> {
        let q = Query::select()
            .columns(["id", "operator_id", "csrf", "seen_at", "expires_at"])
            .from("console_session")
            .and_where(Expr::col("token_hash").eq(sha256_hex(token)))
            .to_owned();
        let row = self.db.fetch_optional(&q).await?.ok_or_else(|| Error::new(Code::Unauthorized))?;
        let (id, seen, expires) = (row.i64("id")?, row.i64("seen_at")?, row.i64("expires_at")?);
        let now = unix_ms();
        if now >= expires || now - seen > self.cfg.idle_minutes as i64 * 60_000 {
            self.delete_session(id).await?;
            return Err(Error::msg(Code::Unauthorized, "the session ended: log in again"));
        }
        let stored = operators::by_id(&self.db, row.i64("operator_id")?).await?;
        let Some(stored) = stored.filter(|s| !s.op.disabled) else {
            self.delete_session(id).await?;
            return Err(Error::new(Code::Unauthorized));
        };
        if now - seen > 60_000 {
            // Idle time counts in minutes: one write a minute per session is enough.
            let q = Query::update()
                .table("console_session")
                .value("seen_at", now)
                .and_where(Expr::col("id").eq(id))
                .to_owned();
            self.db.execute(&q).await?;
        }
        Ok(Session { id, operator: stored.op, csrf: row.string("csrf")? })
    }

    /// Ends one session.
    pub async fn delete_session(&self, id: i64) -> Result<()> {
        let q = Query::delete().from_table("console_session").and_where(Expr::col("id").eq(id)).to_owned();
        self.db.execute(&q).await?;
        Ok(())
    }

    /// Ends every session of an operator (disabled, its role or password changed).
    pub async fn end_sessions(&self, operator_id: i64) -> Result<()> {
        let q = Query::delete()
            .from_table("console_session")
            .and_where(Expr::col("operator_id").eq(operator_id))
            .to_owned();
        self.db.execute(&q).await?;
        Ok(())
    }
}
