//! A chat room over WebSocket with JSON messages. `cargo run --example chat`, then from a
//! browser console on any page:
//!
//! ```js
//! const ws = new WebSocket("ws://127.0.0.1:8888/ws");
//! ws.onmessage = (e) => console.log(e.data);
//! ws.onopen = () => ws.send(JSON.stringify({ id: 100002, data: { msg: "hello" } }));
//! ```
//!
//! Everyone connected receives `{"id":200002,"data":{"msgList":[{"userId":1,"msg":"hello",…}]}}`.
//! The room is a [`Room`]: one task owns the member list, so a broadcast never races a join.
use rsgame_gate::room::{self, Room, RoomCtx};
use rsgame_gate::{Gate, Router};
use rsgame_kit::{Error, http};
use rsgame_proto::pb::{ChatMsg, ChatMsgResp};

/// The lobby: says who joined and relays every message, stamped with its sender and time.
struct Lobby;

impl Room for Lobby {
    type Input = ChatMsg;
    type Join = ();

    fn join(&mut self, ctx: &mut RoomCtx, player: i64, (): ()) -> Result<(), Error> {
        let hello = ChatMsg { user_id: player, msg: format!("#{player} joined"), ..ChatMsg::default() };
        ctx.broadcast(200_002, &ChatMsgResp { msg_list: vec![hello] });
        Ok(())
    }

    fn input(&mut self, ctx: &mut RoomCtx, player: i64, mut msg: ChatMsg) -> Result<(), Error> {
        if msg.msg.trim().is_empty() || msg.msg.chars().count() > 300 {
            return Err(Error::bad_param("msg: 1 to 300 characters"));
        }
        msg.user_id = player; // never trust the client's idea of who it is
        msg.send_time = rsgame_kit::time::unix_ms();
        ctx.broadcast(200_002, &ChatMsgResp { msg_list: vec![msg] });
        Ok(())
    }
}

rsgame_kit::config_root! {
    /// What this server reads: `gate.*`, `tls.*` and `http.*` (the WebSocket listener).
    struct Settings {
        gate: rsgame_gate::config::GateConfig,
        tls: rsgame_kit::config::TlsConfig,
        http: rsgame_kit::config::HttpConfig,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg: Settings = rsgame_kit::config::from_process(None)?;
    cfg.gate.ws_codec = rsgame_gate::config::BodyCodec::Json; // JSON bodies on /ws
    cfg.gate.login_timeout_secs = 0; // players pick a name, nothing logs them in
    let lobby = room::spawn(Lobby, 1024);
    let mut routes = Router::builder();
    let chat = lobby.clone();
    routes.route(100_002, move |session, msg: ChatMsg| {
        let lobby = chat.clone();
        async move {
            // Each connection is a player, named by its session id. Joining again is a no-op:
            // this only matters if the message overtook the join below.
            let player = session.id() as i64;
            lobby.join(player, session, ()).await?;
            lobby.input(player, msg).await
        }
    })?;
    let shutdown = rsgame_kit::Shutdown::new();
    let gate = Gate::builder(&cfg.gate, &cfg.tls, routes.build())
        .on_connect(move |session| {
            // Everyone connected hears the room, whether or not it has spoken yet.
            let (lobby, session) = (lobby.clone(), session.clone());
            tokio::spawn(async move { lobby.join(session.id() as i64, session, ()).await });
        })
        .start(&shutdown)
        .await?;
    let listener = http::bind(&cfg.http.host, cfg.http.port).await?;
    println!("chat on ws://{}/ws", listener.local_addr()?);
    let server = tokio::spawn(http::serve(listener, None, http::finish(gate.ws_routes()), shutdown.clone()));
    rsgame_kit::shutdown::signal().await;
    shutdown.trigger();
    server.await??;
    Ok(())
}
