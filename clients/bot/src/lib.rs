//! rsgame's bots: a game client (TCP, WebSocket or KCP; protobuf or JSON), the simulated
//! players of `rsgame bot` / `rsgame-bot` ([`bot`]), and the figures the load tools report.
//!
//! # Layout
//!
//! - [`client`]: a game client over TCP, WebSocket or KCP, with the REST calls a player makes
//!   before connecting.
//! - [`bot`]: the simulated players, their scenarios and reports.
//! - [`stats`]: percentiles, a latency histogram shared by many tasks, and a server
//!   process's CPU time and memory.

#![warn(missing_docs)]

pub mod bot;
pub mod client;
pub mod stats;

pub use client::{Account, Client, ClientError, Wire};
