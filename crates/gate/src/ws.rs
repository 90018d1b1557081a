//! WebSocket transport on the HTTP listener (`/ws`, and `/wss` as go-game's nginx exposed it).
//!
//! Binary messages carry zinx frames — one or several per message, and a frame may span
//! messages. Text messages carry JSON `{"id":…,"data":{…}}`; a session that sends text is
//! answered in text. `?codec=json` picks JSON bodies for binary frames.
//!
//! The upgrade (HTTP/1.1 `Upgrade`, or HTTP/2's extended CONNECT) is answered here and the
//! frames are read and written by [`WsLink`] on the raw stream, not by a WebSocket library:
//! the link keeps no buffer between messages once a session is quiet (a library's read and
//! write buffers, held for the connection's life, were a third of an idle session's memory),
//! and a binary batch goes out as one header and the batch's bytes in one vectored write.

use std::io;
use std::sync::Arc;

use crate::config::BodyCodec;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use hyper_util::rt::TokioIo;
use rsgame_kit::http::Peer;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::Wire;
use crate::conn::{Generic, Input, Link, MAX_BATCH, ReadSome, run};
use crate::server::Shared;
use crate::session::capture::Out;
use crate::session::{CloseReason, Transport};
use crate::wsframe::{self, MAX_HEADER, Opcode, Violation};

/// Query parameters of the upgrade request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WsParams {
    codec: Option<BodyCodec>,
}

/// The `/ws` and `/wss` routes.
pub(crate) fn routes(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/ws", axum::routing::any(upgrade))
        .route("/wss", axum::routing::any(upgrade))
        .with_state(shared)
}

/// What a request that is not a WebSocket opening gets.
fn refuse(status: StatusCode, why: &'static str) -> Response {
    let mut r = (status, why).into_response();
    if status == StatusCode::UPGRADE_REQUIRED {
        r.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
    r
}

/// Whether the comma-separated header `name` holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Checks an opening handshake (RFC 6455 §4.2.1, RFC 8441 for HTTP/2); returns the response
/// header value for `Sec-WebSocket-Accept` (HTTP/1.1) or `None` (HTTP/2, which has none).
fn handshake(req: &Request) -> Result<Option<HeaderValue>, (StatusCode, &'static str)> {
    let headers = req.headers();
    let accept = if req.version() <= Version::HTTP_11 {
        if req.method() != Method::GET {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "a WebSocket opens with GET"));
        }
        if !has_token(headers, header::CONNECTION, "upgrade") || !has_token(headers, header::UPGRADE, "websocket") {
            return Err((StatusCode::UPGRADE_REQUIRED, "this endpoint speaks WebSocket only"));
        }
        let key =
            headers.get(header::SEC_WEBSOCKET_KEY).ok_or((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"))?;
        Some(accept_key(key.as_bytes()))
    } else {
        let websocket = req.extensions().get::<hyper::ext::Protocol>().is_some_and(|p| p.as_str() == "websocket");
        if req.method() != Method::CONNECT || !websocket {
            return Err((StatusCode::BAD_REQUEST, "a WebSocket over HTTP/2 opens with CONNECT :protocol websocket"));
        }
        None
    };
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Err((StatusCode::UPGRADE_REQUIRED, "Sec-WebSocket-Version must be 13"));
    }
    Ok(accept)
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> HeaderValue {
    use base64::Engine as _;
    use sha1::Digest as _;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut h = sha1::Sha1::new();
    h.update(key);
    h.update(GUID);
    let text = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    // Base64 is always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(params): Query<WsParams>,
    mut req: Request,
) -> Response {
    let accept = match handshake(&req) {
        Ok(a) => a,
        Err((status, why)) => return refuse(status, why),
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(StatusCode::UPGRADE_REQUIRED, "this connection cannot be upgraded");
    };
    let permit = match shared.admit(peer.0.ip()) {
        Ok(p) => p,
        Err(reason) => {
            if let Some(held) = crate::server::REFUSED.hit() {
                tracing::warn!(remote = %peer.0, reason = %reason, refused_since_last = held, "websocket refused");
            }
            let status = if reason == CloseReason::IpLimit {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return (status, reason.as_str()).into_response();
        }
    };
    let wire = Wire::frames(shared.settings.layout, params.codec.unwrap_or(shared.settings.ws_codec));
    // A message may hold several frames; allow a few full-size frames per message.
    let max_msg = (shared.settings.max_body as usize + crate::frame::HEADER_LEN) * 4;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(remote = %peer.0, error = %e, "websocket upgrade failed");
                return;
            }
        };
        // Plain TCP (the usual case): the socket itself, so an idle session waits for
        // readability with no buffer. TLS or HTTP/2: through hyper's stream.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let link = WsLink::new(parts.io.into_inner(), parts.read_buf, max_msg);
                run(shared, permit, link, peer.0, Transport::WebSocket, wire).await;
            }
            Err(upgraded) => {
                let link = WsLink::new(Generic(TokioIo::new(upgraded)), Bytes::new(), max_msg);
                run(shared, permit, link, peer.0, Transport::WebSocket, wire).await;
            }
        }
    });
    match accept {
        Some(accept) => {
            let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
            let h = r.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            r
        }
        None => StatusCode::OK.into_response(),
    }
}

/// A data message's kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Data {
    Binary,
    Text,
}

/// A WebSocket as a [`Link`]: RFC 6455 frames on a byte stream.
struct WsLink<S> {
    io: S,
    /// Bytes read and not yet cut into frames; given back while the session is quiet.
    raw: BytesMut,
    hint: usize,
    /// Largest frame payload, and largest text message.
    max_msg: usize,
    /// The data message being received in fragments, if any.
    partial: Option<Data>,
    /// A text message's fragments so far.
    text: BytesMut,
    /// A pong owed to the client, written before anything else.
    control: BytesMut,
}

impl<S: ReadSome + AsyncWrite + Unpin + Send> WsLink<S> {
    fn new(io: S, already_read: Bytes, max_msg: usize) -> Self {
        WsLink {
            io,
            raw: BytesMut::from(already_read),
            hint: 1024,
            max_msg,
            partial: None,
            text: BytesMut::new(),
            control: BytesMut::new(),
        }
    }

    /// Writes the owed pong. Cancel-safe: what is written is taken off `control` at once.
    async fn flush_control(&mut self) -> io::Result<()> {
        while !self.control.is_empty() {
            let n = self.io.write(&self.control).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.control.advance(n);
        }
        if self.control.capacity() > 0 {
            self.control = BytesMut::new();
        }
        Ok(())
    }

    /// Cuts the next whole frame out of `raw`: `Ok(None)` when more bytes are needed.
    fn next_input(&mut self, buf: &mut BytesMut) -> Result<Option<Input>, CloseReason> {
        loop {
            let h = match wsframe::parse(&self.raw, self.max_msg) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(None),
                Err(v) => return Err(violation(v)),
            };
            let total = h.header_len + h.payload_len;
            if self.raw.len() < total {
                // Room for the rest of the frame in one go.
                self.raw.reserve(total - self.raw.len());
                return Ok(None);
            }
            // Unmasked in place and read from `raw`, then skipped: no allocation per frame.
            wsframe::unmask(&mut self.raw[h.header_len..total], h.mask);
            let payload = &self.raw[h.header_len..total];
            let kind = match (h.opcode, self.partial) {
                (Opcode::Ping, _) => {
                    self.control.clear();
                    wsframe::put_frame(&mut self.control, Opcode::Pong, payload);
                    self.raw.advance(total);
                    return Ok(Some(Input::Control));
                }
                (Opcode::Pong, _) => {
                    self.raw.advance(total);
                    return Ok(Some(Input::Control));
                }
                (Opcode::Close, _) => return Ok(Some(Input::Closed)),
                (Opcode::Binary, None) => Data::Binary,
                (Opcode::Text, None) => Data::Text,
                (Opcode::Continuation, Some(kind)) => kind,
                // A new message inside a fragmented one, or a continuation of nothing.
                _ => return Err(CloseReason::BadFrame),
            };
            self.partial = if h.fin { None } else { Some(kind) };
            let n = payload.len();
            match kind {
                Data::Binary => {
                    // Binary messages are a byte stream of zinx frames: appended as they come.
                    buf.extend_from_slice(payload);
                    self.raw.advance(total);
                    if n > 0 {
                        return Ok(Some(Input::Data(n)));
                    }
                }
                Data::Text => {
                    if self.text.len() + n > self.max_msg {
                        return Err(CloseReason::FrameTooLarge);
                    }
                    self.text.extend_from_slice(payload);
                    self.raw.advance(total);
                    if h.fin {
                        return Ok(Some(Input::Text(std::mem::take(&mut self.text).freeze())));
                    }
                }
            }
        }
    }
}

fn violation(v: Violation) -> CloseReason {
    match v {
        Violation::Protocol => CloseReason::BadFrame,
        Violation::TooLarge => CloseReason::FrameTooLarge,
    }
}

impl<S: ReadSome + AsyncWrite + Unpin + Send> Link for WsLink<S> {
    async fn read(&mut self, buf: &mut BytesMut) -> Input {
        loop {
            if let Err(e) = self.flush_control().await {
                tracing::debug!(error = %e, "websocket pong failed");
                return Input::Failed(CloseReason::IoError);
            }
            match self.next_input(buf) {
                Ok(Some(input)) => return input,
                Ok(None) => {}
                Err(reason) => {
                    tracing::debug!(reason = reason.as_str(), "websocket frame refused");
                    return Input::Failed(reason);
                }
            }
            let spare = self.raw.capacity() - self.raw.len();
            let hint = self.hint.max(MAX_HEADER);
            match self.io.read_some(&mut self.raw, hint).await {
                Ok(0) => return Input::Closed,
                Ok(n) => {
                    if n >= spare.max(self.hint / 2) && self.hint < MAX_BATCH {
                        self.hint *= 2;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    return Input::Failed(CloseReason::IoError);
                }
            }
        }
    }

    async fn write(&mut self, out: &mut Out) -> io::Result<u64> {
        self.flush_control().await?;
        let mut bytes = 0u64;
        // Text mode: one message per item, all in one write.
        if !out.items.is_empty() {
            let len: usize = out.items.iter().map(|b| b.len() + 10).sum();
            let mut msgs = BytesMut::with_capacity(len);
            for b in &out.items {
                bytes += b.len() as u64;
                wsframe::put_frame(&mut msgs, Opcode::Text, b);
            }
            self.io.write_all(&msgs).await?;
        }
        // Binary: every queued frame in one message: its header and the batch, one vectored
        // write.
        if !out.frames.is_empty() {
            let mut h = [0u8; 10];
            let n = wsframe::header(Opcode::Binary, out.frames.len(), &mut h);
            bytes += out.frames.len() as u64;
            let mut both = (&h[..n]).chain(&out.frames[..]);
            self.io.write_all_buf(&mut both).await?;
        }
        Ok(bytes)
    }

    async fn close(&mut self, reason: CloseReason) {
        let _ = self.flush_control().await;
        let mut payload = close_code(reason).to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_str().as_bytes());
        let mut frame = BytesMut::new();
        wsframe::put_frame(&mut frame, Opcode::Close, &payload);
        let _ = self.io.write_all(&frame).await;
        let _ = self.io.flush().await;
        let _ = self.io.shutdown().await;
    }

    fn release(&mut self) {
        if self.raw.is_empty() && self.raw.capacity() > 0 {
            self.raw = BytesMut::new();
        }
    }

    fn holds_buffer(&self) -> bool {
        self.raw.capacity() > 0
    }
}

/// RFC 6455 close codes for our reasons.
fn close_code(reason: CloseReason) -> u16 {
    match reason {
        CloseReason::ClientClosed | CloseReason::Kicked => 1000,
        CloseReason::Shutdown => 1001,
        CloseReason::BadFrame | CloseReason::TooManyBadMessages => 1002,
        // Policy: this token may not be used any more.
        CloseReason::SessionEnded => 1008,
        CloseReason::FrameTooLarge => 1009,
        CloseReason::HandlerPanic | CloseReason::IoError => 1011,
        CloseReason::ServerFull => 1013,
        CloseReason::IdleTimeout
        | CloseReason::FirstFrameTimeout
        | CloseReason::LoginTimeout
        | CloseReason::Flood
        | CloseReason::SlowConsumer
        | CloseReason::IpLimit => 1008,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").as_bytes(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
