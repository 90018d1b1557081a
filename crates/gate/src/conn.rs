//! One connection's life, in one task: read bytes, cut frames, dispatch them in order, and
//! write what the session's queue holds — replies right after the read that caused them, in
//! one coalesced write; pushes from elsewhere as they come.
//!
//! One task per connection (not a reader and a writer) because under request/reply load the
//! hand-off between two tasks costs more than the work itself, and because a reply written in
//! the same task as the read needs no wake-up at all. Every transport is a [`Link`]: byte
//! streams (TCP, TLS, KCP) here, WebSocket in `ws.rs`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::BodyCodec;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use rsgame_kit::Code;
use rsgame_kit::time::{mono_ns, nanos};
use rsgame_proto::{ids, pb};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::codec::{Wire, decode_text};
use crate::frame::{FrameCodec, FrameError, HEADER_LEN};
use crate::limits::{ConnPermit, TokenBucket};
use crate::metrics::ConnMetrics;
use crate::router::Outcome;
use crate::server::Shared;
use crate::session::capture::{Captured, Out};
use crate::session::{CloseReason, Outbox, Session, Transport};

/// Largest batch written at once.
pub(crate) const MAX_BATCH: usize = 64 * 1024;
/// Time a closing session gets to write its last frames.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// First read size; it doubles while reads fill the buffer, up to [`MAX_BATCH`].
const READ_HINT: usize = 1024;

/// What one read from a link produced.
pub(crate) enum Input {
    /// Bytes were appended to the read buffer.
    Data(usize),
    /// A WebSocket text message.
    Text(Bytes),
    /// Traffic that carries no message (a WebSocket ping or pong).
    Control,
    /// The peer closed.
    Closed,
    /// The link failed; the reason to record.
    Failed(CloseReason),
}

/// A transport as the connection task sees it: one object that reads and writes.
pub(crate) trait Link: Send {
    /// Waits for the next input. Must be cancel-safe: the task drops it to write or to time out.
    fn read<'a>(&'a mut self, buf: &'a mut BytesMut) -> impl Future<Output = Input> + Send + 'a;

    /// Writes what `out` holds (contiguous frames, or text messages) in as few writes as the
    /// transport allows; returns the bytes written. `out` is cleared by the caller.
    fn write<'a>(&'a mut self, out: &'a mut Out) -> impl Future<Output = io::Result<u64>> + Send + 'a;

    /// Ends the connection (FIN, TLS close_notify, WebSocket close frame).
    fn close(&mut self, reason: CloseReason) -> impl Future<Output = ()> + Send + '_;

    /// Gives back any buffer kept between reads; called once the connection has been quiet.
    fn release(&mut self) {}

    /// Whether [`Link::release`] would give something back.
    fn holds_buffer(&self) -> bool {
        false
    }
}

/// Reads into a buffer that grows only when there is something to read.
pub(crate) trait ReadSome: Send {
    fn read_some<'a>(
        &'a mut self,
        buf: &'a mut BytesMut,
        hint: usize,
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

/// TCP: wait for readability first and only then make room, so an idle connection holds no
/// read buffer at all.
impl ReadSome for tokio::net::TcpStream {
    async fn read_some(&mut self, buf: &mut BytesMut, hint: usize) -> io::Result<usize> {
        if buf.capacity() - buf.len() < hint / 2 {
            // No room: the buffer was given back while idle. Allocate only once there is
            // something to read.
            self.readable().await?;
            buf.reserve(hint);
        }
        // Through poll_read, not try_read_buf: tokio then treats a short read as "drained" and
        // skips the EAGAIN read that would otherwise follow every message (a third more
        // syscalls under ping-pong load).
        self.read_buf(buf).await
    }
}

/// Any other byte stream (TLS, KCP).
pub(crate) struct Generic<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ReadSome for Generic<S> {
    async fn read_some(&mut self, buf: &mut BytesMut, hint: usize) -> io::Result<usize> {
        if buf.capacity() - buf.len() < hint / 2 {
            buf.reserve(hint);
        }
        self.0.read_buf(buf).await
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Generic<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A byte-stream link: frames on a TCP, TLS or KCP stream.
pub(crate) struct StreamLink<S> {
    io: S,
    hint: usize,
}

impl<S> StreamLink<S> {
    pub fn new(io: S) -> Self {
        StreamLink { io, hint: READ_HINT }
    }
}

impl<S: ReadSome + AsyncWrite + Unpin + Send> Link for StreamLink<S> {
    async fn read(&mut self, buf: &mut BytesMut) -> Input {
        let spare = buf.capacity() - buf.len();
        match self.io.read_some(buf, self.hint).await {
            Ok(0) => Input::Closed,
            Ok(n) => {
                // A read that filled the room it had: the peer sends in bigger bursts.
                if n >= spare.max(self.hint / 2) && self.hint < MAX_BATCH {
                    self.hint *= 2;
                }
                Input::Data(n)
            }
            Err(e) => {
                tracing::debug!(error = %e, "read failed");
                Input::Failed(CloseReason::IoError)
            }
        }
    }

    async fn write(&mut self, out: &mut Out) -> io::Result<u64> {
        // Byte streams never carry text messages; frames are already contiguous.
        self.io.write_all(&out.frames).await?;
        Ok(out.frames.len() as u64)
    }

    async fn close(&mut self, _reason: CloseReason) {
        let _ = self.io.flush().await;
        let _ = self.io.shutdown().await;
    }
}

/// Runs one connection to its end.
pub(crate) async fn run<L: Link>(
    shared: Arc<Shared>,
    permit: ConnPermit,
    mut link: L,
    remote: SocketAddr,
    transport: Transport,
    wire: Wire,
) {
    let (session, mut rx) = shared.open(remote, transport, wire);
    let mut conn = Conn::new(&shared, &session, &mut rx);
    let reason = conn.drive(&mut link).await;
    session.close(reason);
    // The last frames (the close notice) go out unless the client is why we stop.
    let reason = session.close_reason().unwrap_or(reason);
    if reason != CloseReason::SlowConsumer {
        let _ = tokio::time::timeout(CLOSE_FLUSH, conn.flush(&mut link)).await;
    }
    let _ = tokio::time::timeout(CLOSE_FLUSH, link.close(reason)).await;
    shared.finish(&session, permit);
}

/// The state of one connection task.
struct Conn<'a> {
    shared: &'a Shared,
    session: &'a Session,
    rx: &'a mut Outbox,
    /// What is about to be written: replies captured from handlers, then queued pushes.
    out: Out,
    frames: FrameCodec,
    m: ConnMetrics,
    started: Instant,
    last_rx: Instant,
    /// `last_rx` as nanoseconds since `started`, for the token bucket: worked out once per
    /// read, not per message.
    last_rx_ns: u64,
    /// When the current message became ready, as a `mono_ns` reading: the read's time for
    /// the first message of a read, the previous handler's end for the next ones. Plain
    /// nanoseconds: a handler's time is one subtraction (this runs for every message). It
    /// is the real clock (for a metric), while the timers follow tokio's, which a test may
    /// pause.
    mark_ns: u64,
    got_frame: bool,
    bad: u32,
    bucket: TokenBucket,
}

impl<'a> Conn<'a> {
    fn new(shared: &'a Shared, session: &'a Session, rx: &'a mut Outbox) -> Self {
        let s = &shared.settings;
        let now = Instant::now();
        Conn {
            shared,
            session,
            rx,
            out: Out::default(),
            frames: FrameCodec::new(s.layout, s.max_body),
            m: ConnMetrics::new(session.transport()),
            started: now,
            last_rx: now,
            last_rx_ns: 0,
            mark_ns: mono_ns(),
            got_frame: false,
            bad: 0,
            bucket: TokenBucket::new(s.rate_per_sec, s.rate_burst, 0),
        }
    }

    async fn drive<L: Link>(&mut self, link: &mut L) -> CloseReason {
        let s = &self.shared.settings;
        let session = self.session;
        let mut buf = BytesMut::new();
        let timer = tokio::time::sleep_until(self.next_deadline(false));
        tokio::pin!(timer);
        // Whether the timer is armed for traffic (after the first frame) yet.
        let mut armed = false;
        loop {
            let input = tokio::select! {
                biased;
                // Closing also puts an empty marker in the queue, so this one branch wakes the
                // task for both pushes and a close.
                item = self.rx.recv() => match item {
                    Some(first) if first.is_empty() => return session.close_reason().unwrap_or(CloseReason::Kicked),
                    // A push from elsewhere (a scene, a broadcast).
                    Some(first) => {
                        self.out.push(first, session.wire().text);
                        if let Err(r) = self.flush(link).await {
                            return r;
                        }
                        continue;
                    }
                    None => return CloseReason::Shutdown,
                },
                input = link.read(&mut buf) => input,
                () = &mut timer => {
                    self.m.flush();
                    if let Some(r) = self.on_timer() {
                        return r;
                    }
                    // Quiet for a while: give the read buffer back, so an idle session holds
                    // none (a busy one keeps it rather than allocating per read).
                    if Instant::now() >= self.last_rx + s.idle_release {
                        if buf.is_empty() && buf.capacity() > 0 {
                            buf = BytesMut::new();
                        }
                        link.release();
                    }
                    timer.as_mut().reset(self.next_deadline(buf.capacity() > 0 || link.holds_buffer()));
                    continue;
                }
            };
            self.last_rx = Instant::now();
            self.last_rx_ns = nanos(self.last_rx.saturating_duration_since(self.started));
            self.mark_ns = mono_ns();
            let result = match input {
                Input::Data(n) => {
                    self.m.received(0, n as u64);
                    self.frames_in(link, &mut buf).await
                }
                Input::Text(text) => {
                    self.m.received(0, text.len() as u64);
                    self.text_in(link, text).await
                }
                Input::Control => Ok(()),
                Input::Closed => return CloseReason::ClientClosed,
                Input::Failed(r) => return r,
            };
            if let Err(r) = result {
                return r;
            }
            if self.got_frame && !armed {
                // From the first-frame deadline to the traffic deadlines. Not reset on every
                // frame (a timer reset costs more than a frame): when it fires early it
                // re-arms from the latest traffic.
                armed = true;
                timer.as_mut().reset(self.next_deadline(true));
            }
            // Replies to what was just read go out in one write, in the same task.
            if let Err(r) = self.flush(link).await {
                return r;
            }
        }
    }

    /// When the timer should next fire: the heartbeat deadline, or sooner to release a held
    /// read buffer.
    fn next_deadline(&self, holding_buffer: bool) -> Instant {
        let s = &self.shared.settings;
        let wait = if holding_buffer { s.heartbeat.min(s.idle_release) } else { s.heartbeat };
        let traffic = if self.got_frame { self.last_rx + wait } else { self.started + s.first_frame_timeout };
        match s.login_timeout {
            // Not logged in yet: wake at the login deadline too.
            Some(login) if self.session.user().is_none() => traffic.min(self.started + login),
            _ => traffic,
        }
    }

    /// Cuts and dispatches every whole frame in `buf`.
    async fn frames_in<L: Link>(&mut self, link: &mut L, buf: &mut BytesMut) -> Result<(), CloseReason> {
        let mut n = 0u64;
        let result = self.each_frame(link, buf, &mut n).await;
        // Counted once per read, not per frame: the counter is shared by every connection.
        self.m.received(n, 0);
        result
    }

    async fn each_frame<L: Link>(&mut self, link: &mut L, buf: &mut BytesMut, n: &mut u64) -> Result<(), CloseReason> {
        loop {
            match self.frames.peek(buf) {
                Ok(Some((id, len))) => {
                    self.got_frame = true;
                    *n += 1;
                    let codec = self.session.wire().codec;
                    // The body is decoded in place; the bytes are dropped once it is handled.
                    let r = self.handle(link, id, &buf[HEADER_LEN..HEADER_LEN + len], codec).await;
                    buf.advance(HEADER_LEN + len);
                    r?;
                }
                Ok(None) => return Ok(()),
                Err(e @ FrameError::TooLarge { .. }) => {
                    tracing::warn!(session = self.session.id(), remote = %self.session.remote(), error = %e, "closing: frame too large");
                    return Err(CloseReason::FrameTooLarge);
                }
            }
        }
    }

    /// A WebSocket text message: `{"id":…,"data":{…}}`.
    async fn text_in<L: Link>(&mut self, link: &mut L, text: Bytes) -> Result<(), CloseReason> {
        let Ok((id, body)) = std::str::from_utf8(&text).map_err(|_| ()).and_then(|t| decode_text(t).map_err(|_| ()))
        else {
            crate::metrics::bad_body();
            tracing::debug!(session = self.session.id(), "text message is not {{id, data}} JSON");
            error_frame(self.session, 0, Code::BadParam, "text messages must be {\"id\":…,\"data\":{…}}");
            return self.bad();
        };
        if !self.session.wire().text {
            // The client speaks JSON text: answer in kind.
            self.session.set_wire(Wire::text());
        }
        self.got_frame = true;
        self.m.received(1, 0);
        self.handle(link, id, &body, BodyCodec::Json).await
    }

    /// Rate-limits and dispatches one message; `Err` closes the session.
    async fn handle<L: Link>(
        &mut self,
        link: &mut L,
        id: u32,
        body: &[u8],
        codec: BodyCodec,
    ) -> Result<(), CloseReason> {
        let session = self.session;
        // The read's time stands for every frame it carried: one clock read per read.
        if !self.bucket.allow(self.last_rx_ns) {
            tracing::warn!(session = session.id(), remote = %session.remote(), "closing: message flood");
            return Err(CloseReason::Flood);
        }
        // A burst of requests produces a burst of replies: write them out before the queue
        // fills, so a client that pipelines is slowed by its own reads, never cut off.
        let s = &self.shared.settings;
        if s.queue.saturating_sub(session.queued() + self.out.count) < s.reply_room {
            self.flush(link).await?;
        }
        let router = &self.shared.router;
        let started = self.mark_ns;
        let (outcome, end) = match router.dispatch_now(session, id, body, codec, started, &mut self.out) {
            Some(done) => done,
            None => {
                let dispatch = router.dispatch(session, id, body, codec, started);
                tokio::pin!(dispatch);
                Captured { fut: dispatch.as_mut(), session: session.key(), out: &mut self.out }.await
            }
        };
        self.mark_ns = end;
        match outcome {
            Outcome::Handled => Ok(()),
            Outcome::UnknownId => {
                crate::metrics::unknown_id();
                tracing::debug!(session = session.id(), id, "unknown message id");
                error_frame(session, id, Code::RouteNotFound, "unknown message id");
                self.bad()
            }
            Outcome::BadBody(e) => {
                crate::metrics::bad_body();
                tracing::debug!(session = session.id(), id, error = %e, "undecodable body");
                error_frame(session, id, Code::BadParam, "message body does not decode");
                self.bad()
            }
            Outcome::Refused(e) | Outcome::Failed(e) => {
                if e.code().is_internal() {
                    tracing::error!(session = session.id(), id, error = %e, "handler failed");
                } else {
                    tracing::debug!(session = session.id(), id, error = %e, "message refused");
                }
                error_frame(session, id, e.code(), e.public_msg());
                Ok(())
            }
            Outcome::Panicked => {
                tracing::error!(session = session.id(), id, "closing: handler panicked");
                Err(CloseReason::HandlerPanic)
            }
        }
    }

    fn bad(&mut self) -> Result<(), CloseReason> {
        self.bad += 1;
        if self.bad > self.shared.settings.max_bad_messages {
            tracing::warn!(session = self.session.id(), remote = %self.session.remote(), "closing: too many bad messages");
            return Err(CloseReason::TooManyBadMessages);
        }
        Ok(())
    }

    /// The timer fired: a close reason, or `None` to keep going.
    fn on_timer(&self) -> Option<CloseReason> {
        let s = &self.shared.settings;
        let now = Instant::now();
        // A stranger can open connections that never speak or never log in: at DEBUG,
        // counted in the close-reason metric rather than a line each.
        if !self.got_frame && now >= self.started + s.first_frame_timeout {
            tracing::debug!(session = self.session.id(), remote = %self.session.remote(), "closing: no frame in time");
            return Some(CloseReason::FirstFrameTimeout);
        }
        if let Some(login) = s.login_timeout
            && self.session.user().is_none()
            && now >= self.started + login
        {
            tracing::debug!(session = self.session.id(), remote = %self.session.remote(), "closing: no login in time");
            return Some(CloseReason::LoginTimeout);
        }
        if self.got_frame && now >= self.last_rx + s.heartbeat {
            tracing::debug!(session = self.session.id(), "closing: heartbeat timeout");
            return Some(CloseReason::IdleTimeout);
        }
        None
    }

    /// Writes the captured replies and everything queued now.
    async fn flush<L: Link>(&mut self, link: &mut L) -> Result<(), CloseReason> {
        let text = self.session.wire().text;
        loop {
            let mut closing = false;
            while self.out.frames.len() < MAX_BATCH && self.out.items.len() < 1024 {
                match self.rx.try_recv() {
                    Some(b) if b.is_empty() => {
                        closing = true;
                        break;
                    }
                    Some(b) => self.out.push(b, text),
                    None => break,
                }
            }
            if !self.out.is_empty() {
                self.write(link).await?;
            }
            if closing {
                // The close notice came before the marker and has just been written.
                return Err(self.session.close_reason().unwrap_or(CloseReason::Kicked));
            }
            if self.out.is_empty() && self.rx_is_empty() {
                return Ok(());
            }
        }
    }

    fn rx_is_empty(&mut self) -> bool {
        self.rx.is_empty()
    }

    /// Writes `self.out`. A write that cannot finish — the client does not read — ends when
    /// the session closes or after a heartbeat period.
    async fn write<L: Link>(&mut self, link: &mut L) -> Result<(), CloseReason> {
        let n = self.out.count as u64;
        let res = {
            let write = link.write(&mut self.out);
            tokio::pin!(write);
            // Nearly always the socket has room and the write finishes on its first poll; only
            // a stalled write pays for a timer.
            match (&mut write).now_or_never() {
                Some(r) => r,
                None => {
                    let session = self.session;
                    tokio::select! {
                        biased;
                        r = &mut write => r,
                        () = session.conn_closed() => return Err(session.close_reason().unwrap_or(CloseReason::Kicked)),
                        () = tokio::time::sleep(self.shared.settings.heartbeat) => {
                            tracing::warn!(session = session.id(), remote = %session.remote(), "closing: writes stalled");
                            crate::metrics::slow_consumer();
                            return Err(CloseReason::SlowConsumer);
                        }
                    }
                }
            }
        };
        self.out.clear();
        match res {
            Ok(bytes) => {
                self.m.sent(n, bytes);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(session = self.session.id(), error = %e, "write failed");
                Err(CloseReason::IoError)
            }
        }
    }
}

/// Queues an ErrorResp for message `req_id`.
pub(crate) fn error_frame(session: &Session, req_id: u32, code: Code, msg: &str) {
    if !session.error_frames() {
        return;
    }
    session.push(ids::ERROR, &pb::ErrorResp { req_id, code: code.as_u32() as i32, msg: msg.to_owned() });
}
