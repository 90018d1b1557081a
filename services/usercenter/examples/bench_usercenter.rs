//! usercenter benchmark (not a test): register, login, guest device sign-up and login, and
//! `detail` with a token over real HTTP on loopback, against the REST API in this process on the embedded defaults (SQLite,
//! in-process cache). Register and login are bound by argon2id, so the raw hash rate is
//! measured beside them; `detail` is compared with `/healthz` (the framework's floor).
//! Prints one JSON line per measurement.
//!
//! `cargo run --release -p rsgame-usercenter --example bench_usercenter -- [USERS] [SECS]`
//! (defaults 200 users, 5 s per timed phase).

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher as _;
use rsgame_basic::BasicLogic;
use rsgame_basic::config::BasicConfig;
use rsgame_kit::auth::{Auth, Jwt};
use rsgame_store::config::DatabaseConfig;
use rsgame_store::{Bus, BusOptions, Cache, Db};
use rsgame_usercenter::config::UsercenterConfig;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let (r, w) = s.into_split();
        Conn { r: BufReader::new(r), w }
    }

    async fn request(&mut self, method: &str, path: &str, token: Option<&str>, body: &str) -> Vec<u8> {
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.w.write_all(req.as_bytes()).await.expect("write");
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).await.expect("read");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut out = vec![0; len];
        self.r.read_exact(&mut out).await.expect("body");
        out
    }
}

fn percentile(sorted: &[Duration], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_micros()
}

fn report(op: &str, n: usize, total: Duration, mut lat: Vec<Duration>, extra: &str) {
    lat.sort();
    println!(
        "{{\"op\":\"{op}\",\"n\":{n},\"per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{}{extra}}}",
        n as f64 / total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// Runs `work(i)` for i in 0..n on `conc` connections; returns (elapsed, latencies).
async fn fixed<F, Fut>(port: u16, n: usize, conc: usize, work: F) -> (Duration, Vec<Duration>)
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (Conn, Duration)> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (next, work) = (next.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (c, d) = work(conn, i).await;
                conn = c;
                lat.push(d);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    (start.elapsed(), all)
}

/// Sends `path` for `secs` on `conc` connections; returns (count, elapsed, latencies).
async fn timed(
    port: u16,
    secs: u64,
    conc: usize,
    method: &'static str,
    path: &'static str,
    tokens: Arc<Vec<String>>,
) -> (usize, Duration, Vec<Duration>) {
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conc {
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await;
            let mut lat = Vec::new();
            let token = tokens.get(c % tokens.len().max(1)).cloned();
            while Instant::now() < end {
                let t = Instant::now();
                let body = conn.request(method, path, token.as_deref(), "").await;
                lat.push(t.elapsed());
                assert!(body.starts_with(b"{\"code\":200") || body == b"ok", "{}", String::from_utf8_lossy(&body));
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    (all.len(), start.elapsed(), all)
}

#[tokio::main]
async fn main() {
    let users: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let secs: u64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&DatabaseConfig {
        url: format!("sqlite://{}/bench.db", dir.path().display()),
        ..DatabaseConfig::default()
    })
    .await
    .expect("db");
    rsgame_store::migrate::migrate(&db).await.expect("migrate");
    let cache = Cache::memory(1_000_000, "b:");
    let jwt = Arc::new(Jwt::new(b"bench", Duration::from_secs(3600), Duration::from_secs(1800)));
    let basic = Arc::new(
        BasicLogic::new(
            db.clone(),
            cache.clone(),
            Bus::memory(BusOptions::default()),
            BasicConfig::default(),
            b"k".to_vec(),
        )
        .expect("basic"),
    );
    // No lock-outs: every login in the benchmark is a right one from one IP.
    // One client address makes every request here: the per-address defences (a captcha
    // after 10 sign-ups an hour, lock-outs) would stop the benchmark, not measure it.
    let cfg = UsercenterConfig {
        captcha_after_failures: 1_000_000,
        lock_after_failures: 2_000_000,
        register_captcha_after_per_ip: 0,
        ..Default::default()
    };
    let logic = rsgame_usercenter::UserCenterLogic::new(
        db,
        cache,
        rsgame_store::Bus::memory(Default::default()),
        jwt.clone(),
        basic,
        cfg,
    );
    let auth = Auth { jwt, revocations: Some(logic.revocations()) };
    let shutdown = rsgame_kit::Shutdown::new();
    let readiness = rsgame_kit::http::Readiness::new(&shutdown);
    let router = rsgame_kit::http::ops_router(readiness, None).merge(rsgame_usercenter::api::router(
        Arc::new(logic),
        auth,
        vec!["/ws".into()],
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), shutdown.clone()));

    // The hash alone, on one core, for comparison.
    let hasher = rsgame_usercenter::logic::hasher();
    let n_hash = 20;
    let t = Instant::now();
    for _ in 0..n_hash {
        let _ = hasher.hash_password(b"secret99");
    }
    let per = t.elapsed() / n_hash;
    println!(
        "{{\"op\":\"argon2id_hash\",\"params\":\"m=19456,t=2,p=1\",\"ms_each\":{:.1},\"per_sec_one_core\":{:.0},\"cores\":{cores}}}",
        per.as_secs_f64() * 1000.0,
        1.0 / per.as_secs_f64()
    );

    let conc = cores * 4;
    let (total, lat) = fixed(port, users, conc, |mut c, i| async move {
        let t = Instant::now();
        let body = format!("{{\"username\":\"bench_{i}\",\"password\":\"secret99\"}}");
        let r = c.request("POST", "/usercenter/v1/user/register", None, &body).await;
        assert!(r.starts_with(b"{\"code\":200"), "{}", String::from_utf8_lossy(&r));
        (c, t.elapsed())
    })
    .await;
    report("register", users, total, lat, &format!(",\"conns\":{conc}"));

    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = tokens.clone();
    let (total, lat) = fixed(port, users, conc, move |mut c, i| {
        let sink = sink.clone();
        async move {
            let t = Instant::now();
            let body = format!("{{\"username\":\"bench_{i}\",\"password\":\"secret99\"}}");
            let r = c.request("POST", "/usercenter/v1/user/login", None, &body).await;
            let d = t.elapsed();
            let v: serde_json::Value = serde_json::from_slice(&r).expect("json");
            if let Some(tok) = v["data"]["accessToken"].as_str() {
                sink.lock().expect("lock").push(tok.to_owned());
            }
            (c, d)
        }
    })
    .await;
    report("login", users, total, lat, &format!(",\"conns\":{conc}"));
    let tokens = Arc::new(tokens.lock().expect("lock").clone());
    assert_eq!(tokens.len(), users, "every login succeeded");

    // Guests: no password hash on this path, so ten times as many devices as users.
    let devices = users * 10;
    for op in ["device_signup", "device_login"] {
        let (total, lat) = fixed(port, devices, conc, |mut c, i| async move {
            let t = Instant::now();
            let body = format!("{{\"deviceId\":\"bench-device-{i:08}\"}}");
            let r = c.request("POST", "/usercenter/v1/user/loginDevice", None, &body).await;
            assert!(r.starts_with(b"{\"code\":200"), "{}", String::from_utf8_lossy(&r));
            (c, t.elapsed())
        })
        .await;
        report(op, devices, total, lat, &format!(",\"conns\":{conc}"));
    }

    for conns in [cores * 8, cores * 32] {
        let (n, total, lat) = timed(port, secs, conns, "GET", "/healthz", Arc::new(Vec::new())).await;
        report("healthz", n, total, lat, &format!(",\"conns\":{conns}"));
        let (n, total, lat) = timed(port, secs, conns, "POST", "/usercenter/v1/user/detail", tokens.clone()).await;
        report("detail", n, total, lat, &format!(",\"conns\":{conns}"));
    }
    shutdown.trigger();
}
