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

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{self, Account, Client};
use crate::stats::{percentile, proc_stats};
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
}

#[derive(Default)]
struct Shared {
    connected: AtomicU64,
    messages: AtomicU64,
    errors: AtomicU64,
    moves: AtomicU64,
    rtts_us: Mutex<Vec<u32>>,
    measuring: AtomicBool,
    measured_rtts_us: Mutex<Vec<u32>>,
    error_samples: Mutex<HashMap<String, u64>>,
}

impl Shared {
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
async fn play(args: Arc<Args>, shared: Arc<Shared>, i: usize, acc: Account, end: Instant) {
    let mut c = match connect(&args, i, &acc).await {
        Ok(c) => c,
        Err(e) => return shared.error(format!("connect: {e}")),
    };
    let info = match c.login(acc.user_id, &acc.token).await {
        Ok(i) => i,
        Err(e) => return shared.error(format!("login: {e}")),
    };
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
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut heading = rng.next() * std::f32::consts::TAU;
    let moving = args.scenario != Scenario::Idle && args.move_hz > 0.0;
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
            got = c.next(Duration::from_secs(3600)) => {
                let Some((id, body)) = got else {
                    shared.error("connection closed by the server".into());
                    break;
                };
                shared.messages.fetch_add(1, Ordering::Relaxed);
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
                    id if id == ids::reply(ids::MOVE) => {
                        if let Ok(m) = c.decode::<pb::MoveResp>(&body) {
                            for s in m.site_list {
                                if s.user_id == acc.user_id && s.action == "correct" {
                                    if let Some(p) = s.site { at = (p.x, p.z); }
                                } else if args.scenario == Scenario::Fight && let (Some(p), Some(e)) = (s.site, monsters.get_mut(&s.user_id)) {
                                    *e = (p.x, p.z);
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
    shared.connected.fetch_sub(1, Ordering::Relaxed);
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

async fn accounts(args: &Args, shared: &Shared) -> Vec<Account> {
    if let Some(secret) = &args.mint_secret {
        let jwt = rsgame_kit::auth::Jwt::new(secret.as_bytes(), Duration::from_secs(86_400), Duration::from_secs(3600));
        return (0..args.bots as i64)
            .filter_map(|i| {
                let user_id = args.first_user + i;
                jwt.issue(user_id).ok().map(|(t, _)| Account { user_id, token: t.access_token, servers: Vec::new() })
            })
            .collect();
    }
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let list: Vec<Option<Account>> = futures_util::stream::iter(0..args.bots)
        .map(|i| {
            let name = format!("{}{i}", args.prefix);
            let done = &done;
            async move {
                let r = client::account(&args.http, &name, &args.password).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 200 == 0 {
                    eprintln!("[accounts] {n}/{} in {:.1} s", args.bots, started.elapsed().as_secs_f64());
                }
                match r {
                    Ok(a) => Some(a),
                    Err(e) => {
                        shared.error(format!("account: {e}"));
                        None
                    }
                }
            }
        })
        .buffered(args.account_concurrency.max(1))
        .collect()
        .await;
    list.into_iter().flatten().collect()
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

/// Runs the bots to the end; returns the report (also written with `--report`).
pub async fn run(args: Args) -> serde_json::Value {
    let args = Arc::new(args);
    let shared = Arc::new(Shared::default());
    let accs = accounts(&args, &shared).await;
    eprintln!("[accounts] {} ready", accs.len());
    // Every bot plays until the same end: connecting, 3 s warm-up, then the measured time.
    let connect_secs = accs.len() as f64 / f64::from(args.connect_rate.max(1));
    let measure_from = Instant::now() + Duration::from_secs_f64(connect_secs + 3.0);
    let end = measure_from + Duration::from_secs(args.duration);
    let mut tasks = Vec::with_capacity(accs.len());
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.connect_rate.max(1)));
    let progress = {
        let shared = shared.clone();
        let total = accs.len();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut last = shared.messages.load(Ordering::Relaxed);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = shared.messages.load(Ordering::Relaxed);
                let mut rtts = shared.rtts_us.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
                rtts.sort_unstable();
                eprintln!(
                    "[{:>4.0}s] connected {}/{} | msgs/s {} | rtt p50 {:.2} ms p99 {:.2} ms | errors {}",
                    t0.elapsed().as_secs_f64(),
                    shared.connected.load(Ordering::Relaxed),
                    total,
                    now - last,
                    f64::from(percentile(&rtts, 0.5)) / 1000.0,
                    f64::from(percentile(&rtts, 0.99)) / 1000.0,
                    shared.errors.load(Ordering::Relaxed),
                );
                last = now;
            }
        })
    };
    for (i, acc) in accs.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(play(args.clone(), shared.clone(), i, acc, end)));
        tokio::time::sleep(gap).await;
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(measure_from)).await;
    let metrics_before = if args.metrics { client::get(&args.http, "/metrics").await.ok() } else { None };
    let cpu_before = args.server_pid.and_then(proc_stats);
    let (msgs0, moves0) = (shared.messages.load(Ordering::Relaxed), shared.moves.load(Ordering::Relaxed));
    let connected = shared.connected.load(Ordering::Relaxed);
    shared.measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep_until(tokio::time::Instant::from_std(end - Duration::from_millis(200))).await;
    let secs = t0.elapsed().as_secs_f64();
    let (msgs1, moves1) = (shared.messages.load(Ordering::Relaxed), shared.moves.load(Ordering::Relaxed));
    let cpu_after = args.server_pid.and_then(proc_stats);
    let metrics_after = if args.metrics { client::get(&args.http, "/metrics").await.ok() } else { None };
    for t in tasks {
        let _ = t.await;
    }
    progress.abort();
    let mut rtts = shared.measured_rtts_us.lock().map(|v| v.clone()).unwrap_or_default();
    rtts.sort_unstable();
    let ms = |v: Option<f64>| v.map(|s| (s * 1e5).round() / 100.0);
    let updates = match (&metrics_before, &metrics_after) {
        (Some(a), Some(b)) => metric_sum(b, "world_entity_updates_total")
            .zip(metric_sum(a, "world_entity_updates_total").or(Some(0.0)))
            .map(|(b, a)| ((b - a) / secs).round()),
        _ => None,
    };
    let m = metrics_after.as_deref().unwrap_or("");
    let report = serde_json::json!({
        "transport": format!("{:?}", args.transport).to_lowercase(),
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "bots": args.bots,
        "connected": connected,
        "duration_s": (secs * 10.0).round() / 10.0,
        "messages_per_s": ((msgs1 - msgs0) as f64 / secs).round(),
        "moves_per_s": ((moves1 - moves0) as f64 / secs).round(),
        "rtt_p50_ms": f64::from(percentile(&rtts, 0.5)) / 1000.0,
        "rtt_p99_ms": f64::from(percentile(&rtts, 0.99)) / 1000.0,
        "errors": shared.errors.load(Ordering::Relaxed),
        "tick_p50_ms": ms(metric_max(m, "world_tick_p50_seconds")),
        "tick_p99_ms": ms(metric_max(m, "world_tick_p99_seconds")),
        "tick_max_ms": ms(metric_max(m, "world_tick_max_seconds")),
        "entity_updates_per_s": updates,
        "server_cpu_cores": cpu_before.zip(cpu_after).map(|(a, b)| ((b.0 - a.0) / secs * 100.0).round() / 100.0),
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
