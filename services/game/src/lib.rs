//! The game service: a small, correct economy behind go-game's game REST endpoints.
//!
//! # Layout
//!
//! - [`config`]: the `game.*` configuration section and its checks.
//! - [`data`]: goods, shop, levels, experience table, notices and guild rules from YAML files,
//!   validated, hot-reloaded.
//! - [`inbox`]: messages that wait for a player, with attachments claimed once through the ledger.
//! - [`broadcast`]: mail to every player, copied into each inbox at its next listing.
//! - [`guild`]: guilds: founding through the ledger, roles, join requests, invitations by
//!   inbox, chat history; changes announced to the game nodes.
//! - [`battle`]: the deterministic battle simulation.
//! - [`logic`]: the [`Game`] trait and its in-process implementation (profiles, shop, pack,
//!   use, battles, ranks, notices, score changes), every change in one transaction with its
//!   ledger rows.
//! - `ranks`: leaderboards in Redis sorted sets when the cache is Redis, rebuilt from the
//!   database, which stays the truth.
//! - [`operator`]: an operator's grants and takes through the ledger (idempotent), and a
//!   player's ledger history.
//! - [`moderation`]: chat moderation's records: mutes and the log of world and room chat.
//! - [`metrics`]: the game service's Prometheus metrics.
//! - [`api`]: the REST routes under `/game/v1/game/` and `/game/v1/inbox/`.
//! - [`guild_api`]: the guild routes under `/game/v1/guild/`.
//! - [`rpc`]: the gRPC `game` service over any [`Game`], and a remote [`Game`].

#![warn(missing_docs)]

pub mod api;
pub mod battle;
pub mod broadcast;
pub mod config;
pub mod data;
pub mod guild;
pub mod guild_api;
pub mod inbox;
pub mod logic;
pub mod metrics;
pub mod moderation;
pub mod operator;
mod ranks;
pub mod rpc;

pub use data::{DataStore, GameData};
pub use logic::{Game, GameLogic};
