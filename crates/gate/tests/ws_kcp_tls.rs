//! The gate over WebSocket (binary and JSON text), KCP, and TLS (TCP and wss), end to end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use rsgame_gate::{CloseReason, FrameCodec, Layout};
use rsgame_proto::{ids, pb};
use tokio_tungstenite::tungstenite::Message as WsMsg;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(g: &TestGate, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", g.http)).await.expect("ws connect");
    ws
}

/// Next binary message's frames, or text message.
async fn next(ws: &mut Ws) -> Option<WsMsg> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("no message within 30 s") {
            Some(Ok(WsMsg::Ping(_) | WsMsg::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

fn frames_of(data: &[u8]) -> Vec<rsgame_gate::Frame> {
    let codec = FrameCodec::new(Layout::Zinx, 1 << 20);
    let mut buf = bytes::BytesMut::from(data);
    let mut v = Vec::new();
    while let Some(f) = codec.decode(&mut buf).expect("valid") {
        v.push(f);
    }
    assert!(buf.is_empty(), "whole frames per message");
    v
}

#[tokio::test]
async fn ws_binary_frames_in_one_message_and_across_messages() {
    let g = TestGate::start(config()).await;
    for path in ["/ws", "/wss"] {
        let mut c = ws(&g, path).await;
        // Two frames in one message.
        let mut two = frame(ids::PING, &pb::Ping { sn: 1 });
        two.extend(frame(ids::PING, &pb::Ping { sn: 2 }));
        c.send(WsMsg::Binary(two.into())).await.expect("send");
        let mut got = Vec::new();
        while got.len() < 2 {
            let Some(WsMsg::Binary(b)) = next(&mut c).await else { panic!("binary expected") };
            got.extend(frames_of(&b));
        }
        let sns: Vec<i64> = got.iter().map(|f| pb::PingResp::decode(f.body.clone()).expect("resp").sn).collect();
        assert_eq!(sns, [1, 2]);
        // One frame split over three messages.
        let f = frame(ECHO, &pb::ChatMsg { msg: "pieces".into(), ..Default::default() });
        for part in [&f[..3], &f[3..9], &f[9..]] {
            c.send(WsMsg::Binary(part.to_vec().into())).await.expect("send");
        }
        let Some(WsMsg::Binary(b)) = next(&mut c).await else { panic!("binary expected") };
        let r = pb::ChatMsgResp::decode(frames_of(&b)[0].body.clone()).expect("resp");
        assert_eq!(r.msg_list[0].msg, "pieces");
    }
}

#[tokio::test]
async fn ws_json_text_messages() {
    let g = TestGate::start(config()).await;
    let mut c = ws(&g, "/ws").await;
    c.send(WsMsg::Text(r#"{"id":100002,"data":{"msg":"hello","chatType":1}}"#.into())).await.expect("send");
    let Some(WsMsg::Text(t)) = next(&mut c).await else { panic!("text expected") };
    let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
    assert_eq!(v["id"], 200002);
    assert_eq!(v["data"]["msgList"][0]["msg"], "hello");
    // Garbage text gets an error in text, and the session lives on.
    c.send(WsMsg::Text("not json".into())).await.expect("send");
    let Some(WsMsg::Text(t)) = next(&mut c).await else { panic!("text expected") };
    let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
    assert_eq!((v["id"].as_u64(), v["data"]["code"].as_i64()), (Some(9000), Some(400102)));
    c.send(WsMsg::Text(r#"{"id":1000,"data":{"sn":3}}"#.into())).await.expect("send");
    let Some(WsMsg::Text(t)) = next(&mut c).await else { panic!("text expected") };
    let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
    assert_eq!((v["id"].as_u64(), v["data"]["sn"].as_i64()), (Some(2000), Some(3)));
}

#[tokio::test]
async fn ws_codec_negotiated_by_query() {
    let g = TestGate::start(config()).await;
    let mut c = ws(&g, "/ws?codec=json").await;
    let bin = FrameCodec::new(Layout::Zinx, 1024).encode(ids::PING, br#"{"sn":11}"#);
    c.send(WsMsg::Binary(bin.to_vec().into())).await.expect("send");
    let Some(WsMsg::Binary(b)) = next(&mut c).await else { panic!("binary expected") };
    let f = &frames_of(&b)[0];
    let v: serde_json::Value = serde_json::from_slice(&f.body).expect("json body");
    assert_eq!(v["sn"], 11);
}

#[tokio::test]
async fn ws_oversize_and_unknown_ids() {
    let mut cfg = config();
    cfg.gate.max_body = 512;
    cfg.gate.max_bad_messages = 1;
    let g = TestGate::start(cfg).await;
    let mut c = ws(&g, "/ws").await;
    c.send(WsMsg::Binary(frame(4242, &pb::Ping { sn: 1 }).into())).await.expect("send");
    let Some(WsMsg::Binary(b)) = next(&mut c).await else { panic!("binary expected") };
    let e = pb::ErrorResp::decode(frames_of(&b)[0].body.clone()).expect("error");
    assert_eq!((e.req_id, e.code), (4242, 400_505));

    let mut big = Vec::new();
    big.extend(ECHO.to_be_bytes());
    big.extend(100_000u32.to_be_bytes());
    c.send(WsMsg::Binary(big.into())).await.expect("send");
    let mut closed = false;
    while let Some(m) = next(&mut c).await {
        if let WsMsg::Close(Some(cf)) = m {
            assert_eq!(u16::from(cf.code), 1009);
            closed = true;
            break;
        }
    }
    assert!(closed, "a close frame with 1009");
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::FrameTooLarge);
}

#[tokio::test]
async fn ws_refused_over_the_limit() {
    let mut cfg = config();
    cfg.gate.max_connections = 1;
    let g = TestGate::start(cfg).await;
    let _a = ws(&g, "/ws").await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", g.http)).await.expect_err("refused");
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn kcp_ping_and_echo() {
    let g = TestGate::start(config()).await;
    let addr = g.gate.kcp_addr().expect("kcp on");
    let k = rsgame_gate::config::KcpConfig::default();
    let cfg = tokio_kcp::KcpConfig {
        nodelay: tokio_kcp::KcpNoDelayConfig { nodelay: true, interval: 10, resend: 2, nc: true },
        wnd_size: (k.send_window, k.recv_window),
        stream: true,
        flush_write: true,
        ..Default::default()
    };
    let stream = kcp_connect(&cfg, addr).await;
    let mut c = Client::new(stream);
    c.send(ids::PING, &pb::Ping { sn: 77 }).await;
    assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 77);
    // A frame larger than the MTU crosses in several KCP segments.
    let text = "k".repeat(5000);
    c.send(ECHO, &pb::ChatMsg { msg: text.clone(), ..Default::default() }).await;
    assert_eq!(c.recv_msg::<pb::ChatMsgResp>(ids::reply(ECHO)).await.msg_list[0].msg, text);
}

fn client_tls(cert_der: &[u8]) -> tokio_rustls::TlsConnector {
    rsgame_kit::tls::install_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(cert_der.to_vec())).expect("root");
    let cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A KCP client that did not ask for a conversation id (or forged its source) gets no
/// session: the server keeps nothing and answers nothing. With `gate.kcp.cookie: false`
/// such clients (kcp-go, zinx) are served.
#[tokio::test]
async fn kcp_sessions_need_the_conversation_id_the_server_gave_unless_cookies_are_off() {
    let cfg = tokio_kcp::KcpConfig {
        nodelay: tokio_kcp::KcpNoDelayConfig { nodelay: true, interval: 10, resend: 2, nc: true },
        stream: true,
        flush_write: true,
        ..Default::default()
    };
    let g = TestGate::start(config()).await;
    let addr = g.gate.kcp_addr().expect("kcp on");
    let stream = tokio_kcp::KcpStream::connect(&cfg, addr).await.expect("kcp socket");
    let mut c = Client::new(stream);
    c.send(ids::PING, &pb::Ping { sn: 1 }).await;
    assert!(tokio::time::timeout(Duration::from_millis(800), c.recv()).await.is_err(), "no answer");
    assert_eq!(g.gate.hub().len(), 0, "and no session");
    // Another address cannot use an id given to this one.
    let asker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let conv = rsgame_gate::kcp::ask_conv(&asker, addr, Duration::from_secs(5)).await.expect("conv");
    let thief = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let stolen = tokio_kcp::KcpStream::connect_with_socket_conv(&cfg, conv, thief, addr).await.expect("kcp");
    let mut t = Client::new(stolen);
    t.send(ids::PING, &pb::Ping { sn: 2 }).await;
    assert!(tokio::time::timeout(Duration::from_millis(800), t.recv()).await.is_err(), "no answer");
    assert_eq!(g.gate.hub().len(), 0, "no session for a borrowed id");

    let mut open = config();
    open.gate.kcp.cookie = false;
    let g = TestGate::start(open).await;
    let legacy = tokio_kcp::KcpStream::connect(&cfg, g.gate.kcp_addr().expect("kcp")).await.expect("kcp");
    let mut c = Client::new(legacy);
    c.send(ids::PING, &pb::Ping { sn: 3 }).await;
    assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 3);
}

/// A raw KCP datagram: one PUSH segment numbered `sn` of conversation `conv` carrying `data`.
fn kcp_push(conv: u32, sn: u32, data: &[u8]) -> Vec<u8> {
    let mut p = conv.to_le_bytes().to_vec();
    p.extend_from_slice(&[81, 0]); // PUSH, frg 0
    p.extend_from_slice(&128u16.to_le_bytes()); // window
    p.extend_from_slice(&0u32.to_le_bytes()); // ts
    p.extend_from_slice(&sn.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes()); // una
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
    p
}

/// Even with the conversation id the server gave, a session opens only for a datagram that
/// carries a whole first frame the gate routes: not for an empty segment, half a frame, a
/// frame nothing handles, an oversized announcement or a stream that does not start at 0.
#[tokio::test]
async fn a_kcp_session_opens_only_for_a_whole_routed_first_frame() {
    let g = TestGate::start(config()).await;
    let addr = g.gate.kcp_addr().expect("kcp on");
    let codec = FrameCodec::new(Layout::Zinx, 1 << 20);
    let ping = codec.encode(ids::PING, &pb::Ping { sn: 7 }.encode_to_vec());
    let unrouted = codec.encode(424_242, b"x");
    let mut huge = ping.to_vec();
    huge[4..8].copy_from_slice(&(64u32 << 20).to_be_bytes());
    let bad: [(u32, &[u8]); 5] = [(0, b""), (0, &ping[..ping.len() - 1]), (0, &unrouted), (0, &huge), (1, &ping)];
    let mut wrong = Vec::new();
    for (sn, data) in bad {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let conv = rsgame_gate::kcp::ask_conv(&udp, addr, Duration::from_secs(5)).await.expect("conv");
        udp.send_to(&kcp_push(conv, sn, data), addr).await.expect("send");
        wrong.push(udp);
    }
    let good = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let conv = rsgame_gate::kcp::ask_conv(&good, addr, Duration::from_secs(5)).await.expect("conv");
    good.send_to(&kcp_push(conv, 0, &ping), addr).await.expect("send");
    let mut reply = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), good.recv_from(&mut reply))
        .await
        .expect("the whole Ping is answered")
        .expect("recv");
    assert!(n >= 24 && reply[..4] == conv.to_le_bytes(), "a KCP datagram of that conversation");
    // The listener reads datagrams in order: the bad ones were seen before the good one.
    assert_eq!(g.gate.hub().len(), 1, "only the whole routed frame opened a session");
    for udp in &wrong {
        let mut buf = [0u8; 64];
        let heard = tokio::time::timeout(Duration::from_millis(50), udp.recv_from(&mut buf)).await;
        assert!(heard.is_err(), "nothing is sent to a datagram that opened nothing");
    }
}

#[tokio::test]
async fn tls_over_tcp_and_wss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, der) = self_signed(dir.path());
    let mut cfg = config();
    cfg.tls = rsgame_kit::config::TlsConfig { cert_file: cert, key_file: key, http: true, gate_tcp: true };
    let g = TestGate::start(cfg).await;
    let connector = client_tls(&der);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");

    // TCP + TLS.
    let tcp = tokio::net::TcpStream::connect(g.tcp()).await.expect("connect");
    let tls = connector.connect(name.clone(), tcp).await.expect("tls handshake");
    let mut c = Client::new(tls);
    c.send(ids::PING, &pb::Ping { sn: 5 }).await;
    assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 5);

    // Plain TCP to a TLS port gets nothing usable and is dropped.
    let mut plain = TcpClient::connect(g.tcp()).await;
    plain.send(ids::PING, &pb::Ping { sn: 1 }).await;
    assert!(plain.recv().await.is_none());

    // wss:// on the HTTP listener.
    let tcp = tokio::net::TcpStream::connect(g.http).await.expect("connect");
    let tls = connector.connect(name, tcp).await.expect("tls handshake");
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{}/wss", g.http.port()), tls).await.expect("wss");
    ws.send(WsMsg::Text(r#"{"id":1000,"data":{"sn":9}}"#.into())).await.expect("send");
    let reply = loop {
        match ws.next().await {
            Some(Ok(WsMsg::Text(t))) => break t,
            Some(Ok(_)) => continue,
            other => panic!("no reply: {other:?}"),
        }
    };
    let v: serde_json::Value = serde_json::from_str(reply.as_str()).expect("json");
    assert_eq!(v["data"]["sn"], 9);
}

#[tokio::test]
async fn a_bad_certificate_stops_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let mut cfg = config();
    cfg.tls = rsgame_kit::config::TlsConfig {
        cert_file: bad.display().to_string(),
        key_file: bad.display().to_string(),
        http: false,
        gate_tcp: true,
    };
    let sd = rsgame_kit::Shutdown::new();
    let err = rsgame_gate::Gate::builder(&cfg.gate, &cfg.tls, rsgame_gate::Router::builder().build()).start(&sd).await;
    assert!(matches!(err, Err(rsgame_gate::GateError::Tls(_))));
}
