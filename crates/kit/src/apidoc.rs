//! The OpenAPI document of the REST API, served at `/openapi.json`, and a browsable page at
//! `/docs` that renders it in the browser with a few lines of inline script: nothing is
//! fetched from the internet, at build time or when the page is opened.

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::Code;

/// Routes for `/openapi.json` and `/docs` over the merged document of the services this
/// process serves.
pub fn router(doc: utoipa::openapi::OpenApi) -> Router {
    let json = finish(doc).to_pretty_json().unwrap_or_else(|_| "{}".into());
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { ([("content-type", "application/json")], json).into_response() }),
        )
        .route("/docs", get(|| async { Html(PAGE) }))
}

/// The document as clients read it: the bearer scheme, the title, and the error codes as the
/// schema `ErrorCode` (every [`Code`] with its name and meaning, in the `x-enum-varnames` and
/// `x-enum-descriptions` extensions code generators know), so an SDK generates its codes
/// from the same document as its routes.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::extensions::ExtensionsBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let bearer = utoipa::openapi::security::SecurityScheme::Http(
        utoipa::openapi::security::HttpBuilder::new()
            .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build(),
    );
    let codes = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some("Every error code a reply may carry (docs/errors.md); 200 is success."))
        .enum_values(Some(Code::ALL.iter().map(|c| c.as_u32())))
        .extensions(Some(
            ExtensionsBuilder::new()
                .add("x-enum-varnames", Code::ALL.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>())
                .add("x-enum-descriptions", Code::ALL.iter().map(|c| c.default_msg()).collect::<Vec<_>>())
                .build(),
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme("bearer", bearer);
    components.schemas.insert("ErrorCode".into(), codes.into());
    doc.info.title = "rsgame REST API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Every reply is go-game's envelope {code, msg, data}; codes are listed in docs/errors.md. \
         Routes marked with a lock take Authorization: Bearer <accessToken>."
            .into(),
    );
    doc
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rsgame REST API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:16px 24px}header p{margin:4px 0 0;color:#c9d1e0}
main{max-width:1000px;margin:0 auto;padding:16px 24px}
details{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:8px 0}
summary{cursor:pointer;padding:10px 14px;display:flex;gap:12px;align-items:center}
.m{font:600 12px monospace;padding:2px 8px;border-radius:4px;color:#fff;min-width:44px;text-align:center}
.post{background:#2f7d4f}.get{background:#2b62b3}.path{font-family:monospace}.lock{margin-left:auto}
.body{padding:0 14px 12px}pre{background:#f0f2f5;padding:10px;border-radius:4px;overflow:auto;font-size:13px}
h2{font-size:17px;margin:24px 0 4px}
</style></head><body>
<header><strong>rsgame REST API</strong><p id="desc"></p></header>
<main id="ops"><p>Loading /openapi.json…</p></main>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
fetch('openapi.json').then(r => r.json()).then(doc => {
  document.getElementById('desc').textContent = doc.info.description || '';
  const schemas = (doc.components || {}).schemas || {};
  // Inlines $ref'd schemas (one level per reference, cycles cut) so each route reads alone.
  const expand = (s, seen = new Set()) => {
    if (!s || typeof s !== 'object') return s;
    if (s.$ref) { const n = s.$ref.split('/').pop(); if (seen.has(n)) return {$ref: n}; return expand(schemas[n], new Set([...seen, n])); }
    const out = Array.isArray(s) ? [] : {};
    for (const [k, v] of Object.entries(s)) out[k] = expand(v, seen);
    return out;
  };
  const groups = {};
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ['other'])[0];
      (groups[tag] = groups[tag] || []).push({path, method, op});
    }
  }
  let html = '';
  for (const [tag, ops] of Object.entries(groups)) {
    html += `<h2>${esc(tag)}</h2>`;
    for (const {path, method, op} of ops) {
      const req = op.requestBody ? Object.entries(op.requestBody.content || {}).map(([t, c]) => `<p>Request (${esc(t)})</p><pre>${esc(JSON.stringify(expand(c.schema), null, 2))}</pre>`).join('') : '';
      const res = Object.entries(op.responses || {}).map(([st, r]) => `<p>${esc(st)}: ${esc(r.description || '')}</p>` +
        Object.values(r.content || {}).map(c => `<pre>${esc(JSON.stringify(expand(c.schema), null, 2))}</pre>`).join('')).join('');
      html += `<details><summary><span class="m ${esc(method)}">${esc(method.toUpperCase())}</span><span class="path">${esc(path)}</span><span>${esc(op.summary || '')}</span>${op.security ? '<span class="lock">🔒</span>' : ''}</summary>
        <div class="body"><p>${esc(op.description || '')}</p>${req}${res}</div></details>`;
    }
  }
  document.getElementById('ops').innerHTML = html || '<p>No routes.</p>';
}).catch(e => { document.getElementById('ops').textContent = 'Could not load openapi.json: ' + e; });
</script></body></html>"#;
