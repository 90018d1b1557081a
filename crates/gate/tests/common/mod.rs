//! A gate on ephemeral ports with a test router, and minimal clients for each transport.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rsgame_gate::config::GateConfig;
use rsgame_gate::{CloseReason, Frame, FrameCodec, Gate, Layout, Router, Session};
use rsgame_kit::{Code, Error, Shutdown};
use rsgame_proto::{ids, pb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Echo: ChatMsg 100002 → ChatMsgResp 200002 holding the message.
pub const ECHO: u32 = ids::CHAT_MSG;
/// Panics.
pub const PANIC: u32 = 5001;
/// Fails with a BadParam error.
pub const FAIL: u32 = 5002;
/// Pushes a ChatMsgResp whose text is `msg` repeated 60 000 times to every session (world
/// chat with a big message: the slow-consumer scenario).
pub const BIG: u32 = 5003;
/// Binds user id from GameLogin.userId (no token check: the gate tests only the gate).
pub const LOGIN: u32 = ids::GAME_LOGIN;
/// Needs a bound user (before hook).
pub const SECRET: u32 = 5004;
/// A synchronous route (no future): fails with BadParam when `sn` is negative, panics when it
/// is zero, echoes the Ping otherwise.
pub const SYNC: u32 = 5005;

pub struct TestGate {
    pub gate: Gate,
    pub shutdown: Shutdown,
    pub http: SocketAddr,
    pub disconnects: Arc<Mutex<Vec<(u64, CloseReason)>>>,
    pub connects: Arc<Mutex<Vec<u64>>>,
    /// (message id, outcome) seen by the router's after hook.
    pub dispatched: Arc<Mutex<Vec<(u32, String)>>>,
}

/// What a gate reads: its own section and the TLS certificate.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub gate: GateConfig,
    pub tls: rsgame_kit::config::TlsConfig,
}

pub fn config() -> Config {
    Config {
        gate: GateConfig {
            host: "127.0.0.1".into(),
            tcp_port: 0,
            kcp_port: 0,
            rate_per_sec: 10_000,
            rate_burst: 10_000,
            // The test router has no login.
            login_timeout_secs: 0,
            ..GateConfig::default()
        },
        ..Config::default()
    }
}

fn router(everyone: Arc<Mutex<Vec<Session>>>, dispatched: Arc<Mutex<Vec<(u32, String)>>>) -> Router {
    let mut b = Router::builder();
    b.route(ECHO, |s: Session, m: pb::ChatMsg| async move {
        let _ = s.send(ids::reply(ECHO), &pb::ChatMsgResp { msg_list: vec![m] });
        Ok(())
    })
    .expect("echo");
    b.route(PANIC, |_s: Session, _m: pb::Ping| async move {
        panic!("handler bug");
    })
    .expect("panic");
    b.route(FAIL, |_s: Session, _m: pb::Ping| async move { Err(Error::msg(Code::BadParam, "sn must be positive")) })
        .expect("fail");
    b.route(BIG, move |_s: Session, m: pb::ChatMsg| {
        let everyone = everyone.clone();
        async move {
            let text = m.msg.repeat(60_000);
            let msg = pb::ChatMsgResp { msg_list: vec![pb::ChatMsg { msg: text, ..m }] };
            let all: Vec<Session> = everyone.lock().expect("lock").iter().filter(|s| !s.is_closed()).cloned().collect();
            rsgame_gate::send_many(&all, ids::reply(ECHO), &msg);
            Ok(())
        }
    })
    .expect("big");
    b.route(LOGIN, |s: Session, m: pb::GameLogin| async move {
        s.bind_user(m.user_id);
        let _ = s.send(ids::reply(LOGIN), &pb::UserInfo { user_id: m.user_id, ..Default::default() });
        Ok(())
    })
    .expect("login");
    b.route(SECRET, |s: Session, m: pb::Ping| async move {
        let _ = s.send(ids::reply(SECRET), &m);
        Ok(())
    })
    .expect("secret");
    b.route_sync(SYNC, |s: &Session, m: pb::Ping| {
        match m.sn {
            0 => panic!("synchronous handler bug"),
            n if n < 0 => return Err(Error::msg(Code::BadParam, "sn must be positive")),
            _ => {}
        }
        let _ = s.send(ids::reply(SYNC), &m);
        Ok(())
    })
    .expect("sync");
    b.before(|s, id| {
        if id == SECRET && s.user().is_none() {
            return Err(Error::msg(Code::Unauthorized, "log in first"));
        }
        Ok(())
    });
    assert_eq!(
        b.route(ECHO, |_s: Session, _m: pb::Ping| async { Ok(()) }).err(),
        Some(rsgame_gate::RouteError::Duplicate(ECHO))
    );
    assert_eq!(
        b.route_sync(SYNC, |_s: &Session, _m: pb::Ping| Ok(())).err(),
        Some(rsgame_gate::RouteError::Duplicate(SYNC))
    );
    assert_eq!(
        b.route_sync(ids::ERROR, |_s: &Session, _m: pb::Ping| Ok(())).err(),
        Some(rsgame_gate::RouteError::Reserved(ids::ERROR))
    );
    b.after(move |_s, id, _elapsed, outcome| {
        let kind = format!("{outcome:?}");
        let kind = kind.split(['(', ' ']).next().unwrap_or_default().to_owned();
        dispatched.lock().expect("lock").push((id, kind));
    });
    b.build()
}

impl TestGate {
    pub async fn start(cfg: Config) -> TestGate {
        let shutdown = Shutdown::new();
        let disconnects = Arc::new(Mutex::new(Vec::new()));
        let connects = Arc::new(Mutex::new(Vec::new()));
        let (d, c) = (disconnects.clone(), connects.clone());
        let everyone = Arc::new(Mutex::new(Vec::new()));
        let e = everyone.clone();
        let dispatched = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate::builder(&cfg.gate, &cfg.tls, router(everyone, dispatched.clone()))
            .on_connect(move |s| {
                c.lock().expect("lock").push(s.id());
                e.lock().expect("lock").push(s.clone());
            })
            .on_disconnect(move |s, r| d.lock().expect("lock").push((s.id(), r)))
            .start(&shutdown)
            .await
            .expect("gate starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = listener.local_addr().expect("addr");
        let tls = if cfg.tls.http {
            Some(
                rsgame_kit::tls::server_config(cfg.tls.cert_file.as_ref(), cfg.tls.key_file.as_ref(), false)
                    .expect("tls"),
            )
        } else {
            None
        };
        tokio::spawn(rsgame_kit::http::serve(listener, tls, gate.ws_routes(), shutdown.clone()));
        TestGate { gate, shutdown, http, disconnects, connects, dispatched }
    }

    pub fn tcp(&self) -> SocketAddr {
        self.gate.tcp_addr().expect("tcp on")
    }

    /// Waits until the connect hook has seen `n` sessions.
    pub async fn wait_connects(&self, n: usize) {
        for _ in 0..3000 {
            if self.connects.lock().expect("lock").len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("only {} connects", self.connects.lock().expect("lock").len());
    }

    /// Waits until the disconnect hook has seen `n` sessions.
    pub async fn wait_disconnects(&self, n: usize) -> Vec<(u64, CloseReason)> {
        // 3000 × 10 ms: 30 s, virtual under a paused clock, so the 20 s heartbeat fits.
        for _ in 0..3000 {
            {
                let d = self.disconnects.lock().expect("lock");
                if d.len() >= n {
                    return d.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("only {:?} disconnects", self.disconnects.lock().expect("lock"));
    }
}

pub fn frame(id: u32, msg: &impl prost::Message) -> Vec<u8> {
    FrameCodec::new(Layout::Zinx, u32::MAX).encode(id, &msg.encode_to_vec()).to_vec()
}

/// A raw TCP (or TLS, or KCP) client reading zinx frames.
pub struct Client<S> {
    pub io: S,
    buf: BytesMut,
    codec: FrameCodec,
}

pub type TcpClient = Client<TcpStream>;

impl TcpClient {
    pub async fn connect(addr: SocketAddr) -> TcpClient {
        Client::new(TcpStream::connect(addr).await.expect("connect"))
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Client<S> {
    pub fn new(io: S) -> Self {
        Client { io, buf: BytesMut::new(), codec: FrameCodec::new(Layout::Zinx, 16 << 20) }
    }

    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.codec = FrameCodec::new(layout, 16 << 20);
        self
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    pub async fn send(&mut self, id: u32, msg: &impl prost::Message) {
        let b = self.codec.encode(id, &msg.encode_to_vec());
        self.send_raw(&b).await;
    }

    /// The next frame, or `None` at end of stream (or reset).
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.codec.decode(&mut self.buf).expect("server frames are valid") {
                return Some(f);
            }
            match tokio::time::timeout(Duration::from_secs(30), self.io.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => panic!("no frame within 30 s"),
            }
        }
    }

    pub async fn recv_msg<M: prost::Message + Default>(&mut self, id: u32) -> M {
        let f = self.recv().await.expect("a frame");
        assert_eq!(f.id, id, "expected message {id}, got {} {:?}", f.id, f.body);
        M::decode(f.body).expect("decodes")
    }

    pub async fn recv_error(&mut self) -> pb::ErrorResp {
        self.recv_msg(ids::ERROR).await
    }

    /// Reads until the server closes; returns the frames that came first.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = self.recv().await {
            v.push(f);
        }
        v
    }
}

/// A self-signed certificate for 127.0.0.1 / localhost, written to files.
pub fn self_signed(dir: &std::path::Path) -> (String, String, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("cert");
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    let c = dir.join("cert.pem");
    let k = dir.join("key.pem");
    std::fs::write(&c, &cert_pem).expect("write cert");
    std::fs::write(&k, key_pem).expect("write key");
    (c.display().to_string(), k.display().to_string(), cert.cert.der().to_vec())
}

/// The transports every scenario runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Ws,
    Kcp,
    Tls,
}

pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub type AnyClient = Client<Box<dyn Io>>;

/// The test configuration for a transport (TLS needs a certificate).
pub fn config_for(kind: Kind, dir: &std::path::Path) -> (Config, Option<Vec<u8>>) {
    let mut cfg = config();
    if kind == Kind::Tls {
        let (cert, key, der) = self_signed(dir);
        cfg.tls = rsgame_kit::config::TlsConfig { cert_file: cert, key_file: key, http: false, gate_tcp: true };
        return (cfg, Some(der));
    }
    (cfg, None)
}

/// Connects a byte-stream client over `kind`. WebSocket is bridged to a byte stream by a
/// pump task: bytes written become binary messages (cut wherever the writes fall), binary
/// messages read become bytes, a close becomes end of stream.
/// A KCP client that asks for its conversation id first, as the gate requires.
pub async fn kcp_connect(cfg: &tokio_kcp::KcpConfig, server: std::net::SocketAddr) -> tokio_kcp::KcpStream {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let conv = rsgame_gate::kcp::ask_conv(&udp, server, Duration::from_secs(5)).await.expect("conversation id");
    tokio_kcp::KcpStream::connect_with_socket_conv(cfg, conv, udp, server).await.expect("kcp")
}

/// A KCP client of `g` that has its conversation id but has sent nothing: no session yet.
pub async fn kcp_unopened(g: &TestGate) -> AnyClient {
    let cfg = tokio_kcp::KcpConfig {
        nodelay: tokio_kcp::KcpNoDelayConfig { nodelay: true, interval: 10, resend: 2, nc: true },
        wnd_size: (256, 256),
        stream: true,
        flush_write: true,
        ..Default::default()
    };
    let s = kcp_connect(&cfg, g.gate.kcp_addr().expect("kcp")).await;
    Client::new(Box::new(s) as Box<dyn Io>)
}

/// A client of `g` over `kind`; over KCP its session is already open (see below).
pub async fn connect(g: &TestGate, kind: Kind, cert: Option<&[u8]>) -> AnyClient {
    match kind {
        Kind::Tcp => Client::new(Box::new(TcpStream::connect(g.tcp()).await.expect("connect")) as Box<dyn Io>),
        Kind::Kcp => {
            let mut c = kcp_unopened(g).await;
            // A KCP session opens only for a whole first frame: open it with a Ping, so that
            // the scenario's own bytes (split, junk) go to a session as they would over TCP.
            c.send(rsgame_proto::ids::PING, &rsgame_proto::pb::Ping { sn: i64::MAX }).await;
            let opened = c.recv_msg::<rsgame_proto::pb::PingResp>(rsgame_proto::ids::PING_RESP).await;
            assert_eq!(opened.sn, i64::MAX, "the opening Ping's answer");
            c
        }
        Kind::Tls => {
            rsgame_kit::tls::install_provider();
            let mut roots = rustls::RootCertStore::empty();
            roots.add(rustls::pki_types::CertificateDer::from(cert.expect("cert").to_vec())).expect("root");
            let cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let tcp = TcpStream::connect(g.tcp()).await.expect("connect");
            let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("handshake");
            Client::new(Box::new(tls) as Box<dyn Io>)
        }
        Kind::Ws => {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", g.http)).await.expect("ws");
            Client::new(Box::new(bridge(ws)) as Box<dyn Io>)
        }
    }
}

fn bridge(
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> tokio::io::DuplexStream {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message as M;
    let (mine, theirs) = tokio::io::duplex(1 << 20);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = sink.close().await;
                    return;
                }
                Ok(n) => {
                    if sink.send(M::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                M::Binary(b) if wr.write_all(&b).await.is_err() => return,
                M::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    mine
}
