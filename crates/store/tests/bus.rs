//! The bus on its backends: in-process always, Redis Streams with `RSGAME_TEST_REDIS_URL`,
//! NATS JetStream with `RSGAME_TEST_NATS_URL`, Kafka with `RSGAME_TEST_KAFKA_BROKERS`; and the
//! faults: a member that dies holding a message, a broker that goes away, connections cut.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{OwnRedis, OwnServer, free_port};
use rsgame_store::{Bus, BusOptions};

fn prefix() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("rsgame-test-bus:{}:{}:", std::process::id(), n)
}

/// Long enough that messages waiting in a slow test's buffers are not taken over.
fn opts() -> BusOptions {
    BusOptions {
        max_in_flight: 64,
        reclaim_after: Duration::from_secs(30),
        max_len: 10_000,
        publish_timeout: Duration::from_secs(1),
    }
}

/// For the test of a member dying: take over quickly.
fn quick_reclaim() -> BusOptions {
    BusOptions { reclaim_after: Duration::from_millis(300), ..opts() }
}

/// Removes a test's Redis stream keys, NATS stream or Kafka topics.
async fn clean(url: &str, prefix: &str) {
    if !url.contains("://") {
        clean_kafka(url, prefix).await;
        return;
    }
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

/// Deletes the Kafka topics of one test. Its consumers close in the background, so this waits
/// for them first: librdkafka 2.12 can crash when a topic is deleted under a live client.
async fn clean_kafka(brokers: &str, prefix: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin");
    let md = admin.inner().fetch_metadata(None, Duration::from_secs(5)).expect("metadata");
    let ours: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    let topics: Vec<String> =
        md.topics().iter().map(|t| t.name().to_owned()).filter(|n| n.starts_with(&ours)).collect();
    assert!(!topics.is_empty(), "the test made topics under {ours}");
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    for r in admin.delete_topics(&names, &AdminOptions::new()).await.expect("delete topics") {
        r.expect("topic deleted");
    }
}

/// The durable backends configured for this run: (name, url).
fn durable() -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for (name, var) in
        [("redis", "RSGAME_TEST_REDIS_URL"), ("nats", "RSGAME_TEST_NATS_URL"), ("kafka", "RSGAME_TEST_KAFKA_BROKERS")]
    {
        if let Some(url) = rsgame_testkit::service(var) {
            v.push((name, url));
        }
    }
    v
}

async fn open(name: &str, url: &str, prefix: &str, mut opts: BusOptions) -> Bus {
    if name == "kafka" {
        // On Kafka this is the session timeout (6 s at least); a group's join waits up to half
        // of it on tansu. Redelivery to a live member comes with the rebalance instead.
        opts.reclaim_after = Duration::from_secs(6);
    }
    match name {
        "redis" => Bus::redis(url, prefix, opts).await.expect("redis bus"),
        "kafka" => Bus::kafka(url, prefix, opts).await.expect("kafka bus"),
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
    next_in(sub, Duration::from_millis(1500)).await
}

/// How long to wait for a delivery: a Kafka member first joins its group, and a group
/// rebalances (seconds) each time a member comes or goes.
fn patience(backend: &str) -> Duration {
    if backend == "kafka" { Duration::from_secs(12) } else { Duration::from_millis(1500) }
}

async fn next_in(sub: &mut rsgame_store::Subscription, wait: Duration) -> Option<String> {
    match tokio::time::timeout(wait, sub.next()).await {
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
            a.push(
                next_in(&mut chat_a, patience(name)).await.unwrap_or_else(|| panic!("{name}: node-a got only {a:?}")),
            );
        }
        while b.len() < 20 {
            b.push(
                next_in(&mut chat_b, patience(name)).await.unwrap_or_else(|| panic!("{name}: node-b got only {b:?}")),
            );
        }
        let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        assert_eq!(a, expected, "{name}: in order");
        assert_eq!(b, expected, "{name}");

        // The two workers split the 20 between them, each message once.
        let mut seen = HashSet::new();
        let mut per = [0usize; 2];
        let deadline = tokio::time::Instant::now() + patience(name) * 3;
        while seen.len() < 20 && tokio::time::Instant::now() < deadline {
            for (i, w) in [&mut worker_1, &mut worker_2].into_iter().enumerate() {
                if let Some(m) = next_in(w, Duration::from_millis(100)).await {
                    assert!(seen.insert(m.clone()), "{name}: {m} delivered twice in one group");
                    per[i] += 1;
                }
            }
        }
        // And nothing more: each went to one member only.
        let (m1, m2) = tokio::join!(
            next_in(&mut worker_1, Duration::from_millis(500)),
            next_in(&mut worker_2, Duration::from_millis(500))
        );
        assert_eq!((m1, m2), (None, None), "{name}: a message came twice; split {per:?}");
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
        let d = tokio::time::timeout(patience(name) * 2, doomed.next()).await.expect("delivered").expect("some");
        assert_eq!(d.payload, b"order-1");
        // The member dies before acknowledging.
        drop(d);
        drop(doomed);
        let mut survivor = bus.subscribe("orders", "billing").await.expect("sub");
        let again = tokio::time::timeout(patience(name) * 2, survivor.next()).await.expect("reclaimed").expect("some");
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
    // This test also starts its own redis-server.
    if rsgame_testkit::service("RSGAME_TEST_REDIS_URL").is_none() {
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
fn own_nats(port: u16, store: &std::path::Path) -> Option<OwnServer> {
    // Debian installs it in /usr/sbin, which not every PATH holds.
    let bin =
        if std::path::Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" };
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]).arg(store);
    OwnServer::start(cmd, port)
}

#[tokio::test]
async fn nats_outage_fails_publishes_loudly_and_keeps_what_was_stored() {
    // This test also starts its own nats-server.
    if rsgame_testkit::service("RSGAME_TEST_NATS_URL").is_none() {
        return;
    }
    let store = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = own_nats(port, store.path()).expect("nats-server (installed with NATS)");
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
    let _server = own_nats(port, store.path()).expect("restart on the same store");
    let mut sub = None;
    for _ in 0..50 {
        if let Ok(s) = bus.subscribe("events", "g").await {
            sub = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut sub = sub.expect("subscribed again after the restart");
    // Delivery is at least once: the ack of "before" may still have been on its way when the
    // server was killed, and then "before" comes again first. What must come is "stored".
    let mut got = next(&mut sub).await;
    if got.as_deref() == Some("before") {
        got = next(&mut sub).await;
    }
    assert_eq!(got.as_deref(), Some("stored"), "no acknowledged message is lost");
}

/// A TCP proxy whose connections the test can cut, as a crashed load balancer or a broker
/// restart would, and whose port can refuse new connections for a while.
struct CutProxy {
    port: u16,
    /// Bumped to kill every live connection.
    generation: tokio::sync::watch::Sender<u64>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: u16) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (gen_tx, is_open) = (generation.clone(), open.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let mut cut = gen_tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        CutProxy { port, generation, open, task }
    }

    /// Kills every connection; new ones are refused until `restore`.
    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// A private tansu broker (the Kafka protocol) on a free port, advertising `advertised` so
/// that clients come back through a proxy.
fn own_tansu(bin: &str, port: u16, advertised: u16) -> Option<OwnServer> {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["broker", "--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args(["--advertised-listener-url", &format!("tcp://127.0.0.1:{advertised}")])
        .args(["--storage-engine", "memory://tansu/"]);
    OwnServer::start(cmd, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_connections_cut_mid_stream_lose_no_acknowledged_message() {
    let Some([_, bin]) = rsgame_testkit::services(["RSGAME_TEST_KAFKA_BROKERS", "RSGAME_TEST_TANSU_BIN"]) else {
        return;
    };
    let broker_port = free_port();
    let proxy = CutProxy::start(broker_port).await;
    let _broker = own_tansu(&bin, broker_port, proxy.port).expect("tansu starts");
    let brokers = format!("127.0.0.1:{}", proxy.port);
    let opts = BusOptions { reclaim_after: Duration::from_secs(6), publish_timeout: Duration::from_secs(10), ..opts() };
    let bus = Bus::kafka(&brokers, &prefix(), opts.clone()).await.expect("bus");
    let mut sub = bus.subscribe("stream", "g").await.expect("sub");

    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            let _ = got_tx.send(String::from_utf8_lossy(&d.payload).into_owned());
            d.ack().await.expect("ack");
        }
    });

    // A stream of publishes, with every connection cut twice along the way.
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for i in 0..150 {
        if i == 50 || i == 100 {
            proxy.cut();
            let p = &proxy;
            // Refused for a second, then the broker is reachable again.
            tokio::time::sleep(Duration::from_secs(1)).await;
            p.restore();
        }
        match bus.publish("stream", format!("m{i}").as_bytes()).await {
            Ok(()) => acknowledged.push(format!("m{i}")),
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("kafka: {} acknowledged, {failed} failed across the cuts", acknowledged.len());
    assert!(acknowledged.len() >= 140, "librdkafka retries through a 1 s outage: {failed} failed");

    let mut received = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !acknowledged.iter().all(|m| received.contains(m)) {
        match tokio::time::timeout_at(deadline, got_rx.recv()).await {
            Ok(Some(m)) => {
                received.insert(m);
            }
            _ => break,
        }
    }
    let lost: Vec<&String> = acknowledged.iter().filter(|m| !received.contains(*m)).collect();
    assert!(lost.is_empty(), "acknowledged but never delivered: {lost:?}");

    // Down for longer than the publish budget: the publish fails, loudly.
    let quick = Bus::kafka(&brokers, &prefix(), BusOptions { publish_timeout: Duration::from_secs(1), ..opts })
        .await
        .expect("bus");
    quick.publish("stream", b"warm").await.expect("publish while reachable");
    proxy.cut();
    assert!(quick.publish("stream", b"lost?").await.is_err(), "a publish with the broker away is an error");
    proxy.restore();
    reader.abort();
}
