//! usercenter's REST routes (go-game's paths under `/usercenter/v1/user/`, envelope replies).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Router};
use rsgame_kit::auth::{Auth, AuthUser};
use rsgame_kit::extract::Json;
use rsgame_kit::http::ClientIp;
use rsgame_kit::{Reply, Result};
use serde::{Deserialize, Serialize};

use crate::logic::{LoginReq, RegisterReq, ScanTicket, Tokens, UserCenter, UserInfo};

type Svc = Arc<dyn UserCenter>;

/// The routes, over any [`UserCenter`]; `auth` checks the tokens of protected ones.
pub fn router(svc: Svc, auth: Auth) -> Router {
    Router::new()
        .route("/usercenter/v1/user/register", post(register))
        .route("/usercenter/v1/user/login", post(login))
        .route("/usercenter/v1/user/refresh", post(refresh))
        .route("/usercenter/v1/user/detail", post(detail).get(detail))
        .route("/usercenter/v1/user/tokenVerify", post(token_verify).get(token_verify))
        .route("/usercenter/v1/user/logout", post(logout))
        .route("/usercenter/v1/user/loginScan", post(login_scan))
        .route("/usercenter/v1/user/loginScan/create", post(scan_create))
        .route("/usercenter/v1/user/loginScan/confirm", post(scan_confirm))
        .with_state(svc)
        .layer(Extension(auth))
}

async fn register(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterReq>,
) -> Result<Reply<Tokens>> {
    svc.register(req, &ip).await.map(Reply)
}

async fn login(State(svc): State<Svc>, ClientIp(ip): ClientIp, Json(req): Json<LoginReq>) -> Result<Reply<Tokens>> {
    svc.login(req, &ip).await.map(Reply)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshReq {
    refresh_token: String,
}

async fn refresh(State(svc): State<Svc>, ClientIp(ip): ClientIp, Json(req): Json<RefreshReq>) -> Result<Reply<Tokens>> {
    svc.refresh(&req.refresh_token, &ip).await.map(Reply)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    user_info: UserInfo,
}

async fn detail(State(svc): State<Svc>, user: AuthUser) -> Result<Reply<Detail>> {
    svc.user_info(user.user_id).await.map(|user_info| Reply(Detail { user_info }))
}

#[derive(Serialize)]
struct Verified {
    msg: &'static str,
    /// When the token expires, unix seconds (as text, go-game's field type).
    value: String,
    id: i64,
}

async fn token_verify(user: AuthUser) -> Result<Reply<Verified>> {
    Ok(Reply(Verified { msg: "ok", value: user.claims.exp.to_string(), id: user.user_id }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogoutReq {
    #[serde(default)]
    refresh_token: String,
}

async fn logout(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<LogoutReq>,
) -> Result<Reply<serde_json::Value>> {
    svc.logout(&user.claims, Some(&req.refresh_token), &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

#[derive(Deserialize)]
struct ScanReq {
    value: String,
}

/// The waiting page starts a QR login.
async fn scan_create(State(svc): State<Svc>) -> Result<Reply<ScanTicket>> {
    svc.scan_create().await.map(Reply)
}

/// A logged-in device confirms the QR code it scanned.
async fn scan_confirm(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<ScanReq>,
) -> Result<Reply<serde_json::Value>> {
    svc.scan_confirm(user.user_id, &req.value, &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

/// go-game's `loginScan`: the waiting page asks for its tokens. It is held up to 20 s while
/// the code is not confirmed (a long poll), then answers 400511 so the page asks again.
async fn login_scan(State(svc): State<Svc>, ClientIp(ip): ClientIp, Json(req): Json<ScanReq>) -> Result<Reply<Tokens>> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match svc.login_scan(&req.value, &ip).await {
            Err(e) if e.code() == rsgame_kit::Code::ScanPending && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return other.map(Reply),
        }
    }
}
