//! Accepting HTTP connections so that no stranger can hold them: a cap on open connections in
//! total and per address (checked before a connection costs anything but its socket), a
//! header-read timeout that also closes idle keep-alive connections, TLS handshakes bounded
//! in time inside the same caps, and graceful shutdown.
//!
//! axum's own `serve` sets no timer on hyper, so a client sending one header line every few
//! seconds (slowloris), or nothing at all, kept its connection — and a file descriptor shared
//! with the game gate — forever. Here hyper's `header_read_timeout` runs from the moment a
//! connection is waiting for a request: a new one, or the next one on a kept-alive
//! connection. The HTTP version is decided before hyper sees the connection (ALPN under TLS,
//! the first bytes otherwise, under the same timeout), since hyper's own version sniffing
//! waits for bytes with no timeout. A request being answered (a long poll) and an upgraded WebSocket are not
//! affected: the gate's own heartbeat and limits take over after the upgrade.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::Peer;
use crate::proxy::TrustedProxies;
use crate::shutdown::Shutdown;
use crate::telemetry::sampled::Sampled;

/// The limits of one HTTP listener (`http.*`).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// How long a connection may take to send a request's headers, counted from when it
    /// starts waiting for one (so also how long a kept-alive connection may sit idle).
    pub header_timeout: Duration,
    /// Open connections over all clients; `0`: no limit.
    pub max_connections: usize,
    /// Open connections from one address; `0`: no limit. Trusted proxies are exempt (their
    /// clients are told apart per request) but count towards the total.
    pub max_per_ip: usize,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Peers exempt from the per-address cap.
    pub proxies: TrustedProxies,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_per_ip: 256,
            tls_handshake_timeout: Duration::from_secs(10),
            proxies: TrustedProxies::default(),
        }
    }
}

impl ConnLimits {
    /// The limits `http.*` configures.
    pub fn from_config(cfg: &crate::config::HttpConfig) -> Result<ConnLimits, String> {
        Ok(ConnLimits {
            header_timeout: Duration::from_secs(cfg.header_timeout_secs.max(1)),
            max_connections: cfg.max_connections,
            max_per_ip: cfg.max_connections_per_ip,
            tls_handshake_timeout: Duration::from_secs(cfg.header_timeout_secs.max(1)),
            proxies: TrustedProxies::parse(&cfg.trusted_proxies)?,
        })
    }
}

/// Open connections, in total and per address.
struct Gauge {
    limits: ConnLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A connection's place; given back when dropped.
struct Permit {
    gauge: Arc<Gauge>,
    ip: Option<IpAddr>,
}

impl Gauge {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let l = &self.limits;
        let per_ip = l.max_per_ip != 0 && !l.proxies.trusts(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if l.max_connections != 0 && open.0 >= l.max_connections {
            return Err("total");
        }
        if per_ip {
            let n = open.1.entry(ip).or_insert(0);
            if *n >= l.max_per_ip {
                return Err("per_ip");
            }
            *n += 1;
        }
        open.0 += 1;
        metrics::gauge!(crate::telemetry::metrics::HTTP_CONNECTIONS_OPEN).set(open.0 as f64);
        Ok(Permit { gauge: self.clone(), ip: per_ip.then_some(ip) })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gauge.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = open.1.get_mut(&ip)
        {
            *n -= 1;
            // An address with no connection left costs nothing.
            if *n == 0 {
                open.1.remove(&ip);
            }
        }
        metrics::gauge!(crate::telemetry::metrics::HTTP_CONNECTIONS_OPEN).set(open.0 as f64);
    }
}

/// Counts a refused connection; warns at most once a second.
fn refused(sampled: &Sampled, peer: SocketAddr, reason: &'static str) {
    metrics::counter!(crate::telemetry::metrics::HTTP_CONNECTIONS_REFUSED, "reason" => reason).increment(1);
    if let Some(held) = sampled.hit() {
        tracing::warn!(peer = %peer.ip(), reason, refused_since_last = held, "http connection refused: too many open");
    }
}

/// Serves `router` on `listener` (with TLS when `tls` is set) under `limits` until
/// `shutdown` triggers; then stops accepting, lets every connection finish its requests and
/// returns when they are done. The caller bounds that wait with the grace period.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: Shutdown,
    limits: ConnLimits,
) -> std::io::Result<()> {
    let header_timeout = limits.header_timeout;
    let handshake_timeout = limits.tls_handshake_timeout;
    let gauge = Arc::new(Gauge { limits, open: Mutex::default() });
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let sampled = Sampled::default();
    // Connections watch `stop` to begin a graceful shutdown and hold `done` until they end.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.triggered() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match gauge.admit(peer.ip()) {
            Ok(p) => p,
            Err(reason) => {
                // Closed at once: the socket is all it cost.
                refused(&sampled, peer, reason);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (router, acceptor, stop, done) = (router.clone(), acceptor.clone(), stop_rx.clone(), done_rx.clone());
        tokio::spawn(async move {
            let _held = (permit, done);
            match acceptor {
                None => match sniff_h2(&tcp, header_timeout).await {
                    Some(h2) => connection(tcp, h2, peer, router, header_timeout, stop).await,
                    None => tracing::debug!(peer = %peer, "http connection sent no request in time"),
                },
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                        connection(tls, h2, peer, router, header_timeout, stop).await;
                    }
                    Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop((listener, done_rx));
    let _ = stop_tx.send(true);
    done_tx.closed().await;
    Ok(())
}

/// The first bytes an HTTP/2 client without TLS sends (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a plain TCP client speaks HTTP/2 (its preface) or HTTP/1, read without consuming
/// anything; `None` when it closes or says too little before `within`. Decided here, under
/// the timeout, because hyper's own version sniffing waits for bytes without one.
async fn sniff_h2(tcp: &tokio::net::TcpStream, within: Duration) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 24];
    let mut seen = 0;
    loop {
        let n = tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A partial preface: peek returns at once while nothing new arrived.
        if n == seen {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
        }
        seen = n;
    }
}

/// One connection: HTTP/1.1 (with upgrades, under the header timeout) or HTTP/2, until it
/// closes or the server stops.
async fn connection<I>(
    io: I,
    h2: bool,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = tower::ServiceExt::map_request(router, move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        req.map(Body::new)
    });
    let svc = TowerToHyperService::new(svc);
    let io = TokioIo::new(io);
    if h2 {
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new()).enable_connect_protocol();
        drive(b.serve_connection(io, svc), peer, stop, |c| c.graceful_shutdown()).await;
    } else {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new()).header_read_timeout(header_timeout);
        drive(b.serve_connection(io, svc).with_upgrades(), peer, stop, |c| c.graceful_shutdown()).await;
    }
}

/// Runs `conn` to its end, asking it to finish gracefully once `stop` turns true.
async fn drive<C>(conn: C, peer: SocketAddr, mut stop: watch::Receiver<bool>, graceful: impl Fn(Pin<&mut C>))
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "http connection ended");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                graceful(conn.as_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(max: usize, per_ip: usize, proxies: &[&str]) -> Arc<Gauge> {
        let proxies = TrustedProxies::parse(&proxies.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("p");
        let limits = ConnLimits { max_connections: max, max_per_ip: per_ip, proxies, ..ConnLimits::default() };
        Arc::new(Gauge { limits, open: Mutex::default() })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn caps_hold_per_address_and_in_total_and_give_places_back() {
        let g = gauge(5, 2, &["10.0.0.1"]);
        let a: Vec<Permit> = (0..2).map(|_| g.admit(ip("192.0.2.1")).expect("a")).collect();
        assert_eq!(g.admit(ip("192.0.2.1")).err(), Some("per_ip"));
        let proxy: Vec<Permit> = (0..3).map(|_| g.admit(ip("10.0.0.1")).expect("a trusted proxy")).collect();
        assert_eq!(g.admit(ip("192.0.2.2")).err(), Some("total"));
        drop(a);
        assert!(g.admit(ip("192.0.2.1")).is_ok(), "closed connections give their places back");
        drop(proxy);
        let open = g.open.lock().expect("lock");
        assert_eq!((open.0, open.1.len()), (0, 0), "nothing is kept for addresses that left");
    }
}
