//! The Kafka log sink: lines shipped through the toolkit's shipper reach a real broker
//! (`RSGAME_TEST_KAFKA_BROKERS`, tansu in CI) and are consumed back; a broker that is down
//! fails a send quickly instead of holding it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use rsgame_kit::config::LogKafkaConfig;
use rsgame_kit::telemetry::ship::{Line, LogSink, ShipOptions, Shipper, SinkError};
use rsgame_store::KafkaLogSink;

fn unique(what: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("rsgame-test-{what}-{}-{n}", std::process::id())
}

/// Reads every record of `topic` from the beginning until `want` have arrived (or 30 s).
async fn consume(brokers: &str, topic: &str, want: usize) -> Vec<(Option<Vec<u8>>, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("logship-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Assigned, not subscribed: no group to join, every partition from its start.
    let (c, t) = (consumer, topic.to_owned());
    let consumer = tokio::task::spawn_blocking(move || {
        let md = c.fetch_metadata(Some(&t), Duration::from_secs(10)).expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in md.topics().iter().flat_map(|t| t.partitions()) {
            tpl.add_partition_offset(&t, p.id(), Offset::Beginning).expect("partition");
        }
        assert!(tpl.count() > 0, "topic {t} has partitions");
        c.assign(&tpl).expect("assign");
        c
    })
    .await
    .expect("join");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => got.push((
                m.key().map(<[u8]>::to_vec),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Ok(Err(e)) => eprintln!("consumer: {e}"),
            Err(_) => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_lines_reach_the_topic_and_the_last_ones_are_flushed_at_shutdown() {
    let Some(brokers) = rsgame_testkit::service("RSGAME_TEST_KAFKA_BROKERS") else {
        return;
    };
    let topic = unique("logship");
    let sink = KafkaLogSink::new(&LogKafkaConfig { brokers: brokers.clone(), topic: topic.clone() }).expect("sink");
    assert_eq!(sink.name(), "kafka");
    // Batches of 10 go at once; the last 5 would wait an hour for theirs, so only the
    // shutdown flush sends them.
    let opts = ShipOptions { queue: 100, batch: 10, flush: Duration::from_secs(3600), ..ShipOptions::default() };
    let (shipper, workers) = Shipper::new(vec![Arc::new(sink)], opts);
    let guard = workers.start_thread().expect("senders");
    let lines: Vec<String> =
        (0..25).map(|i| format!(r#"{{"level":"INFO","fields":{{"message":"line {i}"}}}}"#)).collect();
    for l in &lines {
        shipper.push(l);
    }
    let start = std::time::Instant::now();
    while shipper.stats()[0].sent < 20 {
        assert!(start.elapsed() < Duration::from_secs(30), "two batches delivered: {:?}", shipper.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::spawn_blocking(move || guard.shutdown()).await.expect("shutdown");
    let s = &shipper.stats()[0];
    assert_eq!((s.sent, s.dropped, s.held), (25, 0, 0), "{s:?}");

    let got = consume(&brokers, &topic, lines.len()).await;
    assert!(got.iter().all(|(key, _)| key.is_none()), "records have no key");
    let got: BTreeSet<String> = got.into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, lines.iter().cloned().collect::<BTreeSet<_>>());

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("admin");
    let _ = admin.delete_topics(&[topic.as_str()], &AdminOptions::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_fails_the_send_quickly() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let sink = KafkaLogSink::new(&LogKafkaConfig { brokers: format!("127.0.0.1:{port}"), topic: unique("down") })
        .expect("a sink is built without a broker");
    let start = std::time::Instant::now();
    let lines: Vec<Line> = vec![Arc::from(r#"{"n":1}"#), Arc::from(r#"{"n":2}"#)];
    match sink.send(&lines).await {
        Err(SinkError::Failed(reason)) => eprintln!("failed as expected: {reason}"),
        other => panic!("expected the whole batch to fail, got {other:?}"),
    }
    // Within the shipper's send timeout, so the sink's own error is what gets reported.
    assert!(start.elapsed() < ShipOptions::default().send_timeout, "{:?}", start.elapsed());
}
