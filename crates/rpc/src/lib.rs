//! rsgame's gRPC layer: the services generated from `proto/usercenter.proto`,
//! `proto/basic.proto` and `proto/gamesvc.proto`, the mapping between [`rsgame_kit::Error`]
//! and gRPC statuses, and server and channel helpers. Each service crate implements the
//! generated server over its trait, and a client that implements the same trait, so the API
//! layer never knows which one it holds. (Discovery and balancing come with the distributed
//! issue.)
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
//! struct RemoteCoins(GameClient<rsgame_rpc::AuthChannel>);
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
//! let remote = RemoteCoins(GameClient::new(rsgame_rpc::channel("http://127.0.0.1:2003", "rpc-token")?));
//! # Ok(remote) }
//! ```

#![warn(missing_docs)]

use std::time::Duration;

use rsgame_kit::{Code, Error};

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

/// Adds the service token to every outgoing call.
#[derive(Clone)]
pub struct AddToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for AddToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert(TOKEN_KEY, t.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry the service token.
pub type AuthChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AddToken>;

/// A lazily connecting channel to `url` (`http://host:port`) sending `token` with each call:
/// calls made while the server is away fail with 400503 and the channel reconnects by itself.
pub fn channel(url: &str, token: &str) -> Result<AuthChannel, Error> {
    let ep = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| Error::internal(Code::Failed, e))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    let value = if token.is_empty() {
        None
    } else {
        Some(token.parse().map_err(|_| Error::msg(Code::Failed, "rpc.token must be printable ASCII"))?)
    };
    Ok(tonic::service::interceptor::InterceptedService::new(ep.connect_lazy(), AddToken(value)))
}

/// Checks the service token on every incoming call (constant-time compare). An empty
/// expected token accepts every call: only allowed on a loopback address (see `serve.rs`).
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
        if self.0.is_empty() {
            return Ok(req);
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

/// The layer stack of every rsgame gRPC server: the service-token check.
pub type Secured =
    tower::layer::util::Stack<tonic::service::InterceptorLayer<RequireToken>, tower::layer::util::Identity>;

/// A gRPC server that checks `token` on every call (an empty token checks nothing: loopback
/// deployments only, which the configuration enforces).
pub fn server(token: &str) -> tonic::transport::Server<Secured> {
    tonic::transport::Server::builder().layer(RequireToken::new(token).layer())
}

/// Serves `router` (made from [`server`]) on `listener` until `shutdown` triggers.
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
