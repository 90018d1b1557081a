//! The server side of every rsgame gRPC service: one Tower layer that continues the
//! caller's trace, honours its deadline (and hands it on to calls made while serving), sheds
//! load and limits callers with the same algorithms as the REST API
//! ([`rsgame_kit::governance`]), and counts every call.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rsgame_kit::config::GovernanceConfig;
use rsgame_kit::governance::{RateLimiter, Shedder, cpu, deadline};
use tonic::body::Body;
use tracing::Instrument as _;

/// The governance of one gRPC server.
#[derive(Clone, Default)]
pub struct GovernLayer {
    shedder: Option<Arc<Shedder>>,
    limiter: Option<Arc<RateLimiter>>,
}

impl GovernLayer {
    /// Shedding and rate limits as `governance.*` asks (`rpc_rate_per_sec` for the rate).
    pub fn new(cfg: &GovernanceConfig) -> GovernLayer {
        GovernLayer {
            shedder: cfg.shedding.then(|| Arc::new(Shedder::new(cfg.shed_cpu_percent, cpu::usage()))),
            limiter: (cfg.rpc_rate_per_sec > 0)
                .then(|| Arc::new(RateLimiter::new(f64::from(cfg.rpc_rate_per_sec), f64::from(cfg.rate_burst.max(1))))),
        }
    }
}

impl<S> tower::Layer<S> for GovernLayer {
    type Service = Governed<S>;

    fn layer(&self, inner: S) -> Governed<S> {
        Governed { inner, layer: self.clone() }
    }
}

/// A service under [`GovernLayer`].
#[derive(Clone)]
pub struct Governed<S> {
    inner: S,
    layer: GovernLayer,
}

/// Parses a `grpc-timeout` value: digits and a unit (`H M S m u n`).
pub fn parse_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn reply(code: rsgame_kit::Code, msg: &str) -> http::Response<Body> {
    crate::status(rsgame_kit::Error::msg(code, msg)).into_http()
}

impl<S> tower::Service<http::Request<Body>> for Governed<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was made ready serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let method = path.rsplit('/').next().unwrap_or_default().to_owned();
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = %path.trim_start_matches('/'),
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
            );
            rsgame_kit::telemetry::otel::continue_trace(&span, req.headers());
            let started = Instant::now();
            let peer: Option<IpAddr> = req
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|c| c.remote_addr())
                .map(|a| a.ip());
            let timeout = req.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_timeout);
            let resp = async {
                if let (Some(limiter), Some(ip)) = (&layer.limiter, peer)
                    && !limiter.allow(ip, Instant::now())
                {
                    metrics::counter!(rsgame_kit::telemetry::metrics::GOVERNANCE_RATE_LIMITED, "face" => "rpc")
                        .increment(1);
                    return Ok(reply(rsgame_kit::Code::TooManyRequests, "too many calls"));
                }
                let pass = match &layer.shedder {
                    Some(s) => match s.admit(Instant::now()) {
                        Some(p) => Some(p),
                        None => {
                            metrics::counter!(rsgame_kit::telemetry::metrics::GOVERNANCE_SHED, "face" => "rpc")
                                .increment(1);
                            return Ok(reply(
                                rsgame_kit::Code::Unavailable,
                                "the server is overloaded: try again shortly",
                            ));
                        }
                    },
                    None => None,
                };
                let call = inner.call(req);
                let resp = match timeout {
                    Some(t) => {
                        let until = tokio::time::Instant::now() + t;
                        match tokio::time::timeout_at(until, deadline::scope(until, call)).await {
                            Ok(r) => r,
                            Err(_) => {
                                metrics::counter!(rsgame_kit::telemetry::metrics::GOVERNANCE_TIMEOUTS, "face" => "rpc")
                                    .increment(1);
                                Ok(tonic::Status::deadline_exceeded("deadline exceeded").into_http())
                            }
                        }
                    }
                    None => call.await,
                };
                if let Some(p) = pass {
                    p.done(Instant::now());
                }
                resp
            }
            .instrument(span.clone())
            .await;
            if let Ok(r) = &resp {
                let code = r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
                span.record("rpc.grpc.status_code", code.as_str());
                metrics::histogram!(crate::metrics::SERVER_SECONDS, "method" => method.clone())
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(crate::metrics::SERVER_REQUESTS, "method" => method, "code" => code).increment(1);
            }
            resp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("10"), None);
        assert_eq!(parse_timeout("m"), None);
        assert_eq!(parse_timeout("1234567890m"), None, "at most 8 digits");
        assert_eq!(parse_timeout("-1m"), None);
    }
}
