//! A small HTTP client for calls to outside services (WeChat's login API): GET over HTTP/1.1,
//! `https://` with rustls and the system's roots, a deadline over the whole exchange and a
//! cap on the answer's size, so a slow or hostile endpoint costs a bounded wait and memory.
//! One connection per call: these calls are rare next to what the server does, and a fresh
//! connection has no stale state to recover from.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;

/// Anything a client connection runs over: plain TCP or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// The TLS client configuration every outgoing HTTPS connection uses: the system's roots,
/// loaded once (reading them opens files).
pub fn tls_client() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            crate::tls::install_provider();
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
        })
        .clone()
}

/// Opens a connection to `host:port` without Nagle's delay, over TLS with `tls`.
pub async fn open(host: &str, port: u16, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Box<dyn Io>> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let Some(cfg) = tls else { return Ok(Box::new(tcp)) };
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
    Ok(Box::new(tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp).await?))
}

/// A client for one base URL (`https://api.weixin.qq.com`).
#[derive(Clone)]
pub struct HttpClient {
    host: String,
    port: u16,
    /// The `Host` header: host, and the port unless it is the scheme's.
    host_header: String,
    /// The base URL's path, without a trailing `/`.
    prefix: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    max_body: usize,
}

impl HttpClient {
    /// A client for `base` (`http://` or `https://`); each call waits at most `timeout` and
    /// reads at most `max_body` bytes of answer.
    pub fn new(base: &str, timeout: Duration, max_body: usize) -> Result<HttpClient, String> {
        let uri: http::Uri = base.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("must start with http:// or https://".into()),
        };
        let host = uri.host().ok_or("has no host")?.to_owned();
        let default_port = if tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let host_header = if port == default_port { host.clone() } else { format!("{host}:{port}") };
        let tls = tls.then(tls_client);
        Ok(HttpClient {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
            host_header,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            tls,
            timeout,
            max_body,
        })
    }

    /// GETs `path_and_query` under the base; the status and the body. The error text names
    /// the host, never the query (it may hold a secret).
    pub async fn get(&self, path_and_query: &str) -> Result<(u16, Bytes), String> {
        let exchange = async {
            let mut sender = self.connect().await?;
            let req = http::Request::get(format!("{}{path_and_query}", self.prefix))
                .header(http::header::HOST, &self.host_header)
                .header(http::header::ACCEPT, "application/json")
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| format!("{}: {e}", self.host_header))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| format!("reading the answer of {}: {e}", self.host_header))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer from {} within {} ms", self.host_header, self.timeout.as_millis()))?
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
        let io = open(&self.host, self.port, self.tls.as_ref())
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.host_header))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.host_header))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}
