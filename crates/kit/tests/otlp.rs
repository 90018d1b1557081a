//! Trace export over OTLP/gRPC to a real collector (rotel in CI), and the failure a missing
//! collector must produce.

use std::time::{Duration, Instant};

use rsgame_kit::config::TraceConfig;
use rsgame_kit::telemetry::otel;
use tracing_subscriber::layer::SubscriberExt as _;

fn cfg(endpoint: String) -> TraceConfig {
    TraceConfig { otlp_endpoint: endpoint, sample_ratio: 1.0, export_timeout_ms: 3000 }
}

/// Emits one span named `name` through the tracing → OpenTelemetry layer, then flushes.
async fn emit_and_flush(cfg: TraceConfig, name: String) -> Result<(), String> {
    let provider = otel::build_provider(&cfg, "rsgame-otlp-test")?;
    let subscriber = tracing_subscriber::registry().with(otel::layer(&provider));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("probe", otel.name = %name, test.kind = "otlp");
        let _entered = span.enter();
        tracing::info!("inside the probe span");
    });
    // force_flush blocks until the batch thread has exported; that thread drives tonic on
    // this runtime, so block a worker that is allowed to block.
    let result = tokio::task::spawn_blocking(move || {
        let r = provider.force_flush();
        let _ = provider.shutdown();
        r
    })
    .await
    .map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_collector() {
    let Some(endpoint) = rsgame_testkit::service("RSGAME_TEST_OTLP_ENDPOINT") else {
        return;
    };
    let name = format!("otlp-probe-{}", uuid_like());
    emit_and_flush(cfg(endpoint.clone()), name.clone())
        .await
        .unwrap_or_else(|e| panic!("export to {endpoint} failed: {e}"));

    // The collector prints what it receives; when CI tells us where, the span must be there.
    match std::env::var("RSGAME_TEST_OTLP_LOG") {
        Ok(path) => {
            let start = Instant::now();
            loop {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.contains(&name) {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(10), "span {name} not in collector log {path}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Err(_) => eprintln!("RSGAME_TEST_OTLP_LOG not set: checked the export call only"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_a_missing_collector_fails() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let result = emit_and_flush(cfg(format!("http://127.0.0.1:{port}")), "lost".into()).await;
    assert!(result.is_err(), "export with no collector must report failure");
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{nanos:x}-{}", std::process::id())
}
