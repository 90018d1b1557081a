//! The world end to end: real clients over TCP (protobuf) and WebSocket (protobuf and JSON)
//! against a served monolith — login rules, seeing each other move and fight, monsters and
//! rewards, chat (world, room, private to an offline player), friends and blacklists, rooms,
//! lockstep rooms, second logins and reconnects, and what survives kill -9 and SIGTERM.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rsgame_bot::{Account, Client, ClientError};
use rsgame_proto::{ids, pb};

const T: Duration = Duration::from_secs(10);

/// A fixed signing key, so tokens outlive a restart of the server.
const AUTH: &str = "auth:\n  jwt_secret: world-tests-signing-key-0123456789abcdef\n";

fn start(dir: &Path, extra: &str) -> Server {
    world_data(dir);
    let cfg = write_config(dir, &format!("{AUTH}world:\n  reconnect_grace_secs: 3\n{extra}"));
    Server::start(&cfg, &[])
}

async fn account(srv: &Server, name: &str) -> Account {
    rsgame_bot::client::account(&format!("127.0.0.1:{}", srv.port), name, "secret99").await.expect("account")
}

async fn tcp(srv: &Server) -> Client {
    Client::tcp(&format!("127.0.0.1:{}", srv.gate_port)).await.expect("tcp")
}

async fn ws(srv: &Server, json: bool) -> Client {
    Client::ws(&format!("ws://127.0.0.1:{}/ws", srv.port), json).await.expect("ws")
}

fn site(x: f32, z: f32) -> Option<pb::Site> {
    Some(pb::Site { x, y: 0.0, z, v: 0.0 })
}

fn code(e: ClientError) -> i32 {
    match e {
        ClientError::Server { code, .. } => code,
        other => panic!("expected an ErrorResp, got {other}"),
    }
}

/// Walks in steps the speed check accepts (40 units/s at 20 Hz: 3 units every 100 ms).
async fn walk(c: &mut Client, me: i64, from: (f32, f32), to: (f32, f32)) -> (f32, f32) {
    let (mut x, mut z) = from;
    loop {
        let (dx, dz) = (to.0 - x, to.1 - z);
        let d = (dx * dx + dz * dz).sqrt();
        if d < 0.01 {
            return (x, z);
        }
        let k = (3.0 / d).min(1.0);
        (x, z) = (x + dx * k, z + dz * k);
        c.send(ids::MOVE, &pb::Move { user_id: me, site: site(x, z) }).await.expect("move");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pos(info: &pb::UserInfo) -> (f32, f32) {
    let p = info.position.as_ref().expect("position");
    (p.x, p.z)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_log_in_see_each_other_fight_and_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let (a, b, c) = (account(&srv, "ann").await, account(&srv, "bob").await, account(&srv, "cid").await);

    // Nothing but Ping before login; another account's token is refused.
    let mut ca = tcp(&srv).await;
    ca.send(ids::MOVE, &pb::Move { user_id: a.user_id, site: site(1.0, 1.0) }).await.expect("send");
    let e = ca.wait::<pb::MoveResp>(ids::reply(ids::MOVE), T).await.expect_err("refused");
    assert_eq!(code(e), 400_500, "log in first");
    ca.send(ids::PING, &pb::Ping { sn: 5 }).await.expect("ping");
    assert_eq!(ca.wait::<pb::PingResp>(ids::PING_RESP, T).await.expect("pong").sn, 5);
    let e = ca.login(a.user_id, &b.token).await.expect_err("foreign token");
    assert_eq!(code(e), 400_501);
    let e = ca.login(a.user_id, "forged.token.here").await.expect_err("bad token");
    assert_eq!(code(e), 400_103);

    // Ann over TCP with protobuf, Bob over WebSocket with JSON text.
    let ia = ca.login(a.user_id, &a.token).await.expect("ann logs in");
    assert_eq!((ia.user_id, ia.room_id, ia.username.as_str(), ia.online), (a.user_id, 1000, "ann", 1));
    let mut cb = ws(&srv, true).await;
    let ib = cb.login(b.user_id, &b.token).await.expect("bob logs in");
    assert_eq!(ib.room_id, 1000);

    // Each sees the other come into view (spawned within 25 units of the same point).
    let spawn = cb
        .wait_where::<pb::SpawnResp>(ids::SPAWN, T, |s| s.list.iter().any(|e| e.id == a.user_id))
        .await
        .expect("bob sees ann");
    let ann = spawn.list.iter().find(|e| e.id == a.user_id).expect("ann");
    assert_eq!((ann.kind, ann.name.as_str()), (1, "ann"));
    // Ann's view fills over a tick or two: the dummy when she joins, Bob when he does.
    let mut seen = Vec::new();
    while !(seen.iter().any(|e: &pb::Entity| e.id == b.user_id) && seen.iter().any(|e| e.kind == 2)) {
        let s = ca.wait::<pb::SpawnResp>(ids::SPAWN, T).await.expect("ann sees bob and the dummy");
        seen.extend(s.list);
    }
    let dummy = seen.iter().find(|e| e.kind == 2).map(|e| e.id);

    // Ann moves: Bob gets her position in a tick batch.
    let (ax, az) = pos(&ia);
    let to = (ax + 1.5, az + 0.5);
    ca.send(ids::MOVE, &pb::Move { user_id: a.user_id, site: site(to.0, to.1) }).await.expect("move");
    let m = cb
        .wait_where::<pb::MoveResp>(ids::reply(ids::MOVE), T, |m| m.site_list.iter().any(|s| s.user_id == a.user_id))
        .await
        .expect("bob sees the move");
    let s = m.site_list.iter().find(|s| s.user_id == a.user_id).and_then(|s| s.site).expect("site");
    assert!((s.x - to.0).abs() < 0.01 && (s.z - to.1).abs() < 0.01, "{s:?} vs {to:?}");

    // An impossible jump is cut short and Ann is told where she really is.
    ca.send(ids::MOVE, &pb::Move { user_id: a.user_id, site: site(to.0 + 150.0, to.1) }).await.expect("jump");
    let fix = ca
        .wait_where::<pb::MoveResp>(ids::reply(ids::MOVE), T, |m| {
            m.site_list.iter().any(|s| s.user_id == a.user_id && s.action == "correct")
        })
        .await
        .expect("corrected");
    let real = fix.site_list.iter().find(|s| s.user_id == a.user_id).and_then(|s| s.site).expect("site");
    // At most one second's saved allowance (world.max_speed 40, +10 %).
    assert!(real.x <= to.0 + 44.01, "the jump was cut to what the speed allows: {real:?}");
    let here = (real.x, real.z);

    // Ann fights the dummy; Bob sees the hits; the kill pays through the ledger.
    let dummy = dummy.expect("the dummy is in view");
    walk(&mut ca, a.user_id, here, (188.0, 163.0)).await;
    let mut killed = false;
    for _ in 0..10 {
        ca.send(ids::ATTACK, &pb::Attack { user_id: a.user_id, obj_id: dummy, param: String::new() })
            .await
            .expect("attack");
        let hit =
            ca.wait_where::<pb::AttackResp>(ids::reply(ids::ATTACK), T, |r| r.obj_id == dummy && r.status != 202).await;
        if let Ok(r) = &hit
            && r.status == 201
        {
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(850)).await; // the cooldown
    }
    let seen_hit = cb
        .wait_where::<pb::AttackResp>(ids::reply(ids::ATTACK), T, |r| r.user_id == a.user_id && r.status == 200)
        .await
        .expect("bob sees ann hit");
    assert_eq!(seen_hit.obj_id, dummy);
    if !killed {
        ca.wait_where::<pb::AttackResp>(ids::reply(ids::ATTACK), T, |r| r.obj_id == dummy && r.status == 201)
            .await
            .expect("the dummy dies");
    }
    let reward =
        ca.wait_where::<pb::AttackResp>(ids::reply(ids::ATTACK), T, |r| r.status == 202).await.expect("reward");
    assert_eq!((reward.exp, reward.coin), (30, 7));
    let stats = ca.wait::<pb::PlayerStats>(ids::PLAYER_STATS, T).await.expect("stats");
    assert_eq!((stats.coins, stats.exp), (107, 30), "100 start coins + 7");
    let pack = post(srv.port, "/game/v1/game/getPack", Some(&a.token), "{}").1;
    assert!(pack.contains("\"coins\":107"), "{pack}");

    // World chat reaches Bob; a private message to Cid, who never logged in, waits for him.
    let hello = pb::ChatMsg { chat_type: 1, msg_type: 1, msg: "hello world".into(), ..Default::default() };
    ca.send(ids::CHAT_MSG, &hello).await.expect("chat");
    let got = cb
        .wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| {
            m.msg_list.iter().any(|c| c.msg == "hello world")
        })
        .await
        .expect("bob hears");
    assert_eq!(got.msg_list[0].user_id, a.user_id, "the server stamps the sender");
    let dm =
        pb::ChatMsg { obj_id: c.user_id, chat_type: 3, msg_type: 1, msg: "see you, cid".into(), ..Default::default() };
    ca.send(ids::CHAT_MSG, &dm).await.expect("dm");
    ca.wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| {
        m.msg_list.iter().any(|c| c.msg == "see you, cid")
    })
    .await
    .expect("echo");
    let mut cc = ws(&srv, false).await;
    cc.login(c.user_id, &c.token).await.expect("cid logs in");
    let waiting = cc
        .wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| {
            m.msg_list.iter().any(|c| c.msg == "see you, cid")
        })
        .await
        .expect("the offline message arrives at login");
    assert_eq!((waiting.msg_list[0].user_id, waiting.msg_list[0].chat_type), (a.user_id, 3));

    // Chat limits: too long, a foreign link, too fast.
    let long = pb::ChatMsg { chat_type: 1, msg_type: 1, msg: "x".repeat(301), ..Default::default() };
    ca.send(ids::CHAT_MSG, &long).await.expect("send");
    assert_eq!(code(ca.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T).await.expect_err("long")), 400_102);
    let link =
        pb::ChatMsg { chat_type: 1, msg_type: 2, url: "https://evil.example/x.png".into(), ..Default::default() };
    ca.send(ids::CHAT_MSG, &link).await.expect("send");
    assert_eq!(code(ca.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T).await.expect_err("link")), 400_102);

    // History: the private conversation, from the database.
    let h = pb::ChatHistory { chat_type: 3, obj_id: a.user_id, before: 0, limit: 10 };
    cc.send(ids::CHAT_HISTORY, &h).await.expect("history");
    let hist = cc.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_HISTORY), T).await.expect("history");
    assert_eq!(hist.msg_list.len(), 1);

    // Friends: Ann befriends Bob, who shows as offline to her until he befriends her too (a
    // one-sided friend must not watch whether and where someone plays); then she sees him
    // online. Bob blacklists Ann and hears her no more.
    ca.send(ids::ADD_FRIEND, &pb::AddFriend { user_id: b.user_id, r#type: 1 }).await.expect("add");
    assert_eq!(ca.wait::<pb::AddFriendResp>(ids::reply(ids::ADD_FRIEND), T).await.expect("added").status, 200);
    ca.send(ids::MY_FRIEND, &pb::MyFriend { r#type: 1, search_key: String::new() }).await.expect("list");
    let friends = ca.wait::<pb::MyFriendResp>(ids::reply(ids::MY_FRIEND), T).await.expect("friends");
    assert_eq!(friends.user_list.len(), 1);
    assert_eq!(
        (friends.user_list[0].user_id, friends.user_list[0].online, friends.user_list[0].room_id),
        (b.user_id, 0, 0),
        "one-sided: nothing shown"
    );
    cb.send(ids::ADD_FRIEND, &pb::AddFriend { user_id: a.user_id, r#type: 1 }).await.expect("add back");
    cb.wait::<pb::AddFriendResp>(ids::reply(ids::ADD_FRIEND), T).await.expect("added back");
    ca.send(ids::MY_FRIEND, &pb::MyFriend { r#type: 1, search_key: String::new() }).await.expect("list");
    let friends = ca.wait::<pb::MyFriendResp>(ids::reply(ids::MY_FRIEND), T).await.expect("friends");
    assert_eq!((friends.user_list[0].user_id, friends.user_list[0].online), (b.user_id, 1), "mutual friends");
    cb.send(ids::ADD_FRIEND, &pb::AddFriend { user_id: a.user_id, r#type: 2 }).await.expect("block");
    cb.wait::<pb::AddFriendResp>(ids::reply(ids::ADD_FRIEND), T).await.expect("blocked");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quiet = pb::ChatMsg { chat_type: 1, msg_type: 1, msg: "can you hear me".into(), ..Default::default() };
    ca.send(ids::CHAT_MSG, &quiet).await.expect("chat");
    cc.wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| {
        m.msg_list.iter().any(|c| c.msg == "can you hear me")
    })
    .await
    .expect("cid hears");
    let heard = cb
        .wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), Duration::from_millis(800), |m| {
            m.msg_list.iter().any(|c| c.msg == "can you hear me")
        })
        .await;
    assert!(matches!(heard, Err(ClientError::Timeout(_))), "a blacklisting player receives nothing: {heard:?}");
    // Privately too; the sender's history keeps its message, the receiver's does not show it.
    let psst = pb::ChatMsg { obj_id: b.user_id, chat_type: 3, msg_type: 1, msg: "psst".into(), ..Default::default() };
    ca.send(ids::CHAT_MSG, &psst).await.expect("dm");
    ca.wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| m.msg_list.iter().any(|c| c.msg == "psst"))
        .await
        .expect("the sender's echo as usual");
    let h = |other: i64| pb::ChatHistory { chat_type: 3, obj_id: other, before: 0, limit: 10 };
    ca.send(ids::CHAT_HISTORY, &h(b.user_id)).await.expect("history");
    let mine = ca.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_HISTORY), T).await.expect("history");
    assert!(mine.msg_list.iter().any(|m| m.msg == "psst"), "{mine:?}");
    cb.send(ids::CHAT_HISTORY, &h(a.user_id)).await.expect("history");
    let theirs = cb.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_HISTORY), T).await.expect("history");
    assert!(theirs.msg_list.iter().all(|m| m.msg != "psst"), "{theirs:?}");

    // Bob forgives Ann (friends again) and goes offline: Ann, his mutual friend, is told (a
    // player who blacklisted her, or never befriended her, would not tell her).
    cb.send(ids::ADD_FRIEND, &pb::AddFriend { user_id: a.user_id, r#type: 1 }).await.expect("forgive");
    cb.wait::<pb::AddFriendResp>(ids::reply(ids::ADD_FRIEND), T).await.expect("forgotten");
    cb.send(ids::LOGOUT, &pb::Logout { r#type: 1, user_id: b.user_id }).await.expect("logout");
    let off = ca
        .wait_where::<pb::UserInfo>(ids::FRIEND_STATUS, T, |u| u.user_id == b.user_id && u.online == 0)
        .await
        .expect("friend offline notice");
    assert_eq!(off.username, "bob");

    // A second login of Ann elsewhere replaces the first: Logout type 3, then closed; the
    // player is resumed where she stands, not duplicated.
    let mut ca2 = ws(&srv, false).await;
    let again = ca2.login(a.user_id, &a.token).await.expect("second login");
    let kicked = ca.wait::<pb::LogoutResp>(ids::reply(ids::LOGOUT), T).await.expect("logout type 3");
    assert_eq!(kicked.r#type, 3);
    assert!(ca.closed(T).await, "the first connection is closed");
    let p = pos(&again);
    assert!((p.0 - 188.0).abs() < 5.0 && (p.1 - 163.0).abs() < 5.0, "resumed where she was: {p:?}");
    let metrics = get(srv.port, "/metrics").expect("metrics").1;
    assert!(metrics.contains("world_players{scene=\"1000\"} 2"), "ann and cid, once each:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_private_passwords_kicks_and_room_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let (a, b) = (account(&srv, "owner").await, account(&srv, "guest").await);
    let (mut ca, mut cb) = (tcp(&srv).await, ws(&srv, true).await);
    ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");

    let bad = pb::CreateRoom { name: "vault".into(), r#type: 2, max_user: 4, password: String::new() };
    ca.send(ids::CREATE_ROOM, &bad).await.expect("send");
    assert_eq!(
        code(ca.wait::<pb::CreateRoomResp>(ids::reply(ids::CREATE_ROOM), T).await.expect_err("no password")),
        400_102
    );
    let create = pb::CreateRoom { name: "vault".into(), r#type: 2, max_user: 4, password: "open sesame".into() };
    ca.send(ids::CREATE_ROOM, &create).await.expect("send");
    let made = ca.wait::<pb::CreateRoomResp>(ids::reply(ids::CREATE_ROOM), T).await.expect("created");
    let room: i64 = made.msg.parse().expect("the room id");
    let entered = ca.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("owner enters");
    assert_eq!((entered.room_id, entered.r#type, entered.password.as_str()), (room, 2, ""));

    cb.send(ids::ROOM_LIST, &pb::RoomList { r#type: 2 }).await.expect("list");
    let list = cb.wait::<pb::RoomListResp>(ids::reply(ids::ROOM_LIST), T).await.expect("list");
    assert_eq!(list.room_list.len(), 1);
    assert!(list.room_list[0].user_list.is_empty(), "who is in a private room is for its members");
    assert!(list.room_list[0].password.is_empty(), "never sent back");

    cb.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: room, user_id: 0, password: "guess".into() })
        .await
        .expect("send");
    assert_eq!(
        code(cb.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect_err("wrong password")),
        400_501
    );
    cb.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: room, user_id: 0, password: "open sesame".into() })
        .await
        .expect("send");
    let inside = cb.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("enters");
    assert_eq!(inside.user_list.len(), 2);

    // Room chat reaches the room.
    ca.send(ids::CHAT_MSG, &pb::ChatMsg { chat_type: 2, msg_type: 1, msg: "welcome".into(), ..Default::default() })
        .await
        .expect("chat");
    cb.wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| m.msg_list.iter().any(|c| c.msg == "welcome"))
        .await
        .expect("room chat");

    // Only the owner removes others; the guest lands back in its scene.
    cb.send(ids::QUIT_ROOM, &pb::QuitRoom { room_id: room, user_id: a.user_id, ..Default::default() })
        .await
        .expect("send");
    assert_eq!(code(cb.wait::<pb::QuitRoomResp>(ids::reply(ids::QUIT_ROOM), T).await.expect_err("not owner")), 400_501);
    let kick = pb::QuitRoom { room_id: room, user_id: b.user_id, user_id_opt: a.user_id, remark: "bye".into() };
    ca.send(ids::QUIT_ROOM, &kick).await.expect("kick");
    let told = cb.wait::<pb::QuitRoomResp>(ids::reply(ids::QUIT_ROOM), T).await.expect("guest told");
    assert_eq!((told.user_id, told.remark.as_str()), (b.user_id, "bye"));
    let home = cb.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("back home");
    assert_eq!(home.room_id, 1000);
    let done = ca.wait::<pb::QuitRoomResp>(ids::reply(ids::QUIT_ROOM), T).await.expect("the owner's answer");
    assert_eq!(done.user_id, b.user_id);

    // The owner leaves: the room closes.
    ca.send(ids::QUIT_ROOM, &pb::QuitRoom { room_id: room, ..Default::default() }).await.expect("quit");
    ca.wait::<pb::QuitRoomResp>(ids::reply(ids::QUIT_ROOM), T).await.expect("quit");
    cb.send(ids::ROOM_LIST, &pb::RoomList { r#type: 2 }).await.expect("list");
    let list = cb.wait::<pb::RoomListResp>(ids::reply(ids::ROOM_LIST), T).await.expect("list");
    assert!(list.room_list.is_empty(), "{list:?}");
    // A scene is not quit, it is left by entering another.
    cb.send(ids::QUIT_ROOM, &pb::QuitRoom::default()).await.expect("quit");
    assert_eq!(code(cb.wait::<pb::QuitRoomResp>(ids::reply(ids::QUIT_ROOM), T).await.expect_err("scene")), 400);
    cb.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: 1002, ..Default::default() }).await.expect("send");
    assert_eq!(cb.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("arena").room_id, 1002);

    // The arena allows PvP: the owner walks up to the guest and hits; both see it.
    let own_site =
        |c: &'static str, id: i64| move |m: &pb::MoveResp| m.site_list.iter().any(|s| s.user_id == id && s.action == c);
    let gm = cb
        .wait_where::<pb::MoveResp>(ids::reply(ids::MOVE), T, own_site("spawn", b.user_id))
        .await
        .expect("guest site");
    let g = gm.site_list.iter().find(|s| s.user_id == b.user_id).and_then(|s| s.site).expect("site");
    ca.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: 1002, ..Default::default() }).await.expect("send");
    ca.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("arena");
    let om =
        ca.wait_where::<pb::MoveResp>(ids::reply(ids::MOVE), T, own_site("spawn", a.user_id)).await.expect("own site");
    let o = om.site_list.iter().find(|s| s.user_id == a.user_id).and_then(|s| s.site).expect("site");
    walk(&mut ca, a.user_id, (o.x, o.z), (g.x + 3.0, g.z)).await;
    ca.send(ids::ATTACK, &pb::Attack { user_id: a.user_id, obj_id: b.user_id, param: String::new() })
        .await
        .expect("hit");
    let hit = cb
        .wait_where::<pb::AttackResp>(ids::reply(ids::ATTACK), T, |r| r.user_id == a.user_id && r.obj_id == b.user_id)
        .await
        .expect("the guest is hit");
    assert_eq!((hit.status, hit.hurt, hit.obj_hp), (200, 9, 91), "attack 10 against defence 2");
    ca.wait_where::<pb::AttackResp>(ids::reply(ids::ATTACK), T, |r| r.obj_id == b.user_id)
        .await
        .expect("the owner sees it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockstep_rooms_bundle_inputs_and_catch_up_late_joiners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "  lockstep_fps: 20\n");
    let (a, b) = (account(&srv, "player1").await, account(&srv, "player2").await);
    let (mut ca, mut cb) = (tcp(&srv).await, ws(&srv, false).await);
    ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");

    // Inputs outside a lockstep room are refused.
    ca.send(ids::LOCKSTEP_INPUT, &pb::LockstepInput { data: vec![1] }).await.expect("send");
    assert_eq!(code(ca.wait::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T).await.expect_err("not in one")), 400);

    ca.send(
        ids::CREATE_ROOM,
        &pb::CreateRoom { name: "squares".into(), r#type: 3, max_user: 4, password: String::new() },
    )
    .await
    .expect("create");
    let room: i64 =
        ca.wait::<pb::CreateRoomResp>(ids::reply(ids::CREATE_ROOM), T).await.expect("made").msg.parse().expect("id");
    ca.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("in");
    ca.send(ids::LOCKSTEP_INPUT, &pb::LockstepInput { data: b"left".to_vec() }).await.expect("input");
    let with_input = ca
        .wait_where::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T, |f| {
            f.frames.iter().any(|fr| fr.inputs.iter().any(|i| i.user_id == a.user_id))
        })
        .await
        .expect("my input comes back in a frame");
    let frame_no = with_input.frames[0].number;
    assert_eq!(with_input.room_id, room);

    // Frames arrive in order with no gaps.
    let mut last = frame_no;
    for _ in 0..5 {
        let f = ca.wait::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T).await.expect("frame");
        for fr in f.frames {
            assert_eq!(fr.number, last + 1, "no gap");
            last = fr.number;
        }
    }

    // A late joiner gets everything it missed, the early input included.
    cb.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: room, ..Default::default() }).await.expect("enter");
    cb.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("in");
    let caught = cb.wait::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T).await.expect("catch-up");
    assert_eq!(caught.frames.first().map(|f| f.number), Some(0), "from the first frame");
    assert!(
        caught.frames.iter().any(|f| f.number == frame_no && f.inputs.iter().any(|i| i.data == [b"left".to_vec()]))
    );
    // And asking again from a frame works too.
    cb.send(ids::LOCKSTEP_SYNC, &pb::LockstepSync { from: frame_no }).await.expect("sync");
    cb.wait_where::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T, |f| {
        f.frames.first().map(|x| x.number) == Some(frame_no)
    })
    .await
    .expect("sync reply");

    // A dropped player comes back within the grace period and is sent exactly the frames it
    // missed, then the live ones, without a gap.
    let seen = {
        let mut seen = 0;
        for _ in 0..3 {
            let f = ca.wait::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T).await.expect("frame");
            seen = f.frames.last().map_or(seen, |x| x.number);
        }
        seen
    };
    drop(ca);
    tokio::time::sleep(Duration::from_millis(400)).await; // frames go on without A
    let mut ca = tcp(&srv).await;
    ca.login(a.user_id, &a.token).await.expect("back");
    // The server resends from where it noticed the drop; frames it had already sent to the
    // dead connection (at most a tick or two) the client asks for with a sync.
    let back = ca.wait::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T).await.expect("frames after return");
    let first = back.frames.first().map_or(-1, |f| f.number);
    assert!(first > seen - 1 && first <= seen + 3, "the catch-up starts at the drop: {first} after {seen}");
    for (want, fr) in (first..).zip(back.frames.iter()) {
        assert_eq!(fr.number, want, "in order");
    }
    ca.send(ids::LOCKSTEP_SYNC, &pb::LockstepSync { from: seen + 1 }).await.expect("sync");
    ca.wait_where::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T, |f| {
        f.frames.first().map(|x| x.number) == Some(seen + 1)
    })
    .await
    .expect("nothing lost for good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_match_puts_two_players_in_one_lockstep_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "  match_interval_ms: 100\n");
    let (a, b, c) = (account(&srv, "match1").await, account(&srv, "match2").await, account(&srv, "match3").await);
    // Over TCP, over WebSocket with JSON bodies, and a third who cancels.
    let (mut ca, mut cb, mut cc) = (tcp(&srv).await, ws(&srv, true).await, tcp(&srv).await);
    ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");
    cc.login(c.user_id, &c.token).await.expect("login");
    let duel = pb::MatchAdd { mode: "duel".into(), ..Default::default() };

    // Bad tickets get their codes; nothing is queued for them.
    let unknown = pb::MatchAdd { mode: "chess".into(), ..Default::default() };
    cc.send(ids::MATCH_ADD, &unknown).await.expect("send");
    assert_eq!(code(cc.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect_err("unknown")), 400102);
    let huge = pb::MatchAdd {
        mode: "duel".into(),
        query: vec![pb::MatchTerm { key: "k".into(), any_of: vec!["v".repeat(100); 12], ..Default::default() }],
        ..Default::default()
    };
    cc.send(ids::MATCH_ADD, &huge).await.expect("send");
    assert_eq!(code(cc.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect_err("1 KB")), 400102);
    let upside = pb::MatchAdd { mode: "duel".into(), min_count: 2, max_count: 1, ..Default::default() };
    cc.send(ids::MATCH_ADD, &upside).await.expect("send");
    assert_eq!(code(cc.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect_err("min > max")), 400102);
    // c queues and cancels: it is not matched with anyone.
    cc.send(ids::MATCH_ADD, &duel).await.expect("send");
    let ct = cc.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect("c queued");
    cc.send(ids::MATCH_ADD, &duel).await.expect("send");
    assert_eq!(code(cc.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect_err("twice")), 400524);
    cc.send(ids::MATCH_REMOVE, &pb::MatchRemove { ticket: ct.ticket.clone() }).await.expect("send");
    cc.wait::<pb::MatchRemoveResp>(ids::reply(ids::MATCH_REMOVE), T).await.expect("c cancelled");

    ca.send(ids::MATCH_ADD, &duel).await.expect("send");
    ca.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect("a queued");
    cb.send(ids::MATCH_ADD, &duel).await.expect("send");
    cb.wait::<pb::MatchTicket>(ids::reply(ids::MATCH_ADD), T).await.expect("b queued");
    let fa = ca.wait::<pb::MatchFound>(ids::MATCH_FOUND, T).await.expect("a matched");
    let fb = cb.wait::<pb::MatchFound>(ids::MATCH_FOUND, T).await.expect("b matched");
    assert_eq!(fa.room_id, fb.room_id);
    assert!(fa.here && fb.here, "one node: the room is here");
    let mut who: Vec<i64> = fa.players.iter().map(|p| p.user_id).collect();
    who.sort_unstable();
    assert_eq!(who, [a.user_id, b.user_id]);

    // The stranger cannot take a seat; the two play.
    cc.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: fa.room_id, ..Default::default() }).await.expect("send");
    assert_eq!(code(cc.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect_err("no seat")), 400501);
    for c in [&mut ca, &mut cb] {
        c.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: fa.room_id, ..Default::default() }).await.expect("send");
        let r = c.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("in the room");
        assert_eq!((r.room_id, r.r#type), (fa.room_id, 3));
    }
    cb.send(ids::LOCKSTEP_INPUT, &pb::LockstepInput { data: b"up".to_vec() }).await.expect("input");
    ca.wait_where::<pb::LockstepFrames>(ids::LOCKSTEP_FRAMES, T, |f| {
        f.room_id == fa.room_id && f.frames.iter().any(|fr| fr.inputs.iter().any(|i| i.user_id == b.user_id))
    })
    .await
    .expect("a sees b's input in the match's frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_player_resumes_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let (a, b) = (account(&srv, "dropper").await, account(&srv, "watcher").await);
    let mut cb = tcp(&srv).await;
    cb.login(b.user_id, &b.token).await.expect("login");
    let mut ca = tcp(&srv).await;
    let info = ca.login(a.user_id, &a.token).await.expect("login");
    let to = walk(&mut ca, a.user_id, pos(&info), (pos(&info).0 + 6.0, pos(&info).1)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(ca);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ca = tcp(&srv).await;
    let back = ca.login(a.user_id, &a.token).await.expect("back");
    let p = pos(&back);
    assert!((p.0 - to.0).abs() < 0.01 && (p.1 - to.1).abs() < 0.01, "where it was: {p:?} vs {to:?}");
    // The new connection is sent its view at once: the watcher is in it.
    ca.wait_where::<pb::SpawnResp>(ids::SPAWN, T, |s| s.list.iter().any(|e| e.id == b.user_id)).await.expect("view");
    // The watcher never saw it leave.
    let left = cb
        .wait_where::<pb::DespawnResp>(ids::DESPAWN, Duration::from_millis(500), |d| d.ids.contains(&a.user_id))
        .await;
    assert!(matches!(left, Err(ClientError::Timeout(_))), "{left:?}");
    // Past the grace period (3 s) a dropped player leaves, and the view is told.
    drop(ca);
    cb.wait_where::<pb::DespawnResp>(ids::DESPAWN, T, |d| d.ids.contains(&a.user_id))
        .await
        .expect("despawn after grace");
}

/// Attack row 5 of issue 17: a stolen token, or a banned player, kept playing after the
/// account's sessions were ended. "Log out everywhere" now closes the live game connection
/// within 5 s and the old token stops working at once; nobody else is touched.
#[tokio::test]
async fn logging_out_everywhere_ends_the_live_game_session_and_its_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let http = format!("127.0.0.1:{}", srv.port);
    let (a, b) = (account(&srv, "stolen").await, account(&srv, "bystander").await);
    let (mut ca, mut cb) = (tcp(&srv).await, ws(&srv, false).await);
    ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");

    let v = rsgame_bot::client::post(&http, "/usercenter/v1/user/logoutAll", Some(&a.token), &serde_json::json!({}))
        .await
        .expect("logoutAll");
    assert_eq!(v["code"], 200, "{v}");
    let bye: pb::LogoutResp = ca.wait(ids::reply(ids::LOGOUT), Duration::from_secs(5)).await.expect("LogoutResp");
    assert_eq!((bye.r#type, bye.user_id), (pb::LogoutType::Ended as i32, a.user_id));
    assert!(ca.closed(Duration::from_secs(5)).await, "the connection is closed");
    let d = rsgame_bot::client::post(&http, "/usercenter/v1/user/detail", Some(&a.token), &serde_json::json!({}))
        .await
        .expect("detail");
    assert_eq!(d["code"], 400103, "the old token on REST: {d}");
    let mut again = tcp(&srv).await;
    assert_eq!(code(again.login(a.user_id, &a.token).await.expect_err("old token")), 400103);

    // The other player plays on; the owner logs in again with the password.
    assert!(!cb.closed(Duration::from_millis(500)).await, "the bystander stays");
    let fresh = account(&srv, "stolen").await;
    let mut back = tcp(&srv).await;
    back.login(fresh.user_id, &fresh.token).await.expect("a new login works");
}

/// Issue 19: a password change (the same ending as a reset by code) and an operator's ban
/// each close the account's live game connection within 5 s with a reason; the ban comes
/// from `rsgame admin ban`, another process, through the shared cache and bus (Redis).
#[tokio::test]
async fn a_password_change_and_a_ban_end_the_live_game_session() {
    let Some(redis) = rsgame_testkit::service("RSGAME_TEST_REDIS_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = format!("rsgame-world-ban-{}-{}:", std::process::id(), free_port());
    let bus_prefix = format!("{prefix}bus:");
    let shared = [
        ("RSGAME_CACHE__BACKEND", "redis"),
        ("RSGAME_CACHE__URL", redis.as_str()),
        ("RSGAME_CACHE__PREFIX", prefix.as_str()),
        ("RSGAME_BUS__URL", redis.as_str()),
        ("RSGAME_BUS__PREFIX", bus_prefix.as_str()),
    ];
    world_data(dir.path());
    let cfg = write_config(dir.path(), &format!("{AUTH}world:\n  reconnect_grace_secs: 3\n"));
    let srv = Server::start(&cfg, &shared);
    let http = format!("127.0.0.1:{}", srv.port);
    let ended = |c: Client, user_id: i64| async move {
        let mut c = c;
        let bye: pb::LogoutResp = c.wait(ids::reply(ids::LOGOUT), Duration::from_secs(5)).await.expect("LogoutResp");
        assert_eq!((bye.r#type, bye.user_id), (pb::LogoutType::Ended as i32, user_id));
        assert!(c.closed(Duration::from_secs(5)).await, "the connection is closed");
    };

    let a = account(&srv, "changer").await;
    let mut ca = tcp(&srv).await;
    ca.login(a.user_id, &a.token).await.expect("login");
    let body = serde_json::json!({"old": "secret99", "new": "secret100"});
    let v = rsgame_bot::client::post(&http, "/usercenter/v1/user/changePassword", Some(&a.token), &body)
        .await
        .expect("changePassword");
    assert_eq!(v["code"], 200, "{v}");
    ended(ca, a.user_id).await;

    let b = account(&srv, "cheater").await;
    let mut cb = tcp(&srv).await;
    cb.login(b.user_id, &b.token).await.expect("login");
    let mut ban = rsgame();
    ban.arg("--config").arg(&cfg).args(["admin", "ban", &b.user_id.to_string(), "--for", "1h", "--reason", "aimbot"]);
    ban.env("RSGAME_DATABASE__URL", format!("sqlite://{}/data/rsgame.db", dir.path().display()));
    ban.envs(shared.iter().copied()).env("RSGAME_LOG__LEVEL", "warn");
    let out = run(ban);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ended(cb, b.user_id).await;
    let mut again = tcp(&srv).await;
    assert_eq!(code(again.login(b.user_id, &b.token).await.expect_err("banned")), 400103);
    drop(srv);
    let clean = format!("redis-cli -u {redis} --scan --pattern '{prefix}*' | xargs -r redis-cli -u {redis} del");
    let _ = std::process::Command::new("sh").args(["-c", &clean]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guild_chat_reaches_online_members_and_its_history_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let http = format!("127.0.0.1:{}", srv.port);
    let (a, b, c) = (account(&srv, "founder").await, account(&srv, "member").await, account(&srv, "outsider").await);
    let call = |token: String, path: &'static str, body: serde_json::Value| {
        let http = http.clone();
        async move { rsgame_bot::client::post(&http, path, Some(&token), &body).await.expect(path) }
    };
    let made =
        call(a.token.clone(), "/game/v1/guild/create", serde_json::json!({"name": "Night Watch", "open": true})).await;
    assert_eq!(made["code"], 200, "{made}");
    let guild = made["data"]["guild"]["id"].as_i64().expect("id");
    let (mut ca, mut cb, mut cc) = (tcp(&srv).await, ws(&srv, true).await, tcp(&srv).await);
    ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");
    cc.login(c.user_id, &c.token).await.expect("login");
    // b joins: the founder, online, is told.
    let joined = call(b.token.clone(), "/game/v1/guild/join", serde_json::json!({"guildId": guild})).await;
    assert_eq!(joined["data"]["joined"], true, "{joined}");
    let n: pb::GuildNotice = ca
        .wait_where(ids::GUILD_NOTICE, T, |n: &pb::GuildNotice| n.event == pb::GuildEvent::Joined as i32)
        .await
        .expect("the founder hears of the new member");
    assert_eq!((n.guild_id, n.subject, n.name.as_str()), (guild, b.user_id, "Night Watch"));
    // Guild chat reaches the member (over JSON WebSocket), not the outsider.
    let says = pb::ChatMsg {
        chat_type: pb::ChatType::Guild as i32,
        msg_type: 1,
        msg: "meet at the gate".into(),
        ..Default::default()
    };
    ca.send(ids::CHAT_MSG, &says).await.expect("guild chat");
    let got = cb
        .wait_where(ids::reply(ids::CHAT_MSG), T, |m: &pb::ChatMsgResp| m.msg_list.iter().any(|x| x.msg == says.msg))
        .await
        .expect("the member reads it");
    assert_eq!((got.msg_list[0].user_id, got.msg_list[0].chat_type), (a.user_id, 5));
    let outsider = cc.wait_where(ids::reply(ids::CHAT_MSG), Duration::from_millis(300), |m: &pb::ChatMsgResp| {
        m.msg_list.iter().any(|x| x.msg == says.msg)
    });
    assert!(outsider.await.is_err(), "the outsider reads nothing");
    cc.send(ids::CHAT_MSG, &says).await.expect("send");
    assert_eq!(code(cc.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T).await.expect_err("no guild")), 400201);
    // The members' online status, as the world's presence says.
    let online = |d: &serde_json::Value, who: i64| {
        d["data"]["members"].as_array().into_iter().flatten().find(|m| m["userId"] == who).map(|m| m["online"].clone())
    };
    let d = call(a.token.clone(), "/game/v1/guild/detail", serde_json::json!({})).await;
    assert_eq!((online(&d, a.user_id), online(&d, b.user_id)), (Some(true.into()), Some(true.into())), "{d}");
    cb.send(ids::LOGOUT, &pb::Logout { r#type: 1, user_id: b.user_id }).await.expect("logout");
    let start = std::time::Instant::now();
    loop {
        let d = call(a.token.clone(), "/game/v1/guild/detail", serde_json::json!({})).await;
        if online(&d, b.user_id) == Some(false.into()) {
            break;
        }
        assert!(start.elapsed() < T, "the member who logged out still shows online: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((ca, cb, cc));
    drop(srv);

    // After a restart the history is still there.
    let srv = Server::start(&dir.path().join("rsgame.yaml"), &[]);
    let mut cb = tcp(&srv).await;
    cb.login(b.user_id, &b.token).await.expect("login after the restart");
    cb.send(ids::CHAT_HISTORY, &pb::ChatHistory { chat_type: 5, obj_id: 0, before: 0, limit: 10 })
        .await
        .expect("history");
    let h = cb.wait::<pb::ChatMsgResp>(ids::reply(ids::CHAT_HISTORY), T).await.expect("history");
    assert!(h.msg_list.iter().any(|m| m.msg == says.msg && m.user_id == a.user_id), "{h:?}");
}

async fn stats_where(c: &mut Client, what: &str, ok: impl Fn(&pb::PlayerStats) -> bool) -> pb::PlayerStats {
    c.wait_where(ids::PLAYER_STATS, T, ok).await.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bag_and_the_shop_change_the_live_player_and_what_others_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let http = format!("127.0.0.1:{}", srv.port);
    let (a, b) = (account(&srv, "shopper").await, account(&srv, "onlooker").await);
    let mut ca = tcp(&srv).await;
    ca.login(a.user_id, &a.token).await.expect("login");
    let start: pb::PlayerStats = ca.wait(ids::PLAYER_STATS, T).await.expect("stats at login");
    let mut cb = tcp(&srv).await;
    cb.login(b.user_id, &b.token).await.expect("login");
    let call = |path: &'static str, body: serde_json::Value| {
        let (http, token) = (http.clone(), a.token.clone());
        async move {
            let v = rsgame_bot::client::post(&http, path, Some(&token), &body).await.expect(path);
            assert_eq!(v["code"], 200, "{path}: {v}");
        }
    };
    // Coins spent over REST show on the live player at once.
    call("/game/v1/game/buyGoods", serde_json::json!({"id": 5})).await;
    let s = stats_where(&mut ca, "coins after a purchase", |s| s.coins == start.coins - 40).await;
    assert_eq!(s.attack, start.attack);
    // Equipping the sword raises the attack the world fights with.
    call("/game/v1/game/useGoods", serde_json::json!({"id": 10})).await;
    stats_where(&mut ca, "attack with the sword", |s| s.attack == start.attack + 6).await;
    // A Scroll of Insight: a level-up, with its hit points refilled, seen by those near.
    call("/game/v1/game/buyGoods", serde_json::json!({"id": 3})).await;
    call("/game/v1/game/useGoods", serde_json::json!({"id": 3})).await;
    let up = stats_where(&mut ca, "a level-up", |s| s.level == start.level + 1).await;
    assert_eq!((up.max_hp, up.hp), (start.max_hp + 20, start.max_hp + 20));
    let seen: pb::SpawnResp = cb
        .wait_where(ids::SPAWN, T, |s: &pb::SpawnResp| {
            s.list.iter().any(|e| e.id == a.user_id && e.max_hp == start.max_hp + 20)
        })
        .await
        .expect("the onlooker sees the new maximum");
    assert!(!seen.list.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_sent_to_a_player_in_the_world_is_pushed_and_its_gift_shows_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    world_data(dir.path());
    let cfg = write_config(dir.path(), AUTH);
    let srv = Server::start(&cfg, &[("RSGAME_GAME__ADMIN_TOKEN", "mail-admin")]);
    let http = format!("127.0.0.1:{}", srv.port);
    let a = account(&srv, "postman").await;
    let mut c = tcp(&srv).await;
    c.login(a.user_id, &a.token).await.expect("login");
    let start: pb::PlayerStats = c.wait(ids::PLAYER_STATS, T).await.expect("stats at login");
    let h = ["Content-Type: application/json".to_owned(), "X-Admin-Token: mail-admin".to_owned()];
    let body = serde_json::json!({"userIds": [a.user_id], "title": "Compensation", "coins": 25});
    let r = rsgame_testkit::call(srv.port, "POST", "/game/v1/inbox/send", &h, body.to_string().as_bytes()).await;
    assert_eq!(r.json()["code"], 200, "{:?}", r.json());
    let id = r.json()["data"][0].as_i64().expect("id");
    // rsgame-bot asks for every capability: the notice comes while it plays.
    let n: pb::MailNotice = c.wait(ids::MAIL_NOTICE, T).await.expect("a mail notice");
    assert_eq!((n.id, n.title.as_str(), n.attachment), (id, "Compensation", true));
    let v = rsgame_bot::client::post(&http, "/game/v1/inbox/claim", Some(&a.token), &serde_json::json!({"id": id}))
        .await
        .expect("claim");
    assert_eq!(v["code"], 200, "{v}");
    stats_where(&mut c, "coins from the mail", |s| s.coins == start.coins + 25).await;
}

/// Logs in, walks somewhere new, and returns where it stands.
async fn wander(srv: &Server, a: &Account, dx: f32) -> (Client, (f32, f32)) {
    let mut c = tcp(srv).await;
    let info = c.login(a.user_id, &a.token).await.expect("login");
    let (x, z) = pos(&info);
    let to = walk(&mut c, a.user_id, (x, z), (x + dx, z)).await;
    (c, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_nothing_and_kill_9_at_most_one_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Saves every second; a long interval would make SIGTERM's flush the only save.
    let mut srv = start(dir.path(), "  save_secs: 1\n");
    let a = account(&srv, "saver").await;

    // kill -9: what was saved an interval ago is there.
    let (c, to) = wander(&srv, &a, 9.0).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    srv.child.kill().expect("kill -9");
    let _ = srv.child.wait();
    drop(c);
    drop(srv);
    srv = Server::start(&dir.path().join("rsgame.yaml"), &[]);
    let mut c = tcp(&srv).await;
    let info = c.login(a.user_id, &a.token).await.expect("login after kill -9");
    let p = pos(&info);
    assert!(
        (p.0 - to.0).abs() < 0.01 && (p.1 - to.1).abs() < 0.01,
        "kill -9 kept the place saved before: {p:?} vs {to:?}"
    );
    drop(c);
    drop(srv);

    // SIGTERM right after the last move, with saves an hour apart: the flush writes it.
    let cfg = write_config(dir.path(), &format!("{AUTH}world:\n  save_secs: 3600\n"));
    let mut srv = Server::start(&cfg, &[]);
    let (c, to) = wander(&srv, &a, -6.0).await;
    tokio::time::sleep(Duration::from_millis(150)).await; // the last move reaches the scene
    srv.sigterm();
    let st = srv.child.wait().expect("exit");
    assert!(st.success(), "clean exit: {st}");
    drop(c);
    drop(srv);
    let srv = Server::start(&cfg, &[]);
    let mut c = tcp(&srv).await;
    let info = c.login(a.user_id, &a.token).await.expect("login after SIGTERM");
    let p = pos(&info);
    assert!((p.0 - to.0).abs() < 0.01 && (p.1 - to.1).abs() < 0.01, "SIGTERM lost nothing: {p:?} vs {to:?}");
}

#[test]
fn rsgame_bot_plays_a_scenario_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let out = rsgame()
        .args(["bot", "--http", &format!("127.0.0.1:{}", srv.port), "--gate", &format!("127.0.0.1:{}", srv.gate_port)])
        .args(["--bots", "4", "--duration", "2", "--scenario", "fight", "--metrics"])
        .arg("--report")
        .arg(dir.path().join("report"))
        .output()
        .expect("rsgame bot");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    assert_eq!((report["connected"].as_u64(), report["errors"].as_u64()), (Some(4), Some(0)), "{report}");
    assert!(report["messages_per_s"].as_f64().is_some_and(|m| m > 0.0), "{report}");
    assert!(report["tick_p99_ms"].as_f64().is_some(), "tick times read from /metrics: {report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("connected 4/4"), "live progress on stderr");
    let md = std::fs::read_to_string(dir.path().join("report.md")).expect("markdown report");
    assert!(md.contains("| connected | 4 |"), "{md}");
    assert!(dir.path().join("report.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_errors_and_hurts_no_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(dir.path(), "");
    let (a, b) = (account(&srv, "mallory").await, account(&srv, "bystander").await);
    let (mut ca, mut cb) = (tcp(&srv).await, ws(&srv, true).await);
    let info = ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");

    // Positions that are not numbers, or absurd: the player stays where it was.
    for (x, z) in [(f32::NAN, 1.0), (f32::INFINITY, f32::NEG_INFINITY), (1e30, -1e30), (-0.0, f32::MIN)] {
        ca.send(ids::MOVE, &pb::Move { user_id: b.user_id, site: site(x, z) }).await.expect("move");
    }
    ca.send(ids::MOVE, &pb::Move { user_id: a.user_id, site: None }).await.expect("no site");
    // (Waiting on an id that never comes: the corrections of the moves above are skipped.)
    assert_eq!(code(ca.wait::<pb::MoveResp>(ids::ERROR + 1, T).await.expect_err("error")), 400_102);
    // Every other message with values out of range, each answered with an error (or dropped).
    let long = "x".repeat(10_000);
    ca.send(ids::ATTACK, &pb::Attack { user_id: b.user_id, obj_id: -1, param: long.clone() }).await.expect("send");
    ca.send(ids::ATTACK, &pb::Attack { user_id: 0, obj_id: i64::MAX, param: String::new() }).await.expect("send");
    ca.send(ids::CREATE_ROOM, &pb::CreateRoom { name: long.clone(), r#type: 99, max_user: -5, password: long.clone() })
        .await
        .expect("send");
    ca.send(ids::CREATE_ROOM, &pb::CreateRoom { name: "\u{7}bell".into(), r#type: 1, ..Default::default() })
        .await
        .expect("send");
    ca.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: -1, user_id: b.user_id, password: long.clone() })
        .await
        .expect("send");
    ca.send(ids::QUIT_ROOM, &pb::QuitRoom { room_id: i64::MIN, user_id: i64::MIN, ..Default::default() })
        .await
        .expect("send");
    ca.send(ids::CHAT_MSG, &pb::ChatMsg { chat_type: 1, msg_type: 0, msg: "hi".into(), ..Default::default() })
        .await
        .expect("send");
    ca.send(ids::CHAT_MSG, &pb::ChatMsg { chat_type: 1, msg_type: 1, msg: "a\u{0}b".into(), ..Default::default() })
        .await
        .expect("send");
    ca.send(
        ids::CHAT_MSG,
        &pb::ChatMsg { chat_type: 3, msg_type: 1, msg: "me".into(), obj_id: a.user_id, ..Default::default() },
    )
    .await
    .expect("send");
    ca.send(ids::CHAT_HISTORY, &pb::ChatHistory { chat_type: 3, obj_id: -7, before: -1, limit: i32::MIN })
        .await
        .expect("send");
    ca.send(ids::ADD_FRIEND, &pb::AddFriend { user_id: a.user_id, r#type: 99 }).await.expect("send");
    ca.send(ids::ADD_FRIEND, &pb::AddFriend { user_id: 987_654_321, r#type: 1 }).await.expect("send");
    ca.send(ids::MY_FRIEND, &pb::MyFriend { r#type: -3, search_key: long.clone() }).await.expect("send");
    ca.send(ids::LOCKSTEP_SYNC, &pb::LockstepSync { from: -1 }).await.expect("send");
    ca.send(ids::LOCKSTEP_INPUT, &pb::LockstepInput { data: vec![0; 60_000] }).await.expect("send");
    ca.send(ids::GAME_LOGIN, &pb::GameLogin { user_id: b.user_id, token: b.token.clone(), ..Default::default() })
        .await
        .expect("a second login on a logged-in connection");
    let mut errors = 0;
    while let Some((id, body)) = ca.next(Duration::from_secs(2)).await {
        if id == ids::ERROR {
            let e: pb::ErrorResp = ca.decode(&body).expect("error body");
            assert!(e.code >= 400 && !e.msg.is_empty(), "{e:?}");
            errors += 1;
        }
    }
    // 15 refused with an error; an attack on an id that is not there is dropped silently.
    assert_eq!(errors, 15, "each bad request is answered with an error");

    // The sender is still served, still where it was; the bystander never noticed.
    ca.send(ids::PING, &pb::Ping { sn: 1 }).await.expect("ping");
    ca.wait::<pb::PingResp>(ids::PING_RESP, T).await.expect("the sender is still served");
    cb.send(ids::PING, &pb::Ping { sn: 2 }).await.expect("ping");
    cb.wait::<pb::PingResp>(ids::PING_RESP, T).await.expect("the bystander is unaffected");
    drop(ca);
    let mut again = tcp(&srv).await;
    let back = again.login(a.user_id, &a.token).await.expect("login again");
    let (p, q) = (pos(&back), pos(&info));
    // Non-numbers were refused; the finite absurd ones were clamped into the scene and cut to
    // what the speed allows: at most a second's walk, never a jump.
    let moved = ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
    assert!(moved < 50.0 && (85.0..=410.0).contains(&p.0) && (75.0..=400.0).contains(&p.1), "{p:?} vs {q:?}");
    assert_eq!(get(srv.port, "/healthz").map(|r| r.0), Some(200));
}

/// An operator's session on the console's listener: its cookie and CSRF token.
struct Operator {
    port: u16,
    cookie: String,
    csrf: String,
}

impl Operator {
    async fn sign_in(dir: &Path, cfg: &Path, port: u16) -> Operator {
        let made = rsgame()
            .arg("--config")
            .arg(cfg)
            .args(["admin", "create-operator", "ops", "--role", "admin"])
            .env("RSGAME_DATABASE__URL", format!("sqlite://{}/data/rsgame.db", dir.display()))
            .env("OPERATOR_PASSWORD", "a-long-pass-phrase")
            .output()
            .expect("create-operator runs");
        assert!(made.status.success(), "{}", text(&made));
        let body = serde_json::json!({"username": "ops", "password": "a-long-pass-phrase"});
        let r = rsgame_testkit::post_json(port, "/console/v1/auth/login", None, &body).await;
        let v = r.json();
        assert_eq!(v["code"], 200, "{v}");
        let set = r.head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
        let cookie =
            set.split_once(':').map(|(_, v)| v.trim()).unwrap_or("").split(';').next().unwrap_or("").to_owned();
        Operator { port, cookie, csrf: v["data"]["csrf"].as_str().expect("csrf").to_owned() }
    }

    async fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let h = vec![
            "Content-Type: application/json".to_owned(),
            format!("Cookie: {}", self.cookie),
            format!("X-CSRF-Token: {}", self.csrf),
        ];
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        rsgame_testkit::call(self.port, method, path, &h, body.as_bytes()).await.json()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_node_closes_a_room_and_drains_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    world_data(dir.path());
    let cfg = write_config(dir.path(), &format!("{AUTH}world:\n  reconnect_grace_secs: 3\n"));
    let console_port = free_port();
    let srv = Server::start(&cfg, &[("RSGAME_CONSOLE__PORT", &console_port.to_string())]);
    let op = Operator::sign_in(dir.path(), &cfg, console_port).await;
    let (a, b, c) = (account(&srv, "host").await, account(&srv, "guest").await, account(&srv, "late").await);
    let (mut ca, mut cb) = (tcp(&srv).await, tcp(&srv).await);
    ca.login(a.user_id, &a.token).await.expect("login");
    cb.login(b.user_id, &b.token).await.expect("login");
    let create = pb::CreateRoom { name: "den".into(), r#type: 1, max_user: 4, password: String::new() };
    ca.send(ids::CREATE_ROOM, &create).await.expect("send");
    let made = ca.wait::<pb::CreateRoomResp>(ids::reply(ids::CREATE_ROOM), T).await.expect("created");
    let room: i64 = made.msg.parse().expect("the room id");
    cb.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: room, user_id: 0, password: String::new() })
        .await
        .expect("send");
    cb.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("enters");

    // The node, its players and the room, as the console sees them (written every 3 s).
    let deadline = tokio::time::Instant::now() + T;
    let node = loop {
        let v = op.call("GET", "/console/v1/servers", None).await;
        let node = v["data"][0].clone();
        let listed = node["rooms"].as_array().into_iter().flatten().any(|r| r["id"] == room && r["players"] == 2);
        if listed {
            break node;
        }
        assert!(tokio::time::Instant::now() < deadline, "the room shows on the servers page: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = node["id"].as_str().expect("node id").to_owned();
    assert_eq!(node["players"], 2, "{node}");
    // A player's page says where it is now: its node answers over the bus.
    let page = op.call("GET", &format!("/console/v1/players/{}", b.user_id), None).await;
    let w = &page["data"]["whereabouts"];
    assert_eq!(
        (w["node"].as_str(), w["room"].as_i64(), w["permanent"].as_bool()),
        (Some(id.as_str()), Some(room), Some(false)),
        "{page}"
    );

    // A scene cannot be closed; the room can: both players are sent back, told why.
    let scene = serde_json::json!({"node": id, "room": 1000, "reason": "x"});
    assert_eq!(op.call("POST", "/console/v1/servers/close-room", Some(scene)).await["code"], 400102);
    let close = serde_json::json!({"node": id, "room": room, "reason": "griefing"});
    let v = op.call("POST", "/console/v1/servers/close-room", Some(close)).await;
    assert_eq!(v["code"], 200, "{v}");
    for cl in [&mut ca, &mut cb] {
        let told = cl.wait::<pb::QuitRoomResp>(ids::reply(ids::QUIT_ROOM), T).await.expect("told");
        assert!(told.remark.contains("griefing"), "{told:?}");
        let back = cl.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), T).await.expect("back in a scene");
        assert_eq!(back.room_id, 1000);
    }

    // Draining: a new game login is refused; those in play on; reopened, it is taken.
    let drain = |on: bool| serde_json::json!({"node": id, "drain": on, "reason": "kernel update"});
    let v = op.call("POST", "/console/v1/servers/drain", Some(drain(true))).await;
    assert_eq!(v["data"]["draining"], true, "{v}");
    let mut cc = tcp(&srv).await;
    cc.send(
        ids::GAME_LOGIN,
        &pb::GameLogin { user_id: c.user_id, token: c.token.clone(), plat: "t".into(), param: "caps=errors".into() },
    )
    .await
    .expect("send");
    let refused = cc.wait::<pb::UserInfo>(ids::reply(ids::GAME_LOGIN), T).await.expect_err("draining");
    assert_eq!(code(refused), 400_503);
    ca.send(ids::CHAT_MSG, &pb::ChatMsg { chat_type: 1, msg_type: 1, msg: "still here".into(), ..Default::default() })
        .await
        .expect("chat");
    cb.wait_where::<pb::ChatMsgResp>(ids::reply(ids::CHAT_MSG), T, |m| {
        m.msg_list.iter().any(|c| c.msg == "still here")
    })
    .await
    .expect("those in play on");
    let v = op.call("POST", "/console/v1/servers/drain", Some(drain(false))).await;
    assert_eq!(v["data"]["draining"], false, "{v}");
    let mut cc = tcp(&srv).await;
    cc.login(c.user_id, &c.token).await.expect("taken again");

    let audit = op.call("GET", &format!("/console/v1/audit?target=node:{id}"), None).await;
    let actions: Vec<&str> =
        audit["data"].as_array().expect("lines").iter().filter_map(|l| l["action"].as_str()).collect();
    assert_eq!(actions, ["node.open", "node.drain", "room.close"], "{audit}");
}
