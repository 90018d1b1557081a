//! A session: one client connection as the rest of the server sees it — its id, address,
//! transport, the user bound to it after login, typed properties, and a bounded outbound
//! queue. Handles are cheap to clone; the connection's tasks own the socket.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};

use crate::config::BodyCodec;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use rsgame_kit::Code;
use tokio::sync::Notify;

use crate::codec::{Message, Wire};
use crate::frame::Layout;

/// How a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Raw TCP.
    Tcp,
    /// TCP with TLS.
    Tls,
    /// WebSocket (ws or wss).
    WebSocket,
    /// KCP over UDP.
    Kcp,
}

impl Transport {
    /// The label used in logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::WebSocket => "ws",
            Transport::Kcp => "kcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session ended. Logged with the session, counted in `gate_closes_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the connection.
    ClientClosed,
    /// Nothing arrived for `heartbeat_timeout`.
    IdleTimeout,
    /// No whole frame arrived within `first_frame_timeout` of connecting.
    FirstFrameTimeout,
    /// No user was bound to the session (no login) within `login_timeout` of connecting.
    LoginTimeout,
    /// A frame header announced a body over `max_body`.
    FrameTooLarge,
    /// Bytes that are not a valid frame or WebSocket message.
    BadFrame,
    /// More than `max_bad_messages` unknown ids or undecodable bodies.
    TooManyBadMessages,
    /// Messages beyond the per-session rate.
    Flood,
    /// The outbound queue was full: the client does not read fast enough.
    SlowConsumer,
    /// A handler panicked while serving this session.
    HandlerPanic,
    /// The server is shutting down.
    Shutdown,
    /// Server code closed the session (kicked, logged in elsewhere…).
    Kicked,
    /// The account's sessions were ended (a ban, a password change, "log out everywhere"):
    /// its token no longer works, so reconnecting with it is pointless.
    SessionEnded,
    /// `max_connections` was reached.
    ServerFull,
    /// `max_connections_per_ip` was reached.
    IpLimit,
    /// A read or write failed (reset, broken pipe, TLS error).
    IoError,
}

impl CloseReason {
    /// The label used in logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::FirstFrameTimeout => "first_frame_timeout",
            CloseReason::LoginTimeout => "login_timeout",
            CloseReason::FrameTooLarge => "frame_too_large",
            CloseReason::BadFrame => "bad_frame",
            CloseReason::TooManyBadMessages => "too_many_bad_messages",
            CloseReason::Flood => "flood",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::HandlerPanic => "handler_panic",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Kicked => "kicked",
            CloseReason::SessionEnded => "session_ended",
            CloseReason::ServerFull => "server_full",
            CloseReason::IpLimit => "ip_limit",
            CloseReason::IoError => "io_error",
        }
    }

    /// The error code sent to the client in the last ErrorResp, for reasons the client can
    /// act on; `None` where it would not help or cannot arrive.
    pub(crate) const fn notice_code(self) -> Option<(Code, &'static str)> {
        match self {
            CloseReason::FrameTooLarge => Some((Code::BadParam, "frame too large")),
            CloseReason::BadFrame => Some((Code::BadParam, "malformed frame")),
            CloseReason::TooManyBadMessages => Some((Code::BadParam, "too many bad messages")),
            CloseReason::Flood => Some((Code::TooManyRequests, "too many messages")),
            CloseReason::IdleTimeout => Some((Code::Timeout, "idle timeout")),
            CloseReason::FirstFrameTimeout => Some((Code::Timeout, "no message in time")),
            CloseReason::LoginTimeout => Some((Code::Timeout, "no login in time")),
            CloseReason::ServerFull => Some((Code::Unavailable, "server full")),
            CloseReason::IpLimit => Some((Code::TooManyRequests, "too many connections from this address")),
            CloseReason::Shutdown => Some((Code::Unavailable, "server shutting down")),
            CloseReason::Kicked => Some((Code::Forbidden, "closed by the server")),
            CloseReason::SessionEnded => Some((Code::TokenExpired, "the account's sessions were ended: log in again")),
            CloseReason::ClientClosed
            | CloseReason::SlowConsumer
            | CloseReason::HandlerPanic
            | CloseReason::IoError => None,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// The queue was full; the session is now closed as a slow consumer.
    #[error("slow consumer: outbound queue full")]
    SlowConsumer,
}

/// A failed send as a handler's error: the connection is going, nothing to tell it.
impl From<SendError> for rsgame_kit::Error {
    fn from(e: SendError) -> Self {
        rsgame_kit::Error::msg(rsgame_kit::Code::Unavailable, e.to_string())
    }
}

/// A client session. Clone freely: every clone is the same session.
#[derive(Clone)]
pub struct Session(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    id: u64,
    remote: SocketAddr,
    transport: Transport,
    wire: AtomicU8,
    user: AtomicI64,
    /// A handful of properties per session (a login's caps and generation, say): a list
    /// searched in place holds them in less than a hash map's table would.
    props: Mutex<Vec<(TypeId, Box<dyn Any + Send + Sync>)>>,
    /// The outbound queue: a locked deque and the connection task's waker rather than a
    /// channel. An idle session then holds no allocation for it (tokio's unbounded channel
    /// allocates a 32-slot block and cache-padded counters up front, about 1.5 KiB a
    /// session), and the connection task takes what is waiting in one lock. Unbounded
    /// underneath; `queued` and `capacity` bound it.
    queue: Mutex<VecDeque<Bytes>>,
    queue_waker: AtomicWaker,
    /// Set when the outbox is dropped: nobody reads the queue any more.
    reader_gone: AtomicBool,
    queued: AtomicUsize,
    capacity: usize,
    /// Set once by `close`. Read on every send, so an atomic, not a lock.
    closed: AtomicBool,
    /// Wakes the connection task when the session closes (one waiter, no lock).
    conn_waker: AtomicWaker,
    /// Wakes anyone else awaiting `closed()`.
    notify: Notify,
    reason: OnceLock<CloseReason>,
    /// Whether refusals and close notices reach the client as ErrorResp frames (rsgame's
    /// 9000); off for a client that speaks only a protocol without them (go-game's).
    error_frames: AtomicBool,
}

impl Session {
    pub(crate) fn new(
        id: u64,
        remote: SocketAddr,
        transport: Transport,
        wire: Wire,
        queue: usize,
    ) -> (Session, Outbox) {
        let inner = Inner {
            id,
            remote,
            transport,
            wire: AtomicU8::new(pack(wire)),
            user: AtomicI64::new(0),
            props: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            queue_waker: AtomicWaker::new(),
            reader_gone: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            capacity: queue.max(1),
            closed: AtomicBool::new(false),
            conn_waker: AtomicWaker::new(),
            notify: Notify::new(),
            reason: OnceLock::new(),
            error_frames: AtomicBool::new(true),
        };
        let session = Session(Arc::new(inner));
        let outbox = Outbox { session: session.clone() };
        (session, outbox)
    }

    /// A session with no connection behind it, on a zinx TCP wire: what is sent to it is
    /// read from the [`Outbox`]. For testing handlers and rooms without sockets (and for
    /// players driven in process); `queue` bounds what may wait unread, as a connection's.
    pub fn detached(id: u64, queue: usize) -> (Session, Outbox) {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let wire = Wire::frames(crate::frame::Layout::Zinx, BodyCodec::Protobuf);
        Session::new(id, addr, Transport::Tcp, wire, queue)
    }

    /// Unique id within this process.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The client's address.
    pub fn remote(&self) -> SocketAddr {
        self.0.remote
    }

    /// How the client is connected.
    pub fn transport(&self) -> Transport {
        self.0.transport
    }

    /// The bytes format this session receives.
    pub fn wire(&self) -> Wire {
        unpack(self.0.wire.load(Ordering::Relaxed))
    }

    pub(crate) fn set_wire(&self, wire: Wire) {
        self.0.wire.store(pack(wire), Ordering::Relaxed);
    }

    /// The user bound at login, if any.
    pub fn user(&self) -> Option<i64> {
        match self.0.user.load(Ordering::Acquire) {
            0 => None,
            u => Some(u),
        }
    }

    /// Binds a user id (non-zero) to the session, e.g. after a verified login.
    pub fn bind_user(&self, user_id: i64) {
        self.0.user.store(user_id, Ordering::Release);
    }

    /// Stores a typed property, replacing any of the same type.
    pub fn set<T: Any + Send + Sync>(&self, value: T) {
        let mut p = self.props();
        let key = TypeId::of::<T>();
        match p.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = Box::new(value),
            None => p.push((key, Box::new(value))),
        }
    }

    /// The property list. A panic cannot leave it half-changed (each change is one push,
    /// swap or removal), so a poisoned lock's list is still good.
    fn props(&self) -> MutexGuard<'_, Vec<(TypeId, Box<dyn Any + Send + Sync>)>> {
        self.0.props.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether refused messages and closes are told to the client as ErrorResp frames (on by
    /// default). A client of a protocol that has no such frame (go-game's) turns them off:
    /// it is refused in silence (the server still logs why) rather than sent a frame it
    /// does not know.
    pub fn set_error_frames(&self, on: bool) {
        self.0.error_frames.store(on, Ordering::Relaxed);
    }

    /// See [`Session::set_error_frames`].
    pub fn error_frames(&self) -> bool {
        self.0.error_frames.load(Ordering::Relaxed)
    }

    /// A copy of the property of type `T`.
    pub fn get<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        let key = TypeId::of::<T>();
        self.props().iter().find(|(k, _)| *k == key)?.1.downcast_ref::<T>().cloned()
    }

    /// Removes and returns the property of type `T`.
    pub fn remove<T: Any + Send + Sync>(&self) -> Option<T> {
        let key = TypeId::of::<T>();
        let mut p = self.props();
        let i = p.iter().position(|(k, _)| *k == key)?;
        let (_, b) = p.swap_remove(i);
        if p.is_empty() {
            // A session that sheds its properties (a logout) holds no list for them.
            *p = Vec::new();
        }
        drop(p);
        b.downcast::<T>().ok().map(|b| *b)
    }

    /// Queues message `id` for this session, encoded for its wire.
    pub fn send<M: Message>(&self, id: u32, msg: &M) -> Result<(), SendError> {
        let wire = self.wire();
        if !wire.text && !self.is_closed() && self.nothing_queued() {
            // Answering its own session inside its connection task: encode straight into
            // the connection's write buffer.
            match capture::with(self.key(), self.0.capacity, (), |out, ()| {
                wire.encode_into(id, msg, &mut out.frames);
            }) {
                capture::Offer::Taken => return Ok(()),
                capture::Offer::Full => return Err(self.overflow()),
                capture::Offer::NotOurs(()) => {}
            }
        }
        self.send_bytes(wire.encode(id, msg))
    }

    /// Sends `msg` where a failure needs nothing more from the sender: it fails only when
    /// the connection is closed or closing, or its queue was full and the gate has just
    /// closed it as a slow consumer (and logged why). For pushes and replies alike.
    pub fn push<M: Message>(&self, id: u32, msg: &M) {
        if let Err(e) = self.send(id, msg) {
            tracing::trace!(session = self.id(), id, error = ?e, "message not queued: the connection is going");
        }
    }

    /// [`Session::push`] for bytes already encoded for this session's wire.
    pub fn push_bytes(&self, bytes: Bytes) {
        if let Err(e) = self.send_bytes(bytes) {
            tracing::trace!(session = self.id(), error = ?e, "bytes not queued: the connection is going");
        }
    }

    /// Whether pushes from other tasks are waiting in the queue. Captured replies are written
    /// before the queue, so a handler captures only when nothing is waiting: a reply that
    /// follows a push it waited for (a scene's greeting, say) must not overtake it.
    fn nothing_queued(&self) -> bool {
        self.0.queued.load(Ordering::Acquire) == 0
    }

    fn overflow(&self) -> SendError {
        crate::metrics::slow_consumer();
        self.close(CloseReason::SlowConsumer);
        SendError::SlowConsumer
    }

    /// Queues bytes already encoded for this session's wire (see [`Wire::encode`]). Never
    /// waits: a full queue closes the session as a slow consumer, so a slow client cannot
    /// hold up whoever is sending (a scene tick, a broadcast).
    pub fn send_bytes(&self, bytes: Bytes) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        // A handler answering its own session, inside its connection task: hand the bytes
        // straight to that task, no channel, no wake-up.
        let text = self.wire().text;
        if !self.nothing_queued() {
            return self.enqueue(bytes);
        }
        let bytes = match capture::with(self.key(), self.0.capacity, bytes, |out, b| {
            if text { out.items.push(b) } else { out.frames.extend_from_slice(&b) }
        }) {
            capture::Offer::Taken => return Ok(()),
            capture::Offer::Full => return Err(self.overflow()),
            capture::Offer::NotOurs(b) => b,
        };
        self.enqueue(bytes)
    }

    /// Puts encoded bytes on the outbound queue for the connection's task to write.
    fn enqueue(&self, bytes: Bytes) -> Result<(), SendError> {
        if self.0.reader_gone.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        if self.0.queued.fetch_add(1, Ordering::AcqRel) >= self.0.capacity {
            self.0.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(self.overflow());
        }
        self.put(bytes);
        Ok(())
    }

    /// Appends to the outbound queue and wakes the connection task.
    fn put(&self, bytes: Bytes) {
        self.queue().push_back(bytes);
        self.0.queue_waker.wake();
    }

    /// The outbound queue. Its changes are single pushes and pops, whole even after a panic
    /// elsewhere, so a poisoned lock's deque is still good.
    fn queue(&self) -> MutexGuard<'_, VecDeque<Bytes>> {
        self.0.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key a capture matches this session by.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// Frames waiting in the outbound queue.
    pub(crate) fn queued(&self) -> usize {
        self.0.queued.load(Ordering::Acquire)
    }

    /// Closes the session. The first reason given is the one recorded; frames already
    /// queued are still written (except for a slow consumer), then the connection closes.
    pub fn close(&self, reason: CloseReason) {
        if self.0.reason.set(reason).is_ok() {
            if let Some((code, msg)) = reason.notice_code().filter(|_| self.error_frames()) {
                let notice = rsgame_proto::pb::ErrorResp { req_id: 0, code: code.as_u32() as i32, msg: msg.into() };
                // Past the bound on purpose: one last small frame, written only if the
                // connection can still take it.
                self.0.queued.fetch_add(1, Ordering::AcqRel);
                self.put(self.wire().encode(rsgame_proto::ids::ERROR, &notice));
            }
            self.0.closed.store(true, Ordering::Release);
            // The empty marker wakes the connection task through its queue (it is not
            // counted in `queued`; real items are never empty).
            self.put(Bytes::new());
            self.0.conn_waker.wake();
            self.0.notify.notify_waiters();
        }
    }

    /// Whether the session is closed or closing.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Resolves when the session closes; for the connection task only (one waiter).
    pub(crate) fn conn_closed(&self) -> ConnClosed<'_> {
        ConnClosed(&self.0)
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.reason.get().copied()
    }

    /// Resolves when the session closes.
    pub async fn closed(&self) {
        loop {
            // Created before the check, so a close between the two still wakes it.
            let notified = self.0.notify.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

/// Replies a handler sends to its own session while its connection task polls it: collected
/// here and written by that task after the handler, without going through the queue.
pub(crate) mod capture {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::{Bytes, BytesMut};

    /// What a connection is about to write. Binary wires: frames encoded straight into one
    /// buffer (no allocation per reply, one write for all). Text wires: one item per message.
    #[derive(Default)]
    pub(crate) struct Out {
        pub frames: BytesMut,
        pub items: Vec<Bytes>,
        pub count: usize,
    }

    impl Out {
        pub fn is_empty(&self) -> bool {
            self.count == 0
        }

        /// Appends already-encoded bytes for a session of the given wire.
        pub fn push(&mut self, bytes: Bytes, text: bool) {
            if text {
                self.items.push(bytes);
            } else {
                self.frames.extend_from_slice(&bytes);
            }
            self.count += 1;
        }

        pub fn clear(&mut self) {
            self.frames.clear();
            self.items.clear();
            self.count = 0;
            // A burst's buffer is not kept for a quiet session.
            if self.frames.capacity() > 16 * 1024 {
                self.frames = BytesMut::new();
            }
        }
    }

    struct Capture {
        session: usize,
        out: Out,
    }

    thread_local! {
        static CURRENT: RefCell<Option<Capture>> = const { RefCell::new(None) };
    }

    pub(crate) enum Offer<T> {
        Taken,
        Full,
        NotOurs(T),
    }

    /// Runs `f` on the capture buffer if the session being polled on this thread is
    /// `session`; `cap` bounds how many messages one poll may capture.
    pub(crate) fn with<T>(session: usize, cap: usize, value: T, f: impl FnOnce(&mut Out, T)) -> Offer<T> {
        CURRENT.with(|c| match c.borrow_mut().as_mut() {
            Some(cur) if cur.session == session => {
                if cur.out.count >= cap {
                    return Offer::Full;
                }
                f(&mut cur.out, value);
                cur.out.count += 1;
                Offer::Taken
            }
            _ => Offer::NotOurs(value),
        })
    }

    /// Polls `fut` with captures for `session` going into `out`. Set and cleared around each
    /// poll, so a handler that awaits never leaks its capture to other tasks on the thread.
    pub(crate) struct Captured<'a, F> {
        pub fut: F,
        pub session: usize,
        pub out: &'a mut Out,
    }

    impl<F: Future + Unpin> Future for Captured<'_, F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = &mut *self;
            capturing(this.session, this.out, || Pin::new(&mut this.fut).poll(cx))
        }
    }

    /// Runs `f` with captures for `session` going into `out`, and restores whatever capture
    /// was set before. `f` must not unwind (the router catches handler panics inside it).
    pub(crate) fn capturing<R>(session: usize, out: &mut Out, f: impl FnOnce() -> R) -> R {
        let taken = std::mem::take(out);
        let prev = CURRENT.with(|c| c.replace(Some(Capture { session, out: taken })));
        let r = f();
        let mine = CURRENT.with(|c| c.replace(prev));
        if let Some(m) = mine {
            *out = m.out;
        }
        r
    }
}

/// The receiving end of a session's queue: its connection task's, or a test's for a
/// [`Session::detached`] session. Each item is one or more whole frames (or one text
/// message on a text wire).
pub struct Outbox {
    session: Session,
}

impl Drop for Outbox {
    /// As a channel's receiver did: what was never written is freed with the connection, not
    /// when the last handle to its session goes (a scene keeps one through the reconnect
    /// grace), and later sends are refused.
    fn drop(&mut self) {
        self.session.0.reader_gone.store(true, Ordering::Release);
        let left = std::mem::take(&mut *self.session.queue());
        let counted = left.iter().filter(|b| !b.is_empty()).count();
        self.session.0.queued.fetch_sub(counted, Ordering::AcqRel);
    }
}

/// A drained queue keeps its buffer up to this many items; past it (a burst) the buffer goes,
/// so an idle session holds none.
const QUEUE_KEPT: usize = 16;

impl Outbox {
    /// The next queued item. The session lives as long as its outbox, so there is always a
    /// sender: `None` is never returned (kept for callers written against a channel).
    pub async fn recv(&mut self) -> Option<Bytes> {
        std::future::poll_fn(|cx| {
            if let Some(b) = self.try_recv() {
                return Poll::Ready(Some(b));
            }
            // Registered before the second look, so a push between the two still wakes us.
            self.session.0.queue_waker.register(cx.waker());
            match self.try_recv() {
                Some(b) => Poll::Ready(Some(b)),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.session.queue().is_empty()
    }

    /// A queued item, if there is one now.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let b = {
            let mut q = self.session.queue();
            let b = q.pop_front()?;
            if q.is_empty() && q.capacity() > QUEUE_KEPT {
                *q = VecDeque::new();
            }
            b
        };
        if !b.is_empty() {
            self.session.0.queued.fetch_sub(1, Ordering::AcqRel);
        }
        Some(b)
    }
}

/// See [`Session::conn_closed`].
pub(crate) struct ConnClosed<'a>(&'a Inner);

impl Future for ConnClosed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.closed.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.conn_waker.register(cx.waker());
        if self.0.closed.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.0.id)
            .field("remote", &self.0.remote)
            .field("transport", &self.0.transport)
            .field("user", &self.user())
            .finish()
    }
}

fn pack(w: Wire) -> u8 {
    u8::from(w.layout == Layout::Legacy) | u8::from(w.codec == BodyCodec::Json) << 1 | u8::from(w.text) << 2
}

fn unpack(b: u8) -> Wire {
    Wire {
        layout: if b & 1 != 0 { Layout::Legacy } else { Layout::Zinx },
        codec: if b & 2 != 0 { BodyCodec::Json } else { BodyCodec::Protobuf },
        text: b & 4 != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(queue: usize) -> (Session, Outbox) {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        Session::new(1, addr, Transport::Tcp, Wire::frames(Layout::Zinx, BodyCodec::Protobuf), queue)
    }

    #[test]
    fn wire_packs() {
        for layout in [Layout::Zinx, Layout::Legacy] {
            for codec in [BodyCodec::Protobuf, BodyCodec::Json] {
                for text in [false, true] {
                    let w = Wire { layout, codec, text };
                    assert_eq!(unpack(pack(w)), w);
                }
            }
        }
    }

    #[test]
    fn properties_are_typed() {
        #[derive(Clone, Debug, PartialEq)]
        struct Scene(u32);
        let (s, _rx) = session(4);
        assert_eq!(s.get::<Scene>(), None);
        s.set(Scene(1000));
        s.set(7u8);
        assert_eq!(s.get::<Scene>(), Some(Scene(1000)));
        assert_eq!(s.remove::<u8>(), Some(7));
        assert_eq!(s.get::<u8>(), None);
        assert_eq!(s.user(), None);
        s.bind_user(42);
        assert_eq!(s.user(), Some(42));
    }

    #[test]
    fn full_queue_closes_as_slow_consumer() {
        let (s, _rx) = session(2);
        let ping = rsgame_proto::pb::Ping { sn: 1 };
        assert!(s.send(2000, &ping).is_ok());
        assert!(s.send(2000, &ping).is_ok());
        assert_eq!(s.send(2000, &ping), Err(SendError::SlowConsumer));
        assert_eq!(s.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(s.send(2000, &ping), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_connection_and_a_drained_burst_leaves_no_buffer() {
        let (s, mut rx) = session(1000);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx)
        });
        tokio::task::yield_now().await;
        s.push(2000, &rsgame_proto::pb::Ping { sn: 1 });
        let (first, mut rx) =
            tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.expect("woken").expect("task");
        assert!(first.is_some_and(|b| !b.is_empty()));
        for sn in 0..100 {
            s.push(2000, &rsgame_proto::pb::Ping { sn });
        }
        assert_eq!(s.queued(), 100);
        let mut n = 0;
        while let Some(b) = rx.try_recv() {
            assert_eq!(b, s.wire().encode(2000, &rsgame_proto::pb::Ping { sn: n }), "in order");
            n += 1;
        }
        assert_eq!(n, 100, "every push, in order, none lost");
        assert_eq!(s.queued(), 0);
        assert_eq!(s.queue().capacity(), 0, "an idle session keeps no buffer from a burst");
    }

    #[test]
    fn a_dropped_outbox_frees_what_it_never_read_and_refuses_more() {
        let (s, rx) = session(8);
        let ping = rsgame_proto::pb::Ping { sn: 1 };
        assert!(s.send(2000, &ping).is_ok());
        drop(rx);
        assert_eq!(s.queued(), 0);
        assert_eq!(s.queue().capacity(), 0, "nothing held after the reader went");
        assert_eq!(s.send(2000, &ping), Err(SendError::Closed));
    }

    #[test]
    fn first_close_reason_wins_and_notice_is_queued() {
        let (s, mut rx) = session(4);
        s.close(CloseReason::Flood);
        s.close(CloseReason::IdleTimeout);
        assert_eq!(s.close_reason(), Some(CloseReason::Flood));
        let notice = rx.try_recv().expect("notice queued");
        assert!(rx.try_recv().is_some_and(|m| m.is_empty()), "then the close marker");
        assert!(rx.try_recv().is_none());
        assert_eq!(&notice[..4], &9000u32.to_be_bytes());
    }
}
