//! Helpers shared by rsgame's integration tests (a dev-dependency only).
//!
//! - [`on_every_backend`]: runs a check on SQLite with the in-process cache, then on MariaDB
//!   and PostgreSQL with Redis when `RSGAME_TEST_MYSQL_URL`, `RSGAME_TEST_POSTGRES_URL` and
//!   `RSGAME_TEST_REDIS_URL` are set; each run gets a fresh, migrated database and its own key
//!   prefix, both removed afterwards, even when the check fails. A skipped backend is said on
//!   stderr.
//! - [`call`]: one HTTP/1.1 request over a fresh connection, returning the status, the
//!   headers and the body.
//! - [`service`] and [`skip`]: a test that needs a real service reads its address from a
//!   `RSGAME_TEST_*` variable; when it is unset the test says `skipped: …` and passes, unless
//!   `RSGAME_TEST_REQUIRE=1` (set by `.ci/run`), which makes it fail instead — so a CI run in
//!   which a service did not start cannot pass with its tests silently not run.

#![allow(clippy::unwrap_used)]

use rsgame_store::config::DatabaseConfig;
use rsgame_store::{Backend, Cache, Db};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Whether a missing service fails the test (`RSGAME_TEST_REQUIRE=1`, as in CI) rather than
/// skipping it.
pub fn services_required() -> bool {
    std::env::var("RSGAME_TEST_REQUIRE").is_ok_and(|v| v == "1")
}

/// A part of a test cannot run for want of `what`: says `skipped: {what}` on stderr, or
/// panics when [`services_required`].
#[track_caller]
pub fn skip(what: &str) {
    if services_required() {
        panic!("RSGAME_TEST_REQUIRE=1 and a required service is missing: {what}");
    }
    // Straight to the stream, not through `eprintln!`, which the test harness captures and
    // hides for a passing test: a bare `cargo test --workspace` shows what it skipped.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("skipped: {what}\n").as_bytes());
}

/// The value of a test service variable (`RSGAME_TEST_REDIS_URL`…), or `None` after
/// [`skip`] when it is unset or empty.
#[track_caller]
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            skip(&format!("{var} is not set"));
            None
        }
    }
}

/// [`service`] for several variables a test needs together: all their values, or `None`
/// after one [`skip`] naming those that are missing.
#[track_caller]
pub fn services<const N: usize>(vars: [&str; N]) -> Option<[String; N]> {
    let values = vars.map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    let missing: Vec<&str> = vars.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
    if !missing.is_empty() {
        skip(&format!("{} not set", missing.join(", ")));
        return None;
    }
    Some(values.map(|v| v.unwrap_or_default()))
}

/// A unique name for a test's database or key prefix.
pub fn unique(p: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{p}_{}_{}", std::process::id(), n % 1_000_000_000)
}

fn db_cfg(url: String) -> DatabaseConfig {
    DatabaseConfig { url, max_open: 4, max_idle: 1, ..DatabaseConfig::default() }
}

/// Which backends a check ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite and the in-process cache.
    Embedded,
    /// MariaDB and Redis.
    MariaDb,
    /// PostgreSQL and Redis.
    Postgres,
}

/// Runs `check` on every configured database + cache pair, each fresh and migrated.
pub async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Stack, Db, Cache) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&db_cfg(format!("sqlite://{}/t.db", dir.path().display()))).await.expect("sqlite");
    rsgame_store::migrate::migrate(&db).await.expect("migrate");
    check(Stack::Embedded, db, Cache::memory(10_000, "t:")).await;

    for (var, backend, stack) in [
        ("RSGAME_TEST_MYSQL_URL", Backend::MySql, Stack::MariaDb),
        ("RSGAME_TEST_POSTGRES_URL", Backend::Postgres, Stack::Postgres),
    ] {
        let Some([admin_url, redis]) = services([var, "RSGAME_TEST_REDIS_URL"]) else {
            continue;
        };
        let admin = Db::connect(&db_cfg(admin_url.clone())).await.expect("admin");
        let name = unique("rsgame_t");
        admin.raw(&format!("CREATE DATABASE {name}")).await.expect("create database");
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
        let db = Db::connect(&db_cfg(format!("{base}/{name}"))).await.expect("connect");
        rsgame_store::migrate::migrate(&db).await.expect("migrate");
        let prefix = format!("{}:", unique("rsgame-t"));
        let cache = Cache::redis(&redis, &prefix).await.expect("redis");
        // A failing check still cleans up: the panic is caught, the database and keys are
        // removed, then the panic goes on.
        let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(check(
            stack,
            db.clone(),
            cache.clone(),
        )))
        .await;
        db.close().await;
        cache.delete_prefix("").await.expect("clean keys");
        let drop = if backend == Backend::Postgres {
            format!("DROP DATABASE {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE {name}")
        };
        admin.raw(&drop).await.expect("drop database");
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A reply: status, raw head, body bytes.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as text.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One request: `headers` are extra lines (`"Authorization: Bearer …"`), the body is sent
/// as is with its length.
pub async fn call(port: u16, method: &str, path: &str, headers: &[String], body: &[u8]) -> HttpReply {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write head");
    // The server may answer (and close) before reading a refused body.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = out[split..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    HttpReply { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..(start + n).min(b.len())]);
        b = &b[(start + n + 2).min(b.len())..];
    }
    out
}

/// A JSON POST, with a bearer token when given.
pub async fn post_json(port: u16, path: &str, token: Option<&str>, body: &serde_json::Value) -> HttpReply {
    let mut h = vec!["Content-Type: application/json".to_owned()];
    if let Some(t) = token {
        h.push(format!("Authorization: Bearer {t}"));
    }
    call(port, "POST", path, &h, body.to_string().as_bytes()).await
}

/// The envelope's code of a reply (-1 when there is none).
pub fn code(r: &HttpReply) -> i64 {
    r.json()["code"].as_i64().unwrap_or(-1)
}

/// Returns once the millisecond clock (`unix_ms`) has moved past its value at the call, so
/// that what a test makes before and after it carries different times.
pub async fn next_ms() {
    let t = rsgame_kit::time::unix_ms();
    while rsgame_kit::time::unix_ms() <= t {
        tokio::task::yield_now().await;
    }
}
