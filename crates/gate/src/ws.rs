//! WebSocket transport on the HTTP listener (`/ws`, and `/wss` as go-game's nginx exposed it).
//!
//! Binary messages carry zinx frames — one or several per message, and a frame may span
//! messages. Text messages carry JSON `{"id":…,"data":{…}}`; a session that sends text is
//! answered in text. `?codec=json` picks JSON bodies for binary frames.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use rsgame_kit::config::BodyCodec;
use rsgame_kit::http::Peer;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::codec::{Wire, decode_text};
use crate::conn::ReadState;
use crate::frame::{FrameCodec, FrameError};
use crate::metrics::ConnMetrics;
use crate::server::Shared;
use crate::session::{CloseReason, Session, Transport};

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
            tracing::info!(remote = %peer.0, reason = %reason, "websocket refused");
            let status = if reason == CloseReason::IpLimit {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return (status, reason.as_str()).into_response();
        }
    };
    let codec = params.codec.unwrap_or(shared.settings.ws_codec);
    // A message may hold several frames; allow a few full-size frames per message.
    let max_msg = (shared.settings.max_body as usize + crate::frame::HEADER_LEN) * 4;
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(max_msg)
        .max_frame_size(max_msg)
        .on_upgrade(move |socket| run(shared, permit, socket, peer, codec))
}

async fn run(shared: Arc<Shared>, permit: crate::limits::ConnPermit, socket: WebSocket, peer: Peer, codec: BodyCodec) {
    let wire = Wire::frames(shared.settings.layout, codec);
    let (session, rx) = shared.open(peer.0, Transport::WebSocket, wire);
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, rx, session.clone()));
    let reason = read_loop(&shared, &session, stream).await;
    session.close(reason);
    let _ = writer.await;
    shared.finish(&session, permit);
}

async fn read_loop(
    shared: &Shared,
    session: &Session,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
) -> CloseReason {
    let s = &shared.settings;
    let frames = FrameCodec::new(s.layout, s.max_body);
    let m = ConnMetrics::new(Transport::WebSocket);
    let mut st = ReadState::new(shared, session);
    let mut buf = BytesMut::new();
    let closed = session.closed();
    tokio::pin!(closed);
    let timer = tokio::time::sleep_until(st.started + s.first_frame_timeout);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            () = &mut closed => return session.close_reason().unwrap_or(CloseReason::Kicked),
            msg = stream.next() => {
                let msg = match msg {
                    None => return CloseReason::ClientClosed,
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::debug!(session = session.id(), error = %e, "websocket read failed");
                        return CloseReason::BadFrame;
                    }
                };
                st.last_rx = Instant::now();
                match msg {
                    Message::Binary(data) => {
                        m.bytes_in.increment(data.len() as u64);
                        if buf.is_empty() {
                            // Usually whole frames: take the message's bytes without a copy.
                            buf = BytesMut::from(data);
                        } else {
                            buf.extend_from_slice(&data);
                        }
                        loop {
                            match frames.decode(&mut buf) {
                                Ok(Some(frame)) => {
                                    if !st.got_frame {
                                        st.got_frame = true;
                                        timer.as_mut().reset(st.last_rx + s.heartbeat);
                                    }
                                    m.frames_in.increment(1);
                                    if let Err(r) = st.handle(frame.id, frame.body, session.wire().codec).await {
                                        return r;
                                    }
                                }
                                Ok(None) => break,
                                Err(e @ FrameError::TooLarge { .. }) => {
                                    tracing::warn!(session = session.id(), remote = %session.remote(), error = %e, "closing: frame too large");
                                    return CloseReason::FrameTooLarge;
                                }
                            }
                        }
                    }
                    Message::Text(text) => {
                        m.bytes_in.increment(text.len() as u64);
                        let Ok((id, body)) = decode_text(text.as_str()) else {
                            tracing::debug!(session = session.id(), "text message is not {{id, data}} JSON");
                            crate::metrics::bad_body();
                            crate::conn::error_frame(session, 0, 400_102, "text messages must be {\"id\":…,\"data\":{…}}");
                            if let Err(r) = st.bad() {
                                return r;
                            }
                            continue;
                        };
                        if !session.wire().text {
                            // The client speaks JSON text: answer it in kind.
                            session.set_wire(Wire::text());
                        }
                        if !st.got_frame {
                            st.got_frame = true;
                            timer.as_mut().reset(st.last_rx + s.heartbeat);
                        }
                        m.frames_in.increment(1);
                        if let Err(r) = st.handle(id, body, BodyCodec::Json).await {
                            return r;
                        }
                    }
                    Message::Close(_) => return CloseReason::ClientClosed,
                    // Control frames count as traffic; tungstenite answers pings itself.
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            () = &mut timer => {
                match st.on_timer() {
                    Some(reason) => return reason,
                    None => timer.as_mut().reset(st.last_rx + s.heartbeat),
                }
                if buf.is_empty() {
                    buf = BytesMut::new();
                }
            }
        }
    }
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Bytes>,
    session: Session,
) {
    let m = ConnMetrics::new(Transport::WebSocket);
    let closed = session.closed();
    tokio::pin!(closed);
    loop {
        let first = tokio::select! {
            biased;
            b = rx.recv() => match b {
                Some(b) => b,
                None => break,
            },
            () = &mut closed => break,
        };
        let write = write_batch(&mut sink, first, &mut rx, &session, &m);
        tokio::pin!(write);
        // A write blocked on a client that does not read must not outlive the session.
        let res = tokio::select! {
            biased;
            r = &mut write => r,
            () = &mut closed => match session.close_reason() {
                Some(CloseReason::SlowConsumer) => return,
                _ => match tokio::time::timeout(std::time::Duration::from_secs(2), write).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
            },
        };
        if let Err(e) = res {
            tracing::debug!(session = session.id(), error = %e, "websocket write failed");
            session.close(CloseReason::IoError);
            return;
        }
        if session.is_closed() {
            break;
        }
    }
    let reason = session.close_reason().unwrap_or(CloseReason::Shutdown);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        if reason != CloseReason::SlowConsumer {
            while let Ok(b) = rx.try_recv() {
                if sink.feed(message_for(&session, b)).await.is_err() {
                    return;
                }
            }
        }
        let frame = CloseFrame { code: close_code(reason), reason: Utf8Bytes::from(reason.as_str()) };
        let _ = sink.send(Message::Close(Some(frame))).await;
    })
    .await;
}

async fn write_batch(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
    session: &Session,
    m: &ConnMetrics,
) -> Result<(), axum::Error> {
    let mut n = 1u64;
    let mut bytes = first.len() as u64;
    if session.wire().text {
        // Text mode: one JSON message per item; feed them all, flush once.
        sink.feed(message_for(session, first)).await?;
        while let Ok(b) = rx.try_recv() {
            n += 1;
            bytes += b.len() as u64;
            sink.feed(message_for(session, b)).await?;
        }
        sink.flush().await?;
    } else {
        // Binary: coalesce queued frames into one message.
        let msg = match rx.try_recv() {
            Err(_) => first,
            Ok(second) => {
                let mut batch = BytesMut::with_capacity(first.len() + second.len() + 256);
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                n += 1;
                while batch.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(b) => {
                            batch.extend_from_slice(&b);
                            n += 1;
                        }
                        Err(_) => break,
                    }
                }
                bytes = batch.len() as u64;
                batch.freeze()
            }
        };
        sink.send(Message::Binary(msg)).await?;
    }
    m.frames_out.increment(n);
    m.bytes_out.increment(bytes);
    Ok(())
}

fn message_for(session: &Session, b: Bytes) -> Message {
    if session.wire().text {
        match Utf8Bytes::try_from(b) {
            Ok(t) => Message::Text(t),
            // Text-wire bytes come from serde_json and are UTF-8; never send invalid text.
            Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
        }
    } else {
        Message::Binary(b)
    }
}

/// RFC 6455 close codes for our reasons.
fn close_code(reason: CloseReason) -> u16 {
    match reason {
        CloseReason::ClientClosed | CloseReason::Kicked => 1000,
        CloseReason::Shutdown => 1001,
        CloseReason::BadFrame | CloseReason::TooManyBadMessages => 1002,
        CloseReason::FrameTooLarge => 1009,
        CloseReason::HandlerPanic | CloseReason::IoError => 1011,
        CloseReason::ServerFull => 1013,
        CloseReason::IdleTimeout
        | CloseReason::FirstFrameTimeout
        | CloseReason::Flood
        | CloseReason::SlowConsumer
        | CloseReason::IpLimit => 1008,
    }
}
