//! rsgame's real-time world: go-game's game protocol over the gate, made into a real MMO
//! server. A game node runs one [`World`]: it checks every login's token, owns the online
//! players, and runs each scene and room as its own task with a fixed tick.
//!
//! # Layout
//!
//! - [`config`]: the `world.*` configuration section and its checks.
//! - [`aoi`]: the nine-grid area of interest.
//! - [`caps`]: what a client asked for beyond go-game's protocol (none: exactly go-game's).
//! - [`scene`]: a scene's simulation (joins, validated moves, per-tick batches, combat,
//!   monster AI) — plain code, tested without sockets or clocks.
//! - [`crowd`]: what a player in a crowd is sent of the others' moves: the nearest every
//!   tick, the rest in turns.
//! - [`lockstep`]: frame-sync rooms: inputs bundled per frame at a fixed rate, catch-up.
//! - [`data`]: the scenes, monsters and match modes from `world.yaml`.
//! - [`matchmaker`]: match modes, tickets, queries and the matching pass; `queue`: where
//!   tickets wait (in process, or in Redis for every game node).
//! - [`store`]: saved places, friends, blacklists and private chat in the database.
//! - [`party`]: parties: the rules (invite, join, leave, kick, who leads); `store`: where
//!   they are kept (in process, or in Redis for every game node).
//! - [`metrics`]: the world's Prometheus metrics.
//! - [`node`]: the [`World`]: login, sessions, rooms, chat, friends, persistence, and the
//!   gate handlers for every message id (docs/protocol.md).
//! - `room`: the scene and lockstep rooms (on the gate's room API), the saver and the rewarder.
//! - `testdb` (tests only): a migrated SQLite database and the game service for the tests.
//! - [`cluster`]: the world over several game nodes: presence in the shared cache, chat,
//!   friend notices and kicks over the bus.

#![warn(missing_docs)]

pub mod aoi;
pub mod caps;
pub mod cluster;
pub mod config;
pub mod crowd;
pub mod data;
pub mod lockstep;
pub mod matchmaker;
pub mod metrics;
pub mod node;
pub mod party;
mod room;
pub mod scene;
pub mod store;
#[cfg(test)]
mod testdb;

pub use node::{Directory, Profile, Unflushed, World, WorldDeps};
