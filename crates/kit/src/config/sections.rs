//! The sections kit's own code reads: `app`, `http`, `tls`, `log`, `metrics`, `trace`,
//! `shutdown`, `governance` and `auth`. Each checks its own values ([`Section::check`]);
//! a process composes them with the other crates' sections into the tree it loads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Invalid, Secret, Section};
use crate::error::ErrorStatus;

/// `app.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// Service name in logs, metrics and traces.
    pub name: String,
    /// Folder for local state (the SQLite file, uploaded files).
    pub data_dir: PathBuf,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig { name: "rsgame".into(), data_dir: PathBuf::from("./data") }
    }
}

/// `http.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to bind.
    pub host: String,
    /// Port; 0 picks a free one (tests).
    pub port: u16,
    /// `compat`: HTTP 200 for every envelope, as go-game; `matching`: a status matching the
    /// error code.
    pub error_status: ErrorStatus,
    /// Serve the browser client (built into the binary) at `/` in a process that runs
    /// `usercenter-api`.
    pub web_client: bool,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the real
    /// client; from any other peer the header is ignored. Empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Seconds a connection may take to send a request's headers, counted from when it
    /// starts waiting for one: also how long a kept-alive connection may sit idle, and how
    /// long a TLS handshake may take.
    pub header_timeout_secs: u64,
    /// Open HTTP connections over all clients (WebSocket ones until their upgrade); `0`:
    /// no limit.
    pub max_connections: usize,
    /// Open HTTP connections from one address (trusted proxies exempt); `0`: no limit.
    pub max_connections_per_ip: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "0.0.0.0".into(),
            port: 8888,
            error_status: ErrorStatus::Compat,
            web_client: true,
            trusted_proxies: Vec::new(),
            header_timeout_secs: 10,
            max_connections: 10_000,
            max_connections_per_ip: 256,
        }
    }
}

/// `tls.*` — one certificate for the HTTP listener (https, wss) and the TCP gate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. TLS is on when this and `key_file` are set.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Serve the HTTP listener (REST, `wss://…/ws`) over TLS.
    pub http: bool,
    /// Serve the TCP gate over TLS.
    pub gate_tcp: bool,
}

impl TlsConfig {
    /// Whether a certificate is configured.
    pub fn configured(&self) -> bool {
        !self.cert_file.is_empty() && !self.key_file.is_empty()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event.
    Json,
}

/// When a log file is rotated.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// A new file every day.
    #[default]
    Daily,
    /// A new file every hour.
    Hourly,
    /// A new file when the current one reaches `max_size_mb`.
    Size,
    /// One file, never rotated.
    Never,
}

/// `log.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Console format.
    pub format: LogFormat,
    /// Default level (`trace`…`error`), or a full filter such as `info,rsgame_gate=debug`.
    /// `RUST_LOG`, when set, replaces this and `modules`.
    pub level: String,
    /// Level per module (`rsgame_gate: debug`).
    pub modules: BTreeMap<String, String>,
    /// Whether to write to the console at all.
    pub console: bool,
    /// Rotating files (go-game's "file mode").
    pub file: LogFileConfig,
    /// Shipping to a Kafka topic (go-game's `gogame-log`).
    pub kafka: LogKafkaConfig,
    /// Shipping to Elasticsearch's `_bulk` API.
    pub elasticsearch: LogElasticsearchConfig,
    /// What the shippers (Kafka, Elasticsearch) share: queue, batches, level.
    pub ship: LogShipConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
            modules: BTreeMap::new(),
            console: true,
            file: LogFileConfig::default(),
            kafka: LogKafkaConfig::default(),
            elasticsearch: LogElasticsearchConfig::default(),
            ship: LogShipConfig::default(),
        }
    }
}

/// `log.file.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogFileConfig {
    /// Write log files.
    pub enabled: bool,
    /// Folder for the files; created if missing.
    pub path: PathBuf,
    /// File name prefix: `rsgame.log`, `rsgame.log.2026-11-26`, `rsgame.log.1`.
    pub prefix: String,
    /// File format; JSON suits log shippers.
    pub format: LogFormat,
    /// `daily`, `hourly`, `size` or `never`.
    pub rotation: Rotation,
    /// Size at which a file rotates, with `rotation: size`.
    pub max_size_mb: u64,
    /// How many rotated files to keep.
    pub keep: usize,
}

impl Default for LogFileConfig {
    fn default() -> Self {
        LogFileConfig {
            enabled: false,
            path: PathBuf::from("./logs"),
            prefix: "rsgame".into(),
            format: LogFormat::Json,
            rotation: Rotation::Daily,
            max_size_mb: 100,
            keep: 7,
        }
    }
}

/// `log.kafka.*` — log lines as JSON records on a Kafka topic, as go-game's log consumers
/// expect them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogKafkaConfig {
    /// Brokers, `host:port` separated by commas; empty turns Kafka shipping off.
    pub brokers: String,
    /// Topic the lines go to (created if missing, with the broker's default partitions and
    /// replication).
    pub topic: String,
}

impl Default for LogKafkaConfig {
    fn default() -> Self {
        LogKafkaConfig { brokers: String::new(), topic: "gogame-log".into() }
    }
}

/// `log.elasticsearch.*` — log lines indexed through Elasticsearch's (or OpenSearch's)
/// `_bulk` API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogElasticsearchConfig {
    /// Base URL, `http://127.0.0.1:9200` (https and `user:password@` work too); empty turns
    /// Elasticsearch shipping off.
    pub url: String,
    /// Index the lines go to.
    pub index: String,
}

impl Default for LogElasticsearchConfig {
    fn default() -> Self {
        LogElasticsearchConfig { url: String::new(), index: "rsgame-logs".into() }
    }
}

/// `log.ship.*` — how lines reach the shippers. Memory is bounded: when a sink is down or
/// slow, lines beyond `queue` are dropped (and counted in `rsgame_log_ship_dropped_total`)
/// instead of slowing the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogShipConfig {
    /// Most lines held in memory per sink, waiting or being retried.
    pub queue: usize,
    /// Most lines sent in one request.
    pub batch: usize,
    /// Longest a line waits for its batch to fill, milliseconds.
    pub flush_ms: u64,
    /// Level of shipped lines (a level or a filter like `log.level`); lines must also pass
    /// `log.level`.
    pub level: String,
}

impl Default for LogShipConfig {
    fn default() -> Self {
        LogShipConfig { queue: 10_000, batch: 500, flush_ms: 1000, level: "info".into() }
    }
}

/// `metrics.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics on the HTTP listener.
    pub enabled: bool,
    /// Path of the metrics endpoint.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, path: "/metrics".into() }
    }
}

/// `trace.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// OTLP/gRPC collector endpoint (`http://127.0.0.1:4317`); empty turns tracing export off.
    pub otlp_endpoint: String,
    /// Fraction of new traces sampled, 0.0 to 1.0; a sampled parent is always followed.
    pub sample_ratio: f64,
    /// Time allowed for one export call.
    pub export_timeout_ms: u64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig { otlp_endpoint: String::new(), sample_ratio: 1.0, export_timeout_ms: 5000 }
    }
}

/// `shutdown.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Time in-flight work and shutdown hooks get after SIGINT/SIGTERM before the process
    /// exits anyway.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_secs: 10 }
    }
}

/// `governance.*` — what keeps REST routes up under load, in the manner of go-zero: a
/// deadline per request, a rate limit per client IP, and adaptive load shedding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// The longest a REST request may take, milliseconds; past it the client gets 400504
    /// and the handler is cancelled (0: no limit). Above the 20 s of loginScan's long poll;
    /// multipart uploads are exempt.
    pub timeout_ms: u64,
    /// Requests per second per client IP, sustained (0: no limit); beyond it 400502.
    pub rate_per_sec: u32,
    /// Requests a client IP may burst above the rate.
    pub rate_burst: u32,
    /// Requests per second per client IP to the routes a stranger reaches without a token
    /// (register, login, refresh, QR login, captcha, codes), sustained; beyond it 400502.
    /// On by default, unlike `rate_per_sec`. 0: no limit.
    pub public_rate_per_sec: u32,
    /// Requests a client IP may burst above `public_rate_per_sec`.
    pub public_rate_burst: u32,
    /// Shed load adaptively: when this process's CPU is above `shed_cpu_percent` and more
    /// requests are in flight than the server has recently shown it can finish, new ones
    /// get 400503 at once instead of queueing.
    pub shedding: bool,
    /// This process's CPU use (percent of the cores it may use) from which shedding may start.
    pub shed_cpu_percent: u32,
    /// gRPC calls per second per calling IP, sustained (0: no limit); beyond it the caller
    /// gets `RESOURCE_EXHAUSTED` (400502). gRPC servers also shed load and honour the
    /// caller's deadline.
    pub rpc_rate_per_sec: u32,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        GovernanceConfig {
            timeout_ms: 30_000,
            rate_per_sec: 0,
            rate_burst: 50,
            public_rate_per_sec: 10,
            public_rate_burst: 60,
            shedding: true,
            shed_cpu_percent: 90,
            rpc_rate_per_sec: 0,
        }
    }
}

/// `auth.*` — read by usercenter and by every authenticated path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC secret for access tokens. Empty: a random one is made at start-up, so tokens do
    /// not survive a restart; set it in production.
    pub jwt_secret: Secret,
    /// Access token lifetime, seconds (go-game's `accessExpire`).
    pub access_expire_secs: u64,
    /// Seconds after which a client should refresh (go-game's `refreshAfter`).
    pub refresh_after_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { jwt_secret: Secret::default(), access_expire_secs: 86_400, refresh_after_secs: 43_200 }
    }
}

impl Section for AppConfig {}

impl Section for HttpConfig {
    fn check(&self) -> Result<(), Invalid> {
        crate::proxy::TrustedProxies::parse(&self.trusted_proxies).map_err(|e| Invalid::new("trusted_proxies", e))?;
        Ok(())
    }
}

impl Section for TlsConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(Invalid::new("key_file", "tls.cert_file and tls.key_file must be set together"));
        }
        if (self.http || self.gate_tcp) && !self.configured() {
            return Err(Invalid::new("cert_file", "tls.http or tls.gate_tcp is on but no certificate is set"));
        }
        Ok(())
    }
}

impl Section for LogConfig {
    fn check(&self) -> Result<(), Invalid> {
        crate::telemetry::filter_directives(self).map_err(|e| Invalid::new("level", e))?;
        self.file.check().map_err(|e| e.under("file"))
    }
}

impl Section for LogFileConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.keep == 0 {
            return Err(Invalid::new("keep", "must be at least 1"));
        }
        if self.max_size_mb == 0 {
            return Err(Invalid::new("max_size_mb", "must be at least 1"));
        }
        if self.prefix.is_empty() || self.prefix.contains('/') {
            return Err(Invalid::new("prefix", "must be a plain file name"));
        }
        Ok(())
    }
}

impl Section for MetricsConfig {
    fn check(&self) -> Result<(), Invalid> {
        if !self.path.starts_with('/') || self.path.len() < 2 {
            return Err(Invalid::new("path", format!("must be a path like /metrics, got {:?}", self.path)));
        }
        Ok(())
    }
}

impl Section for TraceConfig {
    fn check(&self) -> Result<(), Invalid> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(Invalid::new(
                "sample_ratio",
                format!("must be between 0.0 and 1.0, got {}", self.sample_ratio),
            ));
        }
        let ep = &self.otlp_endpoint;
        if !(ep.is_empty() || ep.starts_with("http://") || ep.starts_with("https://")) {
            return Err(Invalid::new("otlp_endpoint", "must start with http:// or https://"));
        }
        Ok(())
    }
}

impl Section for ShutdownConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.grace_secs > 3600 {
            return Err(Invalid::new("grace_secs", "must be at most 3600"));
        }
        Ok(())
    }
}

impl Section for GovernanceConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.rate_per_sec > 0 && self.rate_burst == 0 {
            return Err(Invalid::new("rate_burst", "must be at least 1 when governance.rate_per_sec is set"));
        }
        if !(1..=100).contains(&self.shed_cpu_percent) {
            return Err(Invalid::new("shed_cpu_percent", "must be between 1 and 100"));
        }
        Ok(())
    }
}

/// How strong `jwt_secret` must be depends on whether the HTTP listener is reachable from
/// other machines, which this section cannot see: the process that composes both checks it
/// with [`weak_secret`](super::weak_secret).
impl Section for AuthConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.access_expire_secs == 0 {
            return Err(Invalid::new("access_expire_secs", "must be at least 1"));
        }
        if self.refresh_after_secs > self.access_expire_secs {
            return Err(Invalid::new("refresh_after_secs", "must not exceed auth.access_expire_secs"));
        }
        Ok(())
    }
}
