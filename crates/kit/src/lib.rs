//! rsgame's shared toolkit: what every service and every process of rsgame needs, whichever
//! role it runs.
//!
//! # Layout
//!
//! - [`config`]: the configuration loader (defaults, one YAML file, `RSGAME_*` environment
//!   variables, errors that name the key and its origin), the [`config::Section`] each crate's
//!   section implements, and kit's own sections (`http`, `log`, `auth`, …).
//! - [`error`]: go-game's error codes and `{code, msg, data}` envelope, and the one [`Error`]
//!   type handlers return.
//! - [`telemetry`]: logs (console, rotating files), Prometheus metrics, OpenTelemetry traces.
//! - [`http`]: the middleware, health and metrics routes and serving that every HTTP
//!   listener shares.
//! - [`memory`]: freed memory handed back to the system once a crowd has left.
//! - [`listen`]: accepting HTTP connections: caps in total and per address, header and
//!   idle timeouts, bounded TLS handshakes, graceful shutdown.
//! - [`proxy`]: the real client address behind trusted reverse proxies.
//! - [`shutdown`]: the shutdown signal and the hooks components register for it.
//! - [`tls`]: rustls configuration from PEM files and a TLS listener.
//! - [`time`]: UTC calendar helpers (timestamps for clients, log file dates).
//! - [`auth`]: access tokens (HS256 JWTs with go-game's `jwtUserId` claim), issued and checked.
//! - [`extract`]: request extractors that answer bad input in go-game's envelope.
//! - [`fetch`]: a bounded HTTP client for calls to outside services (WeChat).
//! - [`governance`]: REST governance: per-request deadlines, per-IP rate limits, adaptive
//!   load shedding.
//! - [`data`]: [`data::DataFile`], a game data file loaded into your type, checked and
//!   hot-reloaded.
//! - [`apidoc`]: the OpenAPI document (`/openapi.json`) and its browsable page (`/docs`).

#![warn(missing_docs)]

pub mod apidoc;
pub mod auth;
pub mod config;
pub mod data;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod governance;
pub mod http;
pub mod listen;
pub mod memory;
pub mod proxy;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod tls;

pub use error::{Code, Envelope, Error, Reply, Result};
pub use shutdown::Shutdown;
