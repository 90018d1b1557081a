//! The cache API on the in-process backend and on Redis (`RSGAME_TEST_REDIS_URL`), each run
//! under its own key prefix, removed afterwards; and Redis going away and coming back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::{OwnRedis, free_port};
use rsgame_store::{Cache, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Player {
    id: i64,
    name: String,
    items: Vec<u32>,
}

fn prefix() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("rsgame-test:{}:{}:", std::process::id(), n)
}

async fn caches() -> Vec<(Cache, String)> {
    let p = prefix();
    let mut v = vec![(Cache::memory(10_000, &p), p.clone())];
    if let Some(url) = rsgame_testkit::service("RSGAME_TEST_REDIS_URL") {
        v.push((Cache::redis(&url, &p).await.expect("redis"), p));
    }
    v
}

#[tokio::test]
async fn typed_values_ttl_batches_and_prefix_delete() {
    for (c, _) in caches().await {
        let p = Player { id: 7, name: "ann".into(), items: vec![1, 2] };
        c.set("player:7", &p, None).await.expect("set");
        assert_eq!(c.get::<Player>("player:7").await.expect("get"), Some(p.clone()));
        assert!(matches!(c.get::<u64>("player:7").await, Err(StoreError::Cache(_))), "wrong type is an error");

        c.set("short", &1u8, Some(Duration::from_millis(100))).await.expect("set");
        assert_eq!(c.get::<u8>("short").await.expect("get"), Some(1));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(c.get::<u8>("short").await.expect("get"), None, "expired");

        c.set("a", &"x", None).await.expect("set");
        c.set("b", &"y", None).await.expect("set");
        let many: Vec<Option<String>> = c.get_many(&["a", "missing", "b"]).await.expect("mget");
        assert_eq!(many, [Some("x".into()), None, Some("y".into())]);
        assert_eq!(c.delete(&["a", "missing"]).await.expect("del"), 1);

        for k in ["room:1", "room:2", "room:*x", "rooms"] {
            c.set(k, &0, None).await.expect("set");
        }
        assert_eq!(c.delete_prefix("room:*").await.expect("glob chars are literal"), 1);
        assert_eq!(c.delete_prefix("room:").await.expect("prefix"), 2);
        assert_eq!(c.get::<i32>("rooms").await.expect("get"), Some(0), "other keys stay");

        assert!(c.set_if_absent("lock", &"me", Some(Duration::from_secs(5))).await.expect("nx"));
        assert!(!c.set_if_absent("lock", &"you", None).await.expect("nx"));
        assert_eq!(c.get::<String>("lock").await.expect("get").as_deref(), Some("me"));

        // replace: the old value comes back; of many writers at once each sees another's.
        assert_eq!(
            c.replace::<String>("seat", &"a".into(), Some(Duration::from_secs(5))).await.expect("replace"),
            None
        );
        assert_eq!(c.replace::<String>("seat", &"b".into(), None).await.expect("replace").as_deref(), Some("a"));
        assert_eq!(c.get::<String>("seat").await.expect("get").as_deref(), Some("b"));

        // take: one of many concurrent takers gets the value.
        c.set("code", &"ABCD", Some(Duration::from_secs(5))).await.expect("set");
        let takes = futures_util::future::join_all((0..10).map(|_| c.take::<String>("code"))).await;
        let won: Vec<String> = takes.into_iter().filter_map(|r| r.expect("take")).collect();
        assert_eq!(won, ["ABCD"], "exactly one taker");
        assert_eq!(c.get::<String>("code").await.expect("get"), None, "gone after take");
        c.delete_prefix("").await.expect("clean up");
    }
}

#[tokio::test]
async fn lists_and_counters() {
    for (c, _) in caches().await {
        for i in 0..5 {
            c.list_push("chat", &format!("m{i}"), Some(Duration::from_secs(60))).await.expect("push");
        }
        let all: Vec<String> = c.list_range("chat", 0, -1).await.expect("range");
        assert_eq!(all, ["m0", "m1", "m2", "m3", "m4"]);
        let last2: Vec<String> = c.list_range("chat", -2, -1).await.expect("range");
        assert_eq!(last2, ["m3", "m4"]);
        c.list_trim("chat", -3, -1).await.expect("trim");
        let kept: Vec<String> = c.list_range("chat", 0, -1).await.expect("range");
        assert_eq!(kept, ["m2", "m3", "m4"]);

        assert_eq!(c.incr("hits", 1, Some(Duration::from_millis(200))).await.expect("incr"), 1);
        assert_eq!(c.incr("hits", 5, Some(Duration::from_millis(200))).await.expect("incr"), 6);
        assert_eq!(c.get::<i64>("hits").await.expect("get"), Some(6));
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(c.incr("hits", 1, None).await.expect("incr"), 1, "the TTL from creation ran out");
        c.delete_prefix("").await.expect("clean up");
    }
}

#[tokio::test]
async fn concurrent_misses_load_once() {
    for (c, _) in caches().await {
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            let loads = loads.clone();
            tasks.push(tokio::spawn(async move {
                c.get_or_load::<Player, StoreError, _, _>("hot", Some(Duration::from_secs(30)), || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Player { id: 1, name: "loaded".into(), items: vec![] })
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("value").name, "loaded");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "100 concurrent misses, one load");
        // A loader error reaches its caller and is not cached.
        let r = c
            .get_or_load::<u8, StoreError, _, _>("bad", None, || async { Err(StoreError::Config("nope".into())) })
            .await;
        assert!(matches!(r, Err(StoreError::Config(_))));
        assert_eq!(c.get::<u8>("bad").await.expect("get"), None);
        c.delete_prefix("").await.expect("clean up");
    }
}

#[tokio::test]
async fn redis_going_away_falls_back_to_the_loader_and_reconnects() {
    // This test also starts its own redis-server.
    if rsgame_testkit::service("RSGAME_TEST_REDIS_URL").is_none() {
        return;
    }
    let port = free_port();
    let server = OwnRedis::start(port).expect("redis-server starts (installed with Redis)");
    let c = Cache::redis(&format!("redis://127.0.0.1:{}", server.port), &prefix()).await.expect("connect");
    c.set("k", &1u32, None).await.expect("set");

    drop(server);
    // Reads fall back to the loader; writes fail and are reported, nothing panics.
    for _ in 0..2 {
        let v = c
            .get_or_load::<u32, StoreError, _, _>("k", None, || async { Ok(42) })
            .await
            .expect("served from the loader while Redis is down");
        assert_eq!(v, 42);
    }
    assert!(c.set("k", &2u32, None).await.is_err(), "a direct write reports the outage");

    let _server = OwnRedis::start(port).expect("restart");
    let mut back = false;
    for _ in 0..50 {
        if c.set("k", &3u32, None).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the connection came back by itself");
    assert_eq!(c.get::<u32>("k").await.expect("get"), Some(3));
}

#[tokio::test]
async fn redis_over_tls_checks_the_certificate() {
    // This test also starts its own redis-server.
    if rsgame_testkit::service("RSGAME_TEST_REDIS_URL").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (_server, ca) = OwnRedis::start_tls(port, dir.path()).expect("redis-server with TLS");
    let url = format!("rediss://127.0.0.1:{port}");
    let c = Cache::redis_tls(&url, &prefix(), Some(&ca)).await.expect("TLS cache with our CA");
    c.set("k", &Player { id: 1, name: "tls".into(), items: vec![] }, None).await.expect("set over TLS");
    let back: Option<Player> = c.get("k").await.expect("get");
    assert_eq!(back.map(|p| p.name).as_deref(), Some("tls"));

    // The same server is refused without its CA (the system's roots do not know it), and a
    // plain connection to the TLS port does not work either.
    assert!(Cache::redis(&url, &prefix()).await.is_err(), "an unknown certificate is refused");
    let plain = Cache::redis(&format!("redis://127.0.0.1:{port}"), &prefix()).await;
    assert!(plain.is_err() || plain.expect("cache").ping().await.is_err(), "plain text to a TLS port fails");

    let bus = rsgame_store::Bus::redis_tls(&url, &prefix(), rsgame_store::BusOptions::default(), Some(&ca))
        .await
        .expect("TLS bus");
    let mut sub = bus.subscribe("t", "g").await.expect("sub");
    bus.publish("t", b"over tls").await.expect("publish");
    let d = tokio::time::timeout(Duration::from_secs(3), sub.next()).await.expect("delivered").expect("some");
    assert_eq!(d.payload, b"over tls");
}

/// A full in-process cache still keeps what was just written: a flood of one-off keys (QR
/// tickets from a stranger) must not make every new captcha vanish at once.
#[tokio::test]
async fn a_flooded_memory_cache_keeps_new_entries() {
    let c = Cache::memory(1_000, &prefix());
    for i in 0..5_000 {
        c.set(&format!("flood:{i}"), &i, Some(Duration::from_secs(120))).await.expect("flood");
    }
    c.set("captcha:victim", &"abcde", Some(Duration::from_secs(120))).await.expect("set");
    for i in 5_000..5_200 {
        c.set(&format!("flood:{i}"), &i, Some(Duration::from_secs(120))).await.expect("flood");
    }
    assert_eq!(
        c.get::<String>("captcha:victim").await.expect("get").as_deref(),
        Some("abcde"),
        "a new entry outlives fewer newer ones than the capacity"
    );
}
