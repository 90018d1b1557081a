//! The storage layer's configuration sections: `database.*`, `cache.*` and `bus.*`, each
//! checked by its own [`Section::check`] when the process loads its configuration.

use rsgame_kit::config::{Invalid, Section};
use serde::{Deserialize, Serialize};

/// `database.*` — go-game's pool keys. Read by the storage layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…`, `mysql://user:pass@host/db` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Most connections open at once (MySQL and PostgreSQL; SQLite's is `sqlite_max_open`).
    pub max_open: u32,
    /// Most connections open at once to a SQLite file. Each is a thread of its own over one
    /// file with one writer at a time, so more connections add contention, not throughput:
    /// measured with the server on one core (docs/benchmarks.md), 18,000 logins at 1,000 a
    /// second took p50 3.3 s with 20 connections and 1.3 ms with 2.
    pub sqlite_max_open: u32,
    /// Connections kept open when idle.
    pub max_idle: u32,
    /// Seconds an idle connection is kept.
    pub idle_time_secs: u64,
    /// Seconds a connection lives at most.
    pub lifetime_secs: u64,
    /// Queries slower than this are logged at warn level.
    pub slow_query_ms: u64,
    /// Run pending migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://./data/rsgame.db?mode=rwc".into(),
            max_open: 20,
            sqlite_max_open: 2,
            max_idle: 5,
            idle_time_secs: 600,
            lifetime_secs: 3600,
            slow_query_ms: 200,
            migrate_on_start: true,
        }
    }
}

/// Which cache backend.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// In-process (moka): the embedded default.
    #[default]
    Memory,
    /// Redis at `cache.url`.
    Redis,
}

/// `cache.*` — read by the storage layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `memory` or `redis`.
    pub backend: CacheBackend,
    /// Redis URL: `redis://[:password@]host:6379/db`.
    pub url: String,
    /// Namespace put before every key.
    pub prefix: String,
    /// Most keys the in-process cache holds (least recently used evicted first: LRU).
    pub max_entries: u64,
    /// In process: most captchas, codes and QR tickets held at once. They are kept apart from
    /// the LRU, so no flood of other keys evicts them; past this a new one is refused. 0 = no
    /// limit.
    pub reserved_max: usize,
    /// In process: most captchas, codes and QR tickets one client address holds at once. 0 =
    /// no limit.
    pub reserved_per_owner: usize,
    /// With `rediss://`: a PEM file of the CA that signed Redis's certificate; empty: the
    /// system's roots.
    pub tls_ca_file: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            backend: CacheBackend::Memory,
            url: "redis://127.0.0.1:6379/0".into(),
            prefix: "rsgame:".into(),
            max_entries: 100_000,
            reserved_max: 100_000,
            reserved_per_owner: 32,
            tls_ca_file: String::new(),
        }
    }
}

/// `bus.*` — read by the storage layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `memory://`, `redis://…`, `nats://…` or `kafka://host:port[,host:port…]`.
    pub url: String,
    /// Namespace put before every topic and group.
    pub prefix: String,
    /// Messages a subscriber may hold unacknowledged.
    pub max_in_flight: usize,
    /// Seconds before a message a member took but never acknowledged goes to another member.
    pub reclaim_after_secs: u64,
    /// Messages a Redis or NATS stream keeps (older ones trimmed).
    pub max_len: u64,
    /// How long a publish retries an unreachable broker before it fails, milliseconds.
    pub publish_timeout_ms: u64,
    /// With `rediss://`: a PEM file of the CA that signed Redis's certificate; empty: the
    /// system's roots.
    pub tls_ca_file: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: "memory://".into(),
            prefix: "rsgame.".into(),
            max_in_flight: 256,
            reclaim_after_secs: 30,
            max_len: 100_000,
            publish_timeout_ms: 5_000,
            tls_ca_file: String::new(),
        }
    }
}

impl Section for DatabaseConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.url.is_empty() {
            return Err(Invalid::new("url", "must not be empty"));
        }
        if self.max_open == 0 {
            return Err(Invalid::new("max_open", "must be at least 1"));
        }
        if self.max_idle > self.max_open {
            return Err(Invalid::new("max_idle", "must not exceed max_open"));
        }
        if self.sqlite_max_open == 0 {
            return Err(Invalid::new("sqlite_max_open", "must be at least 1"));
        }
        Ok(())
    }
}

impl Section for CacheConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.backend == CacheBackend::Redis
            && !(self.url.starts_with("redis://") || self.url.starts_with("rediss://"))
        {
            return Err(Invalid::new("url", "must start with redis:// or rediss:// (TLS)"));
        }
        if self.max_entries == 0 {
            return Err(Invalid::new("max_entries", "must be at least 1"));
        }
        Ok(())
    }
}

impl Section for BusConfig {
    fn check(&self) -> Result<(), Invalid> {
        let schemes = ["memory://", "redis://", "rediss://", "nats://", "tls://", "kafka://"];
        if !schemes.iter().any(|s| self.url.starts_with(s)) {
            return Err(Invalid::new("url", "must start with memory://, redis://, nats:// or kafka://"));
        }
        if self.max_in_flight == 0 {
            return Err(Invalid::new("max_in_flight", "must be at least 1"));
        }
        Ok(())
    }
}
