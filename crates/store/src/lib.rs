//! rsgame's storage. Today: the database — one code path for SQLite (the embedded default),
//! MySQL/MariaDB and PostgreSQL, chosen by `database.url`, with go-game's pool settings, a
//! slow-query log, metrics, and versioned migrations. The cache (memory, Redis) and the message
//! bus (memory, NATS, Redis streams, Kafka) come with the rest of the storage issue.
//!
//! # Layout
//!
//! - [`db`]: the pool, statements built by sea-query for each backend, rows read the same way.
//! - [`migrate`]: versioned migrations and the first schema (go-game's `mem_user`, `mem_logs`,
//!   `basic_file`).

#![warn(missing_docs)]

pub mod db;
pub mod migrate;

pub use db::{Backend, Db, Row, StoreError};
