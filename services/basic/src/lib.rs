//! The basic service: captchas today; verification codes and files come with the rest of the
//! usercenter/basic issue.
//!
//! - [`Basic`]: the service trait other services call (usercenter checks captchas through it);
//!   [`BasicLogic`] is the in-process implementation, a gRPC client will be the remote one.
//! - [`api`]: the REST routes under `/basic/v1/basic/`.

#![warn(missing_docs)]

pub mod api;
pub mod captcha;

pub use captcha::{BasicLogic, CaptchaImage};

/// What other services may ask of basic.
#[async_trait::async_trait]
pub trait Basic: Send + Sync {
    /// A new captcha.
    async fn captcha(&self) -> rsgame_kit::Result<CaptchaImage>;
    /// Whether `code` answers the captcha `key` (case-insensitive). A key works once: it is
    /// gone after this call whatever the answer, so a captcha cannot be replayed or guessed
    /// at repeatedly.
    async fn verify_captcha(&self, key: &str, code: &str) -> rsgame_kit::Result<bool>;
}
