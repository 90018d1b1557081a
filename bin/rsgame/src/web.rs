//! The browser client (clients/web), built into the binary: `/`, `/app.js`, `/style.css`.
//!
//! The files are the committed build in `clients/web/dist`; CI rebuilds them from the
//! TypeScript and fails when the two differ, so what is served is what the source says.
//! Each is served as built, or compressed once with brotli or gzip for clients that take it.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

pub(crate) struct Asset {
    mime: &'static str,
    /// The file as built, then compressed with brotli and with gzip: each once, when the
    /// file is first asked for, so a page load costs no compression.
    plain: Variant,
    br: Variant,
    gzip: Variant,
}

struct Variant {
    body: Bytes,
    etag: HeaderValue,
    encoding: Option<&'static str>,
}

pub(crate) fn asset(body: &'static [u8], mime: &'static str) -> Asset {
    // FNV-1a of the content: changes whenever a build does, so a browser revalidates cheaply.
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    // Each encoding its own entity tag: the bytes differ.
    let variant = |body: Bytes, encoding: Option<&'static str>| {
        let tag = format!("\"{hash:016x}{}\"", encoding.map(|e| format!("-{e}")).unwrap_or_default());
        Variant { body, etag: HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\"")), encoding }
    };
    let mut br = Vec::new();
    // Quality 9 of 11, 4 MiB window: within a few per cent of the best, in milliseconds.
    let params = brotli::enc::BrotliEncoderParams { quality: 9, lgwin: 22, ..Default::default() };
    let br = match brotli::BrotliCompress(&mut &body[..], &mut br, &params) {
        Ok(_) => variant(Bytes::from(br), Some("br")),
        Err(_) => variant(Bytes::from_static(body), None),
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gzip = match std::io::Write::write_all(&mut gz, body).and_then(|()| gz.finish()) {
        Ok(v) => variant(Bytes::from(v), Some("gzip")),
        Err(_) => variant(Bytes::from_static(body), None),
    };
    Asset { mime, plain: variant(Bytes::from_static(body), None), br, gzip }
}

/// Whether `accept` (an `Accept-Encoding` value) takes `coding`: named, or by `*`, with a
/// quality above zero.
fn accepts(accept: &str, coding: &str) -> bool {
    let mut star = false;
    for part in accept.split(',') {
        let mut it = part.split(';');
        let name = it.next().unwrap_or_default().trim();
        let q = it.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            star = q > 0.0;
        }
    }
    star
}

static INDEX: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("../../../clients/web/dist/index.html"), "text/html; charset=utf-8"));
static APP: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("../../../clients/web/dist/app.js"), "text/javascript; charset=utf-8"));
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("../../../clients/web/dist/style.css"), "text/css; charset=utf-8"));

/// The client's routes.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h, GAME_CSP) }))
        .route("/index.html", get(|h: HeaderMap| async move { serve(&INDEX, &h, GAME_CSP) }))
        .route("/app.js", get(|h: HeaderMap| async move { serve(&APP, &h, GAME_CSP) }))
        .route("/style.css", get(|h: HeaderMap| async move { serve(&STYLE, &h, GAME_CSP) }))
}

/// Scripts and styles from this origin only; the socket to any game node (the login reply
/// may name another host); captcha images are data: URLs.
const GAME_CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'";

/// `a` as `req` takes it (brotli, gzip or plain), with its entity tag and `csp`.
pub(crate) fn serve(a: &Asset, req: &HeaderMap, csp: &'static str) -> Response {
    let accept = req.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    let v = if accepts(accept, "br") {
        &a.br
    } else if accepts(accept, "gzip") {
        &a.gzip
    } else {
        &a.plain
    };
    let headers = [
        (header::ETAG, v.etag.clone()),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        // Always revalidate: a new server build must not run an old client.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)),
    ];
    if req.get(header::IF_NONE_MATCH).is_some_and(|tag| tag == v.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut resp =
        (headers, [(header::CONTENT_TYPE, HeaderValue::from_static(a.mime))], v.body.clone()).into_response();
    if let Some(e) = v.encoding {
        resp.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        assert!(accepts("gzip, deflate, br", "br") && accepts("gzip, deflate, br", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br") && accepts("br;q=0, gzip", "gzip"));
        assert!(accepts("*", "gzip") && !accepts("*;q=0", "gzip"));
        assert!(accepts("GZIP;q=0.5", "gzip"));
        assert!(!accepts("", "gzip") && !accepts("identity", "br"));
    }
}
