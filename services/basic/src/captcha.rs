//! Captchas: a PNG with distorted characters, its answer kept in the cache under a random key
//! with a TTL, and consumed by the first verification.

use std::time::Duration;

use base64::Engine as _;
use rsgame_kit::{Code, Error};
use rsgame_store::Cache;
use serde::{Deserialize, Serialize};

/// A captcha as go-game's `captcha` endpoint returns it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaptchaImage {
    /// `data:image/png;base64,…`.
    pub image: String,
    /// The key to send back with the answer.
    pub key: String,
    /// When it stops working, unix seconds.
    pub expire_time: i64,
    /// How many characters it shows.
    pub length: u32,
}

/// Characters that do not look alike (no 0/O, 1/l/I).
const CHARS: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'k', 'm', 'n', 'p', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '2', '3',
    '4', '5', '6', '7', '8', '9',
];

fn key(k: &str) -> String {
    format!("basic:captcha:{k}")
}

/// Draws a captcha: (answer, PNG).
fn draw(length: u32) -> Option<(String, Vec<u8>)> {
    let mut c = captcha::Captcha::new();
    c.set_chars(CHARS)
        .add_chars(length)
        .apply_filter(captcha::filters::Noise::new(0.2))
        .apply_filter(captcha::filters::Wave::new(2.0, 12.0))
        .view(160, 60)
        .apply_filter(captcha::filters::Dots::new(8));
    c.as_tuple()
}

/// Draws a captcha, keeps its answer under a new key for `ttl`, reserved for `owner` (the
/// client's address): no flood of other keys evicts it, and one address holds only so many.
pub(crate) async fn create(cache: &Cache, owner: &str, ttl: Duration, length: u32) -> rsgame_kit::Result<CaptchaImage> {
    let (answer, png) = tokio::task::spawn_blocking(move || draw(length))
        .await
        .map_err(|e| Error::internal(Code::Failed, e))?
        .ok_or_else(|| Error::internal(Code::Failed, std::io::Error::other("captcha image could not be encoded")))?;
    let mut raw = [0u8; 16];
    rand::fill(&mut raw);
    let k = hex::encode(raw);
    cache.set_reserved(owner, &key(&k), &answer.to_lowercase(), ttl).await?;
    Ok(CaptchaImage {
        image: format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)),
        key: k,
        expire_time: rsgame_kit::time::unix_secs() + ttl.as_secs() as i64,
        length,
    })
}

/// Takes the captcha `k` (whatever the answer) and says whether `code` answered it.
pub(crate) async fn verify(cache: &Cache, k: &str, code: &str) -> rsgame_kit::Result<bool> {
    if k.is_empty() || k.len() > 64 || code.is_empty() || code.len() > 16 {
        return Ok(false);
    }
    let answer: Option<String> = cache.take(&key(k)).await?;
    Ok(answer.is_some_and(|a| a == code.trim().to_lowercase()))
}

/// The answer to a captcha, for tests that play the human.
pub(crate) async fn peek(cache: &Cache, k: &str) -> Option<String> {
    cache.get(&key(k)).await.ok().flatten()
}
