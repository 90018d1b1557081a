//! The binary's configuration: every crate's section at the key it is read from, plus
//! `node.*`, which only the binary reads, and the checks that cross sections.
//!
//! Each section is owned by its crate (struct, defaults, documentation, checks); kit's
//! loader ([`rsgame_kit::config::load`]) reads the tree from defaults, one YAML file and
//! `RSGAME_*` variables, and calls [`Section::check`] on it. `docs/configuration.md` and
//! `rsgame.example.yaml` document every key (tests below keep them in step).

use std::path::Path;

use rsgame_basic::config::BasicConfig;
use rsgame_console::ConsoleConfig;
use rsgame_game::config::GameConfig;
use rsgame_gate::config::GateConfig;
use rsgame_kit::config::{
    self, AppConfig, AuthConfig, ConfigError, GovernanceConfig, HttpConfig, Invalid, LogConfig, MetricsConfig, Section,
    ShutdownConfig, TlsConfig, TraceConfig, check_sections, is_loopback, weak_secret,
};
use rsgame_kit::telemetry;
use rsgame_rpc::config::{DiscoveryConfig, RpcConfig};
use rsgame_store::config::{BusConfig, CacheConfig, DatabaseConfig};
use rsgame_usercenter::config::UsercenterConfig;
use rsgame_world::config::WorldConfig;
use serde::{Deserialize, Serialize};

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
    /// The operator console (its own listener).
    pub console: ConsoleConfig,
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

impl Config {
    /// Loads defaults, then `file` if given, then the `RSGAME_*` variables among `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        config::load(file, env)
    }

    /// Loads from the process: `file`, else `RSGAME_CONFIG`, then the process environment.
    pub fn from_process(file: Option<&Path>) -> Result<Config, ConfigError> {
        config::from_process(file)
    }

    /// The effective configuration as YAML, with secrets masked.
    pub fn to_masked_yaml(&self) -> String {
        config::to_masked_yaml(self)
    }

    /// What telemetry reads.
    pub fn telemetry(&self) -> telemetry::Settings<'_> {
        telemetry::Settings { service: &self.app.name, log: &self.log, trace: &self.trace, metrics: &self.metrics }
    }
}

impl Section for Config {
    fn check(&self) -> Result<(), Invalid> {
        check_sections(&[
            ("app", &self.app),
            ("http", &self.http),
            ("gate", &self.gate),
            ("tls", &self.tls),
            ("log", &self.log),
            ("metrics", &self.metrics),
            ("trace", &self.trace),
            ("shutdown", &self.shutdown),
            ("database", &self.database),
            ("auth", &self.auth),
            ("cache", &self.cache),
            ("bus", &self.bus),
            ("usercenter", &self.usercenter),
            ("basic", &self.basic),
            ("rpc", &self.rpc),
            ("game", &self.game),
            ("world", &self.world),
            ("governance", &self.governance),
            ("discovery", &self.discovery),
            ("node", &self.node),
            ("console", &self.console),
        ])?;
        // What crosses sections. Secrets a server reachable from elsewhere relies on: a short
        // one can be guessed, a shipped placeholder is known to everyone who read the
        // repository. On loopback (development, tests) any value goes.
        if !is_loopback(&self.http.host) {
            for (key, secret) in
                [("auth.jwt_secret", &self.auth.jwt_secret), ("game.admin_token", &self.game.admin_token)]
            {
                if !secret.is_empty() {
                    weak_secret(secret.expose()).map_err(|why| Invalid::new(key, why))?;
                }
            }
        }
        for (key, url) in [
            ("rpc.usercenter_url", &self.rpc.usercenter_url),
            ("rpc.basic_url", &self.rpc.basic_url),
            ("rpc.game_url", &self.rpc.game_url),
        ] {
            if url == "etcd" && self.discovery.etcd_endpoints.is_empty() {
                return Err(Invalid::new(key, "is `etcd` but discovery.etcd_endpoints is empty"));
            }
        }
        Ok(())
    }
}

impl Section for NodeConfig {
    fn check(&self) -> Result<(), Invalid> {
        let public = &self.public_url;
        let ws = |u: &str| u.starts_with("ws://") || u.starts_with("wss://") || u.starts_with('/');
        if !public.is_empty() && !ws(public) {
            return Err(Invalid::new("public_url", "must be empty, a ws:// or wss:// URL, or a path"));
        }
        if self.id.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
            return Err(Invalid::new("id", "may only hold letters, digits, - and _"));
        }
        if self.presence_ttl_secs < 5 {
            return Err(Invalid::new("presence_ttl_secs", "must be at least 5"));
        }
        Ok(())
    }
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

    fn load(pairs: &[(&str, &str)]) -> Result<(), String> {
        Config::load(None, env(pairs)).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn weak_or_placeholder_secrets_are_refused_on_a_reachable_server() {
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
    fn every_crate_checks_its_section_under_its_key() {
        let cases = [
            ("RSGAME_GATE__KCP__MTU", "10", "`gate.kcp.mtu`"),
            ("RSGAME_DATABASE__MAX_OPEN", "0", "`database.max_open`"),
            ("RSGAME_BUS__URL", "amqp://x", "`bus.url`"),
            ("RSGAME_USERCENTER__PASSWORD_MIN_LEN", "2", "`usercenter.password_min_len`"),
            ("RSGAME_BASIC__CAPTCHA_LENGTH", "12", "`basic.captcha_length`"),
            ("RSGAME_WORLD__TICK_HZ", "0", "`world.tick_hz`"),
            ("RSGAME_DISCOVERY__PREFIX", "rsgame", "`discovery.prefix`"),
            ("RSGAME_NODE__ID", "a b", "`node.id`"),
            ("RSGAME_RPC__GAME_URL", "etcd", "`rpc.game_url`"),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)]).expect_err(var);
            assert!(err.contains(key) && err.contains(var), "{var}={value}: {err}");
        }
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
    fn a_bad_game_server_names_its_key() {
        let f = file("usercenter:\n  game_servers: [\"eu1.example.com:8888\"]\n");
        let text = Config::load(Some(f.path()), env(&[])).expect_err("fail").to_string();
        assert!(text.contains("`usercenter.game_servers`"), "{text}");
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
        assert!(!format!("{cfg:?}").contains("topsecret"), "Debug must not leak the secret");
    }

    #[test]
    fn example_file_matches_defaults() {
        // The commented example documents every key with its default: loading it must give
        // exactly the defaults, and it must name every key the defaults have.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rsgame.example.yaml");
        let cfg = Config::load(Some(&path), env(&[])).expect("example loads");
        assert_eq!(cfg, Config::default());
        let text = std::fs::read_to_string(&path).expect("read");
        for k in config::leaf_keys(&Config::default()) {
            let leaf = k.rsplit('.').next().unwrap_or(&k);
            assert!(text.contains(&format!("{leaf}:")), "rsgame.example.yaml lacks key {k}");
        }
    }

    #[test]
    fn configuration_doc_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let text = std::fs::read_to_string(&path).expect("read docs/configuration.md");
        for k in config::leaf_keys(&Config::default()) {
            assert!(text.contains(&format!("`{k}`")), "docs/configuration.md lacks key `{k}`");
        }
    }
}
