//! Access tokens: HS256 JSON Web Tokens carrying go-game's `jwtUserId` claim, issued by
//! usercenter and verified on every authenticated path (REST, gRPC and the game login).
//!
//! Only HS256 is ever issued or accepted, so the token codec is written here over `hmac` and
//! `sha2` (already in the build) rather than a general JWT crate that would pull in RSA and
//! elliptic-curve code: the header must be exactly HS256 (no `none`, no algorithm confusion),
//! the signature is compared in constant time, `exp` is required.
//!
//! [`AuthUser`] is the axum extractor for protected routes: a missing, malformed, tampered,
//! expired or revoked token gets HTTP 401 with go-game's token code (400103) in the envelope.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};

use crate::error::{Code, Error};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account (go-game's claim name).
    #[serde(rename = "jwtUserId")]
    pub user_id: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// Unique token id, so one token can be revoked (logout).
    pub jti: String,
    /// rsgame: issued at, unix milliseconds. Ending an account's sessions kills the tokens
    /// issued before a moment; `iat`'s whole seconds cannot tell a token issued just before
    /// a password change from the one the change itself returns. 0 in tokens without it.
    #[serde(rename = "iatMs", default, skip_serializing_if = "is_zero")]
    pub iat_ms: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Claims {
    /// When the token was issued, unix milliseconds (from `iat` when it has no `iatMs`:
    /// the second's start, so such a token counts as older than anything in its second).
    pub fn issued_ms(&self) -> i64 {
        if self.iat_ms > 0 { self.iat_ms } else { self.iat.saturating_mul(1000) }
    }
}

/// A token as go-game's login and register return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    /// The JWT.
    pub access_token: String,
    /// When it expires, unix seconds.
    pub access_expire: i64,
    /// When the client should refresh it, unix seconds.
    pub refresh_after: i64,
}

/// Issues and verifies access tokens with one HMAC secret.
pub struct Jwt {
    key: Vec<u8>,
    access_expire: Duration,
    refresh_after: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt").field("access_expire", &self.access_expire).finish_non_exhaustive()
    }
}

/// Why a token was refused. Never shown to the client beyond "token expired or invalid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or not JSON inside.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than HS256.
    #[error("unexpected algorithm")]
    Algorithm,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Revoked by a logout.
    #[error("revoked")]
    Revoked,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// HMAC-SHA256 of the concatenated `parts` under `key`: the one MAC every signer in rsgame
/// uses (tokens, derived keys, download links, S3 signatures).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Compares two secrets in constant time: the loop runs over the longer one whatever the
/// content, so timings reveal nothing about where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The secret of this installation kept in `path` (64 hex digits), created on first use
/// with owner-only permissions. Processes that share the folder share the secret; a process
/// that cannot read it cannot present it. Two processes creating it at once agree: the file
/// is created exclusively and the loser reads the winner's.
pub fn install_secret(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut raw = [0u8; 32];
    rand::fill(&mut raw[..]);
    let fresh = hex::encode(raw);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(fresh.as_bytes())?;
            f.sync_all()?;
            Ok(fresh)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // The creator may still be writing: a short file is read again for a moment.
            for _ in 0..50 {
                let s = std::fs::read_to_string(path)?.trim().to_owned();
                if s.len() >= 32 {
                    return Ok(s);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} holds no secret", path.display())))
        }
        Err(e) => Err(e),
    }
}

impl Jwt {
    /// A codec with `secret`; an empty secret gets a random one (tokens then die with the
    /// process, which start-up warns about).
    pub fn new(secret: &[u8], access_expire: Duration, refresh_after: Duration) -> Jwt {
        let key = if secret.is_empty() {
            let mut k = vec![0u8; 32];
            rand::fill(&mut k[..]);
            k
        } else {
            secret.to_vec()
        };
        Jwt { key, access_expire, refresh_after }
    }

    /// How long an access token lives.
    pub fn access_expire(&self) -> Duration {
        self.access_expire
    }

    /// The codec `auth.*` configures.
    pub fn from_config(cfg: &crate::config::AuthConfig) -> Jwt {
        if cfg.jwt_secret.is_empty() {
            tracing::warn!("auth.jwt_secret is not set: a random secret is used, tokens end with this process");
        }
        Jwt::new(
            cfg.jwt_secret.expose().as_bytes(),
            Duration::from_secs(cfg.access_expire_secs),
            Duration::from_secs(cfg.refresh_after_secs),
        )
    }

    /// A key for another purpose (signing download links…) derived from the token secret, so
    /// that every replica configured with the same secret derives the same key, and knowing
    /// the derived key reveals nothing of the secret.
    pub fn derive_key(&self, purpose: &str) -> Vec<u8> {
        hmac_sha256(&self.key, &[b"rsgame derived key: ", purpose.as_bytes()]).to_vec()
    }

    /// A new access token for `user_id`.
    pub fn issue(&self, user_id: i64) -> Result<(AccessToken, Claims), Error> {
        let now_ms = crate::time::unix_ms();
        let now = now_ms / 1000;
        let mut jti = [0u8; 16];
        rand::fill(&mut jti);
        let claims = Claims {
            user_id,
            iat: now,
            exp: now + self.access_expire.as_secs() as i64,
            jti: hex::encode(jti),
            iat_ms: now_ms,
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| Error::internal(Code::TokenGenerate, e))?;
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let sig = B64.encode(hmac_sha256(&self.key, &[signing_input.as_bytes()]));
        let token = AccessToken {
            access_token: format!("{signing_input}.{sig}"),
            access_expire: claims.exp,
            refresh_after: now + self.refresh_after.as_secs() as i64,
        };
        Ok((token, claims))
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
        }
        let header: Header =
            B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let expected = hmac_sha256(&self.key, &[h.as_bytes(), b".", p.as_bytes()]);
        if !constant_time_eq(&expected, &sig) {
            return Err(TokenError::Signature);
        }
        let claims: Claims =
            B64.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed)?;
        if claims.exp <= crate::time::unix_secs() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Tells whether a token was revoked (logged out) before its expiry.
#[async_trait::async_trait]
pub trait Revocations: Send + Sync {
    /// Whether the token with these claims may no longer be used.
    async fn is_revoked(&self, claims: &Claims) -> bool;
}

/// What protected routes need to check a token: put it in the router's extensions
/// (`Router::layer(Extension(auth))`).
#[derive(Clone)]
pub struct Auth {
    /// The codec.
    pub jwt: Arc<Jwt>,
    /// The revocation list, when there is one.
    pub revocations: Option<Arc<dyn Revocations>>,
}

impl Auth {
    /// Verifies a bearer token, revocation included.
    pub async fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.jwt.verify(token)?;
        if let Some(r) = &self.revocations
            && r.is_revoked(&claims).await
        {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }
}

/// The caller of a protected route, from `Authorization: Bearer <JWT>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The account.
    pub user_id: i64,
    /// The token's claims (its `jti` for logout).
    pub claims: Claims,
}

/// A refused token: HTTP 401 whatever `http.error_status` says (as go-zero's JWT middleware
/// answers), with go-game's token code in the envelope.
#[derive(Debug)]
pub struct Unauthorized(pub TokenError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        tracing::debug!(reason = %self.0, "token refused");
        let body = Error::new(Code::TokenExpired).envelope();
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    }
}

/// The caller of a route that works with or without a token (a leaderboard that also shows
/// "my rank"): `None` without an `Authorization` header; a header with a bad token is refused
/// as on protected routes.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<AuthUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            return Ok(MaybeUser(None));
        }
        AuthUser::from_request_parts(parts, state).await.map(|u| MaybeUser(Some(u)))
    }
}

/// The token in an `Authorization: Bearer …` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let auth = parts.extensions.get::<Auth>().cloned().ok_or(Unauthorized(TokenError::Malformed))?;
        let token = bearer(&parts.headers).ok_or(Unauthorized(TokenError::Malformed))?;
        let claims = auth.check(token).await.map_err(Unauthorized)?;
        Ok(AuthUser { user_id: claims.user_id, claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> Jwt {
        Jwt::new(b"test-secret", Duration::from_secs(60), Duration::from_secs(30))
    }

    #[test]
    fn an_install_secret_is_made_once_private_and_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data").join("rpc.token");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || install_secret(&path).expect("secret"))
            })
            .collect();
        let got: Vec<String> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        assert!(got.iter().all(|s| *s == got[0] && s.len() == 64), "one secret for all: {got:?}");
        assert_eq!(install_secret(&path).expect("again"), got[0], "kept across restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "only its owner reads it");
        }
    }

    #[test]
    fn a_token_round_trips_with_go_games_fields() {
        let j = jwt();
        let (t, c) = j.issue(42).expect("issue");
        assert_eq!(j.verify(&t.access_token).expect("valid"), c);
        assert_eq!(c.user_id, 42);
        assert_eq!(t.access_expire, c.exp);
        assert!(t.refresh_after < t.access_expire);
        let payload = t.access_token.split('.').nth(1).expect("payload");
        let json = String::from_utf8(B64.decode(payload).expect("b64")).expect("utf8");
        assert!(json.contains("\"jwtUserId\":42"), "{json}");
    }

    #[test]
    fn tampering_other_keys_and_algorithms_are_refused() {
        let j = jwt();
        let (t, _) = j.issue(1).expect("issue");
        let parts: Vec<&str> = t.access_token.split('.').collect();
        // Another user id under the same signature.
        let forged = B64.encode(br#"{"jwtUserId":2,"iat":0,"exp":99999999999,"jti":"x"}"#);
        assert_eq!(j.verify(&format!("{}.{forged}.{}", parts[0], parts[2])), Err(TokenError::Signature));
        // alg none, with or without a signature.
        let none = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(j.verify(&format!("{none}.{}.", parts[1])), Err(TokenError::Algorithm));
        // Signed with another secret.
        let other = Jwt::new(b"other", Duration::from_secs(60), Duration::from_secs(30));
        let (t2, _) = other.issue(1).expect("issue");
        assert_eq!(j.verify(&t2.access_token), Err(TokenError::Signature));
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**", &format!("{}.{}.", parts[0], parts[1])] {
            assert!(j.verify(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_expired_token_is_refused() {
        let j = Jwt::new(b"k", Duration::from_secs(0), Duration::from_secs(0));
        let (t, _) = j.issue(1).expect("issue");
        assert_eq!(j.verify(&t.access_token), Err(TokenError::Expired));
    }

    #[test]
    fn bearer_header_parsing() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(axum::http::header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(axum::http::header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }
}
