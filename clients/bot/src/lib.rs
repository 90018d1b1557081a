//! rsgame's bots: a game client (TCP or WebSocket, protobuf or JSON) used by the `rsgame-bot`
//! load tool and by end-to-end tests.

#![warn(missing_docs)]

pub mod client;
pub mod stats;

pub use client::{Account, Client, ClientError, Wire};
