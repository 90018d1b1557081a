//! A REST endpoint with JWT auth and go-game's `{code, msg, data}` envelope:
//! `POST /hello/v1/greet {"name": "Ann"}` with `Authorization: Bearer <token>`, where the
//! token is one usercenter issues (the same `auth.jwt_secret`). Governance (timeouts, a rate
//! limit per IP, load shedding) guards it; beside it: `/healthz`, `/readyz`, request ids,
//! access logs and the envelope's 404.
//!
//! `RSGAME_AUTH__JWT_SECRET=… cargo run --example rest_service`
use std::sync::Arc;

use axum::routing::post;
use axum::{Extension, Router};
use rsgame_kit::auth::{Auth, AuthUser, Jwt};
use rsgame_kit::extract::Json;
use rsgame_kit::{Error, Reply, Result, http};

#[derive(serde::Deserialize)]
struct GreetReq {
    name: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Greeting {
    text: String,
    user_id: i64,
}

/// `AuthUser` verifies the bearer token (signature, expiry) or answers 401 with code 400103;
/// `Json` turns a malformed body into the envelope's 400102; `Reply` wraps the answer.
async fn greet(user: AuthUser, Json(req): Json<GreetReq>) -> Result<Reply<Greeting>> {
    if req.name.trim().is_empty() || req.name.chars().count() > 32 {
        return Err(Error::bad_param("name: 1 to 32 characters"));
    }
    Ok(Reply(Greeting { text: format!("hello, {}", req.name.trim()), user_id: user.user_id }))
}

rsgame_kit::config_root! {
    /// What this service reads: `http.*`, `auth.*` (the token secret) and `governance.*`.
    struct Settings {
        http: rsgame_kit::config::HttpConfig,
        auth: rsgame_kit::config::AuthConfig,
        governance: rsgame_kit::config::GovernanceConfig,
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let cfg: Settings = rsgame_kit::config::from_process(None)?;
    let shutdown = rsgame_kit::Shutdown::new();
    let auth = Auth { jwt: Arc::new(Jwt::from_config(&cfg.auth)), revocations: None };
    let api = Router::new().route("/hello/v1/greet", post(greet)).layer(Extension(auth));
    // Timeouts, a rate limit per client IP and load shedding (`governance.*` in the config).
    let api = rsgame_kit::governance::apply(api, &cfg.governance);
    let ops = http::ops_router(http::Readiness::new(&shutdown), None);
    let listener = http::bind(&cfg.http.host, cfg.http.port).await?;
    println!("rest_service on http://{}", listener.local_addr()?);
    let server = tokio::spawn(http::serve(listener, None, http::finish(ops.merge(api)), shutdown.clone()));
    rsgame_kit::shutdown::signal().await;
    shutdown.trigger();
    server.await??;
    Ok(())
}
