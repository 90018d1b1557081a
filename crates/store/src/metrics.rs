//! The storage layer's Prometheus metrics: their names and what they measure.

use rsgame_kit::telemetry::metrics::Def;

/// Query latency, by backend and operation.
pub const DB_QUERY_SECONDS: &str = "db_query_duration_seconds";
/// Pool connections in use, by backend.
pub const DB_POOL_IN_USE: &str = "db_pool_connections_in_use";
/// Cache reads that found their key, by backend.
pub const CACHE_HITS: &str = "cache_hits_total";
/// Cache reads that did not, by backend.
pub const CACHE_MISSES: &str = "cache_misses_total";
/// Cache operations that failed, by backend.
pub const CACHE_ERRORS: &str = "cache_errors_total";
/// Reservations refused at their limit, by limit.
pub const CACHE_RESERVED_REFUSED: &str = "cache_reserved_refused_total";
/// Publishes the bus could not deliver, by backend.
pub const BUS_PUBLISH_FAILURES: &str = "bus_publish_failures_total";

/// The metrics the storage layer records.
pub const METRICS: &[Def] = &[
    Def::histogram(DB_QUERY_SECONDS, "Database query latency, by backend and operation."),
    Def::gauge(DB_POOL_IN_USE, "Database pool connections in use, by backend."),
    Def::counter(CACHE_HITS, "Cache reads that found their key, by backend."),
    Def::counter(CACHE_MISSES, "Cache reads that did not find their key, by backend."),
    Def::counter(CACHE_ERRORS, "Cache operations that failed, by backend."),
    Def::counter(CACHE_RESERVED_REFUSED, "Cache reservations refused at a limit (total or per owner), by limit."),
    Def::counter(BUS_PUBLISH_FAILURES, "Bus publishes that failed, by backend."),
];
