//! The bus on its backends: in-process always, Redis Streams with `RSGAME_TEST_REDIS_URL`;
//! and the Redis faults: a member that dies holding a message, a broker that goes away.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{OwnRedis, free_port};
use rsgame_store::{Bus, BusOptions};

fn prefix() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("rsgame-test-bus:{}:{}:", std::process::id(), n)
}

/// Long enough that messages waiting in a slow test's buffers are not taken over.
fn opts() -> BusOptions {
    BusOptions { max_in_flight: 64, reclaim_after: Duration::from_secs(30), max_len: 10_000 }
}

/// For the test of a member dying: take over quickly.
fn quick_reclaim() -> BusOptions {
    BusOptions { reclaim_after: Duration::from_millis(300), ..opts() }
}

/// Removes a test's Redis stream keys or NATS stream.
async fn clean(url: &str, prefix: &str) {
    if url.starts_with("nats://") {
        let client = async_nats::connect(url).await.expect("nats");
        let js = async_nats::jetstream::new(client);
        let name: String = prefix
            .trim_end_matches(['.', ':'])
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        js.delete_stream(format!("{name}_bus")).await.expect("delete stream");
        return;
    }
    let c = rsgame_store::Cache::redis(url, prefix).await.expect("redis");
    c.delete_prefix("").await.expect("clean up");
}

/// The durable backends configured for this run: (name, url).
fn durable() -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for (name, var) in [("redis", "RSGAME_TEST_REDIS_URL"), ("nats", "RSGAME_TEST_NATS_URL")] {
        match std::env::var(var) {
            Ok(url) => v.push((name, url)),
            Err(_) => eprintln!("skipped {name}: {var} is not set"),
        }
    }
    v
}

async fn open(name: &str, url: &str, prefix: &str, opts: BusOptions) -> Bus {
    match name {
        "redis" => Bus::redis(url, prefix, opts).await.expect("redis bus"),
        _ => Bus::nats(url, prefix, opts).await.expect("nats bus"),
    }
}

async fn buses() -> Vec<(Bus, &'static str, Option<(String, String)>)> {
    let mut v = vec![(Bus::memory(opts()), "memory", None)];
    for (name, url) in durable() {
        let p = prefix();
        v.push((open(name, &url, &p, opts()).await, name, Some((url, p))));
    }
    v
}

async fn next(sub: &mut rsgame_store::Subscription) -> Option<String> {
    match tokio::time::timeout(Duration::from_millis(1500), sub.next()).await {
        Ok(Some(d)) => {
            let s = String::from_utf8(d.payload.clone()).expect("utf8");
            d.ack().await.expect("ack");
            Some(s)
        }
        _ => None,
    }
}

#[tokio::test]
async fn every_group_gets_every_message_and_members_share_a_group() {
    for (bus, name, redis) in buses().await {
        let mut chat_a = bus.subscribe("world-chat", "node-a").await.expect("sub");
        let mut chat_b = bus.subscribe("world-chat", "node-b").await.expect("sub");
        let mut worker_1 = bus.subscribe("world-chat", "workers").await.expect("sub");
        let mut worker_2 = bus.subscribe("world-chat", "workers").await.expect("sub");
        for i in 0..20 {
            bus.publish("world-chat", format!("m{i}").as_bytes()).await.expect("publish");
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        while a.len() < 20 {
            a.push(next(&mut chat_a).await.unwrap_or_else(|| panic!("{name}: node-a got only {a:?}")));
        }
        while b.len() < 20 {
            b.push(next(&mut chat_b).await.unwrap_or_else(|| panic!("{name}: node-b got only {b:?}")));
        }
        let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        assert_eq!(a, expected, "{name}: in order");
        assert_eq!(b, expected, "{name}");

        // The two workers split the 20 between them, each message once.
        let mut seen = HashSet::new();
        let mut per = [0usize; 2];
        loop {
            let (m1, m2) = tokio::join!(next(&mut worker_1), next(&mut worker_2));
            if m1.is_none() && m2.is_none() {
                break;
            }
            for (i, m) in [m1, m2].into_iter().enumerate() {
                if let Some(m) = m {
                    assert!(seen.insert(m.clone()), "{name}: {m} delivered twice in one group");
                    per[i] += 1;
                }
            }
        }
        assert_eq!(seen.len(), 20, "{name}: every message reached the group");
        drop((chat_a, chat_b, worker_1, worker_2));
        if let Some((url, p)) = redis {
            clean(&url, &p).await;
        }
    }
}

#[tokio::test]
async fn an_unacknowledged_message_goes_to_a_live_member() {
    for (name, url) in durable() {
        let p = prefix();
        let bus = open(name, &url, &p, quick_reclaim()).await;
        let mut doomed = bus.subscribe("orders", "billing").await.expect("sub");
        bus.publish("orders", b"order-1").await.expect("publish");
        let d = tokio::time::timeout(Duration::from_secs(3), doomed.next()).await.expect("delivered").expect("some");
        assert_eq!(d.payload, b"order-1");
        // The member dies before acknowledging.
        drop(d);
        drop(doomed);
        let mut survivor = bus.subscribe("orders", "billing").await.expect("sub");
        let again =
            tokio::time::timeout(Duration::from_secs(5), survivor.next()).await.expect("reclaimed").expect("some");
        assert_eq!(again.payload, b"order-1", "{name}: at-least-once, redelivered after the reclaim delay");
        again.ack().await.expect("ack");
        assert!(
            tokio::time::timeout(Duration::from_millis(1200), survivor.next()).await.is_err(),
            "{name}: acknowledged, so not again"
        );
        drop(survivor);
        clean(&url, &p).await;
    }
}

#[tokio::test]
async fn a_broker_outage_fails_publishes_loudly_and_subscribers_come_back() {
    if std::env::var("RSGAME_TEST_REDIS_URL").is_err() {
        eprintln!("skipped: RSGAME_TEST_REDIS_URL is not set (this test also needs redis-server)");
        return;
    }
    let port = free_port();
    let server = OwnRedis::start(port).expect("redis-server");
    let url = format!("redis://127.0.0.1:{port}");
    let bus = Bus::redis(&url, &prefix(), opts()).await.expect("bus");
    let mut sub = bus.subscribe("events", "g").await.expect("sub");
    bus.publish("events", b"before").await.expect("publish");
    assert_eq!(next(&mut sub).await.as_deref(), Some("before"));

    drop(server);
    assert!(
        bus.publish("events", b"lost?").await.is_err(),
        "a publish with the broker down is an error, not a silent drop"
    );

    let _server = OwnRedis::start(port).expect("restart");
    // The subscriber re-creates its group on the fresh server and keeps reading.
    let mut delivered = None;
    for _ in 0..30 {
        let _ = bus.publish("events", b"after").await;
        if let Some(m) = next(&mut sub).await {
            delivered = Some(m);
            break;
        }
    }
    assert_eq!(delivered.as_deref(), Some("after"), "the subscription reconnected by itself");
}

/// A private nats-server with JetStream on a free port and its own store.
struct OwnNats {
    child: std::process::Child,
}

impl OwnNats {
    fn start(port: u16, store: &std::path::Path) -> Option<OwnNats> {
        // Debian installs it in /usr/sbin, which not every PATH holds.
        let bin = if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server"
        } else {
            "nats-server"
        };
        let child = std::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(OwnNats { child });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nats_outage_fails_publishes_loudly_and_keeps_what_was_stored() {
    if std::env::var("RSGAME_TEST_NATS_URL").is_err() {
        eprintln!("skipped: RSGAME_TEST_NATS_URL is not set (this test also needs nats-server)");
        return;
    }
    let store = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = OwnNats::start(port, store.path()).expect("nats-server (installed with NATS)");
    let url = format!("nats://127.0.0.1:{port}");
    let bus = Bus::nats(&url, &prefix(), opts()).await.expect("bus");
    let mut sub = bus.subscribe("events", "g").await.expect("sub");
    bus.publish("events", b"before").await.expect("publish");
    assert_eq!(next(&mut sub).await.as_deref(), Some("before"));
    // Stored while nobody reads, then the server goes away.
    drop(sub);
    bus.publish("events", b"stored").await.expect("publish");

    drop(server);
    assert!(bus.publish("events", b"lost?").await.is_err(), "a publish with the broker down is an error");

    // JetStream kept what it acknowledged; the client reconnects by itself.
    let _server = OwnNats::start(port, store.path()).expect("restart on the same store");
    let mut sub = None;
    for _ in 0..50 {
        if let Ok(s) = bus.subscribe("events", "g").await {
            sub = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut sub = sub.expect("subscribed again after the restart");
    assert_eq!(next(&mut sub).await.as_deref(), Some("stored"), "no acknowledged message is lost");
}
