//! The gate: its listeners (TCP, TLS, KCP, and the WebSocket routes for the HTTP listener),
//! the registry of live sessions, connect / disconnect hooks, fan-out, and shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{BodyCodec, GateConfig};
use bytes::Bytes;
use rsgame_kit::config::TlsConfig;
use rsgame_kit::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::codec::{Message, Wire};
use crate::conn::{Generic, StreamLink, run};
use crate::frame::{FrameCodec, Layout};
use crate::limits::{ConnPermit, Limits};
use crate::router::Router;
use crate::session::{CloseReason, Session, Transport};

/// The gate's settings, taken from `gate.*` once at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub layout: Layout,
    pub max_body: u32,
    pub heartbeat: Duration,
    /// Quiet time after which a session gives its read buffer back.
    pub idle_release: Duration,
    pub first_frame_timeout: Duration,
    /// A session no user is bound to this long after connecting is closed; None: never.
    pub login_timeout: Option<Duration>,
    pub queue: usize,
    /// Free queue slots kept for replies: fewer, and the connection writes before it
    /// dispatches the next request.
    pub reply_room: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub max_bad_messages: u32,
    pub ws_codec: BodyCodec,
}

type ConnectHook = Box<dyn Fn(&Session) + Send + Sync>;
type DisconnectHook = Box<dyn Fn(&Session, CloseReason) + Send + Sync>;

/// State every connection of the gate shares.
pub(crate) struct Shared {
    pub settings: Settings,
    pub router: Router,
    pub hub: Hub,
    limits: Arc<Limits>,
    /// KCP's own: forged UDP sources must not use up the TCP and WebSocket players' room.
    kcp_limits: Arc<Limits>,
    next_id: AtomicU64,
    on_connect: Vec<ConnectHook>,
    on_disconnect: Vec<DisconnectHook>,
}

impl Shared {
    /// Admits a TCP, TLS or WebSocket connection from `ip`, or says which limit refuses it.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnPermit, CloseReason> {
        let r = self.limits.try_admit(ip);
        if let Err(reason) = r {
            crate::metrics::refused(reason);
        }
        r
    }

    /// Admits a KCP session from `ip`, against KCP's own limits.
    fn admit_kcp(&self, ip: IpAddr) -> Result<ConnPermit, CloseReason> {
        let r = self.kcp_limits.try_admit(ip);
        if let Err(reason) = r {
            crate::metrics::refused(reason);
        }
        r
    }

    /// Registers a new session and runs the connect hooks.
    pub fn open(&self, remote: SocketAddr, transport: Transport, wire: Wire) -> (Session, crate::session::Outbox) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (session, rx) = Session::new(id, remote, transport, wire, self.settings.queue);
        self.hub.insert(&session);
        crate::metrics::opened(transport);
        tracing::debug!(session = id, remote = %remote, transport = %transport, "session open");
        for hook in &self.on_connect {
            hook(&session);
        }
        (session, rx)
    }

    /// Unregisters a finished session and runs the disconnect hooks.
    pub fn finish(&self, session: &Session, permit: ConnPermit) {
        self.hub.remove(session.id());
        let reason = session.close_reason().unwrap_or(CloseReason::ClientClosed);
        crate::metrics::closed(session.transport(), reason);
        tracing::debug!(session = session.id(), remote = %session.remote(), reason = %reason, "session closed");
        for hook in &self.on_disconnect {
            hook(session, reason);
        }
        drop(permit);
    }
}

const SHARDS: usize = 16;

/// Live sessions by id, sharded so that connects and disconnects on different shards do not
/// contend.
pub struct Hub {
    shards: [RwLock<HashMap<u64, Session>>; SHARDS],
}

impl Default for Hub {
    fn default() -> Self {
        Hub { shards: std::array::from_fn(|_| RwLock::new(HashMap::new())) }
    }
}

impl Hub {
    fn shard(&self, id: u64) -> &RwLock<HashMap<u64, Session>> {
        &self.shards[(id as usize) % SHARDS]
    }

    fn insert(&self, s: &Session) {
        if let Ok(mut m) = self.shard(s.id()).write() {
            m.insert(s.id(), s.clone());
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.shard(id).write() {
            m.remove(&id);
        }
    }

    /// The session with this id, if it is live.
    pub fn get(&self, id: u64) -> Option<Session> {
        self.shard(id).read().ok()?.get(&id).cloned()
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map(|m| m.len()).unwrap_or(0)).sum()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of every live session.
    pub fn all(&self) -> Vec<Session> {
        let mut v = Vec::new();
        for s in &self.shards {
            if let Ok(m) = s.read() {
                v.extend(m.values().cloned());
            }
        }
        v
    }

    /// Sends `msg` to every live session, encoded once per wire format.
    pub fn broadcast<M: Message>(&self, id: u32, msg: &M) -> usize {
        send_many(&self.all(), id, msg)
    }
}

/// Sends `msg` to each session, encoding it once per distinct wire format (usually once)
/// and sharing the bytes. Returns how many sessions it was queued for.
pub fn send_many<'a, M: Message>(sessions: impl IntoIterator<Item = &'a Session>, id: u32, msg: &M) -> usize {
    let mut encoded: Vec<(Wire, Bytes)> = Vec::with_capacity(2);
    let mut sent = 0;
    for s in sessions {
        let wire = s.wire();
        let bytes = match encoded.iter().find(|(w, _)| *w == wire) {
            Some((_, b)) => b.clone(),
            None => {
                let b = wire.encode(id, msg);
                encoded.push((wire, b.clone()));
                b
            }
        };
        if s.send_bytes(bytes).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Why the gate could not start.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A listener could not bind.
    #[error("gate {transport} cannot listen on {addr}: {msg}")]
    Bind {
        /// Which listener.
        transport: &'static str,
        /// host:port.
        addr: String,
        /// The error.
        msg: String,
    },
    /// TLS is configured but unusable.
    #[error(transparent)]
    Tls(#[from] rsgame_kit::tls::TlsError),
}

/// Builds a [`Gate`].
pub struct GateBuilder {
    cfg: GateConfig,
    tls: TlsConfig,
    router: Router,
    on_connect: Vec<ConnectHook>,
    on_disconnect: Vec<DisconnectHook>,
}

impl GateBuilder {
    /// Runs `hook` when a session opens.
    pub fn on_connect(mut self, hook: impl Fn(&Session) + Send + Sync + 'static) -> Self {
        self.on_connect.push(Box::new(hook));
        self
    }

    /// Runs `hook` when a session ends, with the reason.
    pub fn on_disconnect(mut self, hook: impl Fn(&Session, CloseReason) + Send + Sync + 'static) -> Self {
        self.on_disconnect.push(Box::new(hook));
        self
    }

    /// Binds the enabled TCP and KCP listeners and starts accepting; registers a shutdown
    /// hook that stops accepting, closes every session and waits for them to finish.
    pub async fn start(self, shutdown: &Shutdown) -> Result<Gate, GateError> {
        crate::metrics::describe();
        let c = &self.cfg;
        let settings = Settings {
            layout: c.frame_layout.into(),
            max_body: c.max_body,
            heartbeat: Duration::from_secs(c.heartbeat_timeout_secs),
            idle_release: Duration::from_secs(2),
            first_frame_timeout: Duration::from_secs(c.first_frame_timeout_secs),
            login_timeout: (c.login_timeout_secs > 0).then(|| Duration::from_secs(c.login_timeout_secs)),
            queue: c.outbound_queue,
            reply_room: (c.outbound_queue / 2).clamp(1, 64),
            rate_per_sec: c.rate_per_sec,
            rate_burst: c.rate_burst,
            max_bad_messages: c.max_bad_messages,
            ws_codec: c.ws_codec,
        };
        let shared = Arc::new(Shared {
            settings,
            router: self.router,
            hub: Hub::default(),
            limits: Limits::new(c.max_connections, c.max_connections_per_ip),
            kcp_limits: Limits::new(c.kcp.max_sessions, c.kcp.max_sessions_per_ip),
            next_id: AtomicU64::new(1),
            on_connect: self.on_connect,
            on_disconnect: self.on_disconnect,
        });

        let mut gate = Gate { shared: shared.clone(), tcp_addr: None, kcp_addr: None, ws_enabled: c.ws_enabled };
        if c.tcp_enabled {
            let addr = format!("{}:{}", c.host, c.tcp_port);
            let listener = TcpListener::bind(&addr).await.map_err(|e| GateError::Bind {
                transport: "tcp",
                addr: addr.clone(),
                msg: e.to_string(),
            })?;
            gate.tcp_addr = listener.local_addr().ok();
            let tls = if self.tls.gate_tcp {
                Some(rsgame_kit::tls::server_config(self.tls.cert_file.as_ref(), self.tls.key_file.as_ref(), false)?)
            } else {
                None
            };
            tracing::info!(addr = ?gate.tcp_addr, tls = tls.is_some(), "gate tcp listening");
            tokio::spawn(accept_tcp(shared.clone(), listener, tls, c.tcp_codec, shutdown.clone()));
        }
        if c.kcp_enabled {
            let addr = format!("{}:{}", c.host, c.kcp_port);
            let udp = tokio::net::UdpSocket::bind(&addr).await.map_err(|e| GateError::Bind {
                transport: "kcp",
                addr: addr.clone(),
                msg: e.to_string(),
            })?;
            gate.kcp_addr = udp.local_addr().ok();
            tracing::info!(addr = ?gate.kcp_addr, cookie = c.kcp.cookie, "gate kcp listening");
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            let admitting = shared.clone();
            let admit = move |peer: SocketAddr| match admitting.admit_kcp(peer.ip()) {
                Ok(p) => Some(p),
                Err(reason) => {
                    if let Some(held) = REFUSED.hit() {
                        tracing::warn!(remote = %peer, reason = %reason, refused_since_last = held, "kcp session refused");
                    }
                    None
                }
            };
            // A session opens only for a whole first frame that something handles.
            let first = FrameCodec::new(shared.settings.layout, shared.settings.max_body);
            let routes = shared.clone();
            let opens = move |bytes: &[u8]| matches!(first.whole(bytes), Ok(Some((id, _))) if routes.router.has(id));
            let stop = shutdown.triggered();
            tokio::spawn(crate::kcp::listen(Arc::new(udp), c.kcp.clone(), opens, admit, tx, stop));
            tokio::spawn(accept_kcp(shared.clone(), rx, c.kcp_codec));
        }

        let closing = shared.clone();
        shutdown.on_shutdown("gate", move || async move {
            let sessions = closing.hub.all();
            tracing::info!(sessions = sessions.len(), "gate closing sessions");
            for s in &sessions {
                s.close(CloseReason::Shutdown);
            }
            // Each connection writes its last frames and leaves the hub; the hook's grace
            // period bounds the wait.
            while !closing.hub.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(gate)
    }
}

/// A running gate.
#[derive(Clone)]
pub struct Gate {
    shared: Arc<Shared>,
    tcp_addr: Option<SocketAddr>,
    kcp_addr: Option<SocketAddr>,
    ws_enabled: bool,
}

impl Gate {
    /// A builder for a gate with `router`, configured by `gate.*` and `tls.*`.
    pub fn builder(cfg: &GateConfig, tls: &TlsConfig, router: Router) -> GateBuilder {
        GateBuilder { cfg: cfg.clone(), tls: tls.clone(), router, on_connect: Vec::new(), on_disconnect: Vec::new() }
    }

    /// The `/ws` and `/wss` routes to merge into the HTTP router (empty when WebSocket is off).
    pub fn ws_routes(&self) -> axum::Router {
        if self.ws_enabled { crate::ws::routes(self.shared.clone()) } else { axum::Router::new() }
    }

    /// The bound TCP address, when TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound KCP address, when KCP is on.
    pub fn kcp_addr(&self) -> Option<SocketAddr> {
        self.kcp_addr
    }

    /// Live sessions.
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }
}

/// Refuses a connection over a limit with a last ErrorResp, without blocking the accept loop.
fn refuse_tcp(stream: tokio::net::TcpStream, layout: Layout, codec: BodyCodec, reason: CloseReason) {
    if let Some((code, msg)) = reason.notice_code() {
        let notice = rsgame_proto::pb::ErrorResp { req_id: 0, code: code.as_u32() as i32, msg: msg.into() };
        let bytes = Wire::frames(layout, codec).encode(rsgame_proto::ids::ERROR, &notice);
        // Best effort by design: the connection is refused whether or not the notice fits.
        let _ = stream.try_write(&bytes);
    }
}

/// One accept, raced with shutdown: `None` once shutdown starts, `Some(None)` after an
/// accept error (logged, then a short back-off: out of file descriptors must not spin).
async fn accept_next<T, E: std::fmt::Display>(
    stop: std::pin::Pin<&mut (impl std::future::Future<Output = ()> + ?Sized)>,
    accept: impl std::future::Future<Output = Result<T, E>>,
    transport: &'static str,
) -> Option<Option<T>> {
    tokio::select! {
        () = stop => None,
        r = accept => match r {
            Ok(c) => Some(Some(c)),
            Err(e) => {
                tracing::warn!(transport, error = %e, "gate accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some(None)
            }
        },
    }
}

async fn accept_tcp(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    codec: BodyCodec,
    shutdown: Shutdown,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let Some(next) = accept_next(stop.as_mut(), listener.accept(), "tcp").await else { break };
        let Some((stream, remote)) = next else { continue };
        let permit = match shared.admit(remote.ip()) {
            Ok(p) => p,
            Err(reason) => {
                if let Some(held) = REFUSED.hit() {
                    tracing::warn!(remote = %remote, reason = %reason, refused_since_last = held, "connection refused");
                }
                refuse_tcp(stream, shared.settings.layout, codec, reason);
                continue;
            }
        };
        // Game traffic is small messages where latency matters; the writer coalesces.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        match &acceptor {
            None => {
                let wire = Wire::frames(shared.settings.layout, codec);
                tokio::spawn(run(shared, permit, StreamLink::new(stream), remote, Transport::Tcp, wire));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let timeout = shared.settings.first_frame_timeout;
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let wire = Wire::frames(shared.settings.layout, codec);
                            run(shared, permit, StreamLink::new(Generic(tls)), remote, Transport::Tls, wire).await;
                        }
                        Ok(Err(e)) => tracing::debug!(remote = %remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(remote = %remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    tracing::info!("gate tcp stopped accepting");
}

/// Refused connections (any transport) are warned about at most once a second: a stranger's
/// flood must not become a flood of log lines.
pub(crate) static REFUSED: rsgame_kit::telemetry::sampled::Sampled = rsgame_kit::telemetry::sampled::Sampled::new();

/// Serves the sessions the KCP listener admits, until it stops.
async fn accept_kcp(
    shared: Arc<Shared>,
    mut accepted: tokio::sync::mpsc::Receiver<crate::kcp::Accepted<ConnPermit>>,
    codec: BodyCodec,
) {
    while let Some(a) = accepted.recv().await {
        let wire = Wire::frames(shared.settings.layout, codec);
        let link = StreamLink::new(Generic(a.stream));
        tokio::spawn(run(shared.clone(), a.permit, link, a.peer, Transport::Kcp, wire));
    }
    tracing::info!("gate kcp stopped accepting");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Transport;
    use rsgame_proto::pb;

    #[test]
    fn send_many_encodes_once_per_wire_and_shares_the_bytes() {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let proto = Wire::frames(Layout::Zinx, BodyCodec::Protobuf);
        let json = Wire::frames(Layout::Zinx, BodyCodec::Json);
        let mut sessions = Vec::new();
        let mut outboxes = Vec::new();
        for (i, wire) in [proto, proto, json, proto].into_iter().enumerate() {
            let (s, rx) = Session::new(i as u64, addr, Transport::Tcp, wire, 8);
            sessions.push(s);
            outboxes.push(rx);
        }
        let msg = pb::ChatMsgResp { msg_list: vec![pb::ChatMsg { msg: "hi".into(), ..Default::default() }] };
        assert_eq!(send_many(&sessions, 200_002, &msg), 4);
        let got: Vec<Bytes> = outboxes.iter_mut().map(|o| o.try_recv().expect("queued")).collect();
        // Same wire: the very same allocation, not equal copies.
        assert_eq!(got[0].as_ptr(), got[1].as_ptr());
        assert_eq!(got[0].as_ptr(), got[3].as_ptr());
        assert_ne!(got[0], got[2], "the JSON session got its own encoding");
        assert_eq!(got[2], json.encode(200_002, &msg));
    }
}
