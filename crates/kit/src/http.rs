//! The HTTP plumbing every process shares: the observing middleware (request id, span,
//! metrics, access log), `/healthz`, `/readyz`, the metrics endpoint, the envelope fallback,
//! and serving with graceful shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::error::{Code, Envelope};
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{HTTP_DURATION, HTTP_REQUESTS};

/// Header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The dependency checks behind `/readyz`. Components register one check each (the database,
/// Redis, the bus); the endpoint runs them all, each bounded by a timeout.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(String, Check)>>>,
    draining: Shutdown,
}

/// What `/readyz` answers.
#[derive(Debug, Serialize)]
pub struct ReadyReport {
    /// `ready`, `not ready` or `draining`.
    pub status: &'static str,
    /// Each check's result: `ok` or `down`. Causes go to the log, not to the caller.
    pub checks: BTreeMap<String, &'static str>,
}

impl Readiness {
    /// A readiness registry that reports `draining` once `shutdown` is triggered, so load
    /// balancers stop sending new work while in-flight work finishes.
    pub fn new(shutdown: &Shutdown) -> Self {
        Readiness { checks: Arc::default(), draining: shutdown.clone() }
    }

    /// Registers a named check.
    pub fn add<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        if let Ok(mut c) = self.checks.lock() {
            c.push((name.into(), check));
        }
    }

    /// Runs every check concurrently, each within `timeout`.
    pub async fn report(&self, timeout: Duration) -> ReadyReport {
        let checks: Vec<(String, Check)> = self.checks.lock().map(|c| c.clone()).unwrap_or_default();
        let runs = checks.into_iter().map(|(name, check)| async move {
            let result = match tokio::time::timeout(timeout, check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            if let Err(e) = &result {
                tracing::warn!(check = %name, error = %e, "readiness check failed");
            }
            (name, result.is_ok())
        });
        let results = futures_util::future::join_all(runs).await;
        let all_ok = results.iter().all(|(_, ok)| *ok);
        let checks = results.into_iter().map(|(n, ok)| (n, if ok { "ok" } else { "down" })).collect();
        let status = if self.draining.is_triggered() {
            "draining"
        } else if all_ok {
            "ready"
        } else {
            "not ready"
        };
        ReadyReport { status, checks }
    }
}

/// Routes every process serves: `/healthz` (the process is alive), `/readyz` (its
/// dependencies answer), and the metrics endpoint when metrics are on.
pub fn ops_router(readiness: Readiness, metrics: Option<(Metrics, String)>) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route("/readyz", get(readyz).with_state(readiness));
    if let Some((m, path)) = metrics {
        r = r.route(&path, get(render_metrics).with_state(m));
    }
    r
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report(Duration::from_secs(2)).await;
    let code = if report.status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(report)).into_response()
}

async fn render_metrics(State(m): State<Metrics>) -> Response {
    // Rendering walks every series; keep it off the async workers.
    match tokio::task::spawn_blocking(move || m.render()).await {
        Ok(text) => ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Adds what every route needs: the observing middleware, panic safety and the envelope
/// fallback for unknown routes. Call it on the finished router, after every route is added,
/// so the layers reach them all.
pub fn finish(router: Router) -> Router {
    router
        .fallback(route_not_found)
        .layer(axum::middleware::from_fn(observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(compression())
}

/// Replies of 1 KiB or more (`/openapi.json`, long lists) compressed with gzip when the
/// client asks (`Accept-Encoding`), with `Vary: accept-encoding`, at level 4: most of the
/// saving for a small part of the CPU of the highest level. Not brotli: on these replies it
/// cost twice gzip's CPU for 3 % fewer bytes (docs/benchmarks.md); files that never change
/// are better compressed once, as the browser client is (brotli and gzip). Smaller replies
/// gain too little to pay for it; gRPC, event streams and media that is compressed already
/// (images, audio, video, archives, PDFs) are left alone; a reply that is already encoded
/// is passed as it is.
fn compression() -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate as _, SizeAbove};
    let worth_it = SizeAbove::new(1024)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("audio/"))
        .and(NotForContentType::const_new("video/"))
        .and(NotForContentType::const_new("application/zip"))
        .and(NotForContentType::const_new("application/pdf"))
        .and(NotForContentType::const_new("application/octet-stream"));
    tower_http::compression::CompressionLayer::new()
        .no_br()
        .quality(tower_http::CompressionLevel::Precise(4))
        .compress_when(worth_it)
}

async fn route_not_found() -> Response {
    let env: Envelope<()> =
        Envelope { code: Code::RouteNotFound, msg: Code::RouteNotFound.default_msg().into(), data: None };
    let mut resp = (StatusCode::NOT_FOUND, axum::Json(env)).into_response();
    resp.extensions_mut().insert(Code::RouteNotFound);
    resp
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic message went to the log through the panic hook; the client learns only that
    // the server failed.
    let env: Envelope<()> = Envelope { code: Code::Failed, msg: "internal error".into(), data: None };
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(env)).into_response()
}

/// Gives each request an id (the caller's `x-request-id` if sane, else a new one) and a span
/// carrying it, so every log line of the request names it; records the request metrics;
/// writes one access log line at DEBUG and, at most once a second, an INFO summary.
pub async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // The route template (`/users/{id}`), never the raw path: raw paths would make one
    // metrics series per URL.
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map_or_else(new_request_id, str::to_owned);
    let span = tracing::info_span!(
        "http",
        request_id = %request_id,
        method = %method,
        route = %route,
        // Read by the OpenTelemetry layer: a server span named after the route.
        otel.kind = "server",
        otel.name = %format_args!("{method} {route}"),
    );
    crate::telemetry::otel::continue_trace(&span, req.headers());

    let mut resp = next.run(req).instrument(span.clone()).await;

    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    let labels = [("method", method.to_string()), ("route", route.clone()), ("status", status.to_string())];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let code = resp.extensions().get::<Code>().map(|c| c.as_u32());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    // One line per request at DEBUG; at INFO a summary at most once a second. A line per
    // request let unauthenticated traffic fill the disk when file logging is on.
    span.in_scope(|| tracing::debug!(status, code, latency_ms, "request"));
    if !(route == "/healthz" || route == "/readyz" || route == "/metrics") {
        REQUEST_SUMMARY.record(status, elapsed);
    }
    resp
}

/// Requests since the last summary line: counts by status class and the slowest.
struct RequestSummary {
    since_ms: AtomicU64,
    ok: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    slowest_us: AtomicU64,
}

static REQUEST_SUMMARY: RequestSummary = RequestSummary {
    since_ms: AtomicU64::new(0),
    ok: AtomicU64::new(0),
    client_errors: AtomicU64::new(0),
    server_errors: AtomicU64::new(0),
    slowest_us: AtomicU64::new(0),
};

impl RequestSummary {
    /// Counts one request; the first request a second after the last summary writes the
    /// next (no task or timer: an idle server writes nothing).
    fn record(&self, status: u16, elapsed: Duration) {
        let class = match status {
            500.. => &self.server_errors,
            400..=499 => &self.client_errors,
            _ => &self.ok,
        };
        class.fetch_add(1, Ordering::Relaxed);
        self.slowest_us.fetch_max(elapsed.as_micros() as u64, Ordering::Relaxed);
        let now = crate::time::unix_ms().max(0) as u64;
        let since = self.since_ms.load(Ordering::Relaxed);
        if now.saturating_sub(since) < 1000
            || self.since_ms.compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let (ok, client, server) = (
            self.ok.swap(0, Ordering::Relaxed),
            self.client_errors.swap(0, Ordering::Relaxed),
            self.server_errors.swap(0, Ordering::Relaxed),
        );
        let slowest_ms = self.slowest_us.swap(0, Ordering::Relaxed) as f64 / 1000.0;
        // The first call only starts the clock.
        if since != 0 {
            let secs = (now - since) as f64 / 1000.0;
            tracing::info!(secs, ok, client_errors = client, server_errors = server, slowest_ms, "requests");
        }
    }
}

fn valid_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Binds the HTTP listener.
pub async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

/// The client's address, as handlers extract it: `ConnectInfo<Peer>`. One type for plain
/// and TLS listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// The client's IP address for logs and rate limits: the connection's peer, or the client
/// behind it when the peer is a trusted proxy ([`crate::proxy`]). Empty when the router was
/// not served with connection info (in-process tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<axum::extract::ConnectInfo<Peer>>().map(|c| c.0.0.ip().to_string());
        Ok(ClientIp(ip.unwrap_or_default()))
    }
}

/// Serves `router` until `shutdown` triggers, then stops accepting and returns once the
/// in-flight requests are done. The caller bounds that wait with the grace period. With a
/// TLS configuration the listener speaks https (and wss for the WebSocket routes). Default
/// [`crate::listen::ConnLimits`]; `listen::serve` takes others.
pub async fn serve(
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    crate::listen::serve(listener, tls, router, shutdown, crate::listen::ConnLimits::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn boom() -> &'static str {
        panic!("handler bug")
    }

    fn app() -> Router {
        let sd = Shutdown::new();
        let ready = Readiness::new(&sd);
        finish(
            Router::new()
                .route("/boom", get(boom))
                .route("/err", get(|| async { crate::error::Error::msg(Code::BadParam, "bad id") }))
                .merge(ops_router(ready, None)),
        )
    }

    async fn call(app: Router, path: &str, rid: Option<&str>) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let mut b = http::Request::builder().uri(path);
        if let Some(r) = rid {
            b = b.header(REQUEST_ID, r);
        }
        let resp = app.oneshot(b.body(Body::empty()).expect("request")).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let json =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&body).into()));
        (status, headers, json)
    }

    #[tokio::test]
    async fn request_id_is_echoed_or_made() {
        let (s, h, _) = call(app(), "/healthz", Some("abc-123")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h.get(REQUEST_ID).expect("id"), "abc-123");
        let (_, h, _) = call(app(), "/healthz", Some("bad id with spaces")).await;
        let id = h.get(REQUEST_ID).expect("id").to_str().expect("ascii");
        assert_eq!(id.len(), 32, "a fresh id replaces an unsafe one");
    }

    #[tokio::test]
    async fn unknown_route_gets_envelope_404() {
        let (s, _, v) = call(app(), "/nope", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v["code"], 400505);
    }

    #[tokio::test]
    async fn panic_becomes_500_envelope() {
        let (s, _, v) = call(app(), "/boom", None).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v, serde_json::json!({"code": 400, "msg": "internal error"}));
    }

    #[tokio::test]
    async fn handler_error_is_an_envelope() {
        let (s, _, v) = call(app(), "/err", None).await;
        assert_eq!(s, StatusCode::OK, "compat policy by default");
        assert_eq!(v, serde_json::json!({"code": 400102, "msg": "bad id"}));
    }

    #[tokio::test]
    async fn readiness_reports_failing_checks_and_draining() {
        let sd = Shutdown::new();
        let ready = Readiness::new(&sd);
        ready.add("db", || async { Ok(()) });
        let app = || finish(ops_router(ready.clone(), None));
        let (s, _, v) = call(app(), "/readyz", None).await;
        assert_eq!((s, v["status"].clone()), (StatusCode::OK, "ready".into()));

        ready.add("redis", || async { Err("connection refused".to_owned()) });
        let (s, _, v) = call(app(), "/readyz", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["checks"], serde_json::json!({"db": "ok", "redis": "down"}));
        assert!(!v.to_string().contains("refused"), "causes stay in the log");

        sd.trigger();
        let (s, _, v) = call(app(), "/readyz", None).await;
        assert_eq!((s, v["status"].clone()), (StatusCode::SERVICE_UNAVAILABLE, "draining".into()));
    }

    #[tokio::test]
    async fn in_flight_request_finishes_after_shutdown_signal() {
        let sd = Shutdown::new();
        let router = finish(Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        ));
        let listener = bind("127.0.0.1", 0).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, None, router, sd.clone()));

        let client = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        sd.trigger();
        let reply = client.await.expect("client");
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("done"), "{reply}");
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("server stops")
            .expect("join")
            .expect("serve");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed");
    }
}
