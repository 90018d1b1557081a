//! WebSocket transport on the HTTP listener (`/ws`, and `/wss` as go-game's nginx exposed it).
//!
//! Binary messages carry zinx frames — one or several per message, and a frame may span
//! messages. Text messages carry JSON `{"id":…,"data":{…}}`; a session that sends text is
//! answered in text. `?codec=json` picks JSON bodies for binary frames.

use std::io;
use std::sync::Arc;

use crate::config::BodyCodec;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use rsgame_kit::http::Peer;

use crate::codec::Wire;
use crate::conn::{Input, Link, run};
use crate::server::Shared;
use crate::session::capture::Out;
use crate::session::{CloseReason, Transport};

/// Query parameters of the upgrade request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WsParams {
    codec: Option<BodyCodec>,
}

/// The `/ws` and `/wss` routes.
pub(crate) fn routes(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/ws", axum::routing::get(upgrade))
        .route("/wss", axum::routing::get(upgrade))
        .with_state(shared)
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(params): Query<WsParams>,
    ws: WebSocketUpgrade,
) -> Response {
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
    // Small buffers: game messages are small, and an idle session should cost little. The
    // read buffer grows for a large message and the write buffer is not kept between writes.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(max_msg)
        .max_frame_size(max_msg)
        .on_upgrade(move |socket| run(shared, permit, WsLink(socket), peer.0, Transport::WebSocket, wire))
}

/// A WebSocket as a [`Link`].
struct WsLink(WebSocket);

impl Link for WsLink {
    async fn read(&mut self, buf: &mut BytesMut) -> Input {
        match self.0.next().await {
            Some(Ok(Message::Binary(data))) => {
                let n = data.len();
                if buf.is_empty() {
                    // Usually whole frames: take the message's bytes without a copy.
                    *buf = BytesMut::from(data);
                } else {
                    buf.extend_from_slice(&data);
                }
                Input::Data(n)
            }
            Some(Ok(Message::Text(text))) => Input::Text(Bytes::from(text)),
            // Control frames count as traffic; tungstenite answers pings itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Input::Control,
            Some(Ok(Message::Close(_))) | None => Input::Closed,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket read failed");
                Input::Failed(CloseReason::BadFrame)
            }
        }
    }

    async fn write(&mut self, out: &mut Out) -> io::Result<u64> {
        let mut bytes = 0u64;
        // Text mode: one JSON message per item; feed them all, flush once.
        for b in &out.items {
            bytes += b.len() as u64;
            self.0.feed(text_message(b.clone())).await.map_err(io::Error::other)?;
        }
        // Binary: every queued frame in one message, taken without a copy.
        if !out.frames.is_empty() {
            let frames = out.frames.split().freeze();
            bytes += frames.len() as u64;
            self.0.feed(Message::Binary(frames)).await.map_err(io::Error::other)?;
        }
        self.0.flush().await.map_err(io::Error::other)?;
        Ok(bytes)
    }

    async fn close(&mut self, reason: CloseReason) {
        let frame = CloseFrame { code: close_code(reason), reason: Utf8Bytes::from(reason.as_str()) };
        let _ = self.0.send(Message::Close(Some(frame))).await;
    }
}

fn text_message(b: Bytes) -> Message {
    match Utf8Bytes::try_from(b) {
        Ok(t) => Message::Text(t),
        // Text-wire bytes come from serde_json and are UTF-8; never send invalid text.
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
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
