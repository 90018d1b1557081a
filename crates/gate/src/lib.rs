//! rsgame's connection engine — zinx's role in go-game, faster and harder to break.
//!
//! Bytes → frame → session → router → handler: a transport (TCP, TLS, WebSocket, KCP)
//! delivers bytes; the frame codec cuts zinx frames out of them (size-limited before the body
//! is read); the connection's one task dispatches each frame, in order, to the handler
//! registered for its message id; handlers answer through the session's bounded outbound
//! queue, which the same task writes out — replies in one coalesced write right after the
//! read that caused them, pushes from elsewhere as they come.
//!
//! # Layout
//!
//! - [`config`]: the `gate.*` configuration section and its checks.
//! - [`frame`]: zinx's frame layouts and the size-limited decoder.
//! - [`codec`]: protobuf and JSON bodies, WebSocket JSON text messages, wire formats.
//! - [`session`]: a connection as the server sees it: user, properties, outbound queue, close.
//! - [`router`]: message id → handler, before / after hooks, panic isolation.
//! - `ping`: go-game's Ping, built into every router, answered without an allocation.
//! - [`room`]: a game's own state and rules on one task, with its own tick.
//! - [`aoi`]: the nine-grid area of interest, for sending to a scene's view.
//! - `limits`: connection limits (total, per IP) and the per-session message rate.
//! - `conn`: one connection's life in one task (read, dispatch, write) over any link.
//! - `ws`: the WebSocket routes, the opening handshake and the WebSocket link.
//! - `wsframe`: RFC 6455 frame headers, masks and the rules a client's frame must keep.
//! - [`kcp`]: KCP on our own UDP listener: the conversation-id handshake (a stateless
//!   cookie), sessions as byte streams, and the client's side of the handshake.
//! - [`server`]: listeners, the session hub, fan-out, hooks, shutdown.
//! - [`metrics`]: the gate's Prometheus metrics.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use rsgame_gate::{Gate, Router};
//! let (gate_cfg, tls) = (rsgame_gate::config::GateConfig::default(), rsgame_kit::config::TlsConfig::default());
//! let shutdown = rsgame_kit::Shutdown::new();
//! let router = Router::builder().build(); // Ping (1000 → 2000) is built in
//! let gate = Gate::builder(&gate_cfg, &tls, router).start(&shutdown).await?;
//! let http_routes = gate.ws_routes(); // merge into the HTTP router for /ws and /wss
//! # let _ = http_routes; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod aoi;
pub mod codec;
pub mod config;
mod conn;
pub mod frame;
pub mod kcp;
mod limits;
pub mod metrics;
mod ping;
pub mod room;
pub mod router;
pub mod server;
pub mod session;
mod ws;
mod wsframe;

pub use codec::{Message, Wire};
pub use frame::{Frame, FrameCodec, Layout};
pub use room::{Room, RoomCtx, RoomHandle};
pub use router::{Outcome, RouteError, Router, RouterBuilder};
pub use server::{Gate, GateBuilder, GateError, Hub, send_many};
pub use session::{CloseReason, Outbox, SendError, Session, Transport};
