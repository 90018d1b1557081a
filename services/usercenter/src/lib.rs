//! The usercenter service: accounts, passwords (argon2id), JWT access tokens, rotating refresh
//! tokens, brute-force protection, login logs.
//!
//! # Layout
//!
//! - [`config`]: the `usercenter.*` configuration section and its checks.
//! - [`model`]: `mem_user`, `mem_logs`, `uc_refresh_token`.
//! - [`identity`]: `uc_identity`, the ways into an account besides its password (devices,
//!   phone, email, WeChat), bound and unbound without ever leaving an account none.
//! - [`wechat`]: the exchange of a WeChat mini-game login code at `jscode2session`.
//! - [`logic`]: the [`UserCenter`] trait and its in-process implementation.
//! - [`lookup`]: operators' look-ups: accounts by any way in, an account's login history.
//! - [`guard`]: login protection: failures counted per account and address, captchas and
//!   lock-outs that a stranger cannot turn against a player.
//! - [`api`]: the REST routes under `/usercenter/v1/user/`.
//! - [`rpc`]: the gRPC server over any [`UserCenter`], and a remote [`UserCenter`].
//! - [`sessions`]: ending sessions, one token or all of an account's (log out everywhere, a
//!   ban), and the revocation checks every token check reads.
//!
//! QR login: the waiting page calls `loginScan/create` and shows the QR code; a logged-in
//! device scans it and calls `loginScan/confirm`; the waiting page's `loginScan` (a long poll)
//! then gets tokens, once.

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod guard;
pub mod identity;
pub mod logic;
pub mod lookup;
pub mod model;
pub mod rpc;
pub mod sessions;
pub mod wechat;

pub use logic::{
    Ban, BindReq, CodeLoginReq, DeviceLoginReq, IdentityInfo, LoginReq, ProfileReq, RegisterReq, ResetPasswordReq,
    ScanTicket, Tokens, UnbindReq, UserCenter, UserCenterLogic, UserInfo, WechatLoginReq,
};
