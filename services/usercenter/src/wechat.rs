//! WeChat mini-game login: a code from `wx.login()` is exchanged at WeChat's
//! `/sns/jscode2session` for the player's openid (and unionid, when the mini-game belongs to
//! an open-platform account). The session_key WeChat sends too is dropped at once: rsgame has
//! no use for it, so it is never stored, logged or returned.

use std::time::Duration;

use crate::config::UsercenterConfig;
use rsgame_kit::fetch::HttpClient;
use rsgame_kit::{Code, Error, Result};
use serde::Deserialize;

/// Who WeChat says the code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatUser {
    /// The player's id within this mini-game.
    pub openid: String,
    /// The player's id across the studio's apps, when WeChat gives one.
    pub unionid: Option<String>,
}

/// WeChat's answer; `session_key` is deliberately not a field, so it is never kept.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    openid: String,
    #[serde(default)]
    unionid: String,
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// The client for one mini-game's credentials.
#[derive(Clone)]
pub struct Wechat {
    appid: String,
    secret: String,
    http: HttpClient,
}

impl Wechat {
    /// The client `cfg` describes; `None` when no AppID is set (WeChat login is off).
    pub fn from_config(cfg: &UsercenterConfig) -> Result<Option<Wechat>> {
        if cfg.wechat_appid.is_empty() {
            return Ok(None);
        }
        let http = HttpClient::new(&cfg.wechat_url, Duration::from_millis(cfg.wechat_timeout_ms), 16 * 1024)
            .map_err(|e| Error::internal(Code::Failed, std::io::Error::other(format!("usercenter.wechat_url {e}"))))?;
        Ok(Some(Wechat { appid: cfg.wechat_appid.clone(), secret: cfg.wechat_secret.expose().to_owned(), http }))
    }

    /// Exchanges a `wx.login()` code. WeChat refusing it is [`Code::WechatRejected`]; WeChat
    /// down, slow or answering nonsense is [`Code::Unavailable`].
    pub async fn exchange(&self, code: &str) -> Result<WechatUser> {
        let query = format!(
            "/sns/jscode2session?appid={}&secret={}&js_code={}&grant_type=authorization_code",
            encode(&self.appid),
            encode(&self.secret),
            encode(code)
        );
        let unavailable = |why: String| {
            tracing::warn!(why, "WeChat login exchange failed");
            Error::msg(Code::Unavailable, "WeChat did not answer; try again")
        };
        let (status, body) = self.http.get(&query).await.map_err(unavailable)?;
        if status != 200 {
            return Err(unavailable(format!("HTTP {status}")));
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("not WeChat's JSON: {e}")))?;
        match answer.errcode {
            0 if valid_id(&answer.openid) => {
                Ok(WechatUser { openid: answer.openid, unionid: Some(answer.unionid).filter(|u| valid_id(u)) })
            }
            0 => Err(unavailable("an answer without a usable openid".into())),
            // -1: WeChat is busy.
            -1 => Err(unavailable(format!("errcode -1: {}", answer.errmsg))),
            // 40029 invalid code, 40163 code used, 40226 risky user, 45011 rate limit, …
            n => {
                tracing::info!(errcode = n, errmsg = %answer.errmsg, "WeChat refused a login code");
                Err(Error::msg(Code::WechatRejected, format!("WeChat refused the login code (errcode {n})")))
            }
        }
    }
}

/// Checks a code as the client sent it: WeChat's are 32 URL-safe characters; anything far
/// from that is not worth a call.
pub fn check_code(code: &str) -> Result<()> {
    if !(8..=128).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err(Error::bad_param("code: the code from wx.login()"));
    }
    Ok(())
}

/// openids and unionids are 28 URL-safe characters; they go into the database as keys.
fn valid_id(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_ids_are_checked_and_values_encoded() {
        assert!(check_code("081aBc2w3Xyz0P1qR2sT3uV4wX5yZ6aB").is_ok());
        for bad in ["", "short", "has space in it", "a&secret=x&b=cdefgh", &"x".repeat(129)] {
            assert!(check_code(bad).is_err(), "{bad}");
        }
        assert!(valid_id("oGZUI0egBJY1zhBYw2KhdUfwVJJE"));
        assert!(!valid_id("") && !valid_id("o'; DROP") && !valid_id(&"o".repeat(129)));
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
