//! Request governance for REST routes, in the manner of go-zero: a deadline per request, a
//! rate limit per client IP, and adaptive load shedding. [`apply`] wraps a router's routes
//! (not the ops routes: health checks and metrics must answer when the API is overloaded).
//!
//! - **Timeout**: a request that takes longer than `governance.timeout_ms` is answered with
//!   400504 and its handler future is dropped. Handlers must be cancel-safe at await points:
//!   rsgame's database transactions roll back when dropped. Multipart uploads are exempt
//!   (their size limit bounds them; their time is the client's bandwidth).
//! - **Rate limit**: a token bucket per client IP (`rate_per_sec`, `rate_burst`); beyond it,
//!   400502 at once. The table of buckets is bounded: idle full buckets are dropped.
//! - **Load shedding** (go-zero's adaptive shedder): the server keeps, over the last five
//!   seconds in 100 ms buckets, the most requests it finished in a bucket and the shortest
//!   average latency of a bucket. Their product is how many requests it can have in flight
//!   without queueing. When this process's CPU use (a share of the cores it may use) is above
//!   `shed_cpu_percent` (or a request was
//!   shed within the last second) and more than that are in flight, a new request gets
//!   400503 at once: it fails fast instead of waiting in a queue it would time out in.
//!
//! ```
//! use axum::Router;
//! use axum::routing::get;
//! use rsgame_kit::config::GovernanceConfig;
//!
//! let api = Router::new().route("/hello", get(|| async { "hi" }));
//! let cfg = GovernanceConfig { rate_per_sec: 20, ..GovernanceConfig::default() };
//! let app = rsgame_kit::http::finish(rsgame_kit::governance::apply(api, &cfg));
//! # let _ = app;
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::GovernanceConfig;
use crate::error::{Code, Error};
use crate::http::Peer;
use crate::telemetry::sampled::Sampled;

/// Wraps every route of `router` with the governance `cfg` asks for (nothing when all of it
/// is off). Call it on the API routes before merging the ops routes.
pub fn apply(router: Router, cfg: &GovernanceConfig) -> Router {
    let mut router = router;
    if cfg.timeout_ms > 0 {
        let limit = Duration::from_millis(cfg.timeout_ms);
        router = router.layer(axum::middleware::from_fn_with_state(limit, timeout));
    }
    if cfg.rate_per_sec > 0 {
        let limiter = Arc::new(RateLimiter::new(f64::from(cfg.rate_per_sec), f64::from(cfg.rate_burst.max(1))));
        router = router.layer(axum::middleware::from_fn_with_state(limiter, rate_limit));
    }
    if cfg.shedding {
        let shedder = Arc::new(Shedder::new(cfg.shed_cpu_percent, cpu::usage()));
        router = router.layer(axum::middleware::from_fn_with_state(shedder, shed));
    }
    router
}

/// Refusals are warned about at most once a second each, with a count.
static TIMEOUT_LOG: Sampled = Sampled::new();
static RATE_LOG: Sampled = Sampled::new();
static SHED_LOG: Sampled = Sampled::new();

/// Wraps `router` with a per-address rate limit (`public_rate_per_sec`, `public_rate_burst`)
/// on the routes in `paths`: those a stranger reaches without a token (register, login,
/// captcha…), which each cost the server a password hash, an image or a cache entry. On by
/// default, unlike the limit on every route.
pub fn limit_public(router: Router, paths: &[&'static str], cfg: &GovernanceConfig) -> Router {
    if cfg.public_rate_per_sec == 0 || paths.is_empty() {
        return router;
    }
    let limiter =
        Arc::new(RateLimiter::new(f64::from(cfg.public_rate_per_sec), f64::from(cfg.public_rate_burst.max(1))));
    let paths: Arc<std::collections::HashSet<&'static str>> = Arc::new(paths.iter().copied().collect());
    router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let (limiter, paths) = (limiter.clone(), paths.clone());
        async move {
            if !paths.contains(req.uri().path()) {
                return next.run(req).await;
            }
            rate_limit(State(limiter), req, next).await
        }
    }))
}

async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    // An upload's time is the client's bandwidth, not the server's work: its size limit
    // bounds it instead.
    let upload = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    if upload {
        return next.run(req).await;
    }
    // The deadline travels with the request: gRPC calls made while serving it send on what
    // is left of it (`grpc-timeout`) instead of their own longer limit.
    let until = deadline::at(limit);
    match tokio::time::timeout(limit, deadline::scope(until, next.run(req))).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics::counter!(crate::telemetry::metrics::GOVERNANCE_TIMEOUTS).increment(1);
            if let Some(held) = TIMEOUT_LOG.hit() {
                tracing::warn!(timeouts_since_last = held, "request timed out");
            }
            Error::new(Code::Timeout).into_quiet_response()
        }
    }
}

async fn rate_limit(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<axum::extract::ConnectInfo<Peer>>().map(|c| c.0.0.ip());
    if let Some(ip) = ip
        && !limiter.allow(ip, Instant::now())
    {
        metrics::counter!(crate::telemetry::metrics::GOVERNANCE_RATE_LIMITED).increment(1);
        if let Some(held) = RATE_LOG.hit() {
            tracing::warn!(ip = %ip, limited_since_last = held, "request rate-limited");
        }
        return Error::new(Code::TooManyRequests).into_quiet_response();
    }
    next.run(req).await
}

async fn shed(State(shedder): State<Arc<Shedder>>, req: Request, next: Next) -> Response {
    let Some(pass) = shedder.admit(Instant::now()) else {
        metrics::counter!(crate::telemetry::metrics::GOVERNANCE_SHED).increment(1);
        // Once logged at ERROR per request: a busy machine turned refusals into a log flood.
        if let Some(held) = SHED_LOG.hit() {
            tracing::warn!(shed_since_last = held, "request shed: the server is overloaded");
        }
        return Error::msg(Code::Unavailable, "the server is overloaded: try again shortly").into_quiet_response();
    };
    let resp = next.run(req).await;
    pass.done(Instant::now());
    resp
}

/// Token buckets per client IP.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_ip: HashMap<IpAddr, (f64, Instant)>,
    /// When the table was last swept: at most once a second, so a flood from very many
    /// addresses cannot make every request scan it.
    swept: Option<Instant>,
}

/// Buckets kept before idle full ones are dropped.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// `rate` requests per second sustained, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate, burst, buckets: Mutex::new(Buckets { by_ip: HashMap::new(), swept: None }) }
    }

    /// Takes a token for `ip` at `now`; false when it has none.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut *guard;
        if b.by_ip.len() >= MAX_BUCKETS && !b.by_ip.contains_key(&ip) {
            if b.swept.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
                // A bucket refilled to the brim says nothing a new one would not: drop those.
                let (rate, burst) = (self.rate, self.burst);
                b.by_ip.retain(|_, (tokens, at)| {
                    *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
                });
                b.swept = Some(now);
            }
            if b.by_ip.len() >= MAX_BUCKETS {
                // Every bucket is busy: a flood from very many addresses. Refuse the new one
                // rather than grow without bound.
                return false;
            }
        }
        let (tokens, at) = b.by_ip.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Buckets of the shedder's window: 50 × 100 ms = 5 s.
const BUCKETS: usize = 50;
const BUCKET: Duration = Duration::from_millis(100);
/// After a shed, keep shedding (when over the limit) this long even if the CPU dips.
const COOL_OFF: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Default)]
struct Bucket {
    /// Which 100 ms slot since `start` this holds.
    slot: u64,
    passed: u64,
    total_rt: Duration,
}

/// go-zero's adaptive load shedder; see the [module docs](self).
pub struct Shedder {
    cpu_threshold: u32,
    cpu: Arc<AtomicU32>,
    start: Instant,
    in_flight: AtomicI64,
    window: Mutex<[Bucket; BUCKETS]>,
    /// When a request was last shed (ms since `start`; -1: never).
    dropped_at: AtomicI64,
}

/// An admitted request: report when it is done. Dropped without [`Pass::done`] (the client
/// went away and the request's future with it), it still leaves the in-flight count.
pub struct Pass<'a> {
    shedder: &'a Shedder,
    began: Instant,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.shedder.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pass<'_> {
    /// The request finished at `now` (successfully or not: it left the server): its latency
    /// joins the window.
    pub fn done(self, now: Instant) {
        let s = self.shedder;
        let slot = s.slot(now);
        let mut w = s.window.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut w[(slot % BUCKETS as u64) as usize];
        if b.slot != slot {
            *b = Bucket { slot, ..Bucket::default() };
        }
        b.passed += 1;
        b.total_rt += now.saturating_duration_since(self.began);
        // Drop leaves the in-flight count.
    }
}

impl Shedder {
    /// Sheds when CPU (percent, read from `cpu`) is at or above `cpu_threshold`.
    pub fn new(cpu_threshold: u32, cpu: Arc<AtomicU32>) -> Shedder {
        Shedder {
            cpu_threshold,
            cpu,
            start: Instant::now(),
            in_flight: AtomicI64::new(0),
            window: Mutex::new([Bucket::default(); BUCKETS]),
            dropped_at: AtomicI64::new(-1),
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_millis() / BUCKET.as_millis()) as u64
    }

    /// How many requests may be in flight: the most finished in a bucket times the shortest
    /// bucket's average latency, per bucket length (at least 1). None before any data.
    pub fn max_in_flight(&self, now: Instant) -> Option<i64> {
        let current = self.slot(now);
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        // Only finished buckets of the window count: the current one is still filling.
        let recent = w.iter().filter(|b| b.passed > 0 && b.slot < current && current - b.slot <= BUCKETS as u64);
        let (mut max_pass, mut min_rt) = (0u64, f64::MAX);
        for b in recent {
            max_pass = max_pass.max(b.passed);
            min_rt = min_rt.min(b.total_rt.as_secs_f64() / b.passed as f64);
        }
        (max_pass > 0).then(|| ((max_pass as f64) * min_rt / BUCKET.as_secs_f64()).ceil().max(1.0) as i64)
    }

    /// Admits a request at `now`, or None to shed it.
    pub fn admit(&self, now: Instant) -> Option<Pass<'_>> {
        let hot = self.cpu.load(Ordering::Relaxed) >= self.cpu_threshold;
        let since_drop = self.dropped_at.load(Ordering::Relaxed);
        let now_ms = now.saturating_duration_since(self.start).as_millis() as i64;
        let cooling = since_drop >= 0 && now_ms - since_drop < COOL_OFF.as_millis() as i64;
        if hot || cooling {
            let in_flight = self.in_flight.load(Ordering::Relaxed);
            if let Some(max) = self.max_in_flight(now)
                && in_flight >= max
                && in_flight > 1
            {
                self.dropped_at.store(now_ms, Ordering::Relaxed);
                return None;
            }
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Pass { shedder: self, began: now })
    }
}

/// The deadline of the request being served, carried by the task serving it: set by the
/// REST timeout and by gRPC servers from the caller's `grpc-timeout`, read by gRPC clients so
/// a call never outlives what its caller still waits for.
pub mod deadline {
    use std::future::Future;
    use std::time::Duration;

    use tokio::time::Instant;

    tokio::task_local! {
        static DEADLINE: Instant;
    }

    /// The instant `limit` from now, or no later than an inherited deadline.
    pub fn at(limit: Duration) -> Instant {
        let own = Instant::now() + limit;
        current().map_or(own, |d| d.min(own))
    }

    /// The deadline in force, if any.
    pub fn current() -> Option<Instant> {
        DEADLINE.try_with(|d| *d).ok()
    }

    /// Time left before the deadline in force (zero when it has passed), if any.
    pub fn remaining() -> Option<Duration> {
        current().map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Runs `fut` with `until` as its deadline (an earlier inherited one stays in force).
    pub fn scope<F: Future>(until: Instant, fut: F) -> impl Future<Output = F::Output> {
        let until = current().map_or(until, |d| d.min(until));
        DEADLINE.scope(until, fut)
    }
}

/// This process's CPU use, as a share of the cores it may use, sampled from
/// `/proc/self/stat` every 250 ms and smoothed (as go-zero does, β = 0.95). The machine's
/// use would let another process (a build, a neighbour container) make rsgame refuse its own
/// requests. 0 where there is no `/proc/self/stat`: shedding then never starts.
pub mod cpu {
    use super::*;

    /// The shared reading, percent (0–100); the sampler thread starts on first use.
    pub fn usage() -> Arc<AtomicU32> {
        static CPU: OnceLock<Arc<AtomicU32>> = OnceLock::new();
        CPU.get_or_init(|| {
            let value = Arc::new(AtomicU32::new(0));
            let out = value.clone();
            // Cores this process may use (cgroup quotas included).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let spawned = std::thread::Builder::new().name("cpu-sampler".into()).spawn(move || {
                let mut last = (read(), Instant::now());
                let mut smooth = 0.0f64;
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let now = (read(), Instant::now());
                    if let (Some(t0), Some(t1)) = (last.0, now.0) {
                        let wall = now.1.duration_since(last.1).as_secs_f64();
                        if wall > 0.0 {
                            let used = share(t1.saturating_sub(t0), wall, cores);
                            smooth = smooth * 0.95 + used * 0.05;
                            out.store(smooth.round() as u32, Ordering::Relaxed);
                        }
                    }
                    last = now;
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no CPU sampler: load shedding will not start");
            }
            value
        })
        .clone()
    }

    /// Percent of `cores` used by `ticks` of CPU time (USER_HZ, 100 a second on Linux) over
    /// `wall` seconds.
    pub(super) fn share(ticks: u64, wall: f64, cores: f64) -> f64 {
        (ticks as f64 / 100.0 / wall / cores * 100.0).clamp(0.0, 100.0)
    }

    /// This process's user + system time, in ticks.
    fn read() -> Option<u64> {
        parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// utime + stime from a `/proc/[pid]/stat` line (fields 14 and 15; the command name in
    /// parentheses may hold spaces, so counting starts after its closing parenthesis).
    pub(super) fn parse(stat: &str) -> Option<u64> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate_and_cap_at_the_burst() {
        let l = RateLimiter::new(10.0, 3.0);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.allow(ip, t0)), "the burst");
        assert!(!l.allow(ip, t0), "then refused");
        assert!(l.allow(other, t0), "another client has its own bucket");
        assert!(l.allow(ip, t0 + Duration::from_millis(110)), "one token after 100 ms");
        assert!(!l.allow(ip, t0 + Duration::from_millis(120)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| l.allow(ip, later)).count(), 3, "never more than the burst");
    }

    #[test]
    fn the_bucket_table_is_bounded() {
        let l = RateLimiter::new(1.0, 5.0);
        let t0 = Instant::now();
        let ip = |i: u32| IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) + 1));
        for i in 0..MAX_BUCKETS as u32 {
            assert!(l.allow(ip(i), t0));
        }
        // Every bucket is in use: a new address is refused rather than the table growing.
        assert!(!l.allow(ip(u32::MAX), t0));
        assert!(l.allow(ip(7), t0), "known addresses keep their buckets");
        // Once the buckets have refilled they are swept, and newcomers get theirs.
        assert!(l.allow(ip(u32::MAX), t0 + Duration::from_secs(10)));
    }

    #[test]
    fn the_shedder_admits_until_hot_and_over_what_it_can_finish() {
        let cpu = Arc::new(AtomicU32::new(10));
        let s = Shedder::new(90, cpu.clone());
        let t0 = s.start;
        // A bucket where 4 requests took 100 ms each: about 4 may be in flight.
        let passes: Vec<_> = (0..4).map(|_| s.admit(t0).expect("admitted")).collect();
        for p in passes {
            p.done(t0 + Duration::from_millis(100));
        }
        let later = t0 + Duration::from_millis(250);
        assert_eq!(s.max_in_flight(later), Some(4));
        // Cool CPU: no shedding however many are in flight.
        let held: Vec<_> = (0..10).map(|_| s.admit(later).expect("cool: admitted")).collect();
        // Hot CPU and 10 in flight > 4: shed.
        cpu.store(95, Ordering::Relaxed);
        assert!(s.admit(later).is_none(), "hot and over the limit: shed");
        // Still cooling off a moment later even if the CPU reading dips.
        cpu.store(10, Ordering::Relaxed);
        assert!(s.admit(later + Duration::from_millis(500)).is_none(), "cool-off");
        for p in held {
            p.done(later);
        }
        // Past the cool-off with few in flight: admitted again.
        assert!(s.admit(later + Duration::from_secs(2)).is_some());
    }

    async fn call(app: &Router, from: &str, path: &str, content_type: Option<&str>) -> i64 {
        use tower::ServiceExt as _;
        let mut req = axum::http::Request::builder().uri(path);
        if let Some(t) = content_type {
            req = req.header(axum::http::header::CONTENT_TYPE, t);
        }
        let mut req = req.body(axum::body::Body::empty()).expect("request");
        let peer = Peer(format!("{from}:5000").parse().expect("addr"));
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v["code"].as_i64().unwrap_or(200)
    }

    fn app(cfg: &GovernanceConfig) -> Router {
        use axum::routing::get;
        let api = Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }));
        crate::http::finish(apply(api, cfg).merge(Router::new().route("/healthz", get(|| async { "ok" }))))
    }

    #[tokio::test]
    async fn slow_requests_time_out_and_floods_are_refused_in_the_envelope() {
        let cfg = GovernanceConfig { timeout_ms: 100, rate_per_sec: 1, rate_burst: 3, ..GovernanceConfig::default() };
        let app = app(&cfg);
        assert_eq!(call(&app, "10.0.0.9", "/slow", None).await, 400504, "timed out");
        // An upload is not timed (its size limit bounds it): it is still running at 100 ms.
        let upload = tokio::time::timeout(
            Duration::from_millis(300),
            call(&app, "10.0.0.8", "/slow", Some("multipart/form-data; boundary=x")),
        )
        .await;
        assert!(upload.is_err(), "uploads are exempt");
        let codes: Vec<i64> =
            futures_util::future::join_all((0..5).map(|_| call(&app, "10.0.0.1", "/fast", None))).await;
        assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 3, "{codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 400502).count(), 2, "{codes:?}");
        assert_eq!(call(&app, "10.0.0.2", "/fast", None).await, 200, "another client is unaffected");
        // Health checks are outside governance.
        assert!(
            futures_util::future::join_all((0..10).map(|_| call(&app, "10.0.0.1", "/healthz", None)))
                .await
                .iter()
                .all(|&c| c == 200)
        );
    }

    #[test]
    fn an_abandoned_request_leaves_the_in_flight_count() {
        let s = Shedder::new(90, Arc::new(AtomicU32::new(0)));
        let now = Instant::now();
        let a = s.admit(now).expect("admitted");
        let b = s.admit(now).expect("admitted");
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 2);
        drop(a); // the client went away mid-request
        b.done(now);
        assert_eq!(s.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn proc_stat_lines_parse() {
        let line = "4242 (rsgame serve) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(cpu::parse(line), Some(200), "utime 150 + stime 50");
        assert_eq!(cpu::parse("1 (a) b) S 1 2 3 4 5 6 7 8 9 10 7 3"), Some(10), "a name with a parenthesis");
        assert_eq!(cpu::parse("garbage"), None);
        assert_eq!(cpu::share(100, 1.0, 2.0), 50.0, "one core of two for a second");
        assert_eq!(cpu::share(1000, 1.0, 2.0), 100.0);
    }
}
