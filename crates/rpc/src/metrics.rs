//! The gRPC layer's Prometheus metrics: their names and what they measure. Governance
//! refusals count in kit's `governance_*` series with `face="rpc"`.

use rsgame_kit::telemetry::metrics::Def;

/// Servers a client can call, by service.
pub const CLIENT_ENDPOINTS: &str = "rpc_client_endpoints";
/// Client call latency, by service and method.
pub const CLIENT_SECONDS: &str = "rpc_client_duration_seconds";
/// Client calls, by service, method and gRPC code.
pub const CLIENT_REQUESTS: &str = "rpc_client_requests_total";
/// Calls refused by an open circuit breaker, by service.
pub const CLIENT_BREAKER_REJECTED: &str = "rpc_client_breaker_rejected_total";
/// Calls retried on another server, by service.
pub const CLIENT_RETRIES: &str = "rpc_client_retries_total";
/// Server call latency, by method.
pub const SERVER_SECONDS: &str = "rpc_server_duration_seconds";
/// Server calls, by method and gRPC code.
pub const SERVER_REQUESTS: &str = "rpc_server_requests_total";

/// The metrics the gRPC layer records.
pub const METRICS: &[Def] = &[
    Def::gauge(CLIENT_ENDPOINTS, "Servers a gRPC client can call, by service."),
    Def::histogram(CLIENT_SECONDS, "gRPC client call latency, by service and method."),
    Def::counter(CLIENT_REQUESTS, "gRPC client calls, by service, method and code."),
    Def::counter(CLIENT_BREAKER_REJECTED, "gRPC calls refused by an open circuit breaker, by service."),
    Def::counter(CLIENT_RETRIES, "gRPC calls retried, by service."),
    Def::histogram(SERVER_SECONDS, "gRPC server call latency, by method."),
    Def::counter(SERVER_REQUESTS, "gRPC server calls, by method and code."),
];
