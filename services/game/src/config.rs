//! The game service's configuration section, `game.*`: where game data lives, how often it
//! is reloaded, and the operator token of `changeScore`.
//!
//! How strong `admin_token` must be depends on whether the HTTP listener is reachable from
//! other machines, which this section cannot see: the binary checks that.

use rsgame_kit::config::{Invalid, Secret, Section};
use serde::{Deserialize, Serialize};

/// `game.*` — game data and the game service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GameConfig {
    /// The folder of game data files (goods, shop, levels, exp, notices).
    pub data_dir: String,
    /// How often the data files are checked for changes, seconds (0: never reloaded).
    pub reload_secs: u64,
    /// The token server-side tools send as `X-Admin-Token` to `changeScore` and
    /// `inbox/send`; empty: those routes refuse everyone.
    pub admin_token: Secret,
    /// Days a deleted or expired inbox message is kept before it is purged (0: kept for ever).
    pub mail_keep_days: u64,
}

impl Default for GameConfig {
    fn default() -> Self {
        GameConfig {
            data_dir: "./data/game".into(),
            reload_secs: 2,
            admin_token: Secret::default(),
            mail_keep_days: 30,
        }
    }
}

impl Section for GameConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.data_dir.is_empty() {
            return Err(Invalid::new("data_dir", "must not be empty"));
        }
        if self.mail_keep_days > 36_500 {
            return Err(Invalid::new("mail_keep_days", "must be at most 36500 (0: kept for ever)"));
        }
        Ok(())
    }
}
