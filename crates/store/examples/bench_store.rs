//! Storage benchmark (not a test): point write and read per database, get/set per cache
//! backend, publish→consume throughput per bus backend, in one run. Backends come from the
//! same `RSGAME_TEST_*` variables the tests use; SQLite and the in-process ones always run.
//! Each database runs in a fresh database that is dropped afterwards. Prints one JSON line per
//! measurement.
//!
//! `cargo run --release -p rsgame-store --example bench_store -- [N]` (default N = 2000)

use std::time::{Duration, Instant};

use rsgame_store::config::DatabaseConfig;
use rsgame_store::{Backend, Bus, BusOptions, Cache, Db, migrate};
use sea_query::{Expr, ExprTrait as _, Query};

fn stats(label: &str, what: &str, mut lat: Vec<Duration>, total: Duration) {
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).map_or(0, |d| d.as_micros());
    println!(
        "{{\"backend\":\"{label}\",\"op\":\"{what}\",\"n\":{},\"per_sec\":{:.0},\"p50_us\":{},\"p99_us\":{}}}",
        lat.len(),
        lat.len() as f64 / total.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
}

async fn bench_db(label: &str, db: &Db, n: usize) {
    migrate::migrate(db).await.expect("migrate");
    let mut lat = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let mut q = Query::insert();
        q.into_table("mem_user")
            .columns(["username", "password", "created_at", "updated_at"])
            .values([Expr::val(format!("bench{i}")), Expr::val("x"), Expr::val(0i64), Expr::val(0i64)])
            .expect("values");
        let t = Instant::now();
        ids.push(db.insert_id(&q).await.expect("insert"));
        lat.push(t.elapsed());
    }
    stats(label, "db_point_write", lat, start.elapsed());
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for id in &ids {
        let t = Instant::now();
        let q =
            Query::select().columns(["id", "username"]).from("mem_user").and_where(Expr::col("id").eq(*id)).to_owned();
        db.fetch_optional(&q).await.expect("select").expect("row");
        lat.push(t.elapsed());
    }
    stats(label, "db_point_read", lat, start.elapsed());
}

async fn bench_cache(label: &str, c: &Cache, n: usize) {
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        c.set(&format!("k{i}"), &(i, "a 32-byte-ish value for the bench"), Some(Duration::from_secs(60)))
            .await
            .expect("set");
        lat.push(t.elapsed());
    }
    stats(label, "cache_set", lat, start.elapsed());
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let _: Option<(usize, String)> = c.get(&format!("k{i}")).await.expect("get");
        lat.push(t.elapsed());
    }
    stats(label, "cache_get", lat, start.elapsed());
    c.delete_prefix("").await.expect("clean up");
}

async fn bench_bus(label: &str, bus: &Bus, n: usize) {
    let mut sub = bus.subscribe("bench", "bench").await.expect("subscribe");
    let start = Instant::now();
    let producer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..n {
                bus.publish("bench", format!("message {i}").as_bytes()).await.expect("publish");
            }
        })
    };
    let mut got = 0;
    while got < n {
        // 20 s: a Kafka member's first delivery waits for its group to form.
        match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
            Ok(Some(d)) => {
                d.ack().await.expect("ack");
                got += 1;
            }
            _ => break,
        }
    }
    let total = start.elapsed();
    let _ = producer.await;
    println!(
        "{{\"backend\":\"{label}\",\"op\":\"bus_publish_consume\",\"n\":{got},\"per_sec\":{:.0}}}",
        got as f64 / total.as_secs_f64()
    );
}

fn unique() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("rsgame_bench_{}_{}", std::process::id(), n % 1_000_000_000)
}

fn cfg(url: String) -> DatabaseConfig {
    DatabaseConfig { url, max_open: 4, max_idle: 1, ..DatabaseConfig::default() }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir = std::env::temp_dir().join(unique());
    let sqlite = Db::connect(&cfg(format!("sqlite://{}/bench.db", dir.display()))).await.expect("sqlite");
    bench_db("sqlite", &sqlite, n).await;
    sqlite.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    for (var, label) in [("RSGAME_TEST_MYSQL_URL", "mariadb"), ("RSGAME_TEST_POSTGRES_URL", "postgres")] {
        let Ok(admin_url) = std::env::var(var) else {
            eprintln!("skipped {label}: {var} is not set");
            continue;
        };
        let admin = Db::connect(&cfg(admin_url.clone())).await.expect("admin");
        let name = unique();
        admin.raw(&format!("CREATE DATABASE {name}")).await.expect("create");
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
        let db = Db::connect(&cfg(format!("{base}/{name}"))).await.expect("connect");
        bench_db(label, &db, n).await;
        db.close().await;
        let drop_sql = if admin.backend() == Backend::Postgres {
            format!("DROP DATABASE {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE {name}")
        };
        admin.raw(&drop_sql).await.expect("drop");
    }

    let prefix = format!("{}:", unique());
    bench_cache("memory", &Cache::memory(1_000_000, &prefix), n).await;
    let bus_opts = BusOptions { max_in_flight: 256, ..BusOptions::default() };
    bench_bus("memory", &Bus::memory(bus_opts.clone()), n * 5).await;
    if let Ok(url) = std::env::var("RSGAME_TEST_REDIS_URL") {
        bench_cache("redis", &Cache::redis(&url, &prefix).await.expect("redis"), n).await;
        bench_bus("redis", &Bus::redis(&url, &prefix, bus_opts.clone()).await.expect("redis bus"), n * 5).await;
        Cache::redis(&url, &prefix).await.expect("redis").delete_prefix("").await.expect("clean up");
    } else {
        eprintln!("skipped redis: RSGAME_TEST_REDIS_URL is not set");
    }
    if let Ok(brokers) = std::env::var("RSGAME_TEST_KAFKA_BROKERS") {
        // Topics are named per run; tansu in CI keeps them in memory only.
        let bus = Bus::kafka(&brokers, &prefix, bus_opts.clone()).await.expect("kafka bus");
        bench_bus("kafka", &bus, n * 5).await;
    } else {
        eprintln!("skipped kafka: RSGAME_TEST_KAFKA_BROKERS is not set");
    }
    if let Ok(url) = std::env::var("RSGAME_TEST_NATS_URL") {
        let bus = Bus::nats(&url, &prefix, bus_opts).await.expect("nats bus");
        bench_bus("nats", &bus, n * 5).await;
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("nats"));
        let stream: String = prefix
            .trim_end_matches(':')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        js.delete_stream(format!("{stream}_bus")).await.expect("clean up");
    } else {
        eprintln!("skipped nats: RSGAME_TEST_NATS_URL is not set");
    }
}
