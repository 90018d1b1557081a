//! The browser client (clients/web), built into the binary: `/`, `/app.js`, `/style.css`.
//!
//! The files are the committed build in `clients/web/dist`; CI rebuilds them from the
//! TypeScript and fails when the two differ, so what is served is what the source says.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Asset {
    body: &'static [u8],
    mime: &'static str,
    etag: HeaderValue,
}

fn asset(body: &'static [u8], mime: &'static str) -> Asset {
    // FNV-1a of the content: changes whenever a build does, so a browser revalidates cheaply.
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    let etag = HeaderValue::from_str(&format!("\"{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""));
    Asset { body, mime, etag }
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
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route("/index.html", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route("/app.js", get(|h: HeaderMap| async move { serve(&APP, &h) }))
        .route("/style.css", get(|h: HeaderMap| async move { serve(&STYLE, &h) }))
}

fn serve(a: &Asset, req: &HeaderMap) -> Response {
    let headers = [
        (header::ETAG, a.etag.clone()),
        // Always revalidate: a new server build must not run an old client.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (
            header::CONTENT_SECURITY_POLICY,
            // Scripts and styles from this origin only; the socket to any game node (the
            // login reply may name another host); captcha images are data: URLs.
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'",
            ),
        ),
    ];
    if req.get(header::IF_NONE_MATCH).is_some_and(|v| v == a.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, [(header::CONTENT_TYPE, HeaderValue::from_static(a.mime))], a.body).into_response()
}
