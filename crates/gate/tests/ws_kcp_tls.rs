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

/// A WebSocket client written by hand, byte by byte, to send what a library would not.
struct RawWs {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Opens `/ws` and checks the server's accept key.
    async fn open(g: &TestGate) -> RawWs {
        use tokio::io::AsyncWriteExt as _;
        let mut tcp = tokio::net::TcpStream::connect(g.http).await.expect("connect");
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            g.http
        );
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut c = RawWs { tcp, buf: Vec::new() };
        let end = loop {
            if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            c.fill().await;
        };
        let head = String::from_utf8_lossy(&c.buf[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        c.buf.drain(..end);
        c
    }

    async fn fill(&mut self) {
        use tokio::io::AsyncReadExt as _;
        let mut b = [0u8; 4096];
        let n =
            tokio::time::timeout(Duration::from_secs(10), self.tcp.read(&mut b)).await.expect("in time").expect("read");
        assert!(n > 0, "the server closed with {} bytes unread", self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
    }

    /// Sends one frame; `first` is the first byte (FIN, RSV, opcode), masked unless `bare`.
    async fn send(&mut self, first: u8, payload: &[u8], bare: bool) {
        use tokio::io::AsyncWriteExt as _;
        let mask = [0x5A, 0x01, 0xC3, 0x7E];
        let mut f = vec![first];
        let m = if bare { 0 } else { 0x80 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        if bare {
            f.extend_from_slice(payload);
        } else {
            f.extend_from_slice(&mask);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        self.tcp.write_all(&f).await.expect("write");
    }

    /// The next frame from the server: (first byte, payload). Server frames are never masked.
    async fn recv(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "a server frame is not masked");
                let (len, at) = match self.buf[1] & 0x7F {
                    126 if self.buf.len() >= 4 => (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4),
                    127 if self.buf.len() >= 10 => {
                        (u64::from_be_bytes(self.buf[2..10].try_into().expect("8")) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let first = self.buf[0];
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return (first, payload);
                }
            }
            self.fill().await;
        }
    }

    /// Waits for the close frame and returns its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            let (first, p) = self.recv().await;
            if first & 0x0F == 0x8 {
                return u16::from_be_bytes([p[0], p[1]]);
            }
        }
    }
}

#[tokio::test]
async fn ws_pings_fragments_and_interleaved_control_frames() {
    let g = TestGate::start(config()).await;
    let mut c = RawWs::open(&g).await;
    // A ping gets a pong with the same payload.
    c.send(0x89, b"are you there", false).await;
    assert_eq!(c.recv().await, (0x8A, b"are you there".to_vec()));
    // A text message in three fragments, a ping between them.
    let text = r#"{"id":1000,"data":{"sn":41}}"#.as_bytes();
    c.send(0x01, &text[..5], false).await;
    c.send(0x89, b"mid", false).await;
    c.send(0x00, &text[5..12], false).await;
    c.send(0x80, &text[12..], false).await;
    assert_eq!(c.recv().await, (0x8A, b"mid".to_vec()));
    let (first, body) = c.recv().await;
    assert_eq!(first, 0x81, "a final text frame");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((v["id"].as_u64(), v["data"]["sn"].as_i64()), (Some(2000), Some(41)));
    // A binary message in fragments, one zinx frame cut across them, then a second message
    // holding two frames: replies come as binary messages of whole frames.
    let c2 = {
        let mut c2 = RawWs::open(&g).await;
        let f = frame(ids::PING, &pb::Ping { sn: 7 });
        c2.send(0x02, &f[..4], false).await;
        c2.send(0x00, &[], false).await;
        c2.send(0x80, &f[4..], false).await;
        let (first, body) = c2.recv().await;
        assert_eq!(first, 0x82);
        assert_eq!(pb::PingResp::decode(frames_of(&body)[0].body.clone()).expect("resp").sn, 7);
        c2
    };
    drop(c2);
    // A clean close: the server answers with 1000.
    c.send(0x88, &1000u16.to_be_bytes(), false).await;
    assert_eq!(c.close_code().await, 1000);
}

/// The whole WebSocket frames the server sent so far: (first byte, payload) each.
fn server_ws_frames(mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        assert_eq!(data[1] & 0x80, 0, "server frames are never masked");
        let (len, at) = match data[1] & 0x7F {
            126 if data.len() >= 4 => (u16::from_be_bytes([data[2], data[3]]) as usize, 4),
            126 => break,
            127 => panic!("no reply here is that large"),
            n => (n as usize, 2),
        };
        if data.len() < at + len {
            break;
        }
        out.push((data[0], data[at..at + len].to_vec()));
        data = &data[at + len..];
    }
    out
}

#[tokio::test]
async fn ws_over_http2_opens_with_extended_connect_and_carries_frames() {
    let g = TestGate::start(config()).await;
    // HTTP/2 without TLS (prior knowledge), as RFC 8441 describes a WebSocket over it.
    let tcp = tokio::net::TcpStream::connect(g.http).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !client.is_extended_connect_protocol_enabled() {
        assert!(tokio::time::Instant::now() < deadline, "the server never offered SETTINGS_ENABLE_CONNECT_PROTOCOL");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open = |protocol: Option<&'static str>| {
        let mut req = hyper::Request::builder()
            .method(hyper::Method::CONNECT)
            .uri(format!("http://{}/ws", g.http))
            .header("sec-websocket-version", "13");
        if let Some(p) = protocol {
            req = req.extension(h2::ext::Protocol::from_static(p));
        }
        req.body(()).expect("request")
    };
    // A CONNECT for another protocol is refused with 400.
    let (resp, _) = client.send_request(open(Some("not-websocket")), true).expect("send");
    assert_eq!(resp.await.expect("response").status(), 400);
    let mut client = client.ready().await.expect("ready");
    // The real thing: 200, then WebSocket frames both ways in the stream's DATA.
    let (resp, mut send) = client.send_request(open(Some("websocket")), false).expect("send");
    let resp = resp.await.expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let f = frame(ids::PING, &pb::Ping { sn: 99 });
    let mask = [7u8, 1, 200, 42];
    let mut ws = vec![0x82, 0x80 | f.len() as u8];
    ws.extend_from_slice(&mask);
    ws.extend(f.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    send.send_data(bytes::Bytes::from(ws), false).expect("data");
    let mut got = Vec::new();
    let reply = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.data())
            .await
            .expect("in time")
            .expect("the stream stays open")
            .expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
        let frames = server_ws_frames(&got);
        if let Some((first, payload)) = frames.into_iter().next() {
            break (first, payload);
        }
    };
    assert_eq!(reply.0, 0x82, "a final binary frame");
    assert_eq!(pb::PingResp::decode(frames_of(&reply.1)[0].body.clone()).expect("resp").sn, 99);
}

#[tokio::test]
async fn ws_frames_that_break_the_protocol_close_with_1002_or_1009() {
    let mut cfg = config();
    cfg.gate.max_body = 512;
    let g = TestGate::start(cfg).await;
    // (first byte, payload, sent unmasked, expected close code, expected reason)
    let cases: [(u8, Vec<u8>, bool, u16, CloseReason); 6] = [
        (0x82, frame(ids::PING, &pb::Ping { sn: 1 }), true, 1002, CloseReason::BadFrame),
        (0xC2, frame(ids::PING, &pb::Ping { sn: 1 }), false, 1002, CloseReason::BadFrame),
        (0x83, vec![1], false, 1002, CloseReason::BadFrame),
        (0x80, vec![1], false, 1002, CloseReason::BadFrame),
        (0x09, vec![1], false, 1002, CloseReason::BadFrame),
        (0x82, vec![0; 4000], false, 1009, CloseReason::FrameTooLarge),
    ];
    for (i, (first, payload, bare, code, reason)) in cases.into_iter().enumerate() {
        let mut c = RawWs::open(&g).await;
        c.send(first, &payload, bare).await;
        assert_eq!(c.close_code().await, code, "case {i}");
        assert_eq!(g.wait_disconnects(i + 1).await[i].1, reason, "case {i}");
    }
    // A new data message inside a fragmented one.
    let mut c = RawWs::open(&g).await;
    c.send(0x01, b"{", false).await;
    c.send(0x81, b"{}", false).await;
    assert_eq!(c.close_code().await, 1002);
}

#[tokio::test]
async fn ws_requests_that_are_not_a_websocket_opening_are_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let g = TestGate::start(config()).await;
    let cases = [
        ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", "426"),
        (
            "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "405",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
            "400",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==\r\nSec-WebSocket-Version: 8\r\n\r\n",
            "426",
        ),
    ];
    for (req, status) in cases {
        let mut tcp = tokio::net::TcpStream::connect(g.http).await.expect("connect");
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut b = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut b)).await.expect("in time").expect("read");
        let head = String::from_utf8_lossy(&b[..n]).to_string();
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{req:?} → {head}");
        if req.contains("Version: 8") {
            assert!(head.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{head}");
        }
    }
    // None of them became a session.
    assert_eq!(g.gate.hub().len(), 0);
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
