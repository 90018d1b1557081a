//! Ending sessions: one access token (logout), or every session of an account at once (log
//! out everywhere, a ban, and later password changes and deletion).
//!
//! An account-wide end writes one mark to the shared cache, `uc:ended_before:{user}` = the
//! moment (unix ms): every access token issued before it is refused from then on, by every
//! process that checks tokens ([`revocations`]: one `MGET` with the per-token deny-list).
//! It also revokes every refresh token in the database, and publishes [`SessionsEnded`] so
//! that each game node closes the account's live connections. The mark lives as long as an
//! access token can, then goes.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rsgame_kit::auth::{Claims, Revocations};
use rsgame_kit::error::{Code, Error, Result};
use rsgame_proto::events::{SESSIONS_ENDED_TOPIC, SessionsEnded, SessionsEndedReason};
use rsgame_store::{Bus, Cache, Db};

use crate::model;

fn revoked_key(jti: &str) -> String {
    format!("uc:revoked:{jti}")
}

fn ended_key(user_id: i64) -> String {
    format!("uc:ended_before:{user_id}")
}

/// Writes revocations: one token, or every session of an account.
#[derive(Clone)]
pub struct Sessions {
    db: Db,
    cache: Cache,
    bus: Bus,
    /// How long an access token lives: a mark older than that has nothing left to refuse.
    access_ttl: Duration,
}

impl Sessions {
    /// Revocations over `db` (refresh tokens), `cache` (access tokens; shared between
    /// processes through Redis) and `bus` (live game sessions).
    pub fn new(db: Db, cache: Cache, bus: Bus, access_ttl: Duration) -> Sessions {
        Sessions { db, cache, bus, access_ttl }
    }

    /// Refuses one access token from now until it expires.
    pub async fn revoke_token(&self, claims: &Claims) -> Result<()> {
        let left = claims.exp - rsgame_kit::time::unix_secs();
        if left > 0 {
            self.cache.set(&revoked_key(&claims.jti), &true, Some(Duration::from_secs(left as u64 + 1))).await?;
        }
        Ok(())
    }

    /// Ends every session of `user_id`: its access tokens issued until now are refused, its
    /// refresh tokens revoked, its game connections closed. An error means some of that may
    /// not have happened; calling again is safe.
    pub async fn end_all(&self, user_id: i64, reason: SessionsEndedReason) -> Result<()> {
        let before_ms = rsgame_kit::time::unix_ms();
        // A minute over the tokens' life covers clocks a little apart between processes.
        let keep = self.access_ttl + Duration::from_secs(60);
        self.cache.set(&ended_key(user_id), &before_ms, Some(keep)).await?;
        model::revoke_user(&self.db, user_id).await?;
        let event = SessionsEnded { user_id, before_ms, reason: reason as i32 };
        self.bus.publish(SESSIONS_ENDED_TOPIC, &event.encode_to_vec()).await.map_err(|e| {
            // Tokens are already dead; open game connections would play on until they drop.
            Error::internal(Code::Failed, std::io::Error::other(format!("game nodes not told to end sessions: {e}")))
        })?;
        tracing::info!(user_id, reason = reason.as_str_name(), "account sessions ended");
        Ok(())
    }
}

/// The revocation checks for [`rsgame_kit::auth::Auth`] in any process that checks tokens,
/// over the cache the usercenter writes to.
pub fn revocations(cache: Cache) -> Arc<dyn Revocations> {
    Arc::new(CacheRevocations(cache))
}

/// Reads what [`Sessions`] writes: the per-token deny-list and the per-account marks.
struct CacheRevocations(Cache);

#[async_trait::async_trait]
impl Revocations for CacheRevocations {
    async fn is_revoked(&self, claims: &Claims) -> bool {
        let (token, account) = (revoked_key(&claims.jti), ended_key(claims.user_id));
        // Any JSON, so a value in an unexpected shape is ignored instead of failing both.
        match self.0.get_many::<serde_json::Value>(&[&token, &account]).await {
            Ok(v) => {
                let token_revoked = matches!(v.first(), Some(Some(serde_json::Value::Bool(true))));
                let ended_before = v.get(1).and_then(|m| m.as_ref()).and_then(serde_json::Value::as_i64);
                token_revoked || ended_before.is_some_and(|before| claims.issued_ms() < before)
            }
            // A cache outage lets signed, unexpired tokens through rather than failing every
            // request; the cache logs and counts the outage.
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user_id: i64, issued_ms: i64, jti: &str) -> Claims {
        Claims { user_id, iat: issued_ms / 1000, exp: issued_ms / 1000 + 3600, jti: jti.into(), iat_ms: issued_ms }
    }

    #[tokio::test]
    async fn an_account_mark_refuses_older_tokens_of_that_account_only() {
        let cache = Cache::memory(1000, "t:");
        let r = revocations(cache.clone());
        let now = rsgame_kit::time::unix_ms();
        cache.set(&ended_key(7), &now, None).await.expect("set");
        assert!(r.is_revoked(&claims(7, now - 1, "a")).await, "issued a millisecond before");
        assert!(!r.is_revoked(&claims(7, now, "b")).await, "issued at the mark");
        assert!(!r.is_revoked(&claims(8, now - 1, "c")).await, "another account");
        // A token without iatMs counts from its second's start.
        let legacy = Claims { iat_ms: 0, ..claims(7, now, "d") };
        assert!(r.is_revoked(&legacy).await || now % 1000 == 0);
    }
}
