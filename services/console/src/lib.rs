//! The operator console's server side: operators' accounts and sessions, roles, the audit
//! log, and the `/console/v1/` API the console's pages use, on a listener of its own. It acts
//! on players only through the services' logic, so every grant goes through the game's ledger
//! and every ban through the usercenter (which ends the player's sessions everywhere).
//!
//! # Layout
//!
//! - [`config`]: the `console.*` configuration section and its checks.
//! - [`roles`]: roles (viewer, gm, admin) and the permission table every route checks.
//! - [`operators`]: operator accounts (argon2id passwords), apart from players.
//! - [`totp`]: the optional second factor (RFC 6238 codes).
//! - [`sessions`]: logins, cookie sessions, CSRF tokens, lock-outs per address.
//! - [`audit`]: the append-only log of every change made through the console.
//! - [`players`]: finding players, a player's page, and the actions on a player.
//! - [`chat`]: chat moderation: recent lines with filters, removing a line, mutes.
//! - [`servers`]: the game nodes with their rooms, draining a node, closing a room.
//! - [`dashboard`]: this process's metrics sampled for an hour, logins and new accounts
//!   per minute.
//! - [`data`]: game data tables, files checked before they apply, versions and rollback,
//!   the notices.
//! - [`api`]: the REST routes under `/console/v1/` and their OpenAPI document.

#![warn(missing_docs)]

use std::sync::Arc;

use rsgame_game::GameLogic;
use rsgame_store::{Cache, Db};
use rsgame_usercenter::UserCenterLogic;

pub mod api;
pub mod audit;
pub mod chat;
pub mod config;
pub mod dashboard;
pub mod data;
pub mod operators;
pub mod players;
pub mod roles;
pub mod servers;
pub mod sessions;
pub mod totp;

pub use config::ConsoleConfig;

/// The console's logic: its own tables, and the usercenter and game logic it acts through.
#[derive(Clone)]
pub struct Console {
    db: Db,
    cache: Cache,
    cfg: ConsoleConfig,
    usercenter: Arc<UserCenterLogic>,
    game: Arc<GameLogic>,
    /// This process's metrics and their samples, for the dashboard (none without metrics).
    metrics: Option<(dashboard::Source, Arc<dashboard::Samples>)>,
}

impl Console {
    /// Over the shared database and cache, acting through `usercenter` and `game`.
    pub fn new(
        db: Db,
        cache: Cache,
        cfg: ConsoleConfig,
        usercenter: Arc<UserCenterLogic>,
        game: Arc<GameLogic>,
    ) -> Console {
        Console { db, cache, cfg, usercenter, game, metrics: None }
    }

    /// The configuration.
    pub fn config(&self) -> &ConsoleConfig {
        &self.cfg
    }

    /// The database (operators, sessions, the audit log).
    pub fn db(&self) -> &Db {
        &self.db
    }
}
