//! rsgame's bots: a game client (TCP, WebSocket or KCP; protobuf or JSON), the simulated
//! players of `rsgame bot` / `rsgame-bot` ([`bot`]), and the figures the load tools report.

#![warn(missing_docs)]

pub mod bot;
pub mod client;
pub mod stats;

pub use client::{Account, Client, ClientError, Wire};
