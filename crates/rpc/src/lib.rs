//! rsgame's gRPC layer: the services generated from `proto/usercenter.proto`,
//! `proto/basic.proto` and `proto/gamesvc.proto`, the mapping between [`rsgame_kit::Error`]
//! and gRPC statuses, and server and channel helpers. Each service crate implements the
//! generated server over its trait, and a client that implements the same trait, so the API
//! layer never knows which one it holds.
//!
//! # Layout
//!
//! - [`pb`]: the generated messages, servers and clients (and etcd's, for [`etcd`]).
//! - [`client`]: the channel every client runs on: power of two choices over the servers,
//!   deadlines handed on, safe retries, adaptive throttling, trace context.
//! - [`server`](mod@server): the layer every server runs under: the caller's trace and
//!   deadline, load shedding, rate limits, metrics.
//! - [`config`]: the `rpc.*` and `discovery.*` configuration sections and their checks.
//! - [`discovery`]: registration under a lease and watched directories of servers.
//! - [`etcd`]: rsgame's own etcd v3 client (range, put, txn, leases, watch).
//! - [`metrics`]: the gRPC layer's Prometheus metrics.
//! - [`tls`]: mutual TLS between processes, for studios that run their own CA.
//!
//! # Adding a service with a local and a remote implementation
//!
//! 1. Declare its messages and methods in a `.proto` file; `tonic-build` compiles them in
//!    `build.rs` (this crate's `build.rs` does it for the demo's services).
//! 2. Write the trait the API layer calls, and a local implementation over the database
//!    (the demo: `rsgame_game::Game` and `GameLogic`).
//! 3. Serve it: implement the generated `…_server` trait by calling any implementation of
//!    your trait, turning its errors into statuses with [`status`]; run it with [`serve`]
//!    behind [`RequireToken`] (`rsgame_game::rpc::GameRpc`).
//! 4. Call it: implement your trait again over the generated client on a [`channel`],
//!    turning statuses back into the same errors with [`error`] (`RemoteGame`).
//! 5. Let configuration choose: the demo holds an `Arc<dyn Game>` that is the local logic,
//!    or the remote one when `rpc.game_url` is set.
//!
//! The remote half, against the demo's game service:
//!
//! ```no_run
//! use rsgame_rpc::pb::gamesvc::{UserReq, game_client::GameClient};
//!
//! /// What the API layer calls, wherever the service runs.
//! trait Coins {
//!     fn coins(&self, user: i64) -> impl Future<Output = rsgame_kit::Result<i64>> + Send;
//! }
//!
//! /// The service in another process.
//! struct RemoteCoins(GameClient<rsgame_rpc::RpcChannel>);
//!
//! impl Coins for RemoteCoins {
//!     async fn coins(&self, user: i64) -> rsgame_kit::Result<i64> {
//!         let pack = self.0.clone().get_pack(UserReq { user_id: user }).await.map_err(rsgame_rpc::error)?;
//!         Ok(pack.into_inner().player.map_or(0, |p| p.coins))
//!     }
//! }
//!
//! # fn connect() -> rsgame_kit::Result<RemoteCoins> {
//! // A lazy channel: calls while the server is away fail with 400503 and it reconnects.
//! // (`Connector::channel` makes one from configuration: a list of URLs, or `etcd`.)
//! let remote = RemoteCoins(GameClient::new(rsgame_rpc::channel("http://127.0.0.1:2003", "rpc-token")?));
//! # Ok(remote) }
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod discovery;
pub mod etcd;
pub mod metrics;
pub mod server;
pub mod tls;

use rsgame_kit::{Code, Error};

pub use client::{ClientOptions, Connector, RpcChannel};

/// The generated code.
pub mod pb {
    /// `proto/usercenter.proto`.
    #[allow(missing_docs, clippy::all)]
    pub mod usercenter {
        tonic::include_proto!("usercenter");
    }
    /// `proto/basic.proto`.
    #[allow(missing_docs, clippy::all)]
    pub mod basic {
        tonic::include_proto!("basic");
    }
    /// `proto/gamesvc.proto`.
    #[allow(missing_docs, clippy::all)]
    pub mod gamesvc {
        tonic::include_proto!("gamesvc");
    }
    /// etcd's `mvccpb` (the subset in `proto/etcd/kv.proto`).
    #[allow(missing_docs, clippy::all)]
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// etcd's `etcdserverpb` (the subset in `proto/etcd/rpc.proto`).
    #[allow(missing_docs, clippy::all)]
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

/// The metadata key that carries the envelope code of an error.
pub const CODE_KEY: &str = "x-rsgame-code";

/// A service error as a gRPC status: the matching gRPC code, the public message, and the
/// envelope code in [`CODE_KEY`] so a remote caller rebuilds the same error. A server-side
/// cause is logged here and never sent.
pub fn status(e: Error) -> tonic::Status {
    if e.code().is_internal() {
        tracing::error!(code = e.code().as_u32(), error = %rsgame_kit::error::DisplayChain(&e), "rpc failed");
    }
    let mut st = tonic::Status::new(tonic::Code::from_i32(e.code().grpc_code()), e.public_msg());
    if let Ok(v) = e.code().as_u32().to_string().parse() {
        st.metadata_mut().insert(CODE_KEY, v);
    }
    st
}

/// A gRPC status back as a service error: the envelope code from [`CODE_KEY`] when the server
/// is ours, else one chosen from the gRPC code (an unreachable server is 400503).
pub fn error(st: tonic::Status) -> Error {
    let code = st.metadata().get(CODE_KEY).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok());
    match code.and_then(Code::from_u32) {
        Some(c) if c.is_internal() => Error::internal(c, st),
        Some(c) => Error::msg(c, st.message()),
        None => match st.code() {
            tonic::Code::Unavailable => Error::internal(Code::Unavailable, st),
            tonic::Code::DeadlineExceeded => Error::internal(Code::Timeout, st),
            _ => Error::internal(Code::Failed, st),
        },
    }
}

/// The metadata key that carries the shared service token (`rpc.token`).
pub const TOKEN_KEY: &str = "x-rsgame-rpc-token";

/// A channel to the servers at `url` (`http://host:port`, or several separated by commas)
/// sending `token` with each call, with the default [`ClientOptions`]. It connects lazily:
/// calls made while no server is up fail with 400503, and it reconnects by itself.
pub fn channel(url: &str, token: &str) -> Result<RpcChannel, Error> {
    let opts = ClientOptions { token: token.to_owned(), ..ClientOptions::default() };
    let ch = RpcChannel::new("rpc", &opts, &[])?;
    ch.set_endpoints(&client::url_list(url))?;
    Ok(ch)
}

/// Checks the service token on every incoming call (constant-time compare). An empty
/// expected token refuses every call: gRPC is never open.
#[derive(Clone)]
pub struct RequireToken(std::sync::Arc<String>);

impl RequireToken {
    /// Expects `token`.
    pub fn new(token: &str) -> RequireToken {
        RequireToken(std::sync::Arc::new(token.to_owned()))
    }

    /// The layer for `tonic::transport::Server::builder().layer(…)`.
    pub fn layer(self) -> tonic::service::InterceptorLayer<RequireToken> {
        tonic::service::InterceptorLayer::new(self)
    }
}

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        // Never open: a server built without a token refuses every call.
        if self.0.is_empty() {
            tracing::warn!("rpc call refused: this server has no service token configured");
            return Err(status(Error::msg(Code::Unauthorized, "this server has no service token configured")));
        }
        let sent = req.metadata().get(TOKEN_KEY).map(|v| v.as_bytes()).unwrap_or_default();
        if rsgame_kit::auth::constant_time_eq(sent, self.0.as_bytes()) {
            Ok(req)
        } else {
            tracing::warn!("rpc call refused: missing or wrong service token");
            Err(status(Error::msg(Code::Unauthorized, "a valid service token is required")))
        }
    }
}

/// The layer stack of every rsgame gRPC server: the service-token check (a call without it
/// costs nothing more), then governance (trace, deadline, shedding, rate limits, metrics).
pub type Secured = tower::layer::util::Stack<
    server::GovernLayer,
    tower::layer::util::Stack<tonic::service::InterceptorLayer<RequireToken>, tower::layer::util::Identity>,
>;

/// A gRPC server under `governance` that checks `token` on every call (an empty token
/// refuses every call), over mutual TLS when `tls` is given.
pub fn server(
    token: &str,
    governance: &rsgame_kit::config::GovernanceConfig,
    tls: Option<&tls::RpcTls>,
) -> Result<tonic::transport::Server<Secured>, Error> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        builder = builder
            .tls_config(t.server())
            .map_err(|e| Error::internal(Code::Failed, std::io::Error::other(format!("rpc.tls_*: {e}"))))?;
    }
    Ok(builder.tcp_nodelay(true).layer(RequireToken::new(token).layer()).layer(server::GovernLayer::new(governance)))
}

/// Serves `router` (made from [`server()`]) on `listener` until `shutdown` triggers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: tonic::transport::server::Router<Secured>,
    shutdown: rsgame_kit::Shutdown,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router.serve_with_incoming_shutdown(incoming, shutdown.triggered()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let same = rsgame_kit::auth::constant_time_eq;
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab") && !same(b"", b"a"));
        let mut check = RequireToken::new("s3cret");
        let mut req = tonic::Request::new(());
        assert!(tonic::service::Interceptor::call(&mut check, tonic::Request::new(())).is_err());
        req.metadata_mut().insert(TOKEN_KEY, "s3cret".parse().expect("ascii"));
        assert!(tonic::service::Interceptor::call(&mut check, req).is_ok());
    }

    #[test]
    fn errors_cross_the_wire_with_their_code() {
        let back = error(status(Error::new(Code::UsernameTaken)));
        assert_eq!(back.code(), Code::UsernameTaken);
        assert_eq!(back.public_msg(), "username already taken");
        let st = status(Error::internal(Code::Db, std::io::Error::other("password=hunter2")));
        assert!(!st.message().contains("hunter2"), "causes stay on the server");
        assert_eq!(st.code(), tonic::Code::Internal);
        assert_eq!(error(tonic::Status::unavailable("down")).code(), Code::Unavailable);
    }
}
