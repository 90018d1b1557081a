//! go-game's own clients, served exactly: a client built only from go-game's `msg.proto`
//! field numbers and zinx's frame (no rsgame code on its side) logs in, moves, chats, makes
//! and leaves rooms and adds friends, beside an rsgame client fighting a monster in view;
//! every frame it receives must be one go-game sends, and every MoveResp entry a player.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The ids go-game's server sends (its msg.proto and zinx's ping).
const GO_GAME_SENDS: [u32; 12] =
    [2000, 200_000, 200_001, 200_002, 200_003, 200_004, 200_005, 200_100, 200_101, 200_200, 200_201, 200_900];
/// Entity ids at and above this are rsgame's monsters.
const MONSTERS: u64 = 1 << 48;
const T: Duration = Duration::from_secs(10);

/// Protobuf by hand: what go-game's msg.proto says, nothing generated.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn int(out: &mut Vec<u8>, field: u32, v: i64) {
        varint(out, u64::from(field) << 3);
        varint(out, v as u64);
    }
    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        varint(out, (u64::from(field) << 3) | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    pub fn float(out: &mut Vec<u8>, field: u32, f: f32) {
        varint(out, (u64::from(field) << 3) | 5);
        out.extend_from_slice(&f.to_le_bytes());
    }
    /// Site{1: X, 2: Y, 3: Z, 4: V}.
    pub fn site(x: f32, z: f32) -> Vec<u8> {
        let mut s = Vec::new();
        float(&mut s, 1, x);
        float(&mut s, 3, z);
        s
    }

    #[derive(Debug, Clone)]
    pub enum Value {
        Int(u64),
        Bytes(Vec<u8>),
        Fixed(u64),
    }

    fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// Every (field, value) of a message, in order; None when it does not parse.
    pub fn fields(b: &[u8]) -> Option<Vec<(u32, Value)>> {
        let (mut at, mut out) = (0, Vec::new());
        while at < b.len() {
            let key = read_varint(b, &mut at)?;
            let field = (key >> 3) as u32;
            let v = match key & 7 {
                0 => Value::Int(read_varint(b, &mut at)?),
                1 => {
                    let v = u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?);
                    at += 8;
                    Value::Fixed(v)
                }
                2 => {
                    let n = read_varint(b, &mut at)? as usize;
                    let v = b.get(at..at + n)?.to_vec();
                    at += n;
                    Value::Bytes(v)
                }
                5 => {
                    let v = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
                    at += 4;
                    Value::Fixed(u64::from(v))
                }
                _ => return None,
            };
            out.push((field, v));
        }
        Some(out)
    }

    pub fn int_of(f: &[(u32, Value)], field: u32) -> Option<u64> {
        f.iter().find_map(|(n, v)| match v {
            Value::Int(i) if *n == field => Some(*i),
            _ => None,
        })
    }

    pub fn float_of(f: &[(u32, Value)], field: u32) -> Option<f32> {
        f.iter().find_map(|(n, v)| match v {
            Value::Fixed(i) if *n == field => Some(f32::from_bits(*i as u32)),
            _ => None,
        })
    }

    pub fn all_bytes(f: &[(u32, Value)], field: u32) -> Vec<Vec<u8>> {
        f.iter()
            .filter_map(|(n, v)| match v {
                Value::Bytes(b) if *n == field => Some(b.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A go-game client: zinx frames (id u32 BE, length u32 BE, body) over TCP.
struct GoGame {
    w: tokio::net::tcp::OwnedWriteHalf,
    rx: mpsc::UnboundedReceiver<(u32, Vec<u8>)>,
    /// Everything received so far, for the final check.
    seen: Vec<(u32, Vec<u8>)>,
}

impl GoGame {
    async fn connect(port: u16) -> GoGame {
        let s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let (mut r, w) = s.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut head = [0u8; 8];
            while r.read_exact(&mut head).await.is_ok() {
                let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).await.is_err() || tx.send((id, body)).is_err() {
                    break;
                }
            }
        });
        GoGame { w, rx, seen: Vec::new() }
    }

    async fn send(&mut self, id: u32, body: &[u8]) {
        let mut f = Vec::with_capacity(8 + body.len());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        self.w.write_all(&f).await.expect("send");
    }

    /// Waits for a frame with `id`; what comes before it is kept for the final check.
    async fn expect(&mut self, id: u32) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let got = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            let (got_id, body) = got.unwrap_or_else(|_| panic!("no frame {id} in time")).expect("connection open");
            self.seen.push((got_id, body.clone()));
            if got_id == id {
                return body;
            }
        }
    }

    /// Waits for a frame with `id` whose fields pass `pred`.
    async fn expect_where(&mut self, id: u32, pred: impl Fn(&[(u32, pb::Value)]) -> bool) -> Vec<u8> {
        loop {
            let body = self.expect(id).await;
            if pb::fields(&body).is_some_and(|f| pred(&f)) {
                return body;
            }
        }
    }

    /// Takes what arrives for `d` into the record.
    async fn drain(&mut self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while let Ok(Some(f)) = tokio::time::timeout_at(end, self.rx.recv()).await {
            self.seen.push(f);
        }
    }

    /// Fails on any frame go-game would not send, and on any MoveResp entry that is not a
    /// player.
    fn check(&self, who: &str) {
        for (id, body) in &self.seen {
            assert!(GO_GAME_SENDS.contains(id), "{who} got frame {id}, which go-game never sends");
            let f = pb::fields(body).unwrap_or_else(|| panic!("{who}: frame {id} is not protobuf"));
            if *id == 200_200 {
                for site in pb::all_bytes(&f, 1) {
                    let user = pb::int_of(&pb::fields(&site).expect("UserSite"), 1).unwrap_or(0);
                    assert!(user < MONSTERS, "{who}: a MoveResp entry for entity {user}, not a player");
                }
            }
            if *id == 200_201 {
                let (a, b) = (pb::int_of(&f, 1).unwrap_or(0), pb::int_of(&f, 2).unwrap_or(0));
                assert!(a < MONSTERS && b < MONSTERS, "{who}: an AttackResp about a monster ({a} → {b})");
            }
        }
    }
}

fn login(user: i64, token: &str) -> Vec<u8> {
    let mut b = Vec::new();
    pb::int(&mut b, 1, user);
    pb::bytes(&mut b, 2, token.as_bytes());
    pb::bytes(&mut b, 3, b"go-game");
    b
}

fn position(user_info: &[u8]) -> (f32, f32) {
    let f = pb::fields(user_info).expect("UserInfo");
    let site = pb::all_bytes(&f, 9).pop().expect("position");
    let s = pb::fields(&site).expect("Site");
    (pb::float_of(&s, 1).unwrap_or(0.0), pb::float_of(&s, 3).unwrap_or(0.0))
}

fn move_to(user: i64, x: f32, z: f32) -> Vec<u8> {
    let mut b = Vec::new();
    pb::int(&mut b, 1, user);
    pb::bytes(&mut b, 2, &pb::site(x, z));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_game_client_gets_only_what_go_game_sends() {
    let dir = tempfile::tempdir().expect("tempdir");
    world_data(dir.path());
    let cfg = write_config(dir.path(), "auth:\n  jwt_secret: go-game-tests-signing-key-0123456789abcdef\n");
    let srv = Server::start(&cfg, &[]);
    let http = format!("127.0.0.1:{}", srv.port);
    let account = |name: &'static str| {
        let http = http.clone();
        async move { rsgame_bot::client::account(&http, name, "secret99").await.expect("account") }
    };
    let (a, b, c) = (account("gogo_a").await, account("gogo_b").await, account("rs_c").await);

    let mut ga = GoGame::connect(srv.gate_port).await;
    let mut gb = GoGame::connect(srv.gate_port).await;
    ga.send(100_000, &login(a.user_id, &a.token)).await;
    let a_at = position(&ga.expect(200_000).await);
    gb.send(100_000, &login(b.user_id, &b.token)).await;
    let b_at = position(&gb.expect(200_000).await);

    // Mutual friends: go-game has no online push, so none may come.
    let friend = |user: i64| {
        let mut m = Vec::new();
        pb::int(&mut m, 1, user);
        pb::int(&mut m, 2, 1);
        m
    };
    ga.send(100_100, &friend(b.user_id)).await;
    ga.expect(200_100).await;
    gb.send(100_100, &friend(a.user_id)).await;
    gb.expect(200_100).await;

    // An rsgame client beside them hits the scene's monster (the Dummy next to the start
    // point): it is told about monsters; the go-game clients must not be.
    let mut rc = rsgame_bot::Client::tcp(&format!("127.0.0.1:{}", srv.gate_port)).await.expect("tcp");
    rc.login(c.user_id, &c.token).await.expect("rsgame login");
    let is_monster = |s: &rsgame_proto::pb::SpawnResp| s.list.iter().any(|e| e.kind == 2);
    let spawn = rc.wait_where(rsgame_proto::ids::SPAWN, T, is_monster).await.expect("rsgame's client sees the monster");
    let monster = spawn.list.iter().find(|e| e.kind == 2).map(|e| e.id).expect("monster");

    // a walks to b at a pace the speed check accepts; b sees a's moves, players only.
    let (mut x, mut z) = a_at;
    for _ in 0..200 {
        let (dx, dz) = (b_at.0 + 2.0 - x, b_at.1 - z);
        let d = (dx * dx + dz * dz).sqrt();
        if d < 0.5 {
            break;
        }
        let k = (3.0 / d).min(1.0);
        (x, z) = (x + dx * k, z + dz * k);
        ga.send(100_200, &move_to(a.user_id, x, z)).await;
        // The rsgame client keeps swinging at the monster, in view of both.
        let hit = rsgame_proto::pb::Attack { obj_id: monster, ..Default::default() };
        rc.send(rsgame_proto::ids::ATTACK, &hit).await.expect("attack");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen_a = |f: &[(u32, pb::Value)]| {
        pb::all_bytes(f, 1).iter().any(|s| pb::fields(s).and_then(|s| pb::int_of(&s, 1)) == Some(a.user_id as u64))
    };
    gb.expect_where(200_200, seen_a).await;

    // World chat reaches both; a bad chat gets no ErrorResp (go-game has none), and the
    // connection stays usable.
    let chat = |kind: i64| {
        let mut m = Vec::new();
        pb::int(&mut m, 3, kind);
        pb::int(&mut m, 4, 1);
        pb::bytes(&mut m, 5, b"hello from go-game");
        m
    };
    ga.send(100_002, &chat(9)).await;
    ga.send(100_002, &chat(1)).await;
    ga.expect(200_002).await;
    gb.expect(200_002).await;

    // Rooms: create (status 200, msg the id), list, enter, quit.
    let mut create = Vec::new();
    pb::bytes(&mut create, 1, b"go room");
    pb::int(&mut create, 2, 1);
    ga.send(100_003, &create).await;
    let created = pb::fields(&ga.expect(200_003).await).expect("CreateRoomResp");
    assert_eq!(pb::int_of(&created, 1), Some(200));
    let room: i64 = pb::all_bytes(&created, 2)
        .first()
        .and_then(|m| std::str::from_utf8(m).ok()?.parse().ok())
        .expect("the room id in msg");
    ga.expect(200_001).await;
    gb.send(100_004, &[]).await;
    gb.expect(200_004).await;
    let mut enter = Vec::new();
    pb::int(&mut enter, 1, room);
    gb.send(100_001, &enter).await;
    gb.expect(200_001).await;
    let mut quit = Vec::new();
    pb::int(&mut quit, 1, room);
    gb.send(100_005, &quit).await;
    gb.expect(200_005).await;

    // Friends list; then b leaves and comes back: no online push reaches a.
    let mut mine = Vec::new();
    pb::int(&mut mine, 1, 1);
    ga.send(100_101, &mine).await;
    ga.expect(200_101).await;
    gb.send(100_900, &[]).await;
    gb.expect(200_900).await;
    let mut gb2 = GoGame::connect(srv.gate_port).await;
    gb2.send(100_000, &login(b.user_id, &b.token)).await;
    gb2.expect(200_000).await;
    ga.drain(Duration::from_secs(1)).await;
    gb2.drain(Duration::from_millis(300)).await;

    let mut counts: HashMap<u32, usize> = HashMap::new();
    for (id, _) in &ga.seen {
        *counts.entry(*id).or_default() += 1;
    }
    assert!(counts.get(&200_200).is_some_and(|n| *n > 0), "a saw positions: {counts:?}");
    ga.check("a");
    gb.check("b");
    gb2.check("b again");
}
