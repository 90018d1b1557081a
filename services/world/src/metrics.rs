//! The world's Prometheus metrics: their names and what they measure.

use rsgame_kit::telemetry::metrics::Def;

/// Players online on this node.
pub const ONLINE_PLAYERS: &str = "world_online_players";
/// Players in a scene, by scene.
pub const PLAYERS: &str = "world_players";
/// Rooms open on this node.
pub const ROOMS: &str = "world_rooms";
/// Entity updates delivered to players, by scene.
pub const ENTITY_UPDATES: &str = "world_entity_updates_total";
/// One scene tick's time, by scene (a fast histogram).
pub const TICK_SECONDS: &str = "world_tick_seconds";
/// The help line of [`TICK_SECONDS`].
pub(crate) const TICK_HELP: &str = "Time one scene tick takes: simulation and delivery, by scene.";
/// Tick time percentiles over the last window, by scene.
pub const TICK_P50: &str = "world_tick_p50_seconds";
/// See [`TICK_P50`].
pub const TICK_P99: &str = "world_tick_p99_seconds";
/// See [`TICK_P50`].
pub const TICK_MAX: &str = "world_tick_max_seconds";
/// Save batches that failed (they are retried).
pub const SAVE_ERRORS: &str = "world_save_errors_total";
/// Players whose last change is not saved yet.
pub const UNSAVED_PLAYERS: &str = "world_unsaved_players";
/// One save batch's time.
pub const SAVE_SECONDS: &str = "world_save_seconds";
/// Rewards that failed to be granted.
pub const REWARD_ERRORS: &str = "world_reward_errors_total";
/// Rewards waiting for a retry.
pub const REWARDS_PENDING: &str = "world_rewards_pending";
/// Cluster messages that could not be published.
pub const CLUSTER_PUBLISH_ERRORS: &str = "world_cluster_publish_errors_total";
/// Cluster messages ignored because they were out of date.
pub const CLUSTER_STALE: &str = "world_cluster_stale_total";
/// Matchmaking tickets waiting (as of the last pass; on the node running the passes).
pub const MATCH_TICKETS: &str = "world_match_tickets";
/// One matchmaking pass's time: reading the queue and matching.
pub const MATCH_PASS_SECONDS: &str = "world_match_pass_seconds";
/// Matches formed, by mode.
pub const MATCHES: &str = "world_matches_total";
/// How long a matched ticket waited, by mode.
pub const MATCH_WAIT_SECONDS: &str = "world_match_wait_seconds";
/// Tickets that timed out without a match, by mode.
pub const MATCH_TIMEOUTS: &str = "world_match_timeouts_total";
/// World and room chat lines not written to the moderators' log.
pub const CHAT_LOG_LOST: &str = "world_chat_log_lost_total";

/// The metrics the world records.
pub const METRICS: &[Def] = &[
    Def::gauge(ONLINE_PLAYERS, "Players online on this game node."),
    Def::gauge(PLAYERS, "Players in a scene, by scene."),
    Def::gauge(ROOMS, "Rooms open on this game node."),
    Def::counter(ENTITY_UPDATES, "Entity updates delivered to players, by scene."),
    Def::histogram(TICK_SECONDS, TICK_HELP),
    Def::gauge(TICK_P50, "Median scene tick time over the last window, by scene."),
    Def::gauge(TICK_P99, "99th percentile scene tick time over the last window, by scene."),
    Def::gauge(TICK_MAX, "Longest scene tick over the last window, by scene."),
    Def::counter(SAVE_ERRORS, "Save batches that failed; their rows are retried."),
    Def::gauge(UNSAVED_PLAYERS, "Players whose latest state is not saved yet."),
    Def::histogram(SAVE_SECONDS, "Time one save batch takes."),
    Def::counter(REWARD_ERRORS, "Kill rewards that failed to be granted."),
    Def::gauge(REWARDS_PENDING, "Kill rewards waiting for a retry."),
    Def::counter(CLUSTER_PUBLISH_ERRORS, "Cluster messages (chat, friends, moves between nodes) not published."),
    Def::counter(CLUSTER_STALE, "Cluster messages ignored as out of date."),
    Def::gauge(MATCH_TICKETS, "Matchmaking tickets waiting, as of the last pass."),
    Def::histogram(MATCH_PASS_SECONDS, "Time one matchmaking pass takes: reading the queue and matching."),
    Def::counter(MATCHES, "Matches formed, by mode."),
    Def::histogram(MATCH_WAIT_SECONDS, "How long a matched ticket waited, by mode."),
    Def::counter(MATCH_TIMEOUTS, "Matchmaking tickets that timed out without a match, by mode."),
    Def::counter(
        CHAT_LOG_LOST,
        "World and room chat lines not written to the moderators' log (queue full or database down).",
    ),
];
