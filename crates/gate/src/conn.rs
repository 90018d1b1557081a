//! One connection's life: a reader task that turns bytes into frames and dispatches them in
//! order, and a writer task that drains the session's queue, coalescing queued frames into
//! as few writes as possible. Byte-stream transports (TCP, TLS, KCP) share this code; the
//! WebSocket driver (`ws.rs`) reuses the frame handling.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rsgame_kit::config::BodyCodec;
use rsgame_proto::{ids, pb};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::codec::Wire;
use crate::frame::{FrameCodec, FrameError};
use crate::limits::{ConnPermit, TokenBucket};
use crate::metrics::ConnMetrics;
use crate::router::Outcome;
use crate::server::Shared;
use crate::session::{CloseReason, Session, Transport};

/// Largest batch the writer builds before writing.
const MAX_BATCH: usize = 64 * 1024;
/// Time the writer gets to flush the last frames of a closing session.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// The read side of a byte stream.
pub(crate) trait ReadSide: Send {
    /// Reads some bytes into `buf`, growing it as needed; 0 means end of stream.
    fn read_some<'a>(&'a mut self, buf: &'a mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

/// TCP: wait for readability first and only then make room, so an idle connection holds
/// no read buffer at all.
impl ReadSide for tokio::net::tcp::OwnedReadHalf {
    async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            match self.try_read_buf(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Any other stream (TLS, KCP).
pub(crate) struct Generic<R>(pub R);

impl<R: AsyncRead + Unpin + Send> ReadSide for Generic<R> {
    async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        self.0.read_buf(buf).await
    }
}

/// Runs a byte-stream connection to its end.
pub(crate) async fn run_stream<R, W>(
    shared: Arc<Shared>,
    permit: ConnPermit,
    reader: R,
    writer: W,
    remote: SocketAddr,
    transport: Transport,
    codec: BodyCodec,
) where
    R: ReadSide,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let wire = Wire::frames(shared.settings.layout, codec);
    let (session, rx) = shared.open(remote, transport, wire);
    let writer = tokio::spawn(write_loop(writer, rx, session.clone()));
    let reason = read_loop(&shared, &session, reader).await;
    session.close(reason);
    let _ = writer.await;
    shared.finish(&session, permit);
}

async fn read_loop<R: ReadSide>(shared: &Shared, session: &Session, mut reader: R) -> CloseReason {
    let s = &shared.settings;
    let frames = FrameCodec::new(s.layout, s.max_body);
    let m = ConnMetrics::new(session.transport());
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
            res = reader.read_some(&mut buf) => {
                let n = match res {
                    Ok(0) => return CloseReason::ClientClosed,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(session = session.id(), error = %e, "read failed");
                        return CloseReason::IoError;
                    }
                };
                m.bytes_in.increment(n as u64);
                st.last_rx = Instant::now();
                loop {
                    match frames.decode(&mut buf) {
                        Ok(Some(frame)) => {
                            if !st.got_frame {
                                st.got_frame = true;
                                timer.as_mut().reset(st.last_rx + s.heartbeat);
                            }
                            m.frames_in.increment(1);
                            let codec = session.wire().codec;
                            if let Err(reason) = st.handle(frame.id, frame.body, codec).await {
                                return reason;
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
            () = &mut timer => {
                match st.on_timer() {
                    Some(reason) => return reason,
                    None => timer.as_mut().reset(st.last_rx + s.heartbeat),
                }
                // Quiet for a heartbeat period: give the read buffer back.
                if buf.is_empty() {
                    buf = BytesMut::new();
                }
            }
        }
    }
}

/// What the reader of any transport tracks between frames.
pub(crate) struct ReadState<'a> {
    shared: &'a Shared,
    session: &'a Session,
    pub started: Instant,
    pub last_rx: Instant,
    pub got_frame: bool,
    bad: u32,
    bucket: TokenBucket,
}

impl<'a> ReadState<'a> {
    pub fn new(shared: &'a Shared, session: &'a Session) -> Self {
        let now = Instant::now();
        let s = &shared.settings;
        ReadState {
            shared,
            session,
            started: now,
            last_rx: now,
            got_frame: false,
            bad: 0,
            bucket: TokenBucket::new(s.rate_per_sec, s.rate_burst, now),
        }
    }

    /// The heartbeat timer fired: a close reason, or `None` to keep going.
    pub fn on_timer(&self) -> Option<CloseReason> {
        if !self.got_frame {
            tracing::info!(session = self.session.id(), remote = %self.session.remote(), "closing: no frame in time");
            return Some(CloseReason::FirstFrameTimeout);
        }
        if Instant::now() >= self.last_rx + self.shared.settings.heartbeat {
            tracing::debug!(session = self.session.id(), "closing: heartbeat timeout");
            return Some(CloseReason::IdleTimeout);
        }
        None
    }

    /// Rate-limits and dispatches one message; `Err` closes the session.
    pub async fn handle(&mut self, id: u32, body: Bytes, codec: BodyCodec) -> Result<(), CloseReason> {
        let session = self.session;
        if !self.bucket.allow(Instant::now()) {
            tracing::warn!(session = session.id(), remote = %session.remote(), "closing: message flood");
            return Err(CloseReason::Flood);
        }
        // Replies to this client's own requests wait for room in its queue (back-pressure on
        // its reads); a queue that stays full for a whole heartbeat means it does not read.
        let room = self.shared.settings.queue.div_ceil(4).min(16);
        if tokio::time::timeout(self.shared.settings.heartbeat, session.room(room)).await.is_err() {
            tracing::warn!(session = session.id(), remote = %session.remote(), "closing: replies not read");
            crate::metrics::slow_consumer();
            return Err(CloseReason::SlowConsumer);
        }
        match self.shared.router.dispatch(session, id, body, codec).await {
            Outcome::Handled => Ok(()),
            Outcome::UnknownId => {
                crate::metrics::unknown_id();
                tracing::debug!(session = session.id(), id, "unknown message id");
                error_frame(session, id, 400_505, "unknown message id");
                self.bad()
            }
            Outcome::BadBody(e) => {
                crate::metrics::bad_body();
                tracing::debug!(session = session.id(), id, error = %e, "undecodable body");
                error_frame(session, id, 400_102, "message body does not decode");
                self.bad()
            }
            Outcome::Refused(e) | Outcome::Failed(e) => {
                if e.code().is_internal() {
                    tracing::error!(session = session.id(), id, error = %e, "handler failed");
                } else {
                    tracing::debug!(session = session.id(), id, error = %e, "message refused");
                }
                error_frame(session, id, e.code().as_u32() as i32, e.public_msg());
                Ok(())
            }
            Outcome::Panicked => {
                tracing::error!(session = session.id(), id, "closing: handler panicked");
                Err(CloseReason::HandlerPanic)
            }
        }
    }

    /// Counts a bad message; `Err` once there have been too many.
    pub fn bad(&mut self) -> Result<(), CloseReason> {
        self.bad += 1;
        if self.bad > self.shared.settings.max_bad_messages {
            tracing::warn!(session = self.session.id(), remote = %self.session.remote(), "closing: too many bad messages");
            return Err(CloseReason::TooManyBadMessages);
        }
        Ok(())
    }
}

/// Queues an ErrorResp for message `req_id`.
pub(crate) fn error_frame(session: &Session, req_id: u32, code: i32, msg: &str) {
    let _ = session.send(ids::ERROR, &pb::ErrorResp { req_id, code, msg: msg.to_owned() });
}

async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Bytes>, session: Session) {
    let m = ConnMetrics::new(session.transport());
    let mut batch = BytesMut::new();
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
        let write = write_batch(&mut w, first, &mut rx, &mut batch, &m);
        tokio::pin!(write);
        // A write blocked on a client that does not read must not outlive the session.
        let res = tokio::select! {
            biased;
            r = &mut write => r,
            () = &mut closed => match session.close_reason() {
                Some(CloseReason::SlowConsumer) => break,
                _ => match tokio::time::timeout(CLOSE_FLUSH, write).await {
                    Ok(r) => r,
                    Err(_) => break,
                },
            },
        };
        if let Err(e) = res {
            tracing::debug!(session = session.id(), error = %e, "write failed");
            session.close(CloseReason::IoError);
            return;
        }
        if session.is_closed() {
            break;
        }
    }
    // The session is closing: write what is still queued (the last notice) unless the client
    // is the reason we stop, then close the stream.
    if session.close_reason() != Some(CloseReason::SlowConsumer) {
        let _ = tokio::time::timeout(CLOSE_FLUSH, async {
            while let Ok(b) = rx.try_recv() {
                if w.write_all(&b).await.is_err() {
                    return;
                }
            }
            let _ = w.flush().await;
        })
        .await;
    }
    let _ = tokio::time::timeout(CLOSE_FLUSH, w.shutdown()).await;
}

/// Writes `first` and whatever else is queued right now, in one write when there is more
/// than one frame.
async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut W,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
    batch: &mut BytesMut,
    m: &ConnMetrics,
) -> io::Result<()> {
    let Ok(second) = rx.try_recv() else {
        // The common case under request/reply: one frame, written without a copy.
        w.write_all(&first).await?;
        m.frames_out.increment(1);
        m.bytes_out.increment(first.len() as u64);
        return Ok(());
    };
    batch.clear();
    batch.extend_from_slice(&first);
    batch.extend_from_slice(&second);
    let mut n = 2;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(b) => {
                batch.extend_from_slice(&b);
                n += 1;
            }
            Err(_) => break,
        }
    }
    w.write_all(batch).await?;
    m.frames_out.increment(n);
    m.bytes_out.increment(batch.len() as u64);
    if batch.capacity() > 4 * MAX_BATCH {
        *batch = BytesMut::new();
    }
    Ok(())
}
