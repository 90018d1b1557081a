//! The Elasticsearch (or OpenSearch) log sink: each batch is one `POST {url}/_bulk` of
//! NDJSON, an `index` action before every line.
//!
//! Failures are sorted so a bad line cannot stall shipping: a whole request refused with 408,
//! 429 or 5xx (or not answered) is retried; items refused with 429 or 5xx are retried alone;
//! items refused otherwise (a mapping error) and requests refused with another 4xx are
//! dropped, since sending them again would fail the same way.
//!
//! The HTTP client is hyper's, as in the S3 file store: one kept-alive HTTP/1.1 connection,
//! reopened when it breaks; `https://` uses rustls with the system's roots, and
//! `user:password@` in the URL becomes basic authentication.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use serde::Deserialize;

use super::{Line, LogSink, SendFuture, SinkError};

/// Connecting (TCP and TLS) may take this long.
const CONNECT: Duration = Duration::from_secs(5);
/// The whole answer (head and body) may take this long.
const RESPONSE: Duration = Duration::from_secs(10);
/// The largest response body read. With `filter_path` an item's answer is a few dozen bytes,
/// so this is far above any batch's.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Only what the failure sorting needs, so a large batch's response stays small.
const QUERY: &str = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason";

/// Ships lines to one Elasticsearch index.
pub struct Elasticsearch {
    /// Host to connect to (brackets of an IPv6 address removed).
    host: String,
    port: u16,
    /// The `Host` header: host, and the port unless it is the scheme's.
    host_header: String,
    /// `/…/_bulk?filter_path=…`.
    path: String,
    /// `Basic …`, from the URL's user information.
    authorization: Option<String>,
    /// With https: the TLS client configuration, built once (loading the roots reads files).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `{"index":{"_index":"…"}}\n`, the same before every line.
    action: Vec<u8>,
    /// The open connection, if any. Only one send runs at a time; the lock is for `Sync`.
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Elasticsearch {
    /// A sink for `url` (`http://host:9200`, `https://user:pw@host/prefix`) and `index`.
    /// Connects on the first send, so a server that is down does not stop start-up.
    pub fn new(url: &str, index: &str) -> Result<Elasticsearch, String> {
        // The caller names the URL (with its password masked); the error here must not.
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("must start with http:// or https://".into()),
        };
        let host = uri.host().ok_or("has no host")?.to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let host_header = match uri.port_u16() {
            Some(p) if p != if tls { 443 } else { 80 } => format!("{host}:{p}"),
            _ => host.clone(),
        };
        let authorization = uri.authority().and_then(|a| a.as_str().rsplit_once('@')).map(|(userinfo, _)| {
            use base64::Engine as _;
            let decoded = percent_decode(userinfo);
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(decoded))
        });
        if index.is_empty()
            || index.chars().any(|c| c.is_ascii_uppercase() || c.is_whitespace() || "\"\\/*?<>|,#".contains(c))
        {
            return Err(format!(
                "index {index:?}: Elasticsearch index names are lower case, without spaces or \\/*?\"<>|,#"
            ));
        }
        let mut action =
            serde_json::to_vec(&serde_json::json!({ "index": { "_index": index } })).map_err(|e| e.to_string())?;
        action.push(b'\n');
        let tls = tls.then(crate::fetch::tls_client);
        Ok(Elasticsearch {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
            host_header,
            path: format!("{}/_bulk?{QUERY}", uri.path().trim_end_matches('/')),
            authorization,
            tls,
            action,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// The `_bulk` body for `lines`.
    fn body(&self, lines: &[Line]) -> Vec<u8> {
        let size = lines.iter().map(|l| self.action.len() + l.len() + 1).sum();
        let mut body = Vec::with_capacity(size);
        for l in lines {
            body.extend_from_slice(&self.action);
            body.extend_from_slice(l.as_bytes());
            body.push(b'\n');
        }
        body
    }

    async fn bulk(&self, lines: &[Line]) -> Result<(), SinkError> {
        let (status, body) = self.post(self.body(lines)).await.map_err(SinkError::Failed)?;
        let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        if status == 408 || status == 429 || status >= 500 {
            return Err(SinkError::Failed(format!("HTTP {status}: {}", text())));
        }
        if !(200..300).contains(&status) {
            // Sent again, the same request would be refused again (bad URL, no permission).
            let reason = format!("HTTP {status}: {}", text());
            return Err(SinkError::Partial { reason, retry: Vec::new(), rejected: lines.len() });
        }
        sort_items(&body, lines.len())
    }

    /// Posts `body` to `_bulk` on the kept-alive connection (opening one if needed) and
    /// reads the whole answer.
    async fn post(&self, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let mut slot = self.conn.lock().await;
        let mut sender = match slot.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        // A kept-alive connection the server has closed shows here, before anything is sent.
        if sender.ready().await.is_err() {
            sender = self.connect().await?;
            sender.ready().await.map_err(|e| format!("connection to {}: {e}", self.host_header))?;
        }
        let mut req = http::Request::post(&self.path)
            .header(http::header::HOST, &self.host_header)
            .header(http::header::CONTENT_TYPE, "application/x-ndjson");
        if let Some(a) = &self.authorization {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        let answer = async {
            let resp = sender.send_request(req).await.map_err(|e| format!("POST _bulk: {e}"))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| format!("reading the _bulk answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let result = tokio::time::timeout(RESPONSE, answer)
            .await
            .map_err(|_| format!("no answer from {} within {} s", self.host_header, RESPONSE.as_secs()))?;
        if result.is_ok() {
            *slot = Some(sender);
        }
        result
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let open = crate::fetch::open(&self.host, self.port, self.tls.as_ref());
        let io = tokio::time::timeout(CONNECT, open)
            .await
            .map_err(|_| format!("connecting to {} timed out", self.host_header))?
            .map_err(|e| format!("connecting to {}: {e}", self.host_header))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.host_header))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "elasticsearch connection ended");
            }
        });
        Ok(sender)
    }
}

impl LogSink for Elasticsearch {
    fn name(&self) -> &str {
        "elasticsearch"
    }

    fn send<'a>(&'a self, lines: &'a [Line]) -> SendFuture<'a> {
        Box::pin(self.bulk(lines))
    }
}

/// The part of a `_bulk` answer that says what failed.
#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Sorts a 2xx `_bulk` answer for `n` lines into stored, to retry, and refused.
fn sort_items(body: &[u8], n: usize) -> Result<(), SinkError> {
    let answer: BulkAnswer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => {
            // Something answered 2xx that is not _bulk (a proxy's page, a wrong path): the
            // lines are not known to be stored, and sending them again would get the same.
            let reason = format!(
                "the answer is not a _bulk response ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
            return Err(SinkError::Partial { reason, retry: Vec::new(), rejected: n });
        }
    };
    if !answer.errors {
        return Ok(());
    }
    if answer.items.len() != n {
        return Err(SinkError::Failed(format!("_bulk answered {} items for {n} lines", answer.items.len())));
    }
    let mut retry = Vec::new();
    let mut rejected = 0;
    let mut reason = None;
    for (i, item) in answer.items.iter().enumerate() {
        let Some(item) = item.values().next() else { continue };
        if (200..300).contains(&item.status) {
            continue;
        }
        if item.status == 429 || item.status >= 500 {
            retry.push(i);
        } else {
            rejected += 1;
        }
        reason.get_or_insert_with(|| {
            let e = item.error.as_ref();
            let kind = e.and_then(|e| e["type"].as_str()).unwrap_or("error");
            let why = e.and_then(|e| e["reason"].as_str()).unwrap_or("");
            format!("_bulk item {i}: {} {kind}: {why}", item.status)
        });
    }
    match reason {
        None => Ok(()),
        Some(reason) => Err(SinkError::Partial { reason, retry, rejected }),
    }
}

/// `%XX` sequences in URL user information, decoded (a password may hold `@` or `:`).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use tokio_util::sync::CancellationToken;

    use super::super::{ShipOptions, Shipper};
    use super::*;

    /// What the receiver saw of one request.
    #[derive(Clone, Debug)]
    struct Seen {
        uri: String,
        content_type: String,
        authorization: Option<String>,
        body: String,
    }

    /// A local `_bulk` receiver: records requests and answers from a script, then with
    /// success.
    #[derive(Clone, Default)]
    struct Receiver {
        seen: Arc<Mutex<Vec<Seen>>>,
        script: Arc<Mutex<VecDeque<(u16, String)>>>,
    }

    impl Receiver {
        async fn start(script: Vec<(u16, String)>) -> (Receiver, String) {
            let r = Receiver { script: Arc::new(Mutex::new(script.into())), ..Receiver::default() };
            let app = axum::Router::new().route("/{*path}", axum::routing::post(bulk)).with_state(r.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move { axum::serve(listener, app).await });
            (r, format!("http://{addr}"))
        }
        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("lock").clone()
        }
    }

    async fn bulk(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: String) -> (StatusCode, String) {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let lines = body.lines().count() / 2;
        r.seen.lock().expect("lock").push(Seen {
            uri: uri.to_string(),
            content_type: header("content-type").unwrap_or_default(),
            authorization: header("authorization"),
            body,
        });
        let (status, answer) = r.script.lock().expect("lock").pop_front().unwrap_or_else(|| {
            let items: Vec<String> = (0..lines).map(|_| r#"{"index":{"status":201}}"#.to_owned()).collect();
            (200, format!(r#"{{"errors":false,"items":[{}]}}"#, items.join(",")))
        });
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), answer)
    }

    fn line(s: &str) -> Line {
        Arc::from(s)
    }

    fn fast() -> ShipOptions {
        ShipOptions {
            queue: 100,
            batch: 100,
            flush: Duration::from_millis(20),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            shutdown_deadline: Duration::from_millis(500),
            ..ShipOptions::default()
        }
    }

    /// Waits (real time) until `f` holds, up to 10 s.
    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn bulk_body_is_ndjson_with_an_index_action_per_line() {
        let (rx, url) = Receiver::start(vec![]).await;
        let es = Elasticsearch::new(&format!("{}/", url.replace("http://", "http://elastic:p%40ss@")), "rsgame-logs")
            .expect("sink");
        es.send(&[line(r#"{"a":1}"#), line(r#"{"b":"x\ny"}"#)]).await.expect("stored");
        es.send(&[line(r#"{"c":3}"#)]).await.expect("stored on the kept-alive connection");
        let seen = rx.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0].body,
            "{\"index\":{\"_index\":\"rsgame-logs\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"rsgame-logs\"}}\n{\"b\":\"x\\ny\"}\n"
        );
        assert_eq!(seen[1].body, "{\"index\":{\"_index\":\"rsgame-logs\"}}\n{\"c\":3}\n");
        assert_eq!(seen[0].content_type, "application/x-ndjson");
        assert!(seen[0].uri.starts_with("/_bulk?filter_path="), "{}", seen[0].uri);
        // elastic:p@ss
        assert_eq!(seen[0].authorization.as_deref(), Some("Basic ZWxhc3RpYzpwQHNz"));
    }

    #[tokio::test]
    async fn a_server_error_is_retried_and_nothing_is_lost() {
        let (rx, url) = Receiver::start(vec![(500, "busy".into()), (503, "still busy".into())]).await;
        let es = Arc::new(Elasticsearch::new(&format!("{url}/prefix"), "logs").expect("sink"));
        let (shipper, workers) = Shipper::new(vec![es], fast());
        let stop = CancellationToken::new();
        let task = tokio::spawn(workers.run(stop.clone()));
        for i in 0..5 {
            shipper.push(&format!("{{\"n\":{i}}}"));
        }
        until("delivery", || shipper.stats()[0].sent == 5).await;
        let seen = rx.seen();
        assert_eq!(seen.len(), 3, "two refusals, then stored");
        assert!(seen.iter().all(|s| s.body == seen[0].body), "the same batch each time");
        assert!(seen[0].uri.starts_with("/prefix/_bulk?"), "{}", seen[0].uri);
        let s = &shipper.stats()[0];
        assert_eq!((s.dropped, s.errors, s.held), (0, 2, 0));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test]
    async fn item_errors_retry_overload_and_drop_mapping_errors() {
        let answer = r#"{"errors":true,"items":[
            {"index":{"status":201}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]"}}},
            {"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}
        ]}"#;
        let (rx, url) = Receiver::start(vec![(200, answer.into())]).await;
        let es = Arc::new(Elasticsearch::new(&url, "logs").expect("sink"));
        let (shipper, workers) = Shipper::new(vec![es], fast());
        let stop = CancellationToken::new();
        let task = tokio::spawn(workers.run(stop.clone()));
        for l in [r#"{"n":1}"#, r#"{"n":"two"}"#, r#"{"n":3}"#] {
            shipper.push(l);
        }
        until("the retry", || shipper.stats()[0].sent == 2).await;
        // Longer than a few backoffs: the refused line must not come back.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = rx.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1].body, "{\"index\":{\"_index\":\"logs\"}}\n{\"n\":3}\n", "only the 429 item is sent again");
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.errors, s.held), (2, 1, 1, 0));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_costs_a_bounded_queue_not_the_server() {
        // A port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let es = Arc::new(Elasticsearch::new(&format!("http://127.0.0.1:{port}"), "logs").expect("sink"));
        let (shipper, workers) = Shipper::new(vec![es], ShipOptions { queue: 10, batch: 4, ..fast() });
        let stop = CancellationToken::new();
        let task = tokio::spawn(workers.run(stop.clone()));
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            shipper.layer(tracing_subscriber::EnvFilter::new("info")),
        );
        let start = std::time::Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                tracing::info!(target: "game", i, "the server keeps logging");
            }
        });
        assert!(start.elapsed() < Duration::from_secs(2), "logging never waits on the sink: {:?}", start.elapsed());
        until("failed sends", || shipper.stats()[0].errors >= 2).await;
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.held, s.dropped), (0, 10, 990), "{s:?}");
        stop.cancel();
        task.await.expect("sender");
        assert_eq!(shipper.stats()[0].dropped, 1000, "what was held is lost at shutdown, and counted");
    }

    #[test]
    fn answers_are_sorted_into_stored_retried_and_refused() {
        assert_eq!(sort_items(br#"{"errors":false}"#, 3), Ok(()));
        let two = br#"{"errors":true,"items":[{"create":{"status":503}},{"index":{"status":200}}]}"#;
        assert!(matches!(sort_items(two, 2), Err(SinkError::Partial { retry, rejected: 0, .. }) if retry == vec![0]));
        assert!(matches!(sort_items(two, 3), Err(SinkError::Failed(_))), "item count must match");
        assert!(matches!(sort_items(b"<html>", 2), Err(SinkError::Partial { rejected: 2, .. })));
    }

    #[test]
    fn urls_and_indexes_are_checked() {
        assert!(Elasticsearch::new("127.0.0.1:9200", "logs").is_err());
        assert!(Elasticsearch::new("ftp://h", "logs").is_err());
        assert!(Elasticsearch::new("http://h:9200", "Logs").is_err());
        assert!(Elasticsearch::new("http://h:9200", "").is_err());
        let es = Elasticsearch::new("https://u:p@es.example.com", "logs").expect("https");
        assert_eq!((es.host_header.as_str(), es.port, es.tls.is_some()), ("es.example.com", 443, true));
        let es = Elasticsearch::new("http://[::1]:9200", "logs").expect("ipv6");
        assert_eq!((es.host.as_str(), es.host_header.as_str()), ("::1", "[::1]:9200"));
        assert_eq!(percent_decode("a%40b%3Ac%zz%4"), b"a@b:c%zz%4");
    }
}
