//! Mutual TLS for gRPC (`rpc.tls_*`), for studios that run their own CA: every server asks for
//! a client certificate signed by that CA, every client checks the server's against it and
//! against one name (`rpc.tls_server_name`) whatever address it dials (etcd hands out IPs).
//! The service token is still required on every call: TLS says which machine, the token which
//! deployment.

use crate::config::RpcConfig;
use rsgame_kit::{Code, Error, Result};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// This process's side of mutual TLS.
#[derive(Clone)]
pub struct RpcTls {
    identity: Identity,
    ca: Certificate,
    server_name: String,
}

fn read(path: &str, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::msg(Code::Failed, format!("rpc.{what} {path}: {e}")))
}

impl RpcTls {
    /// From `rpc.tls_*`; None when mutual TLS is off (no files set).
    pub fn from_config(cfg: &RpcConfig) -> Result<Option<RpcTls>> {
        if cfg.tls_cert_file.is_empty() && cfg.tls_key_file.is_empty() && cfg.tls_ca_file.is_empty() {
            return Ok(None);
        }
        let cert = read(&cfg.tls_cert_file, "tls_cert_file")?;
        let key = read(&cfg.tls_key_file, "tls_key_file")?;
        let ca = read(&cfg.tls_ca_file, "tls_ca_file")?;
        Ok(Some(RpcTls::from_pem(&cert, &key, &ca, &cfg.tls_server_name)))
    }

    /// From PEM bytes: this process's certificate chain and key, the CA, and the name the
    /// servers' certificates hold.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8], server_name: &str) -> RpcTls {
        RpcTls {
            identity: Identity::from_pem(cert, key),
            ca: Certificate::from_pem(ca),
            server_name: server_name.to_owned(),
        }
    }

    /// What a server needs: its identity, and the CA client certificates must chain to.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone())
    }

    /// What a client needs: its identity, the CA, and the name to check.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .identity(self.identity.clone())
            .ca_certificate(self.ca.clone())
            .domain_name(self.server_name.clone())
    }
}

impl std::fmt::Debug for RpcTls {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// `url` with the scheme TLS needs (tonic speaks TLS to `https://` URLs only).
pub fn secure_url(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}
