//! Every abuse and edge case, over every transport with a real client: TCP, WebSocket, KCP
//! and TLS. Each scenario is one async fn; the macro at the bottom runs it per transport.

mod common;

use std::time::Duration;

use common::*;
use rsgame_gate::{CloseReason, Frame};
use rsgame_proto::{ids, pb};

/// Reads until the server closes. KCP has no close on the wire, so there the frames that
/// arrive within a short wait stand in for it; the disconnect hook is the proof.
async fn closed(c: &mut AnyClient, kind: Kind) -> Vec<Frame> {
    if kind != Kind::Kcp {
        return c.until_closed().await;
    }
    let mut v = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(500), c.recv()).await {
        v.push(f);
    }
    v
}

fn notice(frames: &[Frame]) -> pb::ErrorResp {
    let f = frames.iter().rfind(|f| f.id == ids::ERROR).unwrap_or_else(|| panic!("no notice in {frames:?}"));
    prost::Message::decode(f.body.clone()).expect("notice decodes")
}

async fn ping(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    c.send(ids::PING, &pb::Ping { sn: 42 }).await;
    assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 42);
}

async fn byte_by_byte(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    for b in frame(ECHO, &pb::ChatMsg { msg: "split".into(), ..Default::default() }) {
        c.send_raw(&[b]).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(c.recv_msg::<pb::ChatMsgResp>(ids::reply(ECHO)).await.msg_list[0].msg, "split");
}

async fn many_in_one_write(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    let mut all = Vec::new();
    for sn in 0..300 {
        all.extend(frame(ids::PING, &pb::Ping { sn }));
    }
    c.send_raw(&all).await;
    for sn in 0..300 {
        assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, sn, "in order");
    }
}

async fn oversize(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, cert) = config_for(kind, dir.path());
    cfg.gate.max_body = 1024;
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    let mut header = ECHO.to_be_bytes().to_vec();
    header.extend((8u32 << 20).to_be_bytes());
    c.send_raw(&header).await;
    let frames = closed(&mut c, kind).await;
    assert_eq!(notice(&frames).code, 400_102);
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::FrameTooLarge);
}

async fn garbage(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut good = connect(&g, kind, cert.as_deref()).await;
    let mut bad = connect(&g, kind, cert.as_deref()).await;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    bad.send_raw(&junk).await;
    closed(&mut bad, kind).await;
    let reason = g.wait_disconnects(1).await[0].1;
    assert!(matches!(reason, CloseReason::FrameTooLarge | CloseReason::TooManyBadMessages), "{reason:?}");
    good.send(ids::PING, &pb::Ping { sn: 1 }).await;
    assert_eq!(good.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 1, "others unaffected");
}

async fn unknown_id(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, cert) = config_for(kind, dir.path());
    cfg.gate.max_bad_messages = 2;
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    c.send(31337, &pb::Ping { sn: 1 }).await;
    let e = c.recv_error().await;
    assert_eq!((e.req_id, e.code), (31337, 400_505));
    c.send(ids::PING, &pb::Ping { sn: 2 }).await;
    assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 2, "still usable");
    c.send(31338, &pb::Ping { sn: 1 }).await;
    c.send(31339, &pb::Ping { sn: 1 }).await;
    closed(&mut c, kind).await;
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::TooManyBadMessages);
}

async fn handler_panic(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut other = connect(&g, kind, cert.as_deref()).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    c.send(PANIC, &pb::Ping { sn: 1 }).await;
    closed(&mut c, kind).await;
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::HandlerPanic);
    other.send(ids::PING, &pb::Ping { sn: 5 }).await;
    assert_eq!(other.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 5);
}

async fn slow_consumer(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, cert) = config_for(kind, dir.path());
    cfg.gate.outbound_queue = 8;
    let g = TestGate::start(cfg).await;
    // Both say something first: a KCP session exists on the server only once a packet came.
    let mut reader = connect(&g, kind, cert.as_deref()).await;
    reader.send(ids::PING, &pb::Ping { sn: 0 }).await;
    reader.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    let mut slow = connect(&g, kind, cert.as_deref()).await;
    slow.send(ids::PING, &pb::Ping { sn: 1 }).await;
    g.wait_connects(2).await;
    // The reader asks for 60 kB pushes to everyone and reads its own; the slow client never
    // reads, so its buffers fill, its writer stalls and its queue overflows.
    for _ in 0..1000 {
        if !g.disconnects.lock().expect("lock").is_empty() {
            break;
        }
        reader.send(BIG, &pb::ChatMsg { msg: "x".into(), ..Default::default() }).await;
        let r: pb::ChatMsgResp = reader.recv_msg(ids::reply(ECHO)).await;
        assert_eq!(r.msg_list[0].msg.len(), 60_000);
    }
    let d = g.wait_disconnects(1).await;
    assert_eq!(d[0].1, CloseReason::SlowConsumer);
    reader.send(ids::PING, &pb::Ping { sn: 8 }).await;
    let f = loop {
        let f = reader.recv().await.expect("frame");
        if f.id == ids::PING_RESP {
            break f;
        }
    };
    let pong: pb::PingResp = prost::Message::decode(f.body).expect("pong");
    assert_eq!(pong.sn, 8, "others unaffected");
    drop(slow);
}

async fn flood(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, cert) = config_for(kind, dir.path());
    cfg.gate.rate_per_sec = 5;
    cfg.gate.rate_burst = 20;
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    let mut all = Vec::new();
    for sn in 0..100 {
        all.extend(frame(ids::PING, &pb::Ping { sn }));
    }
    c.send_raw(&all).await;
    let frames = closed(&mut c, kind).await;
    let pongs = frames.iter().filter(|f| f.id == ids::PING_RESP).count();
    // Over KCP, the Ping that opened the session took one of the burst.
    let burst = if kind == Kind::Kcp { 19..=20 } else { 20..=21 };
    assert!(burst.contains(&pongs), "the burst is served, then the session closes: {pongs}");
    assert_eq!(notice(&frames).code, 400_502);
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::Flood);
}

/// Opens `n` connections; over the limit, a WebSocket upgrade is refused with an HTTP status
/// and the others get a notice (TCP, TLS) or nothing (KCP).
async fn limit(kind: Kind, per_ip: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, cert) = config_for(kind, dir.path());
    // KCP has its own limits (forged UDP sources must not use up TCP's and WebSocket's).
    match (kind, per_ip) {
        (Kind::Kcp, true) => cfg.gate.kcp.max_sessions_per_ip = 1,
        (Kind::Kcp, false) => cfg.gate.kcp.max_sessions = 1,
        (_, true) => cfg.gate.max_connections_per_ip = 1,
        (_, false) => cfg.gate.max_connections = 1,
    }
    let g = TestGate::start(cfg).await;
    let mut a = connect(&g, kind, cert.as_deref()).await;
    a.send(ids::PING, &pb::Ping { sn: 1 }).await;
    a.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    let code = if per_ip { 400_502 } else { 400_503 };
    match kind {
        Kind::Ws => {
            let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", g.http)).await.expect_err("refused");
            let status = if per_ip { "429" } else { "503" };
            assert!(err.to_string().contains(status), "{err}");
        }
        Kind::Tcp => {
            let mut b = connect(&g, kind, cert.as_deref()).await;
            assert_eq!(notice(&b.until_closed().await).code, code);
        }
        Kind::Tls => {
            // Refused before the handshake: the notice is plain bytes, so the TLS client fails.
            let tcp = tokio::net::TcpStream::connect(g.tcp()).await.expect("connect");
            let mut plain = Client::new(tcp);
            assert_eq!(notice(&plain.until_closed().await).code, code);
        }
        Kind::Kcp => {
            let mut b = kcp_unopened(&g).await;
            b.send(ids::PING, &pb::Ping { sn: 2 }).await;
            assert!(tokio::time::timeout(Duration::from_millis(800), b.recv()).await.is_err(), "no answer");
        }
    }
    assert_eq!(g.gate.hub().len(), 1, "only the first session exists");
}

async fn max_connections(kind: Kind) {
    limit(kind, false).await;
}

async fn per_ip(kind: Kind) {
    limit(kind, true).await;
}

async fn idle_timeout(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    c.send(ids::PING, &pb::Ping { sn: 1 }).await;
    c.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    let start = tokio::time::Instant::now();
    let d = g.wait_disconnects(1).await;
    assert_eq!(d[0].1, CloseReason::IdleTimeout);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(19) && waited <= Duration::from_secs(26), "{waited:?}");
}

/// A session nothing logs in (no user bound) is closed at `login_timeout_secs`, however
/// busy it keeps; one that logs in stays.
async fn login_timeout(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut cfg, cert) = config_for(kind, dir.path());
    cfg.gate.login_timeout_secs = 3;
    let g = TestGate::start(cfg).await;
    // In turn, so the second session registered is the one that logs in (a KCP session is
    // made by its first packet).
    let start = tokio::time::Instant::now();
    let mut c = connect(&g, kind, cert.as_deref()).await;
    c.send(ids::PING, &pb::Ping { sn: 0 }).await;
    c.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    let mut user = connect(&g, kind, cert.as_deref()).await;
    user.send(ids::PING, &pb::Ping { sn: 1 }).await;
    user.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    let second = g.connects.lock().expect("connects")[1];
    g.gate.hub().get(second).expect("live").bind_user(7);
    for sn in 0.. {
        c.send(ids::PING, &pb::Ping { sn }).await;
        if !g.disconnects.lock().expect("disconnects").is_empty() || start.elapsed() > Duration::from_secs(8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let d = g.wait_disconnects(1).await;
    assert_eq!(d[0].1, CloseReason::LoginTimeout);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(2500) && waited <= Duration::from_secs(5), "{waited:?}");
    user.send(ids::PING, &pb::Ping { sn: 2 }).await;
    user.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    // (A KCP client that still sends after its close opens a new session: its own business.)
    assert!(g.gate.hub().get(second).is_some(), "the logged-in session stays");
}

async fn slowloris(kind: Kind) {
    if kind == Kind::Kcp {
        // A KCP session exists only once a whole first frame has come (ws_kcp_tls.rs:
        // a_kcp_session_opens_only_for_a_whole_routed_first_frame): nothing to time out.
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, cert) = config_for(kind, dir.path());
    let g = TestGate::start(cfg).await;
    let mut c = connect(&g, kind, cert.as_deref()).await;
    c.send_raw(&[0, 0, 3]).await;
    let start = tokio::time::Instant::now();
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::FirstFrameTimeout);
    assert!(start.elapsed() >= Duration::from_secs(9), "{:?}", start.elapsed());
}

macro_rules! per_transport {
    ($($name:ident $(: $paused:ident)?),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test $(($paused = true))?]
                async fn tcp() { super::$name(Kind::Tcp).await }
                #[tokio::test $(($paused = true))?]
                async fn ws() { super::$name(Kind::Ws).await }
                #[tokio::test $(($paused = true))?]
                async fn kcp() { super::$name(Kind::Kcp).await }
                #[tokio::test $(($paused = true))?]
                async fn tls() { super::$name(Kind::Tls).await }
            }
        )*
    };
}

per_transport!(
    ping,
    byte_by_byte,
    many_in_one_write,
    oversize,
    garbage,
    unknown_id,
    handler_panic,
    slow_consumer,
    flood,
    max_connections,
    per_ip,
    idle_timeout: start_paused,
    slowloris: start_paused,
    login_timeout,
);
