//! rsgame's examples and its guide.
//!
//! The examples are in this package's folder (`examples/echo.rs`, `chat.rs`,
//! `custom_room.rs`, `rest_service.rs`); run one with `cargo run --example echo`. This
//! library holds no code: it carries `docs/guide.md` and its Chinese translation as
//! documentation, so every Rust block in them is compiled (and the runnable ones run) by
//! `cargo test`.
//!
//! # Layout
//!
//! - [`guide_zh_cn`]: the guide in Chinese, compiled the same way.

#![doc = include_str!("../../docs/guide.md")]
#![warn(missing_docs)]

/// The guide in Chinese (`docs/guide.zh-CN.md`), compiled the same way.
#[doc = include_str!("../../docs/guide.zh-CN.md")]
pub mod guide_zh_cn {}
