//! The gRPC layer's configuration sections: `rpc.*` (where the gRPC roles listen, where API
//! roles find them, the token and mutual TLS) and `discovery.*` (etcd).
//!
//! Whether `rpc.*_url: etcd` has endpoints to use is checked by the process that puts both
//! sections in one tree (the binary), since neither section sees the other.

use rsgame_kit::config::{Invalid, Secret, Section, is_loopback, weak_secret};
use serde::{Deserialize, Serialize};

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

impl Section for RpcConfig {
    fn check(&self) -> Result<(), Invalid> {
        let loopback = is_loopback(&self.host);
        let tls_files = [&self.tls_cert_file, &self.tls_key_file, &self.tls_ca_file];
        let set = tls_files.iter().filter(|f| !f.is_empty()).count();
        if set != 0 && set != 3 {
            return Err(Invalid::new(
                "tls_cert_file",
                "mutual TLS needs rpc.tls_cert_file, rpc.tls_key_file and rpc.tls_ca_file together",
            ));
        }
        if !loopback {
            if self.token.is_empty() {
                return Err(Invalid::new("token", "must be set when rpc.host is not a loopback address"));
            }
            // Reachable from elsewhere: a short token can be guessed, a shipped placeholder
            // is known to everyone who read the repository.
            weak_secret(self.token.expose()).map_err(|why| Invalid::new("token", why))?;
        }
        for (key, url) in
            [("usercenter_url", &self.usercenter_url), ("basic_url", &self.basic_url), ("game_url", &self.game_url)]
        {
            let bad = url.split(',').map(str::trim).any(|u| !u.starts_with("http://") && !u.starts_with("https://"));
            if !url.is_empty() && url != "etcd" && bad {
                return Err(Invalid::new(key, "must be empty, `etcd`, or comma-separated http:// URLs"));
            }
        }
        if self.timeout_ms == 0 {
            return Err(Invalid::new("timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}

impl Section for DiscoveryConfig {
    fn check(&self) -> Result<(), Invalid> {
        if let Some(bad) = self.etcd_endpoints.iter().find(|u| !u.starts_with("http://")) {
            return Err(Invalid::new("etcd_endpoints", format!("each must be an http:// URL, got {bad:?}")));
        }
        if self.lease_ttl_secs < 2 {
            return Err(Invalid::new("lease_ttl_secs", "must be at least 2"));
        }
        if !self.prefix.starts_with('/') || !self.prefix.ends_with('/') {
            return Err(Invalid::new("prefix", "must start and end with /"));
        }
        Ok(())
    }
}
