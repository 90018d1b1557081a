//! Each example, run as the program `cargo run --example` builds, and played by a client.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rsgame_bot::Client;
use rsgame_proto::pb;

const T: Duration = Duration::from_secs(10);

/// A running example; killed when dropped.
struct Example {
    child: Child,
    /// The address it printed.
    addr: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Starts `target/<profile>/examples/<name>` (built by `cargo test`) on free loopback ports,
/// and waits for the line where it says where it listens.
fn start(name: &str, env: &[(&str, String)]) -> Example {
    // This test runs from target/<profile>/deps; the examples are in target/<profile>/examples.
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("profile dir");
    let bin: PathBuf = dir.join("examples").join(name);
    assert!(bin.exists(), "{} was not built: run `cargo test -p rsgame-examples`", bin.display());
    let mut c = Command::new(&bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("RSGAME_") {
            c.env_remove(k);
        }
    }
    // Only the sections the example reads: a key of any other is refused at start, as it
    // should be (each example's `Settings` names its sections).
    if name != "rest_service" {
        c.env("RSGAME_GATE__HOST", "127.0.0.1")
            .env("RSGAME_GATE__TCP_PORT", free_port().to_string())
            .env("RSGAME_GATE__KCP_ENABLED", "false");
    }
    if name == "chat" || name == "rest_service" {
        c.env("RSGAME_HTTP__HOST", "127.0.0.1").env("RSGAME_HTTP__PORT", free_port().to_string());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start the example");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("its first line");
    // "… on 127.0.0.1:8999", "… on ws://127.0.0.1:8888/ws" or "… on http://127.0.0.1:8888".
    let last = line.split_whitespace().last().unwrap_or_default();
    let bare = last.trim_start_matches("ws://").trim_start_matches("http://");
    let addr = bare.split('/').next().unwrap_or_default().to_owned();
    assert!(addr.contains(':'), "{name} said {line:?}");
    Example { child, addr }
}

#[tokio::test]
async fn echo_answers_pings_and_echoes() {
    let ex = start("echo", &[]);
    let mut c = Client::tcp(&ex.addr).await.expect("connect");
    c.send(1000, &pb::Ping { sn: 7 }).await.expect("ping");
    assert_eq!(c.wait::<pb::PingResp>(2000, T).await.expect("pong").sn, 7);
    let msg = pb::ChatMsg { msg: "hello".into(), ..Default::default() };
    c.send(1, &msg).await.expect("send");
    assert_eq!(c.wait::<pb::ChatMsg>(100_001, T).await.expect("echo"), msg);
    // An unknown id is an error frame, and the connection carries on.
    c.send(42, &msg).await.expect("send");
    assert_eq!(c.wait::<pb::ErrorResp>(9000, T).await.expect("error").code, 400505);
    c.send(1000, &pb::Ping { sn: 8 }).await.expect("ping");
    assert_eq!(c.wait::<pb::PingResp>(2000, T).await.expect("pong").sn, 8);
}

#[tokio::test]
async fn chat_relays_json_to_everyone_connected() {
    let ex = start("chat", &[]);
    let url = format!("ws://{}/ws", ex.addr);
    let mut ann = Client::ws(&url, true).await.expect("ann");
    let mut bob = Client::ws(&url, true).await.expect("bob");
    // Each is in the room once it hears its own arrival.
    for c in [&mut ann, &mut bob] {
        c.wait_where::<pb::ChatMsgResp>(200_002, T, |r| r.msg_list.iter().any(|m| m.msg.ends_with("joined")))
            .await
            .expect("joined");
    }
    // Bob has said nothing yet and still hears the room.
    ann.send(100_002, &pb::ChatMsg { msg: "hi all".into(), user_id: 999, ..Default::default() }).await.expect("say");
    let heard = bob
        .wait_where::<pb::ChatMsgResp>(200_002, T, |r| r.msg_list.iter().any(|m| m.msg == "hi all"))
        .await
        .expect("bob hears ann");
    let said = heard.msg_list.iter().find(|m| m.msg == "hi all").expect("the message");
    assert_ne!(said.user_id, 999, "the server names the sender, not the client");
    assert!(said.send_time > 0);
    // Bad input is the sender's error only.
    ann.send(100_002, &pb::ChatMsg { msg: " ".into(), ..Default::default() }).await.expect("say");
    assert_eq!(ann.wait::<pb::ErrorResp>(9000, T).await.expect("refused").code, 400102);
}

/// The custom room's own messages, as a client of it would declare them.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Place {
    #[prost(uint32, tag = "1")]
    cell: u32,
}

#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Board {
    #[prost(int64, repeated, tag = "1")]
    cells: Vec<i64>,
    #[prost(int64, tag = "2")]
    turn: i64,
    #[prost(int64, tag = "3")]
    winner: i64,
}

#[tokio::test]
async fn custom_room_plays_a_game_of_tic_tac_toe() {
    let ex = start("custom_room", &[]);
    let mut x = Client::tcp(&ex.addr).await.expect("x");
    let mut o = Client::tcp(&ex.addr).await.expect("o");
    // Nobody plays before two have joined; a joiner is shown the board.
    x.send(500, &Place::default()).await.expect("join");
    x.wait::<Board>(200_500, T).await.expect("x joined");
    x.send(501, &Place { cell: 4 }).await.expect("early");
    assert_eq!(x.wait::<pb::ErrorResp>(9000, T).await.expect("refused").code, 400102);
    o.send(500, &Place::default()).await.expect("join");
    o.wait::<Board>(200_500, T).await.expect("o joined");
    let mut third = Client::tcp(&ex.addr).await.expect("third");
    third.send(500, &Place::default()).await.expect("join");
    assert_eq!(third.wait::<pb::ErrorResp>(9000, T).await.expect("full").code, 400102);
    // X takes the top row while O plays the middle; O out of turn and a taken cell are refused.
    let moves = [(true, 0), (false, 3), (true, 1), (false, 4)];
    for (by_x, cell) in moves {
        let c = if by_x { &mut x } else { &mut o };
        c.send(501, &Place { cell }).await.expect("place");
        // Everyone gets every board: wait for the one that holds this move.
        c.wait_where::<Board>(200_500, T, |b| b.cells.get(cell as usize).is_some_and(|&v| v != 0))
            .await
            .expect("board");
    }
    o.send(501, &Place { cell: 8 }).await.expect("out of turn");
    assert_eq!(o.wait::<pb::ErrorResp>(9000, T).await.expect("not o's turn").code, 400102);
    x.send(501, &Place { cell: 4 }).await.expect("taken");
    assert_eq!(x.wait::<pb::ErrorResp>(9000, T).await.expect("taken").code, 400102);
    x.send(501, &Place { cell: 2 }).await.expect("win");
    let end = o.wait_where::<Board>(200_500, T, |b| b.winner != 0).await.expect("o sees the end");
    assert_eq!(end.winner, end.cells[0], "x (first to join) won with the top row: {end:?}");
    assert_eq!(&end.cells[..3], &[end.winner; 3]);
}

#[tokio::test]
async fn rest_service_checks_the_token_and_answers_in_the_envelope() {
    let secret = "example-test-secret-0123456789abcdef";
    let ex = start("rest_service", &[("RSGAME_AUTH__JWT_SECRET", secret.into())]);
    let port: u16 = ex.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let jwt = rsgame_kit::auth::Jwt::new(secret.as_bytes(), Duration::from_secs(600), Duration::from_secs(300));
    let token = jwt.issue(42).expect("token").0.access_token;
    let body = serde_json::json!({"name": "Ann"});
    let r = rsgame_testkit::post_json(port, "/hello/v1/greet", Some(&token), &body).await;
    assert_eq!(r.json()["data"], serde_json::json!({"text": "hello, Ann", "userId": 42}), "{:?}", r.json());
    // No token, a forged one, a bad body, an unknown route: each its envelope code.
    let r = rsgame_testkit::post_json(port, "/hello/v1/greet", None, &body).await;
    assert_eq!((r.status, rsgame_testkit::code(&r)), (401, 400103));
    let forged = rsgame_kit::auth::Jwt::new(
        b"another-secret-0123456789abcdefgh",
        Duration::from_secs(600),
        Duration::from_secs(300),
    );
    let bad = forged.issue(42).expect("token").0.access_token;
    let r = rsgame_testkit::post_json(port, "/hello/v1/greet", Some(&bad), &body).await;
    assert_eq!(rsgame_testkit::code(&r), 400103);
    let r = rsgame_testkit::post_json(port, "/hello/v1/greet", Some(&token), &serde_json::json!({"name": 7})).await;
    assert_eq!(rsgame_testkit::code(&r), 400102);
    let r = rsgame_testkit::post_json(port, "/nope", None, &body).await;
    assert_ne!(rsgame_testkit::code(&r), 200);
}
