//! The game service's Prometheus metrics: their names and what they measure.

use rsgame_kit::telemetry::metrics::Def;

/// Game data reloads, by result (`ok`, `refused`).
pub const DATA_RELOADS: &str = "game_data_reloads_total";
/// Changes to an online player that the game nodes were not told of.
pub const PLAYER_CHANGED_ERRORS: &str = "game_player_changed_errors_total";
/// Inbox messages stored but not announced to the game nodes.
pub const MAIL_NOTICE_ERRORS: &str = "game_mail_notice_errors_total";
/// Guild changes committed but not announced to the game nodes.
pub const GUILD_NOTICE_ERRORS: &str = "game_guild_notice_errors_total";

/// The metrics the game service records.
pub const METRICS: &[Def] = &[
    Def::counter(DATA_RELOADS, "Game data reloads, by result (ok, refused)."),
    Def::counter(PLAYER_CHANGED_ERRORS, "Changes to a player the game nodes could not be told of."),
    Def::counter(MAIL_NOTICE_ERRORS, "Inbox messages stored but not announced to the game nodes (no live push)."),
    Def::counter(GUILD_NOTICE_ERRORS, "Guild changes committed but not announced to the game nodes (no live push)."),
];
