//! rsgame's storage. Today: the database — one code path for SQLite (the embedded default),
//! MySQL/MariaDB and PostgreSQL, chosen by `database.url`, with go-game's pool settings, a
//! slow-query log, metrics, and versioned migrations; and the cache (in-process or Redis). The
//! message bus: in-process, Redis Streams, NATS JetStream and Kafka.
//!
//! # Layout
//!
//! - [`config`]: the `database.*`, `cache.*` and `bus.*` configuration sections and their checks.
//! - [`db`]: the pool, statements built by sea-query for each backend, rows read the same way.
//! - [`bus`]: publish / subscribe with consumer groups: in-process, Redis Streams, NATS JetStream,
//!   Kafka.
//! - [`cache`]: the typed cache over moka (in-process) or Redis, with single-flight loading.
//! - [`migrate`]: versioned migrations and the first schema (go-game's `mem_user`, `mem_logs`,
//!   `basic_file`).
//! - [`metrics`]: the storage layer's Prometheus metrics.
//! - [`logship`]: the Kafka log sink (shipped log lines on go-game's `gogame-log` topic), for
//!   the toolkit's log shipping.

#![warn(missing_docs)]

pub mod bus;
pub mod cache;
pub mod config;
pub mod db;
pub mod logship;
pub mod metrics;
pub mod migrate;

pub use bus::{Bus, BusOptions, Delivery, Subscription};
pub use cache::Cache;
pub use db::{Backend, Db, Row, StoreError, Tx};
pub use logship::KafkaLogSink;
