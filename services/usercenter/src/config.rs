//! The usercenter's configuration section, `usercenter.*`: account rules, login protection,
//! WeChat login and the game servers a login answers with.

use rsgame_kit::config::{Invalid, Secret, Section};
use serde::{Deserialize, Serialize};

/// `usercenter.*` — account rules and login protection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsercenterConfig {
    /// Shortest password accepted.
    pub password_min_len: usize,
    /// Failed logins for one account from one address (within the window) after which that
    /// address needs a captcha for it.
    pub captcha_after_failures: i64,
    /// Failed logins for one account from one address after which that address is locked
    /// out of it; the same number from all addresses puts the whole account behind a
    /// captcha, and the same number made with solved captchas locks the addresses that
    /// failed on it.
    pub lock_after_failures: i64,
    /// Failed logins from one address over all accounts after which every login from it
    /// needs a captcha (well above one player's typos: players share addresses).
    pub ip_captcha_after_failures: i64,
    /// Failed logins from one address over all accounts after which it is locked out.
    pub ip_lock_after_failures: i64,
    /// The window failures are counted in, seconds.
    pub failure_window_secs: u64,
    /// How long a lock-out lasts, seconds.
    pub lock_secs: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_expire_secs: u64,
    /// Whether registering needs a captcha from basic (`captchaKey`, `captchaCode`): on for
    /// a public sign-up page, off for bots and server-side sign-ups.
    pub register_captcha: bool,
    /// Registrations from one address within an hour after which further ones need a
    /// captcha (400508) even when `register_captcha` is off. 0: never.
    pub register_captcha_after_per_ip: i64,
    /// The game nodes' WebSocket addresses, sent with every token reply (`servers`) so a
    /// client knows where to connect: absolute (`wss://eu1.example.com/ws`) or a path on
    /// the REST host (`/ws`, the monolith).
    pub game_servers: Vec<String>,
    /// Whether `loginCode` makes an account for a phone or email that has none yet (off:
    /// such a code logs nobody in, 400201).
    pub code_signup: bool,
    /// Whether two accounts may not share a nickname (checked at `update`).
    pub unique_nicknames: bool,
    /// How recent a login `delete` needs, seconds: an access token issued longer ago is
    /// refused with 400519 (a phone left unlocked does not close its owner's account).
    pub fresh_login_secs: u64,
    /// Days between an account being closed and its personal data being erased (the
    /// ledger stays, under the bare account id). 0: erased at the next sweep.
    pub delete_grace_days: u64,
    /// The WeChat mini-game's AppID; empty: `loginWechat` is off (400501).
    pub wechat_appid: String,
    /// The mini-game's AppSecret (set it from `RSGAME_USERCENTER__WECHAT_SECRET`).
    pub wechat_secret: Secret,
    /// WeChat's API base; `jscode2session` is under it. Tests point it at a local fake.
    pub wechat_url: String,
    /// How long to wait for WeChat, milliseconds.
    pub wechat_timeout_ms: u64,
}

impl Default for UsercenterConfig {
    fn default() -> Self {
        UsercenterConfig {
            password_min_len: 8,
            captcha_after_failures: 3,
            lock_after_failures: 10,
            ip_captcha_after_failures: 30,
            ip_lock_after_failures: 200,
            failure_window_secs: 900,
            lock_secs: 900,
            refresh_expire_secs: 30 * 86_400,
            register_captcha: false,
            register_captcha_after_per_ip: 10,
            game_servers: vec!["/ws".into()],
            code_signup: true,
            unique_nicknames: false,
            fresh_login_secs: 300,
            delete_grace_days: 30,
            wechat_appid: String::new(),
            wechat_secret: Secret::default(),
            wechat_url: "https://api.weixin.qq.com".into(),
            wechat_timeout_ms: 3_000,
        }
    }
}

impl Section for UsercenterConfig {
    fn check(&self) -> Result<(), Invalid> {
        if let Some(bad) = self.game_servers.iter().find(|s| {
            !(s.starts_with('/') || s.starts_with("ws://") || s.starts_with("wss://"))
                || s.chars().any(char::is_whitespace)
        }) {
            return Err(Invalid::new(
                "game_servers",
                format!("each must be a ws:// or wss:// URL or a path starting with /, got {bad:?}"),
            ));
        }
        if !(6..=128).contains(&self.password_min_len) {
            return Err(Invalid::new("password_min_len", "must be between 6 and 128"));
        }
        if !self.wechat_appid.is_empty() && self.wechat_secret.is_empty() {
            return Err(Invalid::new("wechat_secret", "is needed with usercenter.wechat_appid"));
        }
        if !(self.wechat_url.starts_with("https://") || self.wechat_url.starts_with("http://")) {
            return Err(Invalid::new("wechat_url", "must be an http:// or https:// URL"));
        }
        if self.lock_after_failures <= self.captcha_after_failures {
            return Err(Invalid::new("lock_after_failures", "must exceed usercenter.captcha_after_failures"));
        }
        if self.ip_lock_after_failures <= self.ip_captcha_after_failures {
            return Err(Invalid::new("ip_lock_after_failures", "must exceed usercenter.ip_captcha_after_failures"));
        }
        Ok(())
    }
}
