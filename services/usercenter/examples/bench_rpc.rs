//! gRPC benchmark (not a test), three parts:
//!
//! 1. **The hop**: `getUserInfo` called in process and through the real gRPC stack on
//!    loopback in the same process (RpcChannel: p2c, deadline, breaker, token; the server's
//!    GovernLayer and token check), and through plain tonic (no rsgame layers), in
//!    alternating rounds; prints p50/p99 of each and the hop (gRPC minus in process).
//! 2. **Another process**: the same call to `rsgame serve --role usercenter-rpc` on the
//!    other core (telemetry on, as deployed).
//! 3. **Replicas**: logins per second through RpcChannel against one and then two
//!    usercenter-rpc processes sharing one SQLite database, each pinned to its own core
//!    (a machine per replica), then unpinned.
//!
//! ```sh
//! cargo build --release -p rsgame -p rsgame-usercenter --example bench_rpc
//! taskset -c 0 ./target/release/examples/bench_rpc [CALLS] [SECS] [RSGAME_BINARY]
//! ```
//! (defaults 20000 calls, 8 s per login run, `target/release/rsgame`; without the binary
//! parts 2 and 3 are skipped). The benchmark runs on one thread; `taskset -c 0` keeps it,
//! and the in-process server of part 1, on one core. Prints one JSON line per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rsgame_basic::BasicLogic;
use rsgame_basic::config::BasicConfig;
use rsgame_kit::auth::Jwt;
use rsgame_kit::config::GovernanceConfig;
use rsgame_store::config::DatabaseConfig;
use rsgame_store::{Bus, BusOptions, Cache, Db};
use rsgame_usercenter::config::UsercenterConfig;
use rsgame_usercenter::logic::{LoginReq, RegisterReq, UserCenter};
use rsgame_usercenter::rpc::{RemoteUserCenter, UsercenterRpc};

const TOKEN: &str = "bench-service-token";

fn micros(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn calls(svc: &dyn UserCenter, id: i64, n: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        svc.user_info(id).await.expect("user_info");
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

async fn plain_calls(
    c: &rsgame_rpc::pb::usercenter::usercenter_client::UsercenterClient<tonic::transport::Channel>,
    id: i64,
    n: usize,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.clone().get_user_info(rsgame_rpc::pb::usercenter::GetUserInfoReq { id }).await.expect("plain call");
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

async fn hop(n: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&DatabaseConfig {
        url: format!("sqlite://{}/bench.db", dir.path().display()),
        ..DatabaseConfig::default()
    })
    .await
    .expect("db");
    rsgame_store::migrate::migrate(&db).await.expect("migrate");
    let cache = Cache::memory(100_000, "b:");
    let jwt = Arc::new(Jwt::new(b"bench", Duration::from_secs(3600), Duration::from_secs(1800)));
    let bus = Bus::memory(BusOptions::default());
    let basic = Arc::new(
        BasicLogic::new(db.clone(), cache.clone(), bus, BasicConfig::default(), b"k".to_vec()).expect("basic"),
    );
    let local: Arc<dyn UserCenter> = Arc::new(rsgame_usercenter::UserCenterLogic::new(
        db,
        cache,
        rsgame_store::Bus::memory(Default::default()),
        jwt.clone(),
        basic,
        UsercenterConfig::default(),
    ));
    let req = RegisterReq { username: "hopper".into(), password: "secret99".into(), ..Default::default() };
    let tokens = local.register(req, "127.0.0.1").await.expect("register");
    let id = jwt.verify(&tokens.access.access_token).expect("claims").user_id;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = rsgame_kit::Shutdown::new();
    let router = rsgame_rpc::server(TOKEN, &GovernanceConfig::default(), None)
        .expect("server")
        .add_service(UsercenterRpc::service(local.clone()));
    tokio::spawn(rsgame_rpc::serve(listener, router, stop.clone()));
    let remote = RemoteUserCenter::over(rsgame_rpc::channel(&url, TOKEN).expect("channel"));
    // The floor: plain tonic, no rsgame layers on either side.
    let plain_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plain_url = format!("http://{}", plain_l.local_addr().expect("addr"));
    let plain_router = tonic::transport::Server::builder().add_service(UsercenterRpc::service(local.clone()));
    let incoming = tonic::transport::server::TcpIncoming::from(plain_l).with_nodelay(Some(true));
    tokio::spawn(plain_router.serve_with_incoming(incoming));
    let plain_ch = tonic::transport::Endpoint::from_shared(plain_url).expect("url").tcp_nodelay(true).connect_lazy();
    let plain = rsgame_rpc::pb::usercenter::usercenter_client::UsercenterClient::new(plain_ch);

    // Warm both paths (connections, caches, the allocator), then alternate rounds so drift
    // on a noisy machine hits both alike.
    calls(local.as_ref(), id, 2000).await;
    calls(&remote, id, 2000).await;
    plain_calls(&plain, id, 2000).await;
    let rounds = 5;
    let (mut lp50, mut lp99, mut rp50, mut rp99, mut pp50, mut pp99) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let l = calls(local.as_ref(), id, n / rounds).await;
        let r = calls(&remote, id, n / rounds).await;
        let p = plain_calls(&plain, id, n / rounds).await;
        lp50.push(micros(&l, 0.5));
        lp99.push(micros(&l, 0.99));
        rp50.push(micros(&r, 0.5));
        rp99.push(micros(&r, 0.99));
        pp50.push(micros(&p, 0.5));
        pp99.push(micros(&p, 0.99));
    }
    let (lp50, lp99, rp50, rp99) = (median(&mut lp50), median(&mut lp99), median(&mut rp50), median(&mut rp99));
    let (pp50, pp99) = (median(&mut pp50), median(&mut pp99));
    println!(
        "{{\"op\":\"getUserInfo\",\"calls_per_path\":{n},\"rounds\":{rounds},\"in_process_p50_us\":{lp50:.1},\"in_process_p99_us\":{lp99:.1},\"grpc_p50_us\":{rp50:.1},\"grpc_p99_us\":{rp99:.1},\"plain_tonic_p50_us\":{pp50:.1},\"plain_tonic_p99_us\":{pp99:.1},\"hop_p50_us\":{:.1},\"hop_p99_us\":{:.1}}}",
        rp50 - lp50,
        rp99 - lp99
    );
    stop.trigger();
    lp50
}

struct Replica(std::process::Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The machine's cores (not this process's affinity: it may run under `taskset -c 0`).
fn machine_cores() -> usize {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let n = online
        .trim()
        .split(',')
        .filter_map(|r| match r.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1),
            None => r.parse::<usize>().ok().map(|_| 1),
        })
        .sum::<usize>();
    if n > 0 { n } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One `usercenter-rpc` process on `port`, on `core` when given.
fn replica(bin: &str, db: &str, port: u16, core: Option<usize>) -> Replica {
    // Always through taskset: a child inherits the benchmark's own pinning otherwise.
    let cores = machine_cores();
    let set = core.map_or_else(|| format!("0-{}", cores - 1), |k| k.to_string());
    let mut c = std::process::Command::new("taskset");
    c.args(["-c", &set, bin]);
    c.args(["serve", "--role", "usercenter-rpc"])
        .env("RSGAME_DATABASE__URL", db)
        .env("RSGAME_HTTP__PORT", free_port().to_string())
        .env("RSGAME_RPC__USERCENTER_PORT", port.to_string())
        .env("RSGAME_RPC__TOKEN", TOKEN)
        .env("RSGAME_AUTH__JWT_SECRET", "bench-signing-key-0123456789abcdef0123")
        .env("RSGAME_LOG__LEVEL", "warn")
        // Correct passwords only, from one IP: no lock-outs in the way.
        .env("RSGAME_USERCENTER__CAPTCHA_AFTER_FAILURES", "1000000")
        .env("RSGAME_USERCENTER__LOCK_AFTER_FAILURES", "2000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Replica(c.spawn().expect("start a replica"))
}

async fn wait_up(url: &str) {
    let ch = rsgame_rpc::channel(url, TOKEN).expect("channel");
    let probe = RemoteUserCenter::over(ch);
    for _ in 0..200 {
        match probe.user_info(1).await {
            Ok(_) => return,
            Err(e) if e.code() == rsgame_kit::Code::NotFound => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("replica {url} did not come up");
}

async fn logins_per_sec(urls: &[String], users: usize, secs: u64, conc: usize) -> (f64, f64) {
    let svc = Arc::new(RemoteUserCenter::over(rsgame_rpc::channel(&urls.join(","), TOKEN).expect("channel")));
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conc {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut lat) = (0usize, Vec::new());
            let mut i = c;
            while Instant::now() < end {
                let req = LoginReq {
                    username: format!("user{}", i % users),
                    password: "secret99".into(),
                    ..Default::default()
                };
                let t = Instant::now();
                svc.login(req, "127.0.0.1").await.expect("login");
                lat.push(t.elapsed());
                ok += 1;
                i += conc;
            }
            (ok, lat)
        }));
    }
    let (mut n, mut lat) = (0, Vec::new());
    for t in tasks {
        let (ok, l) = t.await.expect("task");
        n += ok;
        lat.extend(l);
    }
    lat.sort();
    (n as f64 / start.elapsed().as_secs_f64(), micros(&lat, 0.5) / 1000.0)
}

async fn replicas(bin: &str, secs: u64, n: usize, in_process_p50: f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/replicas.db", dir.path().display());
    let cores = machine_cores();
    let (p1, p2) = (free_port(), free_port());
    let (u1, u2) = (format!("http://127.0.0.1:{p1}"), format!("http://127.0.0.1:{p2}"));
    let users = 64;
    {
        // Accounts, created through one replica (which also migrates the database).
        let r = replica(bin, &db, p1, None);
        wait_up(&u1).await;
        let svc = RemoteUserCenter::over(rsgame_rpc::channel(&u1, TOKEN).expect("channel"));
        for i in 0..users {
            let req = RegisterReq { username: format!("user{i}"), password: "secret99".into(), ..Default::default() };
            svc.register(req, "127.0.0.1").await.expect("register");
        }
        drop(r);
    }
    {
        // Part 2: the hop to another process on the other core.
        let r = replica(bin, &db, p1, Some(1 % cores));
        wait_up(&u1).await;
        let svc = RemoteUserCenter::over(rsgame_rpc::channel(&u1, TOKEN).expect("channel"));
        calls(&svc, 1, 2000).await;
        let lat = calls(&svc, 1, n / 2).await;
        let (p50, p99) = (micros(&lat, 0.5), micros(&lat, 0.99));
        println!(
            "{{\"op\":\"getUserInfo_other_process\",\"calls\":{},\"grpc_p50_us\":{p50:.1},\"grpc_p99_us\":{p99:.1},\"hop_p50_us\":{:.1}}}",
            n / 2,
            p50 - in_process_p50
        );
        drop(r);
    }
    let conc = 8;
    for pinned in [true, false] {
        let core = |k: usize| pinned.then_some(k % cores);
        let one = replica(bin, &db, p1, core(0));
        wait_up(&u1).await;
        let (rate1, p50_1) = logins_per_sec(std::slice::from_ref(&u1), users, secs, conc).await;
        let two = replica(bin, &db, p2, core(1));
        wait_up(&u2).await;
        let (rate2, p50_2) = logins_per_sec(&[u1.clone(), u2.clone()], users, secs, conc).await;
        println!(
            "{{\"op\":\"login\",\"pinned_one_core_each\":{pinned},\"concurrency\":{conc},\"secs\":{secs},\"one_replica_per_sec\":{rate1:.1},\"one_replica_p50_ms\":{p50_1:.1},\"two_replicas_per_sec\":{rate2:.1},\"two_replicas_p50_ms\":{p50_2:.1},\"ratio\":{:.2},\"cores\":{cores}}}",
            rate2 / rate1
        );
        drop((one, two));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let secs: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let bin = std::env::args().nth(3).unwrap_or_else(|| "target/release/rsgame".into());
    let in_process_p50 = hop(n).await;
    if std::path::Path::new(&bin).exists() {
        replicas(&bin, secs, n, in_process_p50).await;
    } else {
        eprintln!("skipped the replica runs: {bin} not found (cargo build --release -p rsgame)");
    }
}
