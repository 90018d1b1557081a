//! An S3-compatible object store (AWS S3, MinIO, Ceph, R2…) for uploaded files: path-style
//! requests signed with AWS Signature Version 4, over plain HTTP or HTTPS (rustls with the
//! system's roots), one connection per transfer. Only what file storage needs: put an object
//! from a file, get one as a stream, ask whether one exists.
//!
//! Written here rather than taken from an SDK: the three calls and SigV4 are ~200 lines, while
//! the SDKs bring their own HTTP and TLS stacks into the build. The signer is checked against
//! AWS's published example.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use http_body_util::BodyExt as _;
use sha2::Digest as _;

/// Connecting (TCP and TLS) may take this long.
const CONNECT: std::time::Duration = std::time::Duration::from_secs(10);
/// The response head may take this long (an upload's body is sent before it).
const RESPONSE: std::time::Duration = std::time::Duration::from_secs(300);

/// Where and how to reach the bucket.
#[derive(Clone)]
pub struct S3Config {
    /// `http://host:port` or `https://host`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

/// A bucket.
#[derive(Clone)]
pub struct S3 {
    cfg: Arc<S3Config>,
    /// With https: the TLS client configuration, built once (loading the system's roots
    /// reads files).
    tls: Option<Arc<rustls::ClientConfig>>,
    host: String,
    port: u16,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("s3: {e}"))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    rsgame_kit::auth::hmac_sha256(key, &[data])
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// SigV4's URI encoding: unreserved characters stay, everything else is %XX; `/` stays in
/// paths.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `(yyyymmdd, yyyymmddThhmmssZ)` in UTC.
fn amz_dates(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = rsgame_kit::time::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!("{date}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60);
    (date, stamp)
}

/// The `Authorization` header value for a request. `headers` are the (lower-case name, value)
/// pairs to sign, `host`, `x-amz-content-sha256` and `x-amz-date` among them.
pub fn authorization(
    cfg: &S3Config,
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    now: SystemTime,
) -> String {
    let (date, stamp) = amz_dates(now);
    let mut hs: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
    hs.sort();
    let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = hs.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical =
        format!("{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload_hash}");
    let scope = format!("{date}/{}/s3/aws4_request", cfg.region);
    let to_sign = format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let k = hmac(format!("AWS4{}", cfg.secret_key).as_bytes(), date.as_bytes());
    let k = hmac(&k, cfg.region.as_bytes());
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    format!("AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}", cfg.access_key)
}

impl S3 {
    /// A bucket client; the endpoint must be `http://` or `https://` with a host.
    pub fn new(cfg: S3Config) -> Result<S3, std::io::Error> {
        let uri: axum::http::Uri = cfg.endpoint.parse().map_err(io_err)?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(io_err("endpoint must start with http:// or https://")),
        };
        let host = uri.host().ok_or_else(|| io_err("endpoint has no host"))?.to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if cfg.bucket.is_empty() {
            return Err(io_err("no bucket configured"));
        }
        let tls = tls.then(rsgame_kit::fetch::tls_client);
        Ok(S3 { cfg: Arc::new(cfg), tls, host, port })
    }

    fn host_header(&self) -> String {
        let tls = self.tls.is_some();
        if (tls && self.port == 443) || (!tls && self.port == 80) {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn rsgame_kit::fetch::Io>> {
        rsgame_kit::fetch::open(&self.host, self.port, self.tls.as_ref()).await
    }

    /// Sends one signed request on a fresh connection.
    async fn send(
        &self,
        method: &str,
        key: &str,
        body: Body,
        extra: &[(&str, String)],
    ) -> std::io::Result<axum::http::Response<hyper::body::Incoming>> {
        let bucket = uri_encode(&self.cfg.bucket, false);
        let uri = if key.is_empty() { format!("/{bucket}") } else { format!("/{bucket}/{}", uri_encode(key, true)) };
        // One clock reading for the header and the signature: two could straddle a second.
        let now = SystemTime::now();
        let (_, stamp) = amz_dates(now);
        let host = self.host_header();
        // The body is streamed, so its hash is not known up front: S3 accepts that over a
        // signed request.
        let payload = "UNSIGNED-PAYLOAD";
        let auth = authorization(
            &self.cfg,
            method,
            &uri,
            "",
            &[("host", &host), ("x-amz-content-sha256", payload), ("x-amz-date", &stamp)],
            payload,
            now,
        );
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", &host)
            .header("x-amz-content-sha256", payload)
            .header("x-amz-date", &stamp)
            .header("authorization", auth);
        for (k, v) in extra {
            req = req.header(*k, v);
        }
        let req = req.body(body).map_err(io_err)?;
        let timeout = |what: &'static str| move |_| io_err(format!("{what} timed out"));
        let io = tokio::time::timeout(CONNECT, self.connect()).await.map_err(timeout("connect"))??;
        let io = hyper_util::rt::TokioIo::new(io);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(io_err)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "s3 connection ended");
            }
        });
        // Until the response head: bodies stream for as long as they take.
        tokio::time::timeout(RESPONSE, sender.send_request(req)).await.map_err(timeout("response"))?.map_err(io_err)
    }

    async fn fail(resp: axum::http::Response<hyper::body::Incoming>, what: &str) -> std::io::Error {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        io_err(format!("{what}: HTTP {status}: {text}"))
    }

    /// Uploads the file at `path` as `key`.
    pub async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> std::io::Result<()> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
        let extra = [("content-length", len.to_string()), ("content-type", content_type.to_owned())];
        let resp = self.send("PUT", key, body, &extra).await?;
        if !resp.status().is_success() {
            return Err(S3::fail(resp, "put").await);
        }
        Ok(())
    }

    /// Creates the bucket (an administrative call: deployments usually create it beforehand).
    pub async fn create_bucket(&self) -> std::io::Result<()> {
        let resp = self.send("PUT", "", Body::empty(), &[("content-length", "0".into())]).await?;
        if !resp.status().is_success() {
            return Err(S3::fail(resp, "create bucket").await);
        }
        Ok(())
    }

    /// Deletes an object (files are deleted softly, so only administration and tests use it).
    pub async fn delete(&self, key: &str) -> std::io::Result<()> {
        let resp = self.send("DELETE", key, Body::empty(), &[]).await?;
        if !resp.status().is_success() {
            return Err(S3::fail(resp, "delete").await);
        }
        Ok(())
    }

    /// Deletes the (empty) bucket.
    pub async fn delete_bucket(&self) -> std::io::Result<()> {
        self.delete("").await
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> std::io::Result<bool> {
        let resp = self.send("HEAD", key, Body::empty(), &[]).await?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(S3::fail(resp, "head").await),
        }
    }

    /// The object's length (when the server says) and its bytes as a stream.
    pub async fn get(&self, key: &str) -> std::io::Result<(Option<u64>, Body)> {
        let resp = self.send("GET", key, Body::empty(), &[]).await?;
        if resp.status().as_u16() == 404 {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "s3: no such object"));
        }
        if !resp.status().is_success() {
            return Err(S3::fail(resp, "get").await);
        }
        let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        Ok((len, Body::from_stream(resp.into_body().into_data_stream())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's example "GET Object" (sig-v4-header-based-auth, example signature calculations).
    #[test]
    fn signs_awss_published_example() {
        let cfg = S3Config {
            endpoint: "https://examplebucket.s3.amazonaws.com".into(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600); // 2013-05-24
        let auth = authorization(
            &cfg,
            "GET",
            "/test.txt",
            "",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", empty),
                ("x-amz-date", "20130524T000000Z"),
            ],
            empty,
            when,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn encoding_and_dates() {
        assert_eq!(uri_encode("202611/a b+c.png", true), "202611/a%20b%2Bc.png");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600 + 3661);
        assert_eq!(amz_dates(t), ("20130524".into(), "20130524T010101Z".into()));
    }
}
