//! rsgame's gRPC layer: the services generated from `proto/usercenter.proto` and
//! `proto/basic.proto`, the mapping between [`rsgame_kit::Error`] and gRPC statuses, and
//! server and channel helpers. Each service crate implements the generated server over its
//! trait, and a client that implements the same trait, so the API layer never knows which
//! one it holds. (Discovery, balancing and governance come with the distributed issue.)

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

/// A lazily connecting channel to `url` (`http://host:port`): calls made while the server is
/// away fail with 400503 and the channel reconnects by itself.
pub fn channel(url: &str) -> Result<tonic::transport::Channel, Error> {
    let ep = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| Error::internal(Code::Failed, e))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    Ok(ep.connect_lazy())
}

/// Serves `router` on `listener` until `shutdown` triggers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: tonic::transport::server::Router,
    shutdown: rsgame_kit::Shutdown,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router.serve_with_incoming_shutdown(incoming, shutdown.triggered()).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
