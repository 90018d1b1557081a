//! The operator console's pages (clients/console, Vue 3), built into the binary and served
//! on the console's own listener: `/`, `/console.js`, `/console.css`.
//!
//! Like the game client, the files are the committed build in `clients/console/dist`; CI
//! rebuilds them and fails when the two differ.

use std::sync::LazyLock;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;

use crate::web::{Asset, asset, serve};

/// This origin only, for everything: no inline script, no other host, no framing (a page
/// elsewhere cannot put the console under a click).
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

static INDEX: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("../../../clients/console/dist/index.html"), "text/html; charset=utf-8"));
static APP: LazyLock<Asset> = LazyLock::new(|| {
    asset(include_bytes!("../../../clients/console/dist/console.js"), "text/javascript; charset=utf-8")
});
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| asset(include_bytes!("../../../clients/console/dist/console.css"), "text/css; charset=utf-8"));

/// The console's pages.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h, CSP) }))
        .route("/index.html", get(|h: HeaderMap| async move { serve(&INDEX, &h, CSP) }))
        .route("/console.js", get(|h: HeaderMap| async move { serve(&APP, &h, CSP) }))
        .route("/console.css", get(|h: HeaderMap| async move { serve(&STYLE, &h, CSP) }))
}
