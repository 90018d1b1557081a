//! The bots behind `rsgame bot` and `rsgame-bot`: N simulated players. Each gets an account over REST (register, or log in
//! when it exists), connects over TCP, WebSocket (protobuf or JSON) or KCP, logs in to the
//! world, and plays a scenario until the time is up:
//!
//! - `walk`: wanders at `--move-hz` moves per second at a legal speed;
//! - `fight`: walks, and attacks the nearest monster in view once a second;
//! - `chat`: walks, and says something in world chat every five seconds;
//! - `idle`: logged in, a ping every ten seconds.
//!
//! Every bot pings once a second (`idle`: every ten) to measure round trips. The terminal gets
//! a progress line per second (connected, messages/s, p50/p99 round trip, errors); the end
//! prints a JSON report and, with `--report PATH`, writes PATH.json and PATH.md. With
//! `--metrics` it reads the server's scene tick times and entity updates from `/metrics`;
//! with `--server-pid`, the server's CPU and memory.
//!
//! For very large runs `--mint-secret` makes tokens locally for existing account ids from
//! `--first-user` on (the server's `auth.jwt_secret`), skipping REST. Traffic goes only to the
//! addresses given; the run ends by itself.
//!
//! What the report holds besides the round trips:
//!
//! - **move → seen**: from a bot writing a Move to another bot reading a MoveResp that holds
//!   exactly that position for it (`seen_p50_ms`, `seen_p99_ms`, `seen_max_ms`,
//!   `seen_samples`). Every bot keeps the last 32 positions it sent with their send times;
//!   `--observers K` bots decode the MoveResps they get and look every other bot's entry up
//!   there (the first sighting of a position only). By default every bot observes up to 1000
//!   bots, and 200 spread evenly beyond: decoding every MoveResp of a crowd would take the
//!   bots' own core. The others count a MoveResp's bytes without decoding it (and so skip the
//!   server's corrections of their own position: the speed budget brings them back).
//! - **bytes in**: every message the bots read, header included (`bytes_in_per_s`).
//! - **logins**: connect started → UserInfo (`login_p50_ms`…), bots of the first wave not in
//!   when the measured window began (`not_in_at_start`), and logins given up after 10 s
//!   without a connection or a UserInfo (`login_timeouts`, counted as errors too); bots whose
//!   connection ended before the run did (`dropped`).
//! - **login storm**: with `--storm N --storm-rate R`, once the first `--bots` are in and the
//!   measured window has begun, N more bots (the accounts after theirs) log in at R a second
//!   and then play like the others. The `login_*` figures are then the storm's, the first
//!   wave's are `first_login_*`; the run lasts until 3 s after the storm's last login at
//!   least, however short `--duration` is.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{self, Account, Client, ClientError};
use crate::stats::{Histogram, percentile, proc_stats};
use clap::ValueEnum;
use futures_util::StreamExt as _;
use rsgame_proto::{ids, pb};

/// How bots connect.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Transport {
    /// Zinx frames, protobuf, TCP.
    Tcp,
    /// Zinx frames, protobuf, binary WebSocket messages.
    Ws,
    /// JSON text WebSocket messages.
    WsJson,
    /// Zinx frames, protobuf, KCP.
    Kcp,
}

/// What bots do.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Scenario {
    /// Wander at `--move-hz`.
    Walk,
    /// Wander and attack the nearest monster in view once a second.
    Fight,
    /// Wander and talk in world chat every five seconds.
    Chat,
    /// Stay logged in, a ping every ten seconds.
    Idle,
}

/// The bots' settings (the flags of `rsgame bot` and `rsgame-bot`).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The HTTP address (REST, /ws, /metrics).
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub http: String,
    /// The gate's TCP or KCP address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub gate: String,
    /// How bots connect.
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: Transport,
    /// How many bots.
    #[arg(long, default_value_t = 10)]
    pub bots: usize,
    /// Seconds to play once every bot is in (after a 3 s warm-up).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// What bots do.
    #[arg(long, value_enum, default_value = "walk")]
    pub scenario: Scenario,
    /// Moves per second per bot.
    #[arg(long, default_value_t = 10.0)]
    pub move_hz: f64,
    /// Walking speed, units per second (the server allows `world.max_speed`).
    #[arg(long, default_value_t = 30.0)]
    pub speed: f32,
    /// The walkable area: min_x,min_z,max_x,max_z (go-game's scenes by default).
    #[arg(long, default_value = "85,75,410,400")]
    pub area: String,
    /// The scene to play in (entered after login when not where the bot starts).
    #[arg(long)]
    pub scene: Option<i64>,
    /// Account names are PREFIX0, PREFIX1…
    #[arg(long, default_value = "bot")]
    pub prefix: String,
    /// The accounts' password.
    #[arg(long, default_value = "bot-password-1")]
    pub password: String,
    /// Accounts created or logged in at once over REST.
    #[arg(long, default_value_t = 8)]
    pub account_concurrency: usize,
    /// Logins per second while connecting.
    #[arg(long, default_value_t = 500)]
    pub connect_rate: u32,
    /// TCP source addresses 127.0.0.1 … 127.0.0.N (past one address's ephemeral ports).
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
    /// Mint tokens with this signing key instead of REST (accounts must exist).
    #[arg(long)]
    pub mint_secret: Option<String>,
    /// With `--mint-secret`: the first account id; bots use this and the ones after it.
    #[arg(long, default_value_t = 1)]
    pub first_user: i64,
    /// Read scene tick times and entity updates from http://HTTP/metrics.
    #[arg(long)]
    pub metrics: bool,
    /// The server's pid, for its CPU time and memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write PATH.json and PATH.md.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Bots that decode the crowd's positions to time move → seen, spread evenly over the
    /// first wave (default: every bot up to 1000 bots, else 200); the others only count them.
    #[arg(long)]
    pub observers: Option<usize>,
    /// A login storm: once the first `--bots` are in and the measured window has begun, this
    /// many more bots (the accounts after theirs) log in at `--storm-rate` a second, then play.
    #[arg(long, default_value_t = 0)]
    pub storm: usize,
    /// The storm's logins per second.
    #[arg(long, default_value_t = 1000)]
    pub storm_rate: u32,
    /// The storm's bots stand where they arrive (reading what they see) instead of walking:
    /// the storm then measures the login path, not a world that grows by `--storm` movers.
    #[arg(long)]
    pub storm_still: bool,
}

/// How many positions each bot remembers sending: 3.2 s of moves at 10 Hz, so a position
/// seen later than that is not matched (counted in `seen_unmatched`).
const SENT_KEPT: usize = 32;

/// The last positions one bot sent, as x and z bits, with their send times.
struct Sent {
    /// `x bits << 32 | z bits`; `u64::MAX` (two NaNs, never sent) while empty.
    keys: [u64; SENT_KEPT],
    /// Microseconds since [`Shared::clock`].
    at_us: [u64; SENT_KEPT],
    next: usize,
}

impl Default for Sent {
    fn default() -> Self {
        Sent { keys: [u64::MAX; SENT_KEPT], at_us: [0; SENT_KEPT], next: 0 }
    }
}

impl Sent {
    fn push(&mut self, key: u64, at_us: u64) {
        self.keys[self.next] = key;
        self.at_us[self.next] = at_us;
        self.next = (self.next + 1) % SENT_KEPT;
    }

    /// When `key` was last sent no later than `now_us` (a bot standing against the edge may
    /// send one position twice: the sighting belongs to the send before it).
    fn find(&self, key: u64, now_us: u64) -> Option<u64> {
        (1..=SENT_KEPT)
            .map(|back| (self.next + SENT_KEPT - back) % SENT_KEPT)
            .find(|&j| self.keys[j] == key && self.at_us[j] <= now_us)
            .map(|j| self.at_us[j])
    }
}

fn pos_key(x: f32, z: f32) -> u64 {
    (u64::from(x.to_bits()) << 32) | u64::from(z.to_bits())
}

/// What part a bot plays in the run.
#[derive(Clone, Copy)]
struct Role {
    /// Decodes MoveResps and times move → seen.
    observer: bool,
    /// Logs in during the storm.
    storm: bool,
}

struct Shared {
    connected: AtomicU64,
    /// Bots of the first wave in now.
    first_in: AtomicU64,
    messages: AtomicU64,
    bytes_in: AtomicU64,
    errors: AtomicU64,
    moves: AtomicU64,
    rtts_us: Mutex<Vec<u32>>,
    measuring: AtomicBool,
    measured_rtts_us: Mutex<Vec<u32>>,
    error_samples: Mutex<HashMap<String, u64>>,
    /// Connect started → UserInfo, µs: the first wave's and the storm's.
    first_logins_us: Mutex<Vec<u32>>,
    storm_logins_us: Mutex<Vec<u32>>,
    login_timeouts: AtomicU64,
    /// Bots whose connection ended before the run did.
    dropped: AtomicU64,
    /// The time base of the send times and sightings.
    clock: Instant,
    /// Bot index by user id, fixed before any bot starts.
    index: HashMap<i64, usize>,
    /// The positions each bot sent lately, by bot index; empty when nobody observes.
    sent: Vec<Mutex<Sent>>,
    seen: Histogram,
    /// Entries of our bots whose position is not among the ones remembered (a correction by
    /// the server, or seen more than [`SENT_KEPT`] moves late).
    seen_unmatched: AtomicU64,
}

impl Shared {
    fn new(accs: &[Account], observing: bool) -> Shared {
        Shared {
            connected: AtomicU64::new(0),
            first_in: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            moves: AtomicU64::new(0),
            rtts_us: Mutex::default(),
            measuring: AtomicBool::new(false),
            measured_rtts_us: Mutex::default(),
            error_samples: Mutex::default(),
            first_logins_us: Mutex::default(),
            storm_logins_us: Mutex::default(),
            login_timeouts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            clock: Instant::now(),
            index: accs.iter().enumerate().map(|(i, a)| (a.user_id, i)).collect(),
            sent: if observing { accs.iter().map(|_| Mutex::default()).collect() } else { Vec::new() },
            seen: Histogram::default(),
            seen_unmatched: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// Bot `i` is about to write a Move to (x, z).
    fn sending(&self, i: usize, x: f32, z: f32) {
        if let Some(Ok(mut s)) = self.sent.get(i).map(|s| s.lock()) {
            s.push(pos_key(x, z), self.now_us());
        }
    }

    /// An observer read bot `user_id` at (x, z) at `now_us`: one move → seen sample when
    /// that bot sent it, the first time this observer sees it there (`last` holds what it saw
    /// of each bot last).
    fn sighted(&self, last: &mut HashMap<i64, u64>, user_id: i64, x: f32, z: f32, now_us: u64) {
        let Some(&i) = self.index.get(&user_id) else { return }; // a monster, or not our bot
        let key = pos_key(x, z);
        if last.insert(user_id, key) == Some(key) {
            return;
        }
        let sent = self.sent.get(i).and_then(|s| s.lock().ok()).and_then(|s| s.find(key, now_us));
        match sent {
            Some(at) => self.seen.record(now_us - at),
            None => {
                self.seen_unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.error_samples.lock() {
            if m.len() < 20 || m.contains_key(&what) {
                *m.entry(what).or_default() += 1;
            }
        }
    }
}

fn area(s: &str) -> (f32, f32, f32, f32) {
    let v: Vec<f32> = s.split(',').filter_map(|p| p.trim().parse().ok()).collect();
    match v[..] {
        [a, b, c, d] if c > a && d > b => (a, b, c, d),
        _ => (85.0, 75.0, 410.0, 400.0),
    }
}

/// A tiny xorshift so every bot wanders its own way, reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

async fn connect(args: &Args, i: usize, acc: &Account) -> Result<Client, client::ClientError> {
    match args.transport {
        Transport::Tcp => {
            let n = args.sources.max(1);
            let src: Option<IpAddr> = (n > 1).then(|| IpAddr::from([127, 0, 0, 1 + (i % n as usize) as u8]));
            Client::tcp_from(&args.gate, src).await
        }
        Transport::Kcp => Client::kcp(&args.gate).await,
        Transport::Ws | Transport::WsJson => Client::ws(&ws_url(args, acc), args.transport == Transport::WsJson).await,
    }
}

/// Where a WebSocket bot connects: the first server the token reply named (in a cluster, the
/// node the player is on or the least loaded one), a path in it taken on the HTTP address;
/// the HTTP address's `/ws` when the reply named none this client can open (`wss://`).
fn ws_url(args: &Args, acc: &Account) -> String {
    match acc.servers.first() {
        Some(s) if s.starts_with("ws://") => s.clone(),
        Some(path) if path.starts_with('/') => format!("ws://{}{path}", args.http),
        _ => format!("ws://{}/ws", args.http),
    }
}

/// One bot's life.
async fn play(args: Arc<Args>, shared: Arc<Shared>, i: usize, acc: Account, end: Instant, role: Role) {
    let started = Instant::now();
    // A connect the server's backlog leaves hanging would outlive the run: it gets as long
    // as the login.
    let mut c = match tokio::time::timeout(client::LOGIN_WAIT, connect(&args, i, &acc)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return shared.error(format!("connect: {e}")),
        Err(_) => {
            shared.login_timeouts.fetch_add(1, Ordering::Relaxed);
            return shared.error("connect: timed out".into());
        }
    };
    let info = match c.login(acc.user_id, &acc.token).await {
        Ok(i) => i,
        Err(e) => {
            if matches!(e, ClientError::Timeout(_)) {
                shared.login_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            return shared.error(format!("login: {e}"));
        }
    };
    let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    if let Ok(mut v) = if role.storm { &shared.storm_logins_us } else { &shared.first_logins_us }.lock() {
        v.push(took);
    }
    let (min_x, min_z, max_x, max_z) = area(&args.area);
    let mut at = info.position.map(|p| (p.x, p.z)).unwrap_or(((min_x + max_x) / 2.0, (min_z + max_z) / 2.0));
    if let Some(scene) = args.scene.filter(|s| *s != info.room_id) {
        if let Err(e) = c.send(ids::ENTER_ROOM, &pb::EnterRoom { room_id: scene, ..Default::default() }).await {
            return shared.error(format!("enter: {e}"));
        }
        match c.wait::<pb::EnterRoomResp>(ids::reply(ids::ENTER_ROOM), Duration::from_secs(30)).await {
            Ok(_) => {}
            Err(e) => return shared.error(format!("enter: {e}")),
        }
        // Where the scene put us comes as our own UserSite.
        if let Ok(m) = c
            .wait_where::<pb::MoveResp>(ids::reply(ids::MOVE), Duration::from_secs(10), |m| {
                m.site_list.iter().any(|s| s.user_id == acc.user_id)
            })
            .await
            && let Some(s) = m.site_list.iter().find(|s| s.user_id == acc.user_id).and_then(|s| s.site)
        {
            at = (s.x, s.z);
        }
    }
    shared.connected.fetch_add(1, Ordering::Relaxed);
    if !role.storm {
        shared.first_in.fetch_add(1, Ordering::Relaxed);
    }
    // Fighters track the monsters' positions: they decode MoveResps whether they observe or not.
    let decode_moves = role.observer || args.scenario == Scenario::Fight;
    let mut last_seen: HashMap<i64, u64> = HashMap::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut heading = rng.next() * std::f32::consts::TAU;
    let moving = args.scenario != Scenario::Idle && args.move_hz > 0.0 && !(role.storm && args.storm_still);
    let step = args.speed / args.move_hz.max(0.1) as f32;
    let start = tokio::time::Instant::now() + Duration::from_millis((rng.next() * 1000.0) as u64);
    let mut move_tick = tokio::time::interval_at(start, Duration::from_secs_f64(1.0 / args.move_hz.max(0.1)));
    let ping_every = if args.scenario == Scenario::Idle { 10 } else { 1 };
    let mut ping_tick = tokio::time::interval_at(start, Duration::from_secs(ping_every));
    let mut act_tick =
        tokio::time::interval_at(start, Duration::from_secs(if args.scenario == Scenario::Chat { 5 } else { 1 }));
    let clock = Instant::now();
    let mut monsters: HashMap<i64, (f32, f32)> = HashMap::new();
    let end = tokio::time::Instant::from_std(end);
    let mut said = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = move_tick.tick(), if moving => {
                heading += (rng.next() - 0.5) * 0.6;
                let (mut x, mut z) = (at.0 + heading.cos() * step, at.1 + heading.sin() * step);
                if x < min_x + 1.0 || x > max_x - 1.0 || z < min_z + 1.0 || z > max_z - 1.0 {
                    heading += std::f32::consts::PI;
                    (x, z) = (x.clamp(min_x + 1.0, max_x - 1.0), z.clamp(min_z + 1.0, max_z - 1.0));
                }
                at = (x, z);
                let m = pb::Move { user_id: acc.user_id, site: Some(pb::Site { x, y: 0.0, z, v: heading.to_degrees() }) };
                // Stamped before the write: the latency includes handing the frame to the socket.
                shared.sending(i, x, z);
                if let Err(e) = c.send(ids::MOVE, &m).await {
                    shared.error(format!("send: {e}"));
                    break;
                }
                shared.moves.fetch_add(1, Ordering::Relaxed);
            }
            _ = ping_tick.tick() => {
                let sn = clock.elapsed().as_micros() as i64;
                if let Err(e) = c.send(ids::PING, &pb::Ping { sn }).await {
                    shared.error(format!("send: {e}"));
                    break;
                }
            }
            _ = act_tick.tick(), if matches!(args.scenario, Scenario::Fight | Scenario::Chat) => {
                let r = if args.scenario == Scenario::Chat {
                    said += 1;
                    let m = pb::ChatMsg { chat_type: 1, msg_type: 1, msg: format!("bot {i} says {said}"), ..Default::default() };
                    c.send(ids::CHAT_MSG, &m).await
                } else if let Some((&id, _)) = monsters.iter().min_by(|a, b| {
                    let d = |p: &(f32, f32)| (p.0 - at.0).powi(2) + (p.1 - at.1).powi(2);
                    d(a.1).total_cmp(&d(b.1))
                }) {
                    c.send(ids::ATTACK, &pb::Attack { user_id: acc.user_id, obj_id: id, param: String::new() }).await
                } else {
                    Ok(())
                };
                if let Err(e) = r {
                    shared.error(format!("send: {e}"));
                    break;
                }
            }
            got = c.next_sized(Duration::from_secs(3600)) => {
                let Some((id, body, size)) = got else {
                    shared.error("connection closed by the server".into());
                    break;
                };
                shared.messages.fetch_add(1, Ordering::Relaxed);
                shared.bytes_in.fetch_add(size as u64, Ordering::Relaxed);
                match id {
                    ids::PING_RESP => {
                        if let Ok(p) = c.decode::<pb::PingResp>(&body) {
                            let rtt = (clock.elapsed().as_micros() as i64 - p.sn).max(0) as u32;
                            if shared.measuring.load(Ordering::Relaxed) && let Ok(mut v) = shared.measured_rtts_us.lock() {
                                v.push(rtt);
                            }
                            if let Ok(mut v) = shared.rtts_us.lock() { v.push(rtt); }
                        }
                    }
                    ids::ERROR => {
                        let e: pb::ErrorResp = c.decode(&body).unwrap_or_default();
                        shared.error(format!("{} for {}: {}", e.code, e.req_id, e.msg));
                    }
                    id if id == ids::reply(ids::MOVE) && decode_moves => {
                        let now_us = shared.now_us();
                        let timing = role.observer && shared.measuring.load(Ordering::Relaxed);
                        if let Ok(m) = c.decode::<pb::MoveResp>(&body) {
                            for s in m.site_list {
                                if s.user_id == acc.user_id {
                                    if s.action == "correct" && let Some(p) = s.site { at = (p.x, p.z); }
                                } else if let Some(p) = s.site {
                                    if timing {
                                        shared.sighted(&mut last_seen, s.user_id, p.x, p.z, now_us);
                                    }
                                    if args.scenario == Scenario::Fight && let Some(e) = monsters.get_mut(&s.user_id) {
                                        *e = (p.x, p.z);
                                    }
                                }
                            }
                        }
                    }
                    ids::SPAWN if args.scenario == Scenario::Fight => {
                        if let Ok(s) = c.decode::<pb::SpawnResp>(&body) {
                            for e in s.list.into_iter().filter(|e| e.kind == 2) {
                                let p = e.site.unwrap_or_default();
                                monsters.insert(e.id, (p.x, p.z));
                            }
                        }
                    }
                    ids::DESPAWN if args.scenario == Scenario::Fight => {
                        if let Ok(d) = c.decode::<pb::DespawnResp>(&body) {
                            for id in d.ids { monsters.remove(&id); }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // The loop ends early only when the connection failed.
    if tokio::time::Instant::now() < end {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
    shared.connected.fetch_sub(1, Ordering::Relaxed);
    if !role.storm {
        shared.first_in.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The value of a metric line `name{labels} value`, summed over every label set.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = l.rsplit_once(' ') else { continue };
        let base = key.split('{').next().unwrap_or(key);
        if base == name
            && let Ok(v) = value.parse::<f64>()
        {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// The largest value of a gauge over its label sets (the busiest scene).
fn metric_max(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.split('{').next() == Some(name))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .reduce(f64::max)
}

/// The accounts of bots `range` (account `first_user + i`, or `PREFIX{i}` over REST), and
/// the errors of those that could not be had (the bots' shared state is made from the
/// accounts, so it does not exist yet to count them).
async fn accounts(args: &Args, range: std::ops::Range<usize>) -> (Vec<Account>, Vec<String>) {
    if let Some(secret) = &args.mint_secret {
        let jwt = rsgame_kit::auth::Jwt::new(secret.as_bytes(), Duration::from_secs(86_400), Duration::from_secs(3600));
        let mut errors = Vec::new();
        let list = range
            .filter_map(|i| {
                let user_id = args.first_user + i as i64;
                match jwt.issue(user_id) {
                    Ok((t, _)) => Some(Account { user_id, token: t.access_token, servers: Vec::new() }),
                    Err(e) => {
                        errors.push(format!("token: {e}"));
                        None
                    }
                }
            })
            .collect();
        return (list, errors);
    }
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let total = range.len();
    let list: Vec<Result<Account, String>> = futures_util::stream::iter(range)
        .map(|i| {
            let name = format!("{}{i}", args.prefix);
            let done = &done;
            async move {
                let r = client::account(&args.http, &name, &args.password).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 200 == 0 {
                    eprintln!("[accounts] {n}/{total} in {:.1} s", started.elapsed().as_secs_f64());
                }
                r.map_err(|e| format!("account: {e}"))
            }
        })
        .buffered(args.account_concurrency.max(1))
        .collect()
        .await;
    let (mut accs, mut errors) = (Vec::new(), Vec::new());
    for r in list {
        match r {
            Ok(a) => accs.push(a),
            Err(e) => errors.push(e),
        }
    }
    (accs, errors)
}

fn markdown(r: &serde_json::Value) -> String {
    let f = |k: &str| match &r[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".to_string(),
        v => v.to_string(),
    };
    let mut md = String::from("# rsgame-bot report\n\n| figure | value |\n|---|---|\n");
    for k in [
        "transport",
        "scenario",
        "bots",
        "connected",
        "duration_s",
        "messages_per_s",
        "moves_per_s",
        "rtt_p50_ms",
        "rtt_p99_ms",
        "observers",
        "seen_p50_ms",
        "seen_p99_ms",
        "seen_max_ms",
        "seen_samples",
        "seen_unmatched",
        "bytes_in_per_s",
        "not_in_at_start",
        "in_at_end",
        "dropped",
        "login_p50_ms",
        "login_p99_ms",
        "login_max_ms",
        "login_timeouts",
        "first_login_p50_ms",
        "first_login_p99_ms",
        "storm",
        "storm_rate",
        "storm_in",
        "errors",
        "tick_p50_ms",
        "tick_p99_ms",
        "tick_max_ms",
        "entity_updates_per_s",
        "server_cpu_cores",
        "server_rss_mib",
    ] {
        md.push_str(&format!("| {k} | {} |\n", f(k)));
    }
    if let Some(e) = r["error_samples"].as_object().filter(|e| !e.is_empty()) {
        md.push_str("\nErrors seen:\n\n");
        for (k, v) in e {
            md.push_str(&format!("- {k}: {v}\n"));
        }
    }
    md
}

/// Sorted µs samples' p50, p99 and max in ms; None without samples.
fn login_figures(v: &Mutex<Vec<u32>>) -> (Option<f64>, Option<f64>, Option<f64>, usize) {
    let mut v = v.lock().map(|v| v.clone()).unwrap_or_default();
    v.sort_unstable();
    let ms = |us: u32| Some((f64::from(us) / 10.0).round() / 100.0);
    match v.last() {
        None => (None, None, None, 0),
        Some(&max) => (ms(percentile(&v, 0.5)), ms(percentile(&v, 0.99)), ms(max), v.len()),
    }
}

/// Waits for a bot's task until `give_up`, then stops it: a bot stuck in a write the server
/// does not read must not keep the run alive.
async fn finish(mut t: tokio::task::JoinHandle<()>, give_up: tokio::time::Instant) {
    if tokio::time::timeout_at(give_up, &mut t).await.is_err() {
        t.abort();
    }
}

/// Runs the bots to the end; returns the report (also written with `--report`).
pub async fn run(args: Args) -> serde_json::Value {
    let args = Arc::new(args);
    let (mut accs, mut account_errors) = accounts(&args, 0..args.bots).await;
    let first_n = accs.len();
    if args.storm > 0 {
        let (storm, errors) = accounts(&args, args.bots..args.bots + args.storm).await;
        accs.extend(storm);
        account_errors.extend(errors);
    }
    eprintln!("[accounts] {} ready", accs.len());
    // Observers: every bot of a small run; beyond, a sample spread evenly over the first wave.
    let observers = args.observers.unwrap_or(if args.bots <= 1000 { first_n } else { 200 }).min(first_n);
    let observer = |i: usize| observers > 0 && (i + 1) * observers / first_n > i * observers / first_n;
    let shared = Arc::new(Shared::new(&accs, observers > 0));
    for e in account_errors {
        shared.error(e);
    }
    // Every bot plays until the same end: connecting, 3 s warm-up, then the measured time;
    // a storm from the window's start, and 3 s after its last login at least.
    let rate = f64::from(args.connect_rate.max(1));
    let storm_rate = f64::from(args.storm_rate.max(1));
    let storm = accs.split_off(first_n);
    let t_start = Instant::now();
    let measure_from = t_start + Duration::from_secs_f64(first_n as f64 / rate + 3.0);
    let mut end = measure_from + Duration::from_secs(args.duration);
    if !storm.is_empty() {
        end = end.max(measure_from + Duration::from_secs_f64(storm.len() as f64 / storm_rate + 3.0));
    }
    let total = first_n + storm.len();
    let progress = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let (mut last, mut last_bytes) =
                (shared.messages.load(Ordering::Relaxed), shared.bytes_in.load(Ordering::Relaxed));
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (now, bytes) = (shared.messages.load(Ordering::Relaxed), shared.bytes_in.load(Ordering::Relaxed));
                let mut rtts = shared.rtts_us.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
                rtts.sort_unstable();
                eprintln!(
                    "[{:>4.0}s] connected {}/{} | msgs/s {} | in {:.1} MiB/s | rtt p50 {:.2} ms p99 {:.2} ms | seen p99 {:.1} ms ({}) | errors {}",
                    t0.elapsed().as_secs_f64(),
                    shared.connected.load(Ordering::Relaxed),
                    total,
                    now - last,
                    (bytes - last_bytes) as f64 / (1024.0 * 1024.0),
                    f64::from(percentile(&rtts, 0.5)) / 1000.0,
                    f64::from(percentile(&rtts, 0.99)) / 1000.0,
                    shared.seen.percentile_us(0.99) as f64 / 1000.0,
                    shared.seen.count(),
                    shared.errors.load(Ordering::Relaxed),
                );
                (last, last_bytes) = (now, bytes);
            }
        })
    };
    // Logins at their rate from fixed instants, so a slow spawn does not stretch the wave.
    let mut tasks = Vec::with_capacity(total);
    for (i, acc) in accs.into_iter().enumerate() {
        let at = t_start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let role = Role { observer: observer(i), storm: false };
        tasks.push(tokio::spawn(play(args.clone(), shared.clone(), i, acc, end, role)));
    }
    // The storm starts with the measured window, on its own task: the window's first
    // readings below must not delay it.
    let storm_n = storm.len();
    let storm_task = {
        let (args, shared) = (args.clone(), shared.clone());
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(storm.len());
            for (k, acc) in storm.into_iter().enumerate() {
                let at = measure_from + Duration::from_secs_f64(k as f64 / storm_rate);
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                let role = Role { observer: false, storm: true };
                tasks.push(tokio::spawn(play(args.clone(), shared.clone(), first_n + k, acc, end, role)));
            }
            tasks
        })
    };
    tokio::time::sleep_until(tokio::time::Instant::from_std(measure_from)).await;
    // The first wave's count first: the storm's first logins are on their way.
    let connected = shared.first_in.load(Ordering::Relaxed);
    let (msgs0, moves0, bytes0) = (
        shared.messages.load(Ordering::Relaxed),
        shared.moves.load(Ordering::Relaxed),
        shared.bytes_in.load(Ordering::Relaxed),
    );
    shared.measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let metrics_before = if args.metrics { client::get(&args.http, "/metrics").await.ok() } else { None };
    // The server's counters over their own interval: a scrape of a busy server takes a while.
    let t_metrics = Instant::now();
    let cpu_before = args.server_pid.and_then(proc_stats);
    let t_cpu = Instant::now();
    tokio::time::sleep_until(tokio::time::Instant::from_std(end - Duration::from_millis(200))).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu_secs = t_cpu.elapsed().as_secs_f64();
    let (msgs1, moves1, bytes1) = (
        shared.messages.load(Ordering::Relaxed),
        shared.moves.load(Ordering::Relaxed),
        shared.bytes_in.load(Ordering::Relaxed),
    );
    let in_at_end = shared.connected.load(Ordering::Relaxed);
    let cpu_after = args.server_pid.and_then(proc_stats);
    let metrics_secs = t_metrics.elapsed().as_secs_f64();
    let metrics_after = if args.metrics { client::get(&args.http, "/metrics").await.ok() } else { None };
    let give_up = tokio::time::Instant::from_std(end + Duration::from_secs(15));
    for t in tasks {
        finish(t, give_up).await;
    }
    for t in storm_task.await.unwrap_or_default() {
        finish(t, give_up).await;
    }
    progress.abort();
    let mut rtts = shared.measured_rtts_us.lock().map(|v| v.clone()).unwrap_or_default();
    rtts.sort_unstable();
    let ms = |v: Option<f64>| v.map(|s| (s * 1e5).round() / 100.0);
    let us_ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    let updates = match (&metrics_before, &metrics_after) {
        (Some(a), Some(b)) => metric_sum(b, "world_entity_updates_total")
            .zip(metric_sum(a, "world_entity_updates_total").or(Some(0.0)))
            .map(|(b, a)| ((b - a) / metrics_secs).round()),
        _ => None,
    };
    let m = metrics_after.as_deref().unwrap_or("");
    let first = login_figures(&shared.first_logins_us);
    let stormed = login_figures(&shared.storm_logins_us);
    let logins = if storm_n > 0 { stormed } else { first };
    let seen_n = shared.seen.count();
    let seen = |p: f64| (seen_n > 0).then(|| us_ms(shared.seen.percentile_us(p)));
    let report = serde_json::json!({
        "transport": format!("{:?}", args.transport).to_lowercase(),
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "bots": args.bots,
        "connected": connected,
        "duration_s": (secs * 10.0).round() / 10.0,
        "messages_per_s": ((msgs1 - msgs0) as f64 / secs).round(),
        "moves_per_s": ((moves1 - moves0) as f64 / secs).round(),
        "bytes_in_per_s": ((bytes1 - bytes0) as f64 / secs).round(),
        "rtt_p50_ms": f64::from(percentile(&rtts, 0.5)) / 1000.0,
        "rtt_p99_ms": f64::from(percentile(&rtts, 0.99)) / 1000.0,
        "observers": observers,
        "seen_p50_ms": seen(0.5),
        "seen_p99_ms": seen(0.99),
        "seen_max_ms": (seen_n > 0).then(|| us_ms(shared.seen.max_us())),
        "seen_samples": seen_n,
        "seen_unmatched": shared.seen_unmatched.load(Ordering::Relaxed),
        "not_in_at_start": (args.bots as u64).saturating_sub(connected),
        "in_at_end": in_at_end,
        "dropped": shared.dropped.load(Ordering::Relaxed),
        "login_p50_ms": logins.0,
        "login_p99_ms": logins.1,
        "login_max_ms": logins.2,
        "login_timeouts": shared.login_timeouts.load(Ordering::Relaxed),
        "first_login_p50_ms": first.0,
        "first_login_p99_ms": first.1,
        "first_login_max_ms": first.2,
        "storm": args.storm,
        "storm_rate": (args.storm > 0).then_some(args.storm_rate),
        "storm_still": args.storm > 0 && args.storm_still,
        "storm_in": stormed.3,
        "errors": shared.errors.load(Ordering::Relaxed),
        "tick_p50_ms": ms(metric_max(m, "world_tick_p50_seconds")),
        "tick_p99_ms": ms(metric_max(m, "world_tick_p99_seconds")),
        "tick_max_ms": ms(metric_max(m, "world_tick_max_seconds")),
        "entity_updates_per_s": updates,
        "server_cpu_cores": cpu_before.zip(cpu_after).map(|(a, b)| ((b.0 - a.0) / cpu_secs * 100.0).round() / 100.0),
        "server_rss_mib": cpu_after.map(|(_, rss)| (rss as f64 / 1024.0).round()),
        "error_samples": shared.error_samples.lock().map(|m| serde_json::json!(*m)).unwrap_or_default(),
    });
    if let Some(path) = &args.report {
        let json = path.with_extension("json");
        let md = path.with_extension("md");
        if let Err(e) =
            std::fs::write(&json, format!("{report:#}\n")).and_then(|()| std::fs::write(&md, markdown(&report)))
        {
            eprintln!("cannot write the report: {e}");
        } else {
            eprintln!("report: {} and {}", json.display(), md.display());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_positions_are_found_newest_first_and_forgotten_after_a_while() {
        let mut s = Sent::default();
        assert_eq!(s.find(pos_key(0.0, 0.0), 100), None, "nothing sent, not even at the origin");
        s.push(pos_key(1.0, 2.0), 10);
        s.push(pos_key(3.0, 4.0), 20);
        // The same position again (a bot pushed back at the edge): the later send when seen
        // after it, the earlier one when seen between the two.
        s.push(pos_key(1.0, 2.0), 30);
        assert_eq!(s.find(pos_key(1.0, 2.0), 35), Some(30));
        assert_eq!(s.find(pos_key(1.0, 2.0), 25), Some(10));
        assert_eq!(s.find(pos_key(3.0, 4.0), 35), Some(20));
        assert_eq!(s.find(pos_key(4.0, 3.0), 35), None, "x and z are not interchangeable");
        for k in 0..SENT_KEPT as u64 {
            s.push(pos_key(100.0 + k as f32, 0.0), 40 + k);
        }
        assert_eq!(s.find(pos_key(3.0, 4.0), 1000), None, "older than the ring");
        assert_eq!(s.find(pos_key(100.0, 0.0), 1000), Some(40));
    }

    #[test]
    fn the_flags_parse() {
        use clap::{CommandFactory as _, Parser as _};
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        Cli::command().debug_assert();
        let a = Cli::try_parse_from(["bot", "--bots", "5000", "--storm", "10000", "--storm-rate", "1000"])
            .map(|c| c.args)
            .expect("flags");
        assert_eq!((a.bots, a.storm, a.storm_rate, a.observers), (5000, 10000, 1000, None));
        let a = Cli::try_parse_from(["bot", "--observers", "0"]).map(|c| c.args).expect("flags");
        assert_eq!((a.storm, a.observers), (0, Some(0)));
    }

    #[test]
    fn an_observer_counts_each_position_once() {
        let accs: Vec<Account> =
            (1..=2).map(|user_id| Account { user_id, token: String::new(), servers: Vec::new() }).collect();
        let shared = Shared::new(&accs, true);
        shared.sending(1, 5.0, 6.0);
        let now = shared.now_us() + 1000;
        let mut last = HashMap::new();
        shared.sighted(&mut last, 2, 5.0, 6.0, now);
        shared.sighted(&mut last, 2, 5.0, 6.0, now + 50_000);
        shared.sighted(&mut last, 99, 5.0, 6.0, now);
        assert_eq!(shared.seen.count(), 1, "seen once; a stranger's entry is no sample");
        assert!(shared.seen.max_us() >= 1000);
        shared.sighted(&mut last, 2, 7.0, 6.0, now);
        assert_eq!(shared.seen_unmatched.load(Ordering::Relaxed), 1, "a position it never sent");
    }
}
