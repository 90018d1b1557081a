//! The gate over raw TCP: what is specific to TCP or to the gate as a whole (layouts,
//! listener codecs, hooks, fan-out, shutdown). Abuse cases per transport: `scenarios.rs`.

mod common;

use std::time::Duration;

use common::*;
use rsgame_gate::config::FrameLayoutName;
use rsgame_gate::{CloseReason, Layout};
use rsgame_proto::{ids, pb};

#[tokio::test]
async fn ping_is_answered_with_sn_and_time() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send(ids::PING, &pb::Ping { sn: 42 }).await;
    let r: pb::PingResp = c.recv_msg(ids::PING_RESP).await;
    assert_eq!(r.sn, 42);
    assert!(r.now_time.ends_with('Z') && r.now_time.len() == 24, "{}", r.now_time);
}

#[tokio::test]
async fn legacy_layout_when_configured() {
    let mut cfg = config();
    cfg.gate.frame_layout = FrameLayoutName::Legacy;
    let g = TestGate::start(cfg).await;
    let mut c = TcpClient::connect(g.tcp()).await.with_layout(Layout::Legacy);
    c.send(ids::PING, &pb::Ping { sn: 7 }).await;
    assert_eq!(c.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 7);
}

#[tokio::test]
async fn json_bodies_when_the_listener_says_so() {
    let mut cfg = config();
    cfg.gate.tcp_codec = rsgame_gate::config::BodyCodec::Json;
    let g = TestGate::start(cfg).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send_raw(&rsgame_gate::FrameCodec::new(Layout::Zinx, 1024).encode(ids::PING, br#"{"sn":5}"#)).await;
    let f = c.recv().await.expect("reply");
    assert_eq!(f.id, ids::PING_RESP);
    let v: serde_json::Value = serde_json::from_slice(&f.body).expect("json body");
    assert_eq!(v["sn"], 5);
}

#[tokio::test]
async fn oversize_frame_closes_before_the_body_is_sent() {
    let mut cfg = config();
    cfg.gate.max_body = 1024;
    let g = TestGate::start(cfg).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    // Only the header: the server must not wait for the 1 MiB body.
    let mut header = Vec::new();
    header.extend(ECHO.to_be_bytes());
    header.extend((1u32 << 20).to_be_bytes());
    c.send_raw(&header).await;
    let frames = c.until_closed().await;
    assert_eq!(frames.len(), 1, "one notice, then close");
    assert_eq!(frames[0].id, ids::ERROR);
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::FrameTooLarge);
}

#[tokio::test]
async fn undecodable_body_gets_an_error_frame() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send_raw(&rsgame_gate::FrameCodec::new(Layout::Zinx, 1024).encode(ECHO, &[0xff, 0xff, 0xff, 0xff])).await;
    let e = c.recv_error().await;
    assert_eq!((e.req_id, e.code), (ECHO, 400_102));
}

#[tokio::test]
async fn handler_error_becomes_an_error_frame() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send(FAIL, &pb::Ping { sn: 1 }).await;
    let e = c.recv_error().await;
    assert_eq!((e.req_id, e.code, e.msg.as_str()), (FAIL, 400_102, "sn must be positive"));
}

#[tokio::test]
async fn a_synchronous_handler_answers_fails_and_panics_like_any_other() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send(SYNC, &pb::Ping { sn: 7 }).await;
    assert_eq!(c.recv_msg::<pb::Ping>(ids::reply(SYNC)).await.sn, 7);
    c.send(SYNC, &pb::Ping { sn: -1 }).await;
    let e = c.recv_error().await;
    assert_eq!((e.req_id, e.code, e.msg.as_str()), (SYNC, 400_102, "sn must be positive"));
    c.send_raw(&rsgame_gate::FrameCodec::new(Layout::Zinx, 1024).encode(SYNC, &[0xff, 0xff, 0xff, 0xff])).await;
    let e = c.recv_error().await;
    assert_eq!((e.req_id, e.code), (SYNC, 400_102), "a body that does not decode");
    // A panic ends this session only.
    let mut other = TcpClient::connect(g.tcp()).await;
    c.send(SYNC, &pb::Ping { sn: 0 }).await;
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::HandlerPanic);
    other.send(SYNC, &pb::Ping { sn: 3 }).await;
    assert_eq!(other.recv_msg::<pb::Ping>(ids::reply(SYNC)).await.sn, 3);
}

#[tokio::test]
async fn before_hook_refuses_until_login() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send(SECRET, &pb::Ping { sn: 1 }).await;
    let e = c.recv_error().await;
    assert_eq!((e.req_id, e.code), (SECRET, 400_500));
    c.send(LOGIN, &pb::GameLogin { user_id: 9, ..Default::default() }).await;
    assert_eq!(c.recv_msg::<pb::UserInfo>(ids::reply(LOGIN)).await.user_id, 9);
    c.send(SECRET, &pb::Ping { sn: 3 }).await;
    assert_eq!(c.recv_msg::<pb::Ping>(ids::reply(SECRET)).await.sn, 3);
}

#[tokio::test]
async fn max_connections_refuses_with_a_notice() {
    let mut cfg = config();
    cfg.gate.max_connections = 2;
    let g = TestGate::start(cfg).await;
    let mut a = TcpClient::connect(g.tcp()).await;
    let _b = TcpClient::connect(g.tcp()).await;
    a.send(ids::PING, &pb::Ping { sn: 1 }).await;
    a.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    let frames = c.until_closed().await;
    assert_eq!(frames.len(), 1);
    let e: pb::ErrorResp = prost::Message::decode(frames[0].body.clone()).expect("notice");
    assert_eq!(e.code, 400_503);
    drop(a);
    g.wait_disconnects(1).await;
    let mut d = TcpClient::connect(g.tcp()).await;
    d.send(ids::PING, &pb::Ping { sn: 2 }).await;
    assert_eq!(d.recv_msg::<pb::PingResp>(ids::PING_RESP).await.sn, 2, "a freed place is reused");
}

#[tokio::test(start_paused = true)]
async fn traffic_keeps_a_session_alive() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    for sn in 0..5 {
        c.send(ids::PING, &pb::Ping { sn }).await;
        c.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    assert!(g.disconnects.lock().expect("lock").is_empty(), "75 s of pings every 15 s: still open");
}

#[tokio::test]
async fn hooks_see_connect_and_disconnect_with_reason() {
    let g = TestGate::start(config()).await;
    let c = TcpClient::connect(g.tcp()).await;
    for _ in 0..100 {
        if !g.connects.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(g.connects.lock().expect("lock").len(), 1);
    drop(c);
    assert_eq!(g.wait_disconnects(1).await[0].1, CloseReason::ClientClosed);
    assert!(g.gate.hub().is_empty());
}

#[tokio::test]
async fn broadcast_reaches_everyone_and_shutdown_closes_all() {
    let g = TestGate::start(config()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = TcpClient::connect(g.tcp()).await;
        c.send(ids::PING, &pb::Ping { sn: 0 }).await;
        c.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
        clients.push(c);
    }
    let sent = g.gate.hub().broadcast(
        ids::reply(ids::CHAT_MSG),
        &pb::ChatMsgResp { msg_list: vec![pb::ChatMsg { msg: "all".into(), ..Default::default() }] },
    );
    assert_eq!(sent, 5);
    for c in &mut clients {
        assert_eq!(c.recv_msg::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG)).await.msg_list[0].msg, "all");
    }
    g.shutdown.trigger();
    let outcomes = g.shutdown.run_hooks(tokio::time::Instant::now() + Duration::from_secs(5)).await;
    assert!(matches!(outcomes[..], [rsgame_kit::shutdown::HookOutcome::Done(_)]), "{outcomes:?}");
    for c in &mut clients {
        let frames = c.until_closed().await;
        let e: pb::ErrorResp = prost::Message::decode(frames[0].body.clone()).expect("notice");
        assert_eq!(e.code, 400_503);
    }
    assert!(g.wait_disconnects(5).await.iter().all(|(_, r)| *r == CloseReason::Shutdown));
    assert!(tokio::net::TcpStream::connect(g.tcp()).await.is_err() || g.gate.hub().is_empty());
}

#[tokio::test]
async fn after_hook_sees_every_outcome() {
    let g = TestGate::start(config()).await;
    let mut c = TcpClient::connect(g.tcp()).await;
    c.send(ids::PING, &pb::Ping { sn: 1 }).await;
    c.recv_msg::<pb::PingResp>(ids::PING_RESP).await;
    c.send(FAIL, &pb::Ping { sn: 1 }).await;
    c.recv_error().await;
    c.send(SECRET, &pb::Ping { sn: 1 }).await;
    c.recv_error().await;
    c.send(4040, &pb::Ping { sn: 1 }).await;
    c.recv_error().await;
    let seen = g.dispatched.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [
            (ids::PING, "Handled".to_owned()),
            (FAIL, "Failed".to_owned()),
            (SECRET, "Refused".to_owned()),
            (4040, "UnknownId".to_owned()),
        ]
    );
}
