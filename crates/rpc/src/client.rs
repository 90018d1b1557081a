//! Calling a service: [`RpcChannel`] is what every generated client runs on. It picks a
//! server by power of two choices, carries the service token, the deadline and the trace
//! context, retries what is safe to retry on another server, and throttles itself when the
//! servers fail (Google SRE's adaptive client-side throttling, as go-zero's breaker).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use rand::Rng as _;
use rsgame_kit::governance::deadline;
use rsgame_kit::{Code, Error, Result, Shutdown};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument as _;

use crate::discovery;
use crate::etcd::Etcd;

/// How calls behave: `rpc.token`, `rpc.timeout_ms`, `rpc.retries`, `rpc.breaker`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The shared service token sent with every call.
    pub token: String,
    /// The longest a call may take, retries included.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// Adaptive client-side throttling.
    pub breaker: bool,
    /// Mutual TLS (`rpc.tls_*`): servers are dialled over `https://` with this identity.
    pub tls: Option<crate::tls::RpcTls>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { token: String::new(), timeout: Duration::from_secs(5), retries: 2, breaker: true, tls: None }
    }
}

/// Makes the channels of one process: static URLs, or servers discovered in etcd.
#[derive(Clone)]
pub struct Connector {
    opts: ClientOptions,
    etcd: Option<(Etcd, String)>,
    shutdown: Shutdown,
}

impl Connector {
    /// Channels with `opts`; `etcd` (a client and the key prefix) resolves `etcd` URLs.
    pub fn new(opts: ClientOptions, etcd: Option<(Etcd, String)>, shutdown: Shutdown) -> Connector {
        Connector { opts, etcd, shutdown }
    }

    /// A channel to `service` at `url`: `http://a:1,http://b:2` (static, balanced), or
    /// `etcd` (the servers registered for `service`, watched). `idempotent` names the
    /// methods (`GetUserInfo`) that may be retried after a server saw them.
    pub fn channel(&self, service: &'static str, url: &str, idempotent: &'static [&'static str]) -> Result<RpcChannel> {
        let ch = RpcChannel::new(service, &self.opts, idempotent)?;
        if url.trim() == "etcd" {
            let Some((etcd, root)) = &self.etcd else {
                return Err(Error::msg(Code::Failed, "an `etcd` URL needs discovery.etcd_endpoints"));
            };
            let rx =
                discovery::watch_prefix(etcd.clone(), discovery::service_prefix(root, service), self.shutdown.clone());
            ch.follow(rx);
        } else {
            ch.set_endpoints(&url_list(url))?;
        }
        Ok(ch)
    }
}

/// The servers of a static `rpc.*_url`: comma-separated, blanks ignored.
pub(crate) fn url_list(url: &str) -> Vec<String> {
    url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect()
}

/// A server behind a channel, with what power of two choices weighs.
struct Server {
    url: String,
    channel: Channel,
    in_flight: AtomicU32,
    /// Moving average of call latency, nanoseconds (0: no call yet, so tried first).
    ewma_ns: AtomicU64,
    /// Until when it is skipped after refusing connections (ms since `EPOCH`).
    down_until: AtomicU64,
    refusals: AtomicU32,
    /// When it last answered a call (ms since `EPOCH`).
    last_seen: AtomicU64,
}

/// A call under way on a server: counted while it lives.
struct InFlight<'a>(&'a Server);

impl<'a> InFlight<'a> {
    fn enter(s: &'a Server) -> InFlight<'a> {
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    // Offset so that 0 ("never") is always long ago.
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 60_000
}

impl Server {
    fn new(url: &str, tls: Option<&crate::tls::RpcTls>) -> Result<Server> {
        let bad = |e: tonic::transport::Error| {
            Error::internal(Code::Failed, std::io::Error::other(format!("rpc url {url}: {e}")))
        };
        let ep = match tls {
            // The list keeps the URL as given (directories hold http://); TLS dials https://.
            Some(t) => {
                Endpoint::from_shared(crate::tls::secure_url(url)).map_err(bad)?.tls_config(t.client()).map_err(bad)?
            }
            None => Endpoint::from_shared(url.to_owned()).map_err(bad)?,
        };
        let ep = ep
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        Ok(Server {
            url: url.to_owned(),
            channel: ep.connect_lazy(),
            in_flight: AtomicU32::new(0),
            ewma_ns: AtomicU64::new(0),
            down_until: AtomicU64::new(0),
            refusals: AtomicU32::new(0),
            last_seen: AtomicU64::new(0),
        })
    }

    fn load(&self, now: u64) -> u64 {
        // A latency figure older than a second is not trusted: the server is tried again as
        // if new, so one slow call cannot keep it out of every pair for good.
        let ewma = if now.saturating_sub(self.last_seen.load(Ordering::Relaxed)) > 1_000 {
            1
        } else {
            self.ewma_ns.load(Ordering::Relaxed).max(1)
        };
        u64::from(self.in_flight.load(Ordering::Relaxed) + 1) * ewma
    }

    fn observe(&self, took: Duration) {
        let sample = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        let old = self.ewma_ns.load(Ordering::Relaxed);
        // β = 0.9 per call: recent enough to follow a slow server, smooth enough to ignore one
        // slow call.
        let new = if old == 0 { sample } else { (old * 9 + sample) / 10 };
        self.ewma_ns.store(new, Ordering::Relaxed);
        self.last_seen.store(now_ms(), Ordering::Relaxed);
    }

    fn refused(&self) {
        let n = self.refusals.fetch_add(1, Ordering::Relaxed).min(4);
        self.down_until.store(now_ms() + (500u64 << n).min(8_000), Ordering::Relaxed);
    }
}

/// Google SRE's adaptive throttling: over a 10 s window, a call is refused locally with
/// probability `max(0, (requests − PROTECTION − K × accepts) / (requests + 1))`.
pub struct Breaker {
    start: Instant,
    window: Mutex<[(u64, u64, u64); BREAKER_BUCKETS]>,
}

const BREAKER_BUCKETS: usize = 40;
const BREAKER_BUCKET: Duration = Duration::from_millis(250);
const BREAKER_K: f64 = 1.5;
const BREAKER_PROTECTION: f64 = 5.0;

impl Default for Breaker {
    fn default() -> Self {
        Breaker { start: Instant::now(), window: Mutex::new([(0, 0, 0); BREAKER_BUCKETS]) }
    }
}

impl Breaker {
    fn slot(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_millis() / BREAKER_BUCKET.as_millis()) as u64
    }

    fn counts(&self, now: Instant) -> (u64, u64) {
        let current = self.slot(now);
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.iter()
            .filter(|b| current.saturating_sub(b.0) < BREAKER_BUCKETS as u64)
            .fold((0, 0), |(r, a), b| (r + b.1, a + b.2))
    }

    /// The share of calls refused now.
    pub fn reject_probability(&self, now: Instant) -> f64 {
        let (requests, accepts) = self.counts(now);
        let r = requests as f64;
        ((r - BREAKER_PROTECTION - BREAKER_K * accepts as f64) / (r + 1.0)).max(0.0)
    }

    /// Whether to make a call now; a refusal counts as a request that was not accepted.
    pub fn allow(&self, now: Instant) -> bool {
        let p = self.reject_probability(now);
        if p > 0.0 && rand::rng().random::<f64>() < p {
            self.record(now, false);
            return false;
        }
        true
    }

    /// A call ended: `accepted` unless the server failed or could not be reached.
    pub fn record(&self, now: Instant, accepted: bool) {
        let slot = self.slot(now);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut w[(slot % BREAKER_BUCKETS as u64) as usize];
        if b.0 != slot {
            *b = (slot, 0, 0);
        }
        b.1 += 1;
        b.2 += u64::from(accepted);
    }
}

struct Inner {
    service: &'static str,
    servers: RwLock<Vec<Arc<Server>>>,
    token: Option<http::HeaderValue>,
    timeout: Duration,
    retries: u32,
    idempotent: &'static [&'static str],
    breaker: Option<Breaker>,
    tls: Option<crate::tls::RpcTls>,
}

/// A channel to one service's servers; see the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct RpcChannel(Arc<Inner>);

impl RpcChannel {
    pub(crate) fn new(
        service: &'static str,
        opts: &ClientOptions,
        idempotent: &'static [&'static str],
    ) -> Result<RpcChannel> {
        let token = if opts.token.is_empty() {
            None
        } else {
            Some(
                http::HeaderValue::from_str(&opts.token)
                    .map_err(|_| Error::msg(Code::Failed, "rpc.token must be printable ASCII"))?,
            )
        };
        Ok(RpcChannel(Arc::new(Inner {
            service,
            servers: RwLock::new(Vec::new()),
            token,
            timeout: opts.timeout,
            retries: opts.retries,
            idempotent,
            breaker: opts.breaker.then(Breaker::default),
            tls: opts.tls.clone(),
        })))
    }

    /// Replaces the set of servers; those already known keep their connection and figures.
    pub fn set_endpoints(&self, urls: &[String]) -> Result<()> {
        let old = self.0.servers.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut next = Vec::with_capacity(urls.len());
        let mut bad = None;
        for url in urls {
            match old.iter().find(|s| &s.url == url) {
                Some(s) => next.push(s.clone()),
                // One bad entry (a typo in a directory) must not hide the good ones.
                None => match Server::new(url, self.0.tls.as_ref()) {
                    Ok(s) => next.push(Arc::new(s)),
                    Err(e) => {
                        tracing::warn!(service = self.0.service, url = %url, error = %e, "endpoint skipped");
                        bad = Some(e);
                    }
                },
            }
        }
        if let (true, Some(e)) = (next.is_empty(), bad) {
            return Err(e);
        }
        let list: Vec<&str> = next.iter().map(|s| s.url.as_str()).collect();
        tracing::info!(service = self.0.service, servers = ?list, "rpc endpoints");
        metrics::gauge!(crate::metrics::CLIENT_ENDPOINTS, "service" => self.0.service).set(next.len() as f64);
        *self.0.servers.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Follows a watched directory (values are server URLs) until this channel is dropped.
    fn follow(&self, mut rx: watch::Receiver<BTreeMap<String, String>>) {
        let weak: Weak<Inner> = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                let urls: Vec<String> = rx.borrow_and_update().values().cloned().collect();
                let Some(inner) = weak.upgrade() else { return };
                // An empty directory right after start is "not read yet" or "all gone": in
                // both cases the last known servers are the better bet.
                if !urls.is_empty() || inner.servers.read().unwrap_or_else(|p| p.into_inner()).is_empty() {
                    if let Err(e) = RpcChannel(inner).set_endpoints(&urls) {
                        tracing::warn!(error = %e, "bad endpoint in the directory");
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// The servers known now.
    pub fn endpoints(&self) -> Vec<String> {
        self.0.servers.read().unwrap_or_else(|p| p.into_inner()).iter().map(|s| s.url.clone()).collect()
    }
}

impl Inner {
    /// Power of two choices among the servers not tried yet and not resting after a refused
    /// connection (all resting: any not tried).
    fn pick(&self, tried: &[Arc<Server>]) -> Option<Arc<Server>> {
        let servers = self.servers.read().unwrap_or_else(|p| p.into_inner());
        let fresh = |s: &&Arc<Server>| !tried.iter().any(|t| Arc::ptr_eq(t, s));
        let now = now_ms();
        let mut pool: Vec<&Arc<Server>> =
            servers.iter().filter(fresh).filter(|s| s.down_until.load(Ordering::Relaxed) <= now).collect();
        if pool.is_empty() {
            pool = servers.iter().filter(fresh).collect();
        }
        match pool.len() {
            0 => None,
            1 => Some(pool[0].clone()),
            n => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (pool[a], pool[b]);
                Some(if a.load(now) <= b.load(now) { a.clone() } else { b.clone() })
            }
        }
    }

    async fn call(&self, req: http::Request<Body>) -> http::Response<Body> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let method = path.rsplit('/').next().unwrap_or_default().to_owned();
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = self.service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        let (resp, sent) = self.attempts(parts, body, &method, &span).instrument(span.clone()).await;
        let code = grpc_code(&resp);
        span.record("rpc.grpc.status_code", code);
        // Only calls that went out judge the servers: a spent deadline or the breaker's own
        // refusal say nothing about them.
        if let Some(b) = self.breaker.as_ref().filter(|_| sent) {
            b.record(Instant::now(), !server_failed(code));
        }
        let labels = [("service", self.service.to_owned()), ("method", method)];
        metrics::histogram!(crate::metrics::CLIENT_SECONDS, &labels).record(started.elapsed().as_secs_f64());
        let code_label = ("code", code.to_string());
        metrics::counter!(crate::metrics::CLIENT_REQUESTS, &[labels[0].clone(), labels[1].clone(), code_label])
            .increment(1);
        resp
    }

    async fn attempts(
        &self,
        mut parts: http::request::Parts,
        body: Body,
        method: &str,
        span: &tracing::Span,
    ) -> (http::Response<Body>, bool) {
        let limit = deadline::remaining().map_or(self.timeout, |left| left.min(self.timeout));
        if limit.is_zero() {
            return (reply(tonic::Status::deadline_exceeded("the caller's deadline has passed")), false);
        }
        let until = Instant::now() + limit;
        if let Some(b) = &self.breaker
            && !b.allow(Instant::now())
        {
            metrics::counter!(crate::metrics::CLIENT_BREAKER_REJECTED, "service" => self.service).increment(1);
            let msg = format!("{} is failing: call refused by the breaker", self.service);
            return (reply(tonic::Status::unavailable(msg)), false);
        }
        // Unary bodies are small: holding them lets a retry send the same bytes again.
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => return (reply(tonic::Status::internal(format!("request body: {e}"))), false),
        };
        if let Some(t) = &self.token {
            parts.headers.insert(crate::TOKEN_KEY, t.clone());
        }
        rsgame_kit::telemetry::otel::inject_trace(span, &mut parts.headers);
        let idempotent = self.idempotent.contains(&method);
        let mut tried: Vec<Arc<Server>> = Vec::new();
        let mut went_out = false;
        let mut last = tonic::Status::unavailable(format!("no {} server is known", self.service));
        for attempt in 0..=self.retries {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (reply(tonic::Status::deadline_exceeded("deadline exceeded")), went_out);
            }
            let Some(server) = self.pick(&tried) else { break };
            if attempt > 0 {
                metrics::counter!(crate::metrics::CLIENT_RETRIES, "service" => self.service).increment(1);
                tracing::debug!(service = self.service, method, server = %server.url, attempt, "retrying");
            }
            let mut req = http::Request::new(Body::new(http_body_util::Full::new(bytes.clone())));
            *req.method_mut() = parts.method.clone();
            *req.uri_mut() = parts.uri.clone();
            *req.version_mut() = parts.version;
            *req.headers_mut() = parts.headers.clone();
            // The callee sees what is left, so its own calls stop when this one would.
            if let Ok(v) = http::HeaderValue::from_str(&format!("{}m", left.as_millis().max(1))) {
                req.headers_mut().insert("grpc-timeout", v);
            }
            went_out = true;
            let t0 = Instant::now();
            let res = {
                // Leaves the count however the call ends, a dropped caller included.
                let _busy = InFlight::enter(&server);
                tokio::time::timeout(left, tower::ServiceExt::oneshot(server.channel.clone(), req)).await
            };
            server.observe(t0.elapsed());
            match res {
                Err(_) => return (reply(tonic::Status::deadline_exceeded("deadline exceeded")), true),
                Ok(Err(e)) => {
                    // Refused: the request never reached a server, so any method may go
                    // to another one. Otherwise only an idempotent one may.
                    let refused = never_sent(&e);
                    if refused {
                        server.refused();
                    }
                    tracing::debug!(service = self.service, server = %server.url, error = %e, refused, "rpc transport error");
                    last = tonic::Status::unavailable(format!("{} unreachable: {e}", self.service));
                    if !(refused || idempotent) {
                        break;
                    }
                    tried.push(server);
                }
                Ok(Ok(resp)) => {
                    server.refusals.store(0, Ordering::Relaxed);
                    let unavailable = grpc_code(&resp) == tonic::Code::Unavailable as i32;
                    if unavailable && idempotent && attempt < self.retries {
                        tried.push(server);
                        continue;
                    }
                    return (resp, true);
                }
            }
        }
        (reply(last), went_out)
    }
}

/// A status as a trailers-only response, as a server would send it.
fn reply(st: tonic::Status) -> http::Response<Body> {
    st.into_http()
}

/// The gRPC status of a response when it is in its headers (trailers-only: every unary
/// error); 0 (OK) otherwise.
fn grpc_code<B>(resp: &http::Response<B>) -> i32 {
    resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Codes that say the server, not the request, failed: what the breaker counts.
fn server_failed(code: i32) -> bool {
    use tonic::Code as C;
    [C::Unavailable, C::DeadlineExceeded, C::Internal, C::Unknown, C::ResourceExhausted, C::DataLoss]
        .iter()
        .any(|c| *c as i32 == code)
}

/// Whether a transport error happened before the request could reach the server.
fn never_sent(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

impl tower::Service<http::Request<Body>> for RpcChannel {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { Ok(inner.call(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_on_failures_and_closes_on_successes() {
        let b = Breaker::default();
        let t = Instant::now();
        for _ in 0..5 {
            b.record(t, false);
        }
        assert_eq!(b.reject_probability(t), 0.0, "the first failures are protected");
        for _ in 0..95 {
            b.record(t, false);
        }
        assert!(b.reject_probability(t) > 0.9, "{}", b.reject_probability(t));
        let refused = (0..1000).filter(|_| !b.allow(t)).count();
        assert!(refused > 850, "{refused}");
        // Ten seconds later the window has forgotten them.
        let later = t + Duration::from_secs(11);
        assert_eq!(b.reject_probability(later), 0.0);
        for _ in 0..100 {
            b.record(later, true);
        }
        for _ in 0..50 {
            b.record(later, false);
        }
        assert_eq!(b.reject_probability(later), 0.0, "mostly accepted: nothing refused");
    }

    #[tokio::test]
    async fn two_choices_prefer_the_less_loaded_and_skip_resting_servers() {
        let opts = ClientOptions::default();
        let ch = RpcChannel::new("test", &opts, &[]).expect("channel");
        let urls: Vec<String> = (1..=3).map(|i| format!("http://127.0.0.{i}:1")).collect();
        ch.set_endpoints(&urls).expect("endpoints");
        let servers = ch.0.servers.read().expect("lock").clone();
        servers[0].ewma_ns.store(1_000, Ordering::Relaxed);
        servers[1].ewma_ns.store(1_000_000, Ordering::Relaxed);
        for s in &servers[..2] {
            s.last_seen.store(now_ms(), Ordering::Relaxed);
        }
        servers[2].refused();
        let mut picks = [0usize; 3];
        for _ in 0..300 {
            let s = ch.0.pick(&[]).expect("a server");
            picks[servers.iter().position(|x| Arc::ptr_eq(x, &s)).expect("known")] += 1;
        }
        assert_eq!(picks, [300, 0, 0], "the fast one wins every pair it is in; the resting one is skipped");
        let s = ch.0.pick(&[servers[0].clone()]).expect("another");
        assert!(Arc::ptr_eq(&s, &servers[1]), "a retry goes elsewhere");
        assert!(ch.0.pick(&servers).is_none());
        // The slow one's figure goes stale without calls: it is probed again.
        servers[1].last_seen.store(0, Ordering::Relaxed);
        let s = ch.0.pick(&[servers[2].clone()]).expect("a server");
        assert!(Arc::ptr_eq(&s, &servers[1]), "a stale latency does not keep a server out");
        // Known servers keep their figures across a directory change.
        ch.set_endpoints(&urls[..2]).expect("endpoints");
        assert_eq!(ch.0.servers.read().expect("lock")[0].ewma_ns.load(Ordering::Relaxed), 1_000);
    }

    #[test]
    fn only_undelivered_errors_count_as_never_sent() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(never_sent(&refused));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!never_sent(&reset));
    }
}
