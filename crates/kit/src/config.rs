//! Configuration: built-in defaults, then one YAML file, then `RSGAME_*` environment variables.
//!
//! Every struct denies unknown keys, so a typo stops start-up instead of being ignored; every
//! error names the key and where its value came from (the file or the environment variable).
//! Environment values are typed by the default value at the same key: `RSGAME_HTTP__PORT=9000`
//! becomes a number because `http.port` is one, while `RSGAME_AUTH__JWT_SECRET=12345` stays a
//! string.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use crate::error::ErrorStatus;

/// Prefix of the environment variables that override configuration.
pub const ENV_PREFIX: &str = "RSGAME_";
/// Environment variable naming the configuration file (like `--config`).
pub const ENV_CONFIG_FILE: &str = "RSGAME_CONFIG";
/// Environment variables that start with [`ENV_PREFIX`] but are not configuration: the file
/// name itself and the integration tests' service URLs.
const ENV_NOT_CONFIG: [&str; 2] = ["RSGAME_CONFIG", "RSGAME_TEST_"];

/// The whole configuration of an rsgame process. Each section documents its keys; the same
/// text, with defaults, is in `docs/configuration.md` and `rsgame.example.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process identity and local data.
    pub app: AppConfig,
    /// The HTTP listener (REST, WebSocket, web client, metrics, health).
    pub http: HttpConfig,
    /// Long-lived game connections.
    pub gate: GateConfig,
    /// TLS for the HTTP listener and the TCP gate.
    pub tls: TlsConfig,
    /// Logs: console and rotating files.
    pub log: LogConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces.
    pub trace: TraceConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// The relational database.
    pub database: DatabaseConfig,
    /// Tokens.
    pub auth: AuthConfig,
    /// The cache.
    pub cache: CacheConfig,
    /// The message bus.
    pub bus: BusConfig,
    /// Accounts and login protection.
    pub usercenter: UsercenterConfig,
    /// Captchas, verification codes and files.
    pub basic: BasicConfig,
    /// gRPC servers and the services' remote addresses.
    pub rpc: RpcConfig,
    /// The game service.
    pub game: GameConfig,
    /// The real-time world of the game node.
    pub world: WorldConfig,
    /// Request governance for REST routes: timeouts, rate limits, load shedding.
    pub governance: GovernanceConfig,
    /// Service discovery through etcd.
    pub discovery: DiscoveryConfig,
    /// This process as a game node among others.
    pub node: NodeConfig,
}

/// `discovery.*` — where processes find each other. With `etcd_endpoints` set, every gRPC
/// role registers its address under a lease (`{prefix}services/{name}/{addr}`), every game
/// node registers itself (`{prefix}nodes/{id}`), and `rpc.*_url: etcd` clients watch them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// etcd client URLs (`http://127.0.0.1:2379`); empty: no registration, static URLs only.
    pub etcd_endpoints: Vec<String>,
    /// Key prefix of everything rsgame writes to etcd.
    pub prefix: String,
    /// Lease time-to-live, seconds: a process that dies silently leaves the directory this
    /// long after its last keep-alive.
    pub lease_ttl_secs: u64,
    /// The host other processes reach this one at (registered with each gRPC port); empty:
    /// `rpc.host`, or, when that is a wildcard address, the address this machine reaches
    /// etcd from.
    pub advertise_host: String,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            etcd_endpoints: Vec::new(),
            prefix: "/rsgame/".into(),
            lease_ttl_secs: 10,
            advertise_host: String::new(),
        }
    }
}

/// `node.*` — a game node's identity among several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The node's unique name (in etcd, presence and bus subjects); empty: `{host name}-{gate
    /// port}`.
    pub id: String,
    /// The WebSocket URL clients are sent to for this node (`ws://eu1.example.com:8888/ws`);
    /// empty: the path `/ws` (one node behind the same address as the REST API).
    pub public_url: String,
    /// How long a player's presence (user → node) lives in the cache without a refresh,
    /// seconds; nodes refresh it while the player is connected.
    pub presence_ttl_secs: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig { id: String::new(), public_url: String::new(), presence_ttl_secs: 60 }
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

/// `gate.*` — long-lived game connections (zinx's role).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// Address the TCP and KCP listeners bind.
    pub host: String,
    /// Accept raw TCP connections.
    pub tcp_enabled: bool,
    /// Raw TCP game connections (go-game's port).
    pub tcp_port: u16,
    /// Body codec on TCP: `protobuf` or `json`.
    pub tcp_codec: BodyCodec,
    /// Accept WebSocket connections on the HTTP listener at `/ws` and `/wss`.
    pub ws_enabled: bool,
    /// Body codec of binary WebSocket frames, unless the client asks for another with
    /// `?codec=`; text messages are always JSON.
    pub ws_codec: BodyCodec,
    /// Accept KCP connections (reliable UDP).
    pub kcp_enabled: bool,
    /// KCP game connections over UDP (zinx's port).
    pub kcp_port: u16,
    /// Body codec on KCP.
    pub kcp_codec: BodyCodec,
    /// KCP tuning; defaults are zinx's "turbo" settings.
    pub kcp: KcpConfig,
    /// `zinx`: id u32 BE, length u32 BE (zinx ≥ 1.2, go-game). `legacy`: length u32 LE, id u32 LE.
    pub frame_layout: FrameLayoutName,
    /// Largest body accepted, bytes. A larger frame closes the connection before its body is read.
    pub max_body: u32,
    /// A session with no inbound traffic for this long is closed (go-game: 20 s).
    pub heartbeat_timeout_secs: u64,
    /// A connection that has not sent one whole frame within this time is closed (slowloris).
    pub first_frame_timeout_secs: u64,
    /// A session that has not logged in (nothing bound a user to it) within this time is
    /// closed, whatever it sends: a stranger cannot keep one open with pings. 0 = no limit
    /// (a gate whose protocol has no login).
    pub login_timeout_secs: u64,
    /// Frames queued for one session; when full the session is closed as a slow consumer.
    pub outbound_queue: usize,
    /// Most TCP, TLS and WebSocket connections at once; 0 = no limit. KCP sessions have
    /// their own (`gate.kcp.max_sessions`): UDP sources can be forged.
    pub max_connections: usize,
    /// Most TCP, TLS and WebSocket connections from one IP address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Messages per second one session may send, sustained.
    pub rate_per_sec: u32,
    /// Messages one session may send in a burst above the rate.
    pub rate_burst: u32,
    /// Bad messages (unknown id, undecodable body) a session may send before it is closed.
    pub max_bad_messages: u32,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            host: "0.0.0.0".into(),
            tcp_enabled: true,
            tcp_port: 8999,
            tcp_codec: BodyCodec::Protobuf,
            ws_enabled: true,
            ws_codec: BodyCodec::Protobuf,
            kcp_enabled: true,
            kcp_port: 9001,
            kcp_codec: BodyCodec::Protobuf,
            kcp: KcpConfig::default(),
            frame_layout: FrameLayoutName::Zinx,
            max_body: 64 * 1024,
            heartbeat_timeout_secs: 20,
            first_frame_timeout_secs: 10,
            login_timeout_secs: 15,
            outbound_queue: 256,
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            rate_per_sec: 200,
            rate_burst: 400,
            max_bad_messages: 10,
        }
    }
}

/// How a message body is encoded.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum BodyCodec {
    /// Protocol Buffers (go-game's default).
    #[default]
    Protobuf,
    /// JSON with the protobuf field names in camelCase.
    Json,
}

/// Which of zinx's frame headers is on the wire.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum FrameLayoutName {
    /// id u32 big-endian, then body length u32 big-endian (zinx ≥ 1.2).
    #[default]
    Zinx,
    /// body length u32 little-endian, then id u32 little-endian (older zinx).
    Legacy,
}

/// `gate.kcp.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KcpConfig {
    /// No-delay mode: faster retransmission.
    pub nodelay: bool,
    /// Internal update interval, milliseconds.
    pub interval_ms: u32,
    /// Fast resend after this many duplicate ACKs (0 = off).
    pub resend: u32,
    /// Turn congestion control off.
    pub no_congestion: bool,
    /// Send window, packets.
    pub send_window: u16,
    /// Receive window, packets.
    pub recv_window: u16,
    /// Largest UDP payload, bytes (64–1500).
    pub mtu: usize,
    /// A KCP session with no packets for this long is dropped by the transport.
    pub session_expire_secs: u64,
    /// Sessions only for clients that asked for a conversation id first (a stateless
    /// cookie: forged UDP sources cannot open sessions; docs/protocol.md). Off: any
    /// conversation id opens one, for clients that cannot ask (kcp-go, zinx).
    pub cookie: bool,
    /// Most KCP sessions at once; 0 = no limit. Counted apart from TCP and WebSocket: a
    /// flood of forged UDP sources fills this one, never the others.
    pub max_sessions: usize,
    /// Most KCP sessions from one IP address; 0 = no limit.
    pub max_sessions_per_ip: usize,
}

impl Default for KcpConfig {
    fn default() -> Self {
        // zinx's "turbo" profile: nodelay 1, interval 10, resend 2, nc 1, windows 32/32.
        KcpConfig {
            nodelay: true,
            interval_ms: 10,
            resend: 2,
            no_congestion: true,
            send_window: 32,
            recv_window: 32,
            mtu: 1400,
            session_expire_secs: 90,
            cookie: true,
            max_sessions: 10_000,
            max_sessions_per_ip: 64,
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

/// `database.*` — go-game's pool keys. Read by the storage layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…`, `mysql://user:pass@host/db` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Most connections open at once.
    pub max_open: u32,
    /// Connections kept open when idle.
    pub max_idle: u32,
    /// Seconds an idle connection is kept.
    pub idle_time_secs: u64,
    /// Seconds a connection lives at most.
    pub lifetime_secs: u64,
    /// Queries slower than this are logged at warn level.
    pub slow_query_ms: u64,
    /// Run pending migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://./data/rsgame.db?mode=rwc".into(),
            max_open: 20,
            max_idle: 5,
            idle_time_secs: 600,
            lifetime_secs: 3600,
            slow_query_ms: 200,
            migrate_on_start: true,
        }
    }
}

/// Which cache backend.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// In-process (moka): the embedded default.
    #[default]
    Memory,
    /// Redis at `cache.url`.
    Redis,
}

/// `cache.*` — read by the storage layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `memory` or `redis`.
    pub backend: CacheBackend,
    /// Redis URL: `redis://[:password@]host:6379/db`.
    pub url: String,
    /// Namespace put before every key.
    pub prefix: String,
    /// Most keys the in-process cache holds (least recently used evicted first: LRU).
    pub max_entries: u64,
    /// In process: most captchas, codes and QR tickets held at once. They are kept apart from
    /// the LRU, so no flood of other keys evicts them; past this a new one is refused. 0 = no
    /// limit.
    pub reserved_max: usize,
    /// In process: most captchas, codes and QR tickets one client address holds at once. 0 =
    /// no limit.
    pub reserved_per_owner: usize,
    /// With `rediss://`: a PEM file of the CA that signed Redis's certificate; empty: the
    /// system's roots.
    pub tls_ca_file: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            backend: CacheBackend::Memory,
            url: "redis://127.0.0.1:6379/0".into(),
            prefix: "rsgame:".into(),
            max_entries: 100_000,
            reserved_max: 100_000,
            reserved_per_owner: 32,
            tls_ca_file: String::new(),
        }
    }
}

/// `bus.*` — read by the storage layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `memory://`, `redis://…`, `nats://…` or `kafka://host:port[,host:port…]`.
    pub url: String,
    /// Namespace put before every topic and group.
    pub prefix: String,
    /// Messages a subscriber may hold unacknowledged.
    pub max_in_flight: usize,
    /// Seconds before a message a member took but never acknowledged goes to another member.
    pub reclaim_after_secs: u64,
    /// Messages a Redis or NATS stream keeps (older ones trimmed).
    pub max_len: u64,
    /// How long a publish retries an unreachable broker before it fails, milliseconds.
    pub publish_timeout_ms: u64,
    /// With `rediss://`: a PEM file of the CA that signed Redis's certificate; empty: the
    /// system's roots.
    pub tls_ca_file: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: "memory://".into(),
            prefix: "rsgame.".into(),
            max_in_flight: 256,
            reclaim_after_secs: 30,
            max_len: 100_000,
            publish_timeout_ms: 5_000,
            tls_ca_file: String::new(),
        }
    }
}

/// `usercenter.*` — account rules and login protection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsercenterConfig {
    /// Shortest password accepted.
    pub password_min_len: usize,
    /// Failed logins for one account from one address (within the window) after which that
    /// address needs a captcha for it.
    pub captcha_after_failures: i64,
    /// Failed logins for one account from one address after which that address is locked
    /// out of it; the same number from all addresses puts the whole account behind a
    /// captcha, and the same number made with solved captchas locks the addresses that
    /// failed on it.
    pub lock_after_failures: i64,
    /// Failed logins from one address over all accounts after which every login from it
    /// needs a captcha (well above one player's typos: players share addresses).
    pub ip_captcha_after_failures: i64,
    /// Failed logins from one address over all accounts after which it is locked out.
    pub ip_lock_after_failures: i64,
    /// The window failures are counted in, seconds.
    pub failure_window_secs: u64,
    /// How long a lock-out lasts, seconds.
    pub lock_secs: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_expire_secs: u64,
    /// Whether registering needs a captcha from basic (`captchaKey`, `captchaCode`): on for
    /// a public sign-up page, off for bots and server-side sign-ups.
    pub register_captcha: bool,
    /// Registrations from one address within an hour after which further ones need a
    /// captcha (400508) even when `register_captcha` is off. 0: never.
    pub register_captcha_after_per_ip: i64,
    /// The game nodes' WebSocket addresses, sent with every token reply (`servers`) so a
    /// client knows where to connect: absolute (`wss://eu1.example.com/ws`) or a path on
    /// the REST host (`/ws`, the monolith).
    pub game_servers: Vec<String>,
    /// Whether `loginCode` makes an account for a phone or email that has none yet (off:
    /// such a code logs nobody in, 400201).
    pub code_signup: bool,
    /// Whether two accounts may not share a nickname (checked at `update`).
    pub unique_nicknames: bool,
    /// How recent a login `delete` needs, seconds: an access token issued longer ago is
    /// refused with 400519 (a phone left unlocked does not close its owner's account).
    pub fresh_login_secs: u64,
    /// Days between an account being closed and its personal data being erased (the
    /// ledger stays, under the bare account id). 0: erased at the next sweep.
    pub delete_grace_days: u64,
    /// The WeChat mini-game's AppID; empty: `loginWechat` is off (400501).
    pub wechat_appid: String,
    /// The mini-game's AppSecret (set it from `RSGAME_USERCENTER__WECHAT_SECRET`).
    pub wechat_secret: Secret,
    /// WeChat's API base; `jscode2session` is under it. Tests point it at a local fake.
    pub wechat_url: String,
    /// How long to wait for WeChat, milliseconds.
    pub wechat_timeout_ms: u64,
}

impl Default for UsercenterConfig {
    fn default() -> Self {
        UsercenterConfig {
            password_min_len: 8,
            captcha_after_failures: 3,
            lock_after_failures: 10,
            ip_captcha_after_failures: 30,
            ip_lock_after_failures: 200,
            failure_window_secs: 900,
            lock_secs: 900,
            refresh_expire_secs: 30 * 86_400,
            register_captcha: false,
            register_captcha_after_per_ip: 10,
            game_servers: vec!["/ws".into()],
            code_signup: true,
            unique_nicknames: false,
            fresh_login_secs: 300,
            delete_grace_days: 30,
            wechat_appid: String::new(),
            wechat_secret: Secret::default(),
            wechat_url: "https://api.weixin.qq.com".into(),
            wechat_timeout_ms: 3_000,
        }
    }
}

/// `game.*` — game data and the game service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GameConfig {
    /// The folder of game data files (goods, shop, levels, exp, notices).
    pub data_dir: String,
    /// How often the data files are checked for changes, seconds (0: never reloaded).
    pub reload_secs: u64,
    /// The token server-side tools send as `X-Admin-Token` to `changeScore`; empty: the
    /// route refuses everyone.
    pub admin_token: Secret,
}

impl Default for GameConfig {
    fn default() -> Self {
        GameConfig { data_dir: "./data/game".into(), reload_secs: 2, admin_token: Secret::default() }
    }
}

/// `world.*` — the game node's real-time world: scenes, combat, rooms, chat, lockstep rooms.
/// Scenes and their monsters are game data (`world.yaml` in `game.data_dir`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// Scene ticks per second.
    pub tick_hz: u32,
    /// How often changed positions and hit points are saved, seconds (write-behind).
    pub save_secs: u64,
    /// How long a dropped player stays in its scene waiting for the client to come back.
    pub reconnect_grace_secs: u64,
    /// Fastest a player may move, units per second.
    pub max_speed: f32,
    /// Farthest a hit reaches, units.
    pub attack_range: f32,
    /// Time between two attacks of one player or monster, milliseconds.
    pub attack_cooldown_ms: u64,
    /// Longest chat message, characters.
    pub chat_max_len: usize,
    /// Chat messages a player may send in a burst, and per minute after it.
    pub chat_burst: u32,
    /// Chat messages per minute after the burst.
    pub chat_per_min: u32,
    /// World and room messages kept for the history query, per channel.
    pub chat_history: usize,
    /// Most rooms players may create on this node.
    pub max_rooms: usize,
    /// Most players a created room may hold.
    pub max_room_users: i32,
    /// Frames per second of lockstep rooms.
    pub lockstep_fps: u32,
    /// Frames a lockstep room keeps for late joiners and reconnects.
    pub lockstep_keep_frames: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            tick_hz: 20,
            save_secs: 5,
            reconnect_grace_secs: 30,
            max_speed: 40.0,
            attack_range: 20.0,
            attack_cooldown_ms: 800,
            chat_max_len: 300,
            chat_burst: 5,
            chat_per_min: 30,
            chat_history: 50,
            max_rooms: 1000,
            max_room_users: 50,
            lockstep_fps: 15,
            lockstep_keep_frames: 1800,
        }
    }
}

/// `rpc.*` — where the gRPC roles listen and where API roles find remote services.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    /// Address the gRPC servers bind.
    pub host: String,
    /// The usercenter-rpc role's port (go-game's 2001).
    pub usercenter_port: u16,
    /// The basic-rpc role's port (go-game's 2002).
    pub basic_port: u16,
    /// The game service's gRPC port, served by the game-api role.
    pub game_port: u16,
    /// Where API roles call usercenter: empty, in this process; `http://a:2001,http://b:2001`,
    /// those servers, balanced by power of two choices; `etcd`, the servers registered in etcd.
    pub usercenter_url: String,
    /// Where API roles call basic (`http://host:2002`, a list, or `etcd`); empty: in process.
    pub basic_url: String,
    /// Where the game node calls the game service (`http://host:2003`, a list, or `etcd`);
    /// empty: in this process.
    pub game_url: String,
    /// The longest a gRPC call may take, milliseconds, retries included; a shorter deadline
    /// inherited from the request being served wins, and travels on to the callee.
    pub timeout_ms: u64,
    /// Further attempts for a failed call: on another server, for idempotent methods, or for
    /// any method when the request never reached a server (connection refused).
    pub retries: u32,
    /// Google SRE's adaptive client-side throttling: when servers fail, a share of calls is
    /// refused locally (400503) instead of piling onto them.
    pub breaker: bool,
    /// The shared secret every gRPC call carries and every gRPC server checks. Required when
    /// `rpc.host` is not a loopback address.
    pub token: Secret,
    /// Mutual TLS, for studios that run their own CA: this process's certificate chain (PEM),
    /// presented as a server and as a client. With `tls_key_file` and `tls_ca_file`, every
    /// gRPC server requires a client certificate signed by that CA, and every client checks
    /// the server's. All three or none.
    pub tls_cert_file: String,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: String,
    /// The CA (PEM) that signed every process's certificate.
    pub tls_ca_file: String,
    /// The name every gRPC server's certificate holds (a DNS subject alternative name),
    /// checked by clients whatever address they dial.
    pub tls_server_name: String,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            host: "127.0.0.1".into(),
            usercenter_port: 2001,
            basic_port: 2002,
            game_port: 2003,
            usercenter_url: String::new(),
            basic_url: String::new(),
            game_url: String::new(),
            timeout_ms: 5_000,
            retries: 2,
            breaker: true,
            token: Secret::default(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_ca_file: String::new(),
            tls_server_name: "rsgame-rpc".into(),
        }
    }
}

/// Whether `host` (a bind address) is loopback only.
fn is_loopback(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host == "localhost"
}

/// Refuses a secret shorter than 32 bytes or one that reads like a shipped placeholder.
fn weak_secret(secret: &str) -> Result<(), String> {
    const PLACEHOLDERS: [&str; 8] =
        ["change-me", "changeme", "change_me", "replace-me", "placeholder", "example", "trial", "secret-here"];
    if secret.len() < 32 {
        return Err(format!(
            "must be at least 32 bytes on a server reachable from other machines (it has {}; try `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(p) = PLACEHOLDERS.iter().find(|p| lower.contains(*p)) {
        return Err(format!("looks like a placeholder (contains {p:?}): set a random value (`openssl rand -hex 32`)"));
    }
    Ok(())
}

/// How verification codes are delivered.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CodeSender {
    /// Not delivered: the log says a code was asked for (target masked, code never written).
    #[default]
    Log,
    /// Development only: the code itself is written to the log. Never on a public server.
    DevLog,
    /// Emailed over SMTP (`basic.smtp_*`); SMS targets are handled as by `log`.
    Smtp,
}

/// `basic.*` — captchas, verification codes, files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicConfig {
    /// How long a captcha works, seconds.
    pub captcha_ttl_secs: u64,
    /// Characters in a captcha.
    pub captcha_length: u32,
    /// How long a verification code works, seconds.
    pub code_ttl_secs: u64,
    /// Seconds before another code may be sent to the same phone or email.
    pub code_resend_secs: u64,
    /// Codes one IP may request per hour.
    pub code_per_ip_per_hour: i64,
    /// `log`, `dev-log` or `smtp`.
    pub code_sender: CodeSender,
    /// SMTP server host.
    pub smtp_host: String,
    /// SMTP server port.
    pub smtp_port: u16,
    /// SMTP user (empty: no AUTH).
    pub smtp_username: String,
    /// SMTP password.
    pub smtp_password: Secret,
    /// The From address of code emails.
    pub smtp_from: String,
    /// Largest upload, bytes.
    pub upload_max_bytes: u64,
    /// Extensions accepted (the content must match).
    pub upload_types: Vec<String>,
    /// Where local storage keeps files (and, with S3, uploads in progress).
    pub storage_root: String,
    /// `local` or `s3`.
    pub storage: FileStorage,
    /// S3 endpoint: `https://s3.amazonaws.com`, `http://minio:9000`…
    pub s3_endpoint: String,
    /// S3 bucket.
    pub s3_bucket: String,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id.
    pub s3_access_key: String,
    /// S3 secret key.
    pub s3_secret_key: Secret,
}

/// Where uploaded files are kept.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileStorage {
    /// Local disk under `basic.storage_root`.
    #[default]
    Local,
    /// An S3-compatible bucket (`basic.s3_*`).
    S3,
}

impl Default for BasicConfig {
    fn default() -> Self {
        BasicConfig {
            captcha_ttl_secs: 300,
            captcha_length: 5,
            code_ttl_secs: 300,
            code_resend_secs: 60,
            code_per_ip_per_hour: 20,
            code_sender: CodeSender::Log,
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            smtp_from: "rsgame@localhost".into(),
            upload_max_bytes: 100 * 1024 * 1024,
            upload_types: ["jpg", "png", "jpeg", "mp3", "mp4", "pdf", "zip", "docx"].map(String::from).to_vec(),
            storage_root: "./data/files".into(),
            storage: FileStorage::Local,
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key: String::new(),
            s3_secret_key: Secret::default(),
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

/// A secret string: `Debug` never shows it, so a logged struct does not leak it.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"******\"" })
    }
}

/// Where a key's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the built-in default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

/// Why the configuration could not be loaded. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML, or not a mapping at the top.
    #[error("configuration file {path} is not valid: {msg}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        msg: String,
    },
    /// A key is unknown or its value invalid.
    #[error("configuration key `{key}` (from {origin}): {msg}")]
    Key {
        /// Dotted key, e.g. `http.port`.
        key: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong.
        msg: String,
    },
}

impl Config {
    /// Loads defaults, then `file` if given, then the `RSGAME_*` variables among `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut origins: HashMap<String, Origin> = HashMap::new();
        let mut tree = match file {
            Some(path) => read_file(path, &mut origins)?,
            None => Mapping::new(),
        };
        let hints = serde_norway::to_value(Config::default()).unwrap_or(Value::Null);
        let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| is_config_var(k)).collect();
        // Sorted so that a conflict between two variables resolves the same way every time.
        env.sort();
        for (var, raw) in env {
            let path: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Key {
                    key: path.join("."),
                    origin: Origin::Env(var),
                    msg: "empty key segment (use `__` only between keys)".into(),
                });
            }
            let value = typed_env_value(&raw, lookup(&hints, &path));
            origins.insert(path.join("."), Origin::Env(var));
            set_path(&mut tree, &path, value);
        }

        let cfg: Config = serde_path_to_error::deserialize(Value::Mapping(tree)).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let msg = e.into_inner().to_string();
            // Make sure an unknown key is named in full, whether or not the path already
            // ends with it.
            let key = match unknown_field(&msg) {
                Some(f) if key != f && !key.ends_with(&format!(".{f}")) => join_key(&key, f),
                _ => key,
            };
            ConfigError::Key { origin: origin_of(&origins, &key), key, msg }
        })?;
        cfg.validate().map_err(|(key, msg)| ConfigError::Key {
            origin: origin_of(&origins, key),
            key: key.to_owned(),
            msg,
        })?;
        Ok(cfg)
    }

    /// Loads from the process: `file`, else `RSGAME_CONFIG`, then the process environment.
    pub fn from_process(file: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(from_env);
        Config::load(file.as_deref(), std::env::vars())
    }

    /// Checks values that a type alone cannot: returns the key and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Err(e) = crate::proxy::TrustedProxies::parse(&self.http.trusted_proxies) {
            return Err(("http.trusted_proxies", e));
        }
        if !(0.0..=1.0).contains(&self.trace.sample_ratio) {
            return Err((
                "trace.sample_ratio",
                format!("must be between 0.0 and 1.0, got {}", self.trace.sample_ratio),
            ));
        }
        let ep = &self.trace.otlp_endpoint;
        if !(ep.is_empty() || ep.starts_with("http://") || ep.starts_with("https://")) {
            return Err(("trace.otlp_endpoint", "must start with http:// or https://".into()));
        }
        if !self.metrics.path.starts_with('/') || self.metrics.path.len() < 2 {
            return Err(("metrics.path", format!("must be a path like /metrics, got {:?}", self.metrics.path)));
        }
        if let Err(e) = crate::telemetry::filter_directives(&self.log) {
            return Err(("log.level", e));
        }
        if self.log.file.keep == 0 {
            return Err(("log.file.keep", "must be at least 1".into()));
        }
        if self.log.file.max_size_mb == 0 {
            return Err(("log.file.max_size_mb", "must be at least 1".into()));
        }
        if self.log.file.prefix.is_empty() || self.log.file.prefix.contains('/') {
            return Err(("log.file.prefix", "must be a plain file name".into()));
        }
        let g = &self.gate;
        if g.max_body == 0 || g.max_body > 64 * 1024 * 1024 {
            return Err(("gate.max_body", "must be between 1 and 67108864 bytes".into()));
        }
        if g.heartbeat_timeout_secs == 0 {
            return Err(("gate.heartbeat_timeout_secs", "must be at least 1".into()));
        }
        if g.first_frame_timeout_secs == 0 {
            return Err(("gate.first_frame_timeout_secs", "must be at least 1".into()));
        }
        if g.outbound_queue == 0 {
            return Err(("gate.outbound_queue", "must be at least 1".into()));
        }
        if g.rate_per_sec == 0 {
            return Err(("gate.rate_per_sec", "must be at least 1".into()));
        }
        if g.rate_burst == 0 {
            return Err(("gate.rate_burst", "must be at least 1".into()));
        }
        if !(64..=1500).contains(&g.kcp.mtu) {
            return Err(("gate.kcp.mtu", format!("must be between 64 and 1500, got {}", g.kcp.mtu)));
        }
        if g.kcp.interval_ms == 0 || g.kcp.interval_ms > 5000 {
            return Err(("gate.kcp.interval_ms", "must be between 1 and 5000".into()));
        }
        if g.kcp.send_window == 0 || g.kcp.recv_window == 0 {
            return Err(("gate.kcp.send_window", "windows must be at least 1".into()));
        }
        if let Some(bad) = self.usercenter.game_servers.iter().find(|s| {
            !(s.starts_with('/') || s.starts_with("ws://") || s.starts_with("wss://"))
                || s.chars().any(char::is_whitespace)
        }) {
            return Err((
                "usercenter.game_servers",
                format!("each must be a ws:// or wss:// URL or a path starting with /, got {bad:?}"),
            ));
        }
        if self.governance.rate_per_sec > 0 && self.governance.rate_burst == 0 {
            return Err(("governance.rate_burst", "must be at least 1 when governance.rate_per_sec is set".into()));
        }
        if !(1..=100).contains(&self.governance.shed_cpu_percent) {
            return Err(("governance.shed_cpu_percent", "must be between 1 and 100".into()));
        }
        if self.tls.cert_file.is_empty() != self.tls.key_file.is_empty() {
            return Err(("tls.key_file", "tls.cert_file and tls.key_file must be set together".into()));
        }
        if (self.tls.http || self.tls.gate_tcp) && !self.tls.configured() {
            return Err(("tls.cert_file", "tls.http or tls.gate_tcp is on but no certificate is set".into()));
        }
        if self.shutdown.grace_secs > 3600 {
            return Err(("shutdown.grace_secs", "must be at most 3600".into()));
        }
        if self.database.url.is_empty() {
            return Err(("database.url", "must not be empty".into()));
        }
        if self.database.max_open == 0 {
            return Err(("database.max_open", "must be at least 1".into()));
        }
        if self.database.max_idle > self.database.max_open {
            return Err(("database.max_idle", "must not exceed database.max_open".into()));
        }
        if self.cache.backend == CacheBackend::Redis
            && !(self.cache.url.starts_with("redis://") || self.cache.url.starts_with("rediss://"))
        {
            return Err(("cache.url", "must start with redis:// or rediss:// (TLS)".into()));
        }
        if self.cache.max_entries == 0 {
            return Err(("cache.max_entries", "must be at least 1".into()));
        }
        if !["memory://", "redis://", "rediss://", "nats://", "tls://", "kafka://"]
            .iter()
            .any(|s| self.bus.url.starts_with(s))
        {
            return Err(("bus.url", "must start with memory://, redis://, nats:// or kafka://".into()));
        }
        if self.bus.max_in_flight == 0 {
            return Err(("bus.max_in_flight", "must be at least 1".into()));
        }
        if !(6..=128).contains(&self.usercenter.password_min_len) {
            return Err(("usercenter.password_min_len", "must be between 6 and 128".into()));
        }
        if !self.usercenter.wechat_appid.is_empty() && self.usercenter.wechat_secret.is_empty() {
            return Err(("usercenter.wechat_secret", "is needed with usercenter.wechat_appid".into()));
        }
        if !(self.usercenter.wechat_url.starts_with("https://") || self.usercenter.wechat_url.starts_with("http://")) {
            return Err(("usercenter.wechat_url", "must be an http:// or https:// URL".into()));
        }
        if self.usercenter.lock_after_failures <= self.usercenter.captcha_after_failures {
            return Err(("usercenter.lock_after_failures", "must exceed usercenter.captcha_after_failures".into()));
        }
        if self.usercenter.ip_lock_after_failures <= self.usercenter.ip_captcha_after_failures {
            return Err((
                "usercenter.ip_lock_after_failures",
                "must exceed usercenter.ip_captcha_after_failures".into(),
            ));
        }
        let loopback = is_loopback(&self.rpc.host);
        let tls_files = [&self.rpc.tls_cert_file, &self.rpc.tls_key_file, &self.rpc.tls_ca_file];
        let set = tls_files.iter().filter(|f| !f.is_empty()).count();
        if set != 0 && set != 3 {
            return Err((
                "rpc.tls_cert_file",
                "mutual TLS needs rpc.tls_cert_file, rpc.tls_key_file and rpc.tls_ca_file together".into(),
            ));
        }
        if !loopback && self.rpc.token.is_empty() {
            return Err(("rpc.token", "must be set when rpc.host is not a loopback address".into()));
        }
        // Secrets a server reachable from elsewhere relies on: a short one can be guessed,
        // a shipped placeholder is known to everyone who read the repository.
        let public_http = !is_loopback(&self.http.host);
        for (key, secret, exposed) in [
            ("auth.jwt_secret", &self.auth.jwt_secret, public_http),
            ("game.admin_token", &self.game.admin_token, public_http),
            ("rpc.token", &self.rpc.token, !loopback),
        ] {
            if exposed && !secret.is_empty() {
                weak_secret(secret.expose()).map_err(|why| (key, why))?;
            }
        }
        for (key, url) in [
            ("rpc.usercenter_url", &self.rpc.usercenter_url),
            ("rpc.basic_url", &self.rpc.basic_url),
            ("rpc.game_url", &self.rpc.game_url),
        ] {
            if url == "etcd" {
                if self.discovery.etcd_endpoints.is_empty() {
                    return Err((key, "is `etcd` but discovery.etcd_endpoints is empty".into()));
                }
                continue;
            }
            let bad = url.split(',').map(str::trim).any(|u| !u.starts_with("http://") && !u.starts_with("https://"));
            if !url.is_empty() && bad {
                return Err((key, "must be empty, `etcd`, or comma-separated http:// URLs".into()));
            }
        }
        if self.rpc.timeout_ms == 0 {
            return Err(("rpc.timeout_ms", "must be at least 1".into()));
        }
        if let Some(bad) = self.discovery.etcd_endpoints.iter().find(|u| !u.starts_with("http://")) {
            return Err(("discovery.etcd_endpoints", format!("each must be an http:// URL, got {bad:?}")));
        }
        if self.discovery.lease_ttl_secs < 2 {
            return Err(("discovery.lease_ttl_secs", "must be at least 2".into()));
        }
        if !self.discovery.prefix.starts_with('/') || !self.discovery.prefix.ends_with('/') {
            return Err(("discovery.prefix", "must start and end with /".into()));
        }
        let public = &self.node.public_url;
        let ws = |u: &str| u.starts_with("ws://") || u.starts_with("wss://") || u.starts_with('/');
        if !public.is_empty() && !ws(public) {
            return Err(("node.public_url", "must be empty, a ws:// or wss:// URL, or a path".into()));
        }
        if self.node.id.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
            return Err(("node.id", "may only hold letters, digits, - and _".into()));
        }
        if self.node.presence_ttl_secs < 5 {
            return Err(("node.presence_ttl_secs", "must be at least 5".into()));
        }
        if !(4..=8).contains(&self.basic.captcha_length) {
            return Err(("basic.captcha_length", "must be between 4 and 8".into()));
        }
        if self.basic.upload_max_bytes == 0 {
            return Err(("basic.upload_max_bytes", "must be at least 1".into()));
        }
        if self.basic.storage == FileStorage::S3 {
            if !(self.basic.s3_endpoint.starts_with("http://") || self.basic.s3_endpoint.starts_with("https://")) {
                return Err(("basic.s3_endpoint", "must be an http:// or https:// URL with basic.storage: s3".into()));
            }
            if self.basic.s3_bucket.is_empty() {
                return Err(("basic.s3_bucket", "must be set with basic.storage: s3".into()));
            }
        }
        if self.basic.storage_root.is_empty() {
            return Err(("basic.storage_root", "must not be empty".into()));
        }
        if self.auth.access_expire_secs == 0 {
            return Err(("auth.access_expire_secs", "must be at least 1".into()));
        }
        if self.auth.refresh_after_secs > self.auth.access_expire_secs {
            return Err(("auth.refresh_after_secs", "must not exceed auth.access_expire_secs".into()));
        }
        Ok(())
    }

    /// The effective configuration as YAML, with secrets masked: what `rsgame config` prints
    /// and what start-up logs.
    pub fn to_masked_yaml(&self) -> String {
        let mut v = serde_norway::to_value(self).unwrap_or(Value::Null);
        mask_secrets(&mut v, "");
        serde_norway::to_string(&v).unwrap_or_default()
    }
}

fn is_config_var(name: &str) -> bool {
    name.starts_with(ENV_PREFIX) && !ENV_NOT_CONFIG.iter().any(|p| name.starts_with(p))
}

fn read_file(path: &Path, origins: &mut HashMap<String, Origin>) -> Result<Mapping, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let value: Value = serde_norway::from_str(&text)
        .map_err(|e| ConfigError::Syntax { path: path.to_path_buf(), msg: e.to_string() })?;
    let map = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        _ => {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                msg: "the top level must be a mapping of sections (http:, log:, …)".into(),
            });
        }
    };
    record_origins(&Value::Mapping(map.clone()), "", &Origin::File(path.to_path_buf()), origins);
    Ok(map)
}

fn record_origins(v: &Value, prefix: &str, origin: &Origin, out: &mut HashMap<String, Origin>) {
    if let Value::Mapping(m) = v {
        for (k, child) in m {
            let key = join_key(prefix, &key_text(k));
            record_origins(child, &key, origin, out);
            out.insert(key, origin.clone());
        }
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other).unwrap_or_default().trim().to_owned(),
    }
}

fn join_key(prefix: &str, k: &str) -> String {
    if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") }
}

/// The closest origin recorded for `key` or one of its parents.
fn origin_of(origins: &HashMap<String, Origin>, key: &str) -> Origin {
    let mut k = key;
    loop {
        if let Some(o) = origins.get(k) {
            return o.clone();
        }
        match k.rfind('.') {
            Some(i) => k = &k[..i],
            None => return Origin::Default,
        }
    }
}

/// serde's message for a denied key: "unknown field `prot`, expected one of …".
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| match cur {
        Value::Mapping(m) => m.get(Value::String(seg.clone())),
        _ => None,
    })
}

/// Types an environment value like the default at the same key; where there is no default
/// (a map entry), reads it as a YAML scalar.
fn typed_env_value(raw: &str, hint: Option<&Value>) -> Value {
    match hint {
        Some(Value::String(_)) => Value::String(raw.to_owned()),
        Some(Value::Bool(_)) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        Some(Value::Number(_)) => serde_norway::from_str::<Value>(raw)
            .ok()
            .filter(Value::is_number)
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Some(Value::Sequence(_)) => Value::Sequence(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
        ),
        _ => match serde_norway::from_str::<Value>(raw) {
            Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
            _ => Value::String(raw.to_owned()),
        },
    }
}

fn set_path(tree: &mut Mapping, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = tree;
    for seg in parents {
        let key = Value::String(seg.clone());
        let slot = cur.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
        if !slot.is_mapping() {
            *slot = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(m) = slot else { return };
        cur = m;
    }
    cur.insert(Value::String(last.clone()), value);
}

const MASK: &str = "******";

/// Masks values whose key names a secret, and the password inside any URL.
fn mask_secrets(v: &mut Value, key: &str) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                mask_secrets(child, &key_text(k));
            }
        }
        Value::String(s) => {
            let k = key.to_ascii_lowercase();
            let secret_key = ["secret", "password", "passwd", "token", "api_key"].iter().any(|w| k.contains(w));
            if secret_key && !s.is_empty() {
                *s = MASK.to_owned();
            } else if let Some(masked) = mask_url_password(s) {
                *s = masked;
            }
        }
        _ => {}
    }
}

/// `scheme://user:pass@host…` → `scheme://user:******@host…`; `None` if there is no password.
pub fn mask_url_password(url: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(format!("{}{}:{MASK}{}", &url[..scheme_end], &rest[..colon], &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().expect("tempfile");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn weak_or_placeholder_secrets_are_refused_on_a_reachable_server() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).map(|_| ()).map_err(|e| e.to_string());
        let strong = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(load(&[("RSGAME_AUTH__JWT_SECRET", "short")]).is_err_and(|e| e.contains("auth.jwt_secret")));
        let trial = "compose-trial-jwt-secret-change-me-please-0123456789";
        assert!(load(&[("RSGAME_AUTH__JWT_SECRET", trial)]).is_err_and(|e| e.contains("placeholder")));
        assert!(load(&[("RSGAME_GAME__ADMIN_TOKEN", "CHANGE-ME-admin-token-for-changeScore")]).is_err());
        let rpc = [("RSGAME_RPC__HOST", "0.0.0.0"), ("RSGAME_RPC__TOKEN", "tok")];
        assert!(load(&rpc).is_err_and(|e| e.contains("rpc.token")));
        let half_tls = [("RSGAME_RPC__TLS_CERT_FILE", "/etc/rsgame/rpc.pem")];
        assert!(load(&half_tls).is_err_and(|e| e.contains("rpc.tls_cert_file")), "mutual TLS needs all three files");
        assert!(
            load(&[
                ("RSGAME_AUTH__JWT_SECRET", strong),
                ("RSGAME_RPC__HOST", "0.0.0.0"),
                ("RSGAME_RPC__TOKEN", strong)
            ])
            .is_ok()
        );
        // On loopback (development, tests) any secret goes.
        assert!(load(&[("RSGAME_HTTP__HOST", "127.0.0.1"), ("RSGAME_AUTH__JWT_SECRET", "short")]).is_ok());
        assert!(load(&[("RSGAME_RPC__TOKEN", "tok")]).is_ok(), "rpc on loopback by default");
    }

    #[test]
    fn defaults_without_file_or_env() {
        let cfg = Config::load(None, env(&[("PATH", "/bin"), ("RSGAME_TEST_REDIS_URL", "redis://x")])).expect("load");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.http.port, 8888);
        assert_eq!(cfg.gate.tcp_port, 8999);
        assert_eq!(cfg.gate.kcp_port, 9001);
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let f = file("http:\n  port: 9000\n  host: 127.0.0.1\nlog:\n  level: debug\n");
        let cfg = Config::load(Some(f.path()), env(&[("RSGAME_HTTP__PORT", "9100")])).expect("load");
        assert_eq!(cfg.http.port, 9100, "env wins over file");
        assert_eq!(cfg.http.host, "127.0.0.1", "file wins over default");
        assert_eq!(cfg.log.level, "debug");
        assert_eq!(cfg.shutdown.grace_secs, 10, "untouched keys keep defaults");
    }

    #[test]
    fn env_values_are_typed_by_the_default() {
        let cfg = Config::load(
            None,
            env(&[
                // On loopback, where a short secret is allowed (a reachable server refuses it).
                ("RSGAME_HTTP__HOST", "127.0.0.1"),
                ("RSGAME_AUTH__JWT_SECRET", "12345"),
                ("RSGAME_LOG__FILE__ENABLED", "true"),
                ("RSGAME_LOG__FILE__ROTATION", "size"),
                ("RSGAME_TRACE__SAMPLE_RATIO", "0.25"),
                ("RSGAME_LOG__MODULES__RSGAME_GATE", "debug"),
            ]),
        )
        .expect("load");
        assert_eq!(cfg.auth.jwt_secret.expose(), "12345");
        assert!(cfg.log.file.enabled);
        assert_eq!(cfg.log.file.rotation, Rotation::Size);
        assert!((cfg.trace.sample_ratio - 0.25).abs() < f64::EPSILON);
        assert_eq!(cfg.log.modules.get("rsgame_gate").map(String::as_str), Some("debug"));
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        let err = Config::load(None, env(&[("RSGAME_HTTP__PORT", "notanumber")])).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("`http.port`"), "{text}");
        assert!(text.contains("RSGAME_HTTP__PORT"), "{text}");
    }

    #[test]
    fn unknown_file_key_names_key_and_file() {
        let f = file("http:\n  prot: 9000\n");
        let err = Config::load(Some(f.path()), env(&[])).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("`http.prot`"), "{text}");
        assert!(text.contains("file"), "{text}");
        let f = file("htp:\n  port: 9000\n");
        let text = Config::load(Some(f.path()), env(&[])).expect_err("must fail").to_string();
        assert!(text.contains("`htp`"), "{text}");
    }

    #[test]
    fn unknown_env_key_is_rejected() {
        let text = Config::load(None, env(&[("RSGAME_HTTP__PROT", "1")])).expect_err("must fail").to_string();
        assert!(text.contains("`http.prot`") && text.contains("RSGAME_HTTP__PROT"), "{text}");
    }

    #[test]
    fn bad_enum_and_range_name_key() {
        let f = file("log:\n  format: xml\n");
        let text = Config::load(Some(f.path()), env(&[])).expect_err("must fail").to_string();
        assert!(text.contains("`log.format`"), "{text}");
        let text = Config::load(None, env(&[("RSGAME_TRACE__SAMPLE_RATIO", "2")])).expect_err("fail").to_string();
        assert!(text.contains("`trace.sample_ratio`") && text.contains("RSGAME_TRACE__SAMPLE_RATIO"), "{text}");
        let text = Config::load(None, env(&[("RSGAME_LOG__LEVEL", "loud")])).expect_err("fail").to_string();
        assert!(text.contains("`log.level`"), "{text}");
        let f = file("usercenter:\n  game_servers: [\"eu1.example.com:8888\"]\n");
        let text = Config::load(Some(f.path()), env(&[])).expect_err("fail").to_string();
        assert!(text.contains("`usercenter.game_servers`"), "{text}");
    }

    #[test]
    fn syntax_errors_and_missing_files_are_reported() {
        let f = file("http: [1, 2\n");
        assert!(matches!(Config::load(Some(f.path()), env(&[])), Err(ConfigError::Syntax { .. })));
        let f = file("- 1\n- 2\n");
        assert!(matches!(Config::load(Some(f.path()), env(&[])), Err(ConfigError::Syntax { .. })));
        assert!(matches!(
            Config::load(Some(Path::new("/nonexistent/rsgame.yaml")), env(&[])),
            Err(ConfigError::Read { .. })
        ));
        let f = file("");
        assert_eq!(Config::load(Some(f.path()), env(&[])).expect("empty file is defaults"), Config::default());
    }

    #[test]
    fn masked_yaml_hides_secrets_and_url_passwords() {
        let f = file(
            "database:\n  url: mysql://root:s3cret@db:3306/game\nauth:\n  jwt_secret: topsecret-0123456789abcdef0123456789\n",
        );
        let cfg = Config::load(Some(f.path()), env(&[])).expect("load");
        let text = cfg.to_masked_yaml();
        assert!(!text.contains("s3cret") && !text.contains("topsecret"), "{text}");
        assert!(text.contains("mysql://root:******@db:3306/game"), "{text}");
        assert!(text.contains("jwt_secret: '******'") || text.contains("jwt_secret: \"******\""), "{text}");
        assert!(!format!("{cfg:?}").contains("topsecret"), "Debug must not leak the secret");
    }

    #[test]
    fn url_masking() {
        assert_eq!(mask_url_password("redis://:pw@h:6379/0").as_deref(), Some("redis://:******@h:6379/0"));
        assert_eq!(mask_url_password("postgres://u@h/db"), None);
        assert_eq!(mask_url_password("sqlite://./data/x.db"), None);
        assert_eq!(mask_url_password("http://h/p?a=b@c:d"), None);
    }

    #[test]
    fn example_file_matches_defaults() {
        // The commented example documents every key with its default: loading it must give
        // exactly the defaults, and it must name every key the defaults have.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rsgame.example.yaml");
        let cfg = Config::load(Some(&path), env(&[])).expect("example loads");
        assert_eq!(cfg, Config::default());
        let text = std::fs::read_to_string(&path).expect("read");
        let defaults = serde_norway::to_value(Config::default()).expect("value");
        let mut keys = Vec::new();
        collect_leaf_keys(&defaults, "", &mut keys);
        for k in keys {
            let leaf = k.rsplit('.').next().unwrap_or(&k);
            assert!(text.contains(&format!("{leaf}:")), "rsgame.example.yaml lacks key {k}");
        }
    }

    #[test]
    fn configuration_doc_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let text = std::fs::read_to_string(&path).expect("read docs/configuration.md");
        let defaults = serde_norway::to_value(Config::default()).expect("value");
        let mut keys = Vec::new();
        collect_leaf_keys(&defaults, "", &mut keys);
        for k in keys {
            assert!(text.contains(&format!("`{k}`")), "docs/configuration.md lacks key `{k}`");
        }
    }

    fn collect_leaf_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                for (k, child) in m {
                    collect_leaf_keys(child, &join_key(prefix, &key_text(k)), out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
}
