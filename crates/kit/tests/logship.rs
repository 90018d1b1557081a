//! Log shipping as `telemetry::init` wires it: the global subscriber, the senders' thread, the
//! metrics, and the flush at shutdown, against a local `_bulk` receiver. One test: a process
//! has one global subscriber and one metrics recorder.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use rsgame_kit::config::{LogConfig, MetricsConfig, TraceConfig};
use rsgame_kit::telemetry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_ships_to_elasticsearch_and_flushes_at_shutdown() {
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/_bulk",
            axum::routing::post(|State(b): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                b.lock().expect("lock").push(body);
                r#"{"errors":false,"items":[]}"#
            }),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut log = LogConfig { console: false, level: "info".into(), ..LogConfig::default() };
    log.elasticsearch.url = url;
    log.elasticsearch.index = "rsgame-e2e".into();
    log.ship.level = "warn".into();
    // A batch would wait an hour: only the shutdown flush sends it.
    log.ship.flush_ms = 3_600_000;
    let (trace, metrics) = (TraceConfig::default(), MetricsConfig::default());
    let t = telemetry::init(telemetry::Settings { service: "rsgame", log: &log, trace: &trace, metrics: &metrics })
        .expect("telemetry");
    let metrics = t.metrics().expect("metrics on by default");

    tracing::info!(target: "game", "below log.ship.level: not shipped");
    tracing::warn!(target: "game", room = 7, "a shipped warning");
    tracing::warn!(target: "rsgame_kit::telemetry::ship", "the shipper's own: never shipped");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(bodies.lock().expect("lock").is_empty(), "nothing sent before the batch is due");
    let stats = t.ship_stats();
    assert_eq!((stats.len(), stats[0].sink.as_str(), stats[0].held), (1, "elasticsearch", 1), "{stats:?}");

    tokio::task::spawn_blocking(move || t.shutdown()).await.expect("shutdown");

    let bodies = bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let lines: Vec<&str> = bodies[0].lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], r#"{"index":{"_index":"rsgame-e2e"}}"#);
    let v: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    assert_eq!(v["fields"]["message"], "a shipped warning");
    assert_eq!(v["fields"]["room"], 7);
    let text = metrics.render();
    assert!(text.contains(r#"rsgame_log_ship_sent_total{sink="elasticsearch"} 1"#), "{text}");
    assert!(text.contains(r#"rsgame_log_ship_dropped_total{sink="elasticsearch"} 0"#), "{text}");
}
