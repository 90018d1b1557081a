//! Telemetry for one process: logs (console and rotating files, human or JSON, level per
//! module; shipped to Kafka or Elasticsearch), Prometheus metrics, and OpenTelemetry traces.
//!
//! [`init`] installs all three once at start-up and returns a [`Telemetry`] guard; dropping
//! it (or calling [`Telemetry::shutdown`]) flushes buffered log lines, delivers the shipped
//! lines still held and exports the spans still queued, which is what a graceful shutdown
//! needs last. [`init_with_sinks`] is the same with log sinks built elsewhere (the Kafka
//! one lives in the storage crate).

pub mod metrics;
pub mod otel;
pub mod rolling;
pub mod sampled;
pub mod ship;

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat, MetricsConfig, TraceConfig};
pub use metrics::Metrics;
pub use ship::{LogSink, SinkStats};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log file could not be opened.
    #[error("cannot open log file in {dir}: {source}")]
    LogFile {
        /// The configured folder.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log filter is invalid (from `RUST_LOG`).
    #[error("invalid log filter: {0}")]
    Filter(String),
    /// A global subscriber or recorder was already installed.
    #[error("telemetry already initialised: {0}")]
    AlreadyInit(String),
    /// The trace exporter could not be built.
    #[error("tracing export: {0}")]
    Otlp(String),
    /// Log shipping is misconfigured (the text names the key) or could not start.
    #[error("log shipping: {0}")]
    Ship(String),
}

/// Keeps telemetry running; see the module docs.
pub struct Telemetry {
    metrics: Option<Metrics>,
    tracer: Option<SdkTracerProvider>,
    log_guards: Vec<WorkerGuard>,
    /// The log shipping senders and their counters, when some sink is configured.
    ship: Option<(ship::Shipper, ship::ShipGuard)>,
}

impl Telemetry {
    /// The metrics renderer, when metrics are enabled.
    pub fn metrics(&self) -> Option<Metrics> {
        self.metrics.clone()
    }

    /// Each log sink's counters (sent, dropped, errors, held); empty when nothing is shipped.
    pub fn ship_stats(&self) -> Vec<SinkStats> {
        self.ship.as_ref().map(|(s, _)| s.stats()).unwrap_or_default()
    }

    /// Delivers the shipped lines still held (5 s at most), exports queued spans and flushes
    /// log files. Call last: log lines written after this may be lost.
    pub fn shutdown(mut self) {
        // First, while the console and files still take the shippers' last warnings.
        if let Some((_, guard)) = self.ship.take() {
            guard.shutdown();
        }
        if let Some(p) = self.tracer.take() {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "trace export did not finish");
            }
        }
        // Dropping the guards joins the writer threads after they drain their queues.
        self.log_guards.clear();
    }
}

/// The filter directives from `log.level` and `log.modules`: `info,rsgame_gate=debug`.
/// Returns an error text if they do not parse.
pub fn filter_directives(cfg: &LogConfig) -> Result<String, String> {
    directives(&cfg.level, &cfg.modules)
}

/// [`filter_directives`] for a level (or filter) and levels per module.
fn directives(level_or_filter: &str, modules: &BTreeMap<String, String>) -> Result<String, String> {
    use tracing_subscriber::filter::LevelFilter;
    // A bare word parses as a target name to tracing ("loud" = everything from target
    // `loud`), so a typo in a level would silently log nothing; here every level must be one.
    let level = |s: &str| {
        s.trim()
            .parse::<LevelFilter>()
            .map(|_| ())
            .map_err(|_| format!("{s:?} is not a level (trace, debug, info, warn, error, off)"))
    };
    let mut d = String::new();
    for part in level_or_filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.rsplit_once('=') {
            Some((_, l)) => level(l)?,
            None => level(part)?,
        }
        part.parse::<tracing_subscriber::filter::Directive>().map_err(|e| format!("{part:?}: {e}"))?;
        d.push_str(part);
        d.push(',');
    }
    for (module, l) in modules {
        level(l)?;
        d.push_str(&format!("{module}={l},"));
    }
    d.pop();
    Ok(d)
}

/// What telemetry reads, borrowed from whichever configuration tree the process composed.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The service name in logs, metrics and traces (`app.name`).
    pub service: &'a str,
    /// `log.*`.
    pub log: &'a LogConfig,
    /// `trace.*`.
    pub trace: &'a TraceConfig,
    /// `metrics.*`.
    pub metrics: &'a MetricsConfig,
}

/// Installs logging, metrics and (when configured) trace export for this process. Must run
/// inside a Tokio runtime when `trace.otlp_endpoint` is set. Ships logs to Elasticsearch when
/// `log.elasticsearch.url` is set; Kafka needs [`init_with_sinks`].
pub fn init(cfg: Settings<'_>) -> Result<Telemetry, TelemetryError> {
    init_with_sinks(cfg, Vec::new())
}

/// [`init`], shipping logs to `sinks` as well as to the Elasticsearch sink that
/// `log.elasticsearch.url` configures. The binary passes the Kafka sink here
/// (`rsgame_store::logship::sinks(&cfg.log)`), since this crate cannot depend on Kafka's
/// client. With no sink at all, nothing is shipped and no thread is started.
pub fn init_with_sinks(cfg: Settings<'_>, mut sinks: Vec<Arc<dyn LogSink>>) -> Result<Telemetry, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| TelemetryError::Filter(format!("RUST_LOG={v}: {e}")))?
        }
        _ => EnvFilter::try_new(filter_directives(cfg.log).map_err(TelemetryError::Filter)?)
            .map_err(|e| TelemetryError::Filter(e.to_string()))?,
    };

    let mut guards = Vec::new();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();

    if cfg.log.console {
        let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(std::io::stdout());
        guards.push(guard);
        layers.push(fmt_layer(cfg.log.format, writer, true));
    }
    if cfg.log.file.enabled {
        let f = &cfg.log.file;
        let file = rolling::RollingFile::open(&f.path, &f.prefix, f.rotation, f.max_size_mb * 1024 * 1024, f.keep)
            .map_err(|source| TelemetryError::LogFile { dir: f.path.display().to_string(), source })?;
        // Lossless: a full queue makes the logging thread wait rather than drop lines.
        let (writer, guard) = NonBlockingBuilder::default().lossy(false).thread_name("log-file").finish(file);
        guards.push(guard);
        layers.push(fmt_layer(f.format, writer, false));
    }
    let es = &cfg.log.elasticsearch;
    if !es.url.is_empty() {
        let sink = ship::elasticsearch::Elasticsearch::new(&es.url, &es.index).map_err(|e| {
            let url = crate::config::mask_url_password(&es.url).unwrap_or_else(|| es.url.clone());
            TelemetryError::Ship(format!("log.elasticsearch ({url}): {e}"))
        })?;
        sinks.insert(0, Arc::new(sink));
    }
    let kafka_missing = !cfg.log.kafka.brokers.trim().is_empty() && !sinks.iter().any(|s| s.name() == "kafka");
    let shipping = if sinks.is_empty() {
        None
    } else {
        let opts = ship::ShipOptions::from_config(&cfg.log.ship).map_err(TelemetryError::Ship)?;
        let level = directives(&cfg.log.ship.level, &BTreeMap::new())
            .and_then(|d| EnvFilter::try_new(d).map_err(|e| e.to_string()))
            .map_err(|e| TelemetryError::Ship(format!("log.ship.level: {e}")))?;
        let (shipper, workers) = ship::Shipper::new(sinks, opts);
        layers.push(Box::new(shipper.layer(level)));
        Some((shipper, workers))
    };
    let tracer = if cfg.trace.otlp_endpoint.is_empty() {
        None
    } else {
        let provider = otel::build_provider(cfg.trace, cfg.service).map_err(TelemetryError::Otlp)?;
        layers.push(Box::new(otel::layer(&provider)));
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        Some(provider)
    };

    tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInit(e.to_string()))?;

    let metrics =
        if cfg.metrics.enabled { Some(Metrics::install().map_err(TelemetryError::AlreadyInit)?) } else { None };
    // Started after the metrics recorder, so the senders' counters go to it. Lines logged
    // until then wait in the queues.
    let ship = match shipping {
        Some((shipper, workers)) => {
            let guard =
                workers.start_thread().map_err(|e| TelemetryError::Ship(format!("starting its thread: {e}")))?;
            Some((shipper, guard))
        }
        None => None,
    };
    if kafka_missing {
        tracing::warn!(
            "log.kafka.brokers is set, but this process was started without a Kafka log sink: not shipping to Kafka"
        );
    }
    Ok(Telemetry { metrics, tracer, log_guards: guards, ship })
}

fn fmt_layer<W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true);
    match format {
        LogFormat::Human => Box::new(base.with_ansi(ansi && std::io::IsTerminal::is_terminal(&std::io::stdout()))),
        // The current span's fields (request id, route) go on every JSON line.
        LogFormat::Json => Box::new(base.json().with_current_span(true).with_span_list(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_join_level_and_modules() {
        let mut cfg = LogConfig::default();
        cfg.modules.insert("rsgame_gate".into(), "debug".into());
        assert_eq!(filter_directives(&cfg).expect("valid"), "info,rsgame_gate=debug");
        cfg.level = "verbose".into();
        assert!(filter_directives(&cfg).is_err());
        cfg.level = "warn".into();
        cfg.modules.insert("x".into(), "loud".into());
        assert!(filter_directives(&cfg).is_err());
    }
}
