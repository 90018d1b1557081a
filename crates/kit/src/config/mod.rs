//! The configuration loader: built-in defaults, then one YAML file, then `RSGAME_*`
//! environment variables.
//!
//! Every struct denies unknown keys, so a typo stops start-up instead of being ignored; every
//! error names the key and where its value came from (the file or the environment variable).
//! Environment values are typed by the default value at the same key: `RSGAME_HTTP__PORT=9000`
//! becomes a number because `http.port` is one, while `RSGAME_AUTH__JWT_SECRET=12345` stays a
//! string.
//!
//! Each crate owns its section: the struct, its defaults, its documentation and its
//! [`Section::check`] (the gate's `gate.*` is in `rsgame_gate::config`, the world's
//! `world.*` in `rsgame_world::config`, and so on; kit's own are in `sections.rs`, re-exported
//! here). A process composes the sections it uses into one root struct, itself a
//! [`Section`] that checks each part under its key ([`check_sections`]) and whatever
//! crosses sections, and loads it with [`load`] or [`from_process`]. The `rsgame` binary's
//! root is in `bin/rsgame/src/config.rs`; [`config_root!`](crate::config_root) declares
//! smaller ones (the examples use it).

mod sections;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

pub use sections::*;

/// Prefix of the environment variables that override configuration.
pub const ENV_PREFIX: &str = "RSGAME_";
/// Environment variable naming the configuration file (like `--config`).
pub const ENV_CONFIG_FILE: &str = "RSGAME_CONFIG";
/// Environment variables that start with [`ENV_PREFIX`] but are not configuration: the file
/// name itself and the integration tests' service URLs.
const ENV_NOT_CONFIG: [&str; 2] = ["RSGAME_CONFIG", "RSGAME_TEST_"];

/// A part of the configuration tree that checks its own values, beyond what its type and
/// serde already refuse. A root (the whole tree a process loads) is a `Section` too.
pub trait Section {
    /// Checks values that a type alone cannot. The error's key is relative to this
    /// section; the loader adds the section's place in the tree and where the value came from.
    fn check(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// A key whose value a [`Section`] refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, relative to the section that found it.
    pub key: String,
    /// What is wrong, for the operator.
    pub msg: String,
}

impl Invalid {
    /// `key` (relative to the section) is wrong because of `msg`.
    pub fn new(key: impl Into<String>, msg: impl Into<String>) -> Invalid {
        Invalid { key: key.into(), msg: msg.into() }
    }

    /// The same problem seen from the section above: `under("gate")` makes `max_body`
    /// `gate.max_body`.
    pub fn under(self, section: &str) -> Invalid {
        Invalid { key: join_key(section, &self.key), msg: self.msg }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.msg)
    }
}

/// Declares a configuration root: a struct whose fields are sections, each read at the key
/// of its field's name, with the derives the loader needs and a [`Section`] impl that checks
/// every field under its key. A root that must also check across its sections writes its
/// `Section` impl by hand instead (the `rsgame` binary's does). Needs `serde` among the
/// caller's dependencies.
///
/// ```
/// rsgame_kit::config_root! {
///     /// What this server reads: `http.*` and `auth.*`.
///     pub struct Settings {
///         pub http: rsgame_kit::config::HttpConfig,
///         pub auth: rsgame_kit::config::AuthConfig,
///     }
/// }
/// let cfg: Settings = rsgame_kit::config::load(None, [("RSGAME_HTTP__PORT".into(), "9000".into())])?;
/// assert_eq!(cfg.http.port, 9000);
/// # Ok::<(), rsgame_kit::config::ConfigError>(())
/// ```
#[macro_export]
macro_rules! config_root {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        $vis struct $name { $($(#[$fmeta])* $fvis $field: $ty),* }

        impl $crate::config::Section for $name {
            fn check(&self) -> ::std::result::Result<(), $crate::config::Invalid> {
                $crate::config::check_sections(&[$((stringify!($field), &self.$field as &dyn $crate::config::Section)),*])
            }
        }
    };
}

/// Checks each section in order and returns the first problem, its key under the
/// section's name: what a root's [`Section::check`] calls for its parts.
pub fn check_sections(sections: &[(&str, &dyn Section)]) -> Result<(), Invalid> {
    for (name, section) in sections {
        section.check().map_err(|e| e.under(name))?;
    }
    Ok(())
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

/// Loads a root `C`: its defaults, then `file` if given, then the `RSGAME_*` variables among
/// `env`; then `C`'s [`Section::check`]. Every error names the key and where its value came
/// from.
pub fn load<C>(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<C, ConfigError>
where
    C: Section + Serialize + DeserializeOwned + Default,
{
    let mut origins: HashMap<String, Origin> = HashMap::new();
    let mut tree = match file {
        Some(path) => read_file(path, &mut origins)?,
        None => Mapping::new(),
    };
    let hints = serde_norway::to_value(C::default()).unwrap_or(Value::Null);
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

    let cfg: C = serde_path_to_error::deserialize(Value::Mapping(tree)).map_err(|e| {
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
    cfg.check().map_err(|Invalid { key, msg }| ConfigError::Key { origin: origin_of(&origins, &key), key, msg })?;
    Ok(cfg)
}

/// [`load`] from the process: `file`, else the file `RSGAME_CONFIG` names, then the
/// process environment.
pub fn from_process<C>(file: Option<&Path>) -> Result<C, ConfigError>
where
    C: Section + Serialize + DeserializeOwned + Default,
{
    let from_env = std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from);
    let file = file.map(Path::to_path_buf).or(from_env);
    load(file.as_deref(), std::env::vars())
}

/// A configuration as YAML, with secrets masked: what `rsgame config` prints and what
/// start-up logs.
pub fn to_masked_yaml(cfg: &impl Serialize) -> String {
    let mut v = serde_norway::to_value(cfg).unwrap_or(Value::Null);
    mask_secrets(&mut v, "");
    serde_norway::to_string(&v).unwrap_or_default()
}

/// Every leaf key of a configuration, dotted (`gate.kcp.mtu`), in the tree's order: what the
/// documentation of a root must name.
pub fn leaf_keys(cfg: &impl Serialize) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                for (k, child) in m {
                    walk(child, &join_key(prefix, &key_text(k)), out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk(&serde_norway::to_value(cfg).unwrap_or(Value::Null), "", &mut out);
    out
}

/// Whether `host` (a bind address) is loopback only.
pub fn is_loopback(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || host == "localhost"
}

/// Refuses a secret shorter than 32 bytes or one that reads like a shipped placeholder.
pub fn weak_secret(secret: &str) -> Result<(), String> {
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

    /// A root as a small server would compose it from kit's own sections.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Root {
        http: HttpConfig,
        log: LogConfig,
        trace: TraceConfig,
        auth: AuthConfig,
        shutdown: ShutdownConfig,
        upstream: String,
    }

    impl Section for Root {
        fn check(&self) -> Result<(), Invalid> {
            check_sections(&[
                ("http", &self.http),
                ("log", &self.log),
                ("trace", &self.trace),
                ("auth", &self.auth),
                ("shutdown", &self.shutdown),
            ])
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().expect("tempfile");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn load_root(file: Option<&Path>, pairs: &[(&str, &str)]) -> Result<Root, ConfigError> {
        load(file, env(pairs))
    }

    #[test]
    fn defaults_without_file_or_env() {
        let cfg = load_root(None, &[("PATH", "/bin"), ("RSGAME_TEST_REDIS_URL", "redis://x")]).expect("load");
        assert_eq!(cfg, Root::default());
        assert_eq!(cfg.http.port, 8888);
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let f = file("http:\n  port: 9000\n  host: 127.0.0.1\nlog:\n  level: debug\n");
        let cfg = load_root(Some(f.path()), &[("RSGAME_HTTP__PORT", "9100")]).expect("load");
        assert_eq!(cfg.http.port, 9100, "env wins over file");
        assert_eq!(cfg.http.host, "127.0.0.1", "file wins over default");
        assert_eq!(cfg.log.level, "debug");
        assert_eq!(cfg.shutdown.grace_secs, 10, "untouched keys keep defaults");
    }

    #[test]
    fn env_values_are_typed_by_the_default() {
        let cfg = load_root(
            None,
            &[
                ("RSGAME_AUTH__JWT_SECRET", "12345"),
                ("RSGAME_LOG__FILE__ENABLED", "true"),
                ("RSGAME_LOG__FILE__ROTATION", "size"),
                ("RSGAME_TRACE__SAMPLE_RATIO", "0.25"),
                ("RSGAME_LOG__MODULES__RSGAME_GATE", "debug"),
            ],
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
        let text = load_root(None, &[("RSGAME_HTTP__PORT", "notanumber")]).expect_err("must fail").to_string();
        assert!(text.contains("`http.port`"), "{text}");
        assert!(text.contains("RSGAME_HTTP__PORT"), "{text}");
    }

    #[test]
    fn unknown_file_key_names_key_and_file() {
        let f = file("http:\n  prot: 9000\n");
        let text = load_root(Some(f.path()), &[]).expect_err("must fail").to_string();
        assert!(text.contains("`http.prot`"), "{text}");
        assert!(text.contains("file"), "{text}");
        let f = file("htp:\n  port: 9000\n");
        let text = load_root(Some(f.path()), &[]).expect_err("must fail").to_string();
        assert!(text.contains("`htp`"), "{text}");
    }

    #[test]
    fn unknown_env_key_is_rejected() {
        let text = load_root(None, &[("RSGAME_HTTP__PROT", "1")]).expect_err("must fail").to_string();
        assert!(text.contains("`http.prot`") && text.contains("RSGAME_HTTP__PROT"), "{text}");
    }

    #[test]
    fn a_section_check_names_the_full_key_and_its_origin() {
        let f = file("log:\n  format: xml\n");
        let text = load_root(Some(f.path()), &[]).expect_err("must fail").to_string();
        assert!(text.contains("`log.format`"), "{text}");
        let text = load_root(None, &[("RSGAME_TRACE__SAMPLE_RATIO", "2")]).expect_err("fail").to_string();
        assert!(text.contains("`trace.sample_ratio`") && text.contains("RSGAME_TRACE__SAMPLE_RATIO"), "{text}");
        let text = load_root(None, &[("RSGAME_LOG__LEVEL", "loud")]).expect_err("fail").to_string();
        assert!(text.contains("`log.level`"), "{text}");
        let f = file("log:\n  file:\n    keep: 0\n");
        let text = load_root(Some(f.path()), &[]).expect_err("fail").to_string();
        assert!(text.contains("`log.file.keep`") && text.contains("file "), "nested sections keep their path: {text}");
    }

    #[test]
    fn syntax_errors_and_missing_files_are_reported() {
        let f = file("http: [1, 2\n");
        assert!(matches!(load_root(Some(f.path()), &[]), Err(ConfigError::Syntax { .. })));
        let f = file("- 1\n- 2\n");
        assert!(matches!(load_root(Some(f.path()), &[]), Err(ConfigError::Syntax { .. })));
        assert!(matches!(load_root(Some(Path::new("/nonexistent/rsgame.yaml")), &[]), Err(ConfigError::Read { .. })));
        let f = file("");
        assert_eq!(load_root(Some(f.path()), &[]).expect("empty file is defaults"), Root::default());
    }

    #[test]
    fn masked_yaml_hides_secrets_and_url_passwords() {
        let f = file("upstream: mysql://root:s3cret@db:3306/game\nauth:\n  jwt_secret: topsecret-0123456789abcdef\n");
        let cfg = load_root(Some(f.path()), &[]).expect("load");
        let text = to_masked_yaml(&cfg);
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
    fn leaf_keys_walk_nested_sections() {
        let keys = leaf_keys(&Root::default());
        assert!(keys.iter().any(|k| k == "log.file.keep"), "{keys:?}");
        assert!(keys.iter().any(|k| k == "http.port"), "{keys:?}");
        assert!(!keys.iter().any(|k| k == "log" || k == "log.file"), "only leaves: {keys:?}");
    }

    #[test]
    fn weak_secrets() {
        assert!(weak_secret("short").is_err());
        assert!(
            weak_secret("compose-trial-jwt-secret-change-me-please-0123456789")
                .is_err_and(|e| e.contains("placeholder"))
        );
        assert!(weak_secret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").is_ok());
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0"));
    }
}
