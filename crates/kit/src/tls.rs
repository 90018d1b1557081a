//! TLS with rustls (ring provider): loading a PEM certificate and key, and a listener that
//! performs handshakes off the accept path, for the HTTP listener (https, wss) and the gate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("TLS certificate {path}: {msg}")]
    Cert {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// The key file is unreadable or holds no private key.
    #[error("TLS key {path}: {msg}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Installs ring as rustls' process-wide crypto provider (once; later calls are no-ops), so
/// no second crypto library is pulled in.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A server configuration from PEM files, offering HTTP/1.1 (and h2 when `h2`) by ALPN.
pub fn server_config(cert: &Path, key: &Path, alpn_h2: bool) -> Result<Arc<ServerConfig>, TlsError> {
    install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Cert { path: cert.display().to_string(), msg: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert { path: cert.display().to_string(), msg: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Cert { path: cert.display().to_string(), msg: "no certificate in file".into() });
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key.display().to_string(), msg: e.to_string() })?;
    let mut cfg = ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key)?;
    cfg.alpn_protocols = if alpn_h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { Vec::new() };
    Ok(Arc::new(cfg))
}

/// A TCP listener whose connections come out TLS-established. Handshakes run in their own
/// tasks, each bounded by a timeout, so one slow or hostile client cannot stall accepting.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Wraps `listener`; handshakes longer than `handshake_timeout` are dropped.
    pub fn new(listener: TcpListener, cfg: Arc<ServerConfig>, handshake_timeout: Duration) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(cfg);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(remote = %addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(remote = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local, task })
    }

    /// The next established connection; `None` once the listener is gone.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.rx.recv().await
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends while the listener lives; if it somehow did, park
            // instead of spinning: graceful shutdown still stops the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
