//! The usercenter service: accounts, passwords (argon2id), JWT access tokens, rotating refresh
//! tokens, brute-force protection, login logs.
//!
//! - [`model`]: `mem_user`, `mem_logs`, `uc_refresh_token`.
//! - [`logic`]: the [`UserCenter`] trait and its in-process implementation.
//! - [`api`]: the REST routes under `/usercenter/v1/user/`.
//!
//! Still to come with the rest of its issue: QR login, the gRPC server and client.

#![warn(missing_docs)]

pub mod api;
pub mod logic;
pub mod model;

pub use logic::{LoginReq, RegisterReq, Tokens, UserCenter, UserCenterLogic, UserInfo};
