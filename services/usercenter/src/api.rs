//! usercenter's REST routes (go-game's paths under `/usercenter/v1/user/`, envelope replies).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Router};
use rsgame_kit::auth::{Auth, AuthUser};
use rsgame_kit::extract::Json;
use rsgame_kit::http::ClientIp;
use rsgame_kit::{Envelope, Reply, Result};
use serde::{Deserialize, Serialize};

use crate::logic::{
    BindReq, CodeLoginReq, DeviceLoginReq, IdentityInfo, LoginReq, ProfileReq, RegisterReq, ResetPasswordReq,
    ScanTicket, Tokens, UnbindReq, UserCenter, UserInfo, WechatLoginReq,
};

type Svc = Arc<dyn UserCenter>;

/// Where a player's game is: the game nodes' WebSocket addresses, best first, sent with every
/// token reply. A fixed list (`usercenter.game_servers`), or a live directory of nodes that
/// puts the node the player is on first, then the least loaded.
#[async_trait::async_trait]
pub trait GameServers: Send + Sync {
    /// The addresses for `user_id`, best first.
    async fn for_user(&self, user_id: i64) -> Vec<String>;
}

#[async_trait::async_trait]
impl GameServers for Vec<String> {
    async fn for_user(&self, _: i64) -> Vec<String> {
        self.clone()
    }
}

#[async_trait::async_trait]
impl GameServers for Arc<dyn GameServers> {
    async fn for_user(&self, user_id: i64) -> Vec<String> {
        self.as_ref().for_user(user_id).await
    }
}

#[derive(Clone)]
struct Servers(Arc<dyn GameServers>, Auth);

/// A token reply: the tokens and where the game is (rsgame adds `servers`; go-game's
/// clients ignore it).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenReply {
    #[serde(flatten)]
    tokens: Tokens,
    /// The game nodes' WebSocket addresses (`usercenter.game_servers`): absolute, or a path
    /// on this host. Connect to the first that answers.
    servers: Vec<String>,
}

async fn with_servers(servers: &Servers, tokens: Tokens) -> Reply<TokenReply> {
    // The token was minted a moment ago by usercenter: its subject is the player.
    let user = servers.1.jwt.verify(&tokens.access.access_token).map_or(0, |c| c.user_id);
    Reply(TokenReply { tokens, servers: servers.0.for_user(user).await })
}

/// The routes a stranger reaches without an access token: rate-limited per address by
/// default (`governance.public_rate_per_sec`).
pub const PUBLIC_ROUTES: &[&str] = &[
    "/usercenter/v1/user/register",
    "/usercenter/v1/user/login",
    "/usercenter/v1/user/loginDevice",
    "/usercenter/v1/user/loginCode",
    "/usercenter/v1/user/loginWechat",
    "/usercenter/v1/user/resetPassword",
    "/usercenter/v1/user/refresh",
    "/usercenter/v1/user/loginScan",
    "/usercenter/v1/user/loginScan/create",
];

/// The routes, over any [`UserCenter`]; `auth` checks the tokens of protected ones;
/// `servers` (`usercenter.game_servers`) go out with every token reply.
pub fn router<S: GameServers + 'static>(svc: Svc, auth: Auth, servers: S) -> Router {
    let servers = Servers(Arc::new(servers), auth.clone());
    Router::new()
        .route("/usercenter/v1/user/register", post(register))
        .route("/usercenter/v1/user/login", post(login))
        .route("/usercenter/v1/user/loginDevice", post(login_device))
        .route("/usercenter/v1/user/loginCode", post(login_code))
        .route("/usercenter/v1/user/loginWechat", post(login_wechat))
        .route("/usercenter/v1/user/resetPassword", post(reset_password))
        .route("/usercenter/v1/user/bind", post(bind))
        .route("/usercenter/v1/user/unbind", post(unbind))
        .route("/usercenter/v1/user/update", post(update))
        .route("/usercenter/v1/user/delete", post(delete))
        .route("/usercenter/v1/user/refresh", post(refresh))
        .route("/usercenter/v1/user/detail", post(detail).get(detail))
        .route("/usercenter/v1/user/profiles", post(profiles))
        .route("/usercenter/v1/user/tokenVerify", post(token_verify).get(token_verify))
        .route("/usercenter/v1/user/logout", post(logout))
        .route("/usercenter/v1/user/logoutAll", post(logout_all))
        .route("/usercenter/v1/user/changePassword", post(change_password))
        .route("/usercenter/v1/user/loginScan", post(login_scan))
        .route("/usercenter/v1/user/loginScan/create", post(scan_create))
        .route("/usercenter/v1/user/loginScan/confirm", post(scan_confirm))
        .with_state(svc)
        .layer(Extension(auth))
        .layer(Extension(servers))
}

#[utoipa::path(post, path = "/usercenter/v1/user/register", tag = "usercenter", summary = "Create an account and log in", description = "Username: 3 to 32 letters, digits or _. Password: usercenter.password_min_len to 128 characters with a letter and a digit. A taken username is 400506.", request_body = RegisterReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn register(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.register(req, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[utoipa::path(post, path = "/usercenter/v1/user/login", tag = "usercenter", summary = "Log in with a password", description = "Wrong credentials: 400507. After repeated failures a captcha (captchaKey, captchaCode from /basic/v1/basic/captcha) is required (400508, 400509); past the limit the account or IP is locked (400510).", request_body = LoginReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn login(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.login(req, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[utoipa::path(post, path = "/usercenter/v1/user/loginDevice", tag = "usercenter", summary = "Log in as a guest, by device id", description = "The first call with a device id creates a guest account (no password) and logs it in; later calls log the same account in. deviceId: 10 to 128 printable ASCII characters, random per install and kept by the client (docs/client.md); a bad one is 400102. A banned or closed account is 400501. Past usercenter.register_captcha_after_per_ip new devices from one address in an hour, a new device needs a captcha (400508, 400509).", request_body = DeviceLoginReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn login_device(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<DeviceLoginReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.login_device(req, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[utoipa::path(post, path = "/usercenter/v1/user/loginCode", tag = "usercenter", summary = "Log in by a phone or email code", description = "First ask /basic/v1/basic/sendCode with verilyType 3 for the target; then send target, code and the key it returned. A wrong, expired or used code, or one sent to another target or for another purpose, is 400300 (five wrong tries end the key). A target without an account gets one when usercenter.code_signup is on (otherwise 400201). Banned: 400515; closed: 400516.", request_body = CodeLoginReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn login_code(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<CodeLoginReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.login_code(req, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[utoipa::path(post, path = "/usercenter/v1/user/loginWechat", tag = "usercenter", summary = "Log in from a WeChat mini-game", description = "code: from wx.login(). The first login of a WeChat user makes its account (keyed by openid, and unionid when WeChat gives one). WeChat refusing the code (errcode 40029, 40163, …) is 400520; WeChat down, slow or answering nonsense is 400503; WeChat login not configured (usercenter.wechat_appid) is 400501.", request_body = WechatLoginReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn login_wechat(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<WechatLoginReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.login_wechat(req, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[utoipa::path(post, path = "/usercenter/v1/user/resetPassword", tag = "usercenter", summary = "Reset a forgotten password", description = "First ask /basic/v1/basic/sendCode with verilyType 4 for the phone or email bound to the account; then send target, code, key and the new password. A code for another purpose or target is 400300; no account with that target is 400201; a weak password 400102. Every session of the account ends (as with changePassword) and the reply logs this client in. A code an operator sent from the console is used with an empty key.", request_body = ResetPasswordReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn reset_password(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<ResetPasswordReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.reset_password(req, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[utoipa::path(post, path = "/usercenter/v1/user/bind", tag = "usercenter", summary = "Add a way to log in", description = "kind device: deviceId. kind phone or email: target, code and key of a verilyType 1 code sent there (a new phone or email replaces the old). kind wechat: code from wx.login(). kind password (a guest keeping its account): username and password. Already on another account: 400517; a wrong code 400300; a taken username 400506.", security(("bearer" = [])), request_body = BindReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn bind(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<BindReq>,
) -> Result<Reply<serde_json::Value>> {
    svc.bind(user.user_id, req, &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

#[utoipa::path(post, path = "/usercenter/v1/user/unbind", tag = "usercenter", summary = "Remove a way to log in", description = "kind: device (deviceId: only that one; otherwise all), phone, email, wechat or password. The account's last way in cannot go: 400518. Nothing of that kind: 400201.", security(("bearer" = [])), request_body = UnbindReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn unbind(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<UnbindReq>,
) -> Result<Reply<serde_json::Value>> {
    svc.unbind(user.user_id, req, &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

#[utoipa::path(post, path = "/usercenter/v1/user/update", tag = "usercenter", summary = "Change my profile", description = "nickname: 1 to 32 characters without control characters (400506 when usercenter.unique_nicknames is on and it is taken); avatar: the guid of one of my uploaded images, or empty; sex: 0, 1 or 2. Absent fields stay. Answers the account as it is now.", security(("bearer" = [])), request_body = ProfileReq, responses((status = 200, body = Envelope<Detail>)))]
async fn update(State(svc): State<Svc>, user: AuthUser, Json(req): Json<ProfileReq>) -> Result<Reply<Detail>> {
    svc.update_profile(user.user_id, req).await?;
    let (user_info, identities) = svc.detail(user.user_id).await?;
    Ok(Reply(Detail { user_info, identities }))
}

#[utoipa::path(post, path = "/usercenter/v1/user/delete", tag = "usercenter", summary = "Close my account", description = "Needs an access token from a login within usercenter.fresh_login_secs (otherwise 400519: log in again). The account closes at once: every token and game session ends, and no way in opens it again (400516). Its personal data is erased usercenter.delete_grace_days later; the ledger keeps the bare account id.", security(("bearer" = [])), responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn delete(State(svc): State<Svc>, ClientIp(ip): ClientIp, user: AuthUser) -> Result<Reply<serde_json::Value>> {
    svc.delete_account(user.user_id, user.claims.issued_ms(), &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RefreshReq {
    refresh_token: String,
}

#[utoipa::path(post, path = "/usercenter/v1/user/refresh", tag = "usercenter", summary = "Exchange a refresh token", description = "Refresh tokens rotate: each works once. Presenting a used one revokes its whole family (400103).", request_body = RefreshReq, responses((status = 200, body = Envelope<TokenReply>)))]
async fn refresh(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RefreshReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.refresh(&req.refresh_token, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Detail {
    user_info: UserInfo,
    /// The account's ways in: password (hint: the username), device, phone and email (hint:
    /// masked), wechat.
    identities: Vec<IdentityInfo>,
}

#[utoipa::path(post, path = "/usercenter/v1/user/detail", tag = "usercenter", summary = "My account", security(("bearer" = [])), responses((status = 200, body = Envelope<Detail>), (status = 401, description = "No valid token: code 400103")))]
async fn detail(State(svc): State<Svc>, user: AuthUser) -> Result<Reply<Detail>> {
    let (user_info, identities) = svc.detail(user.user_id).await?;
    Ok(Reply(Detail { user_info, identities }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProfilesReq {
    /// 1 to 100 account ids.
    user_ids: Vec<i64>,
}

#[utoipa::path(post, path = "/usercenter/v1/user/profiles", tag = "usercenter", summary = "Names and avatars of several accounts", description = "For leaderboards, friend lists and chat: each live account's nickname and avatar (closed and unknown ids are left out). 1 to 100 ids, else 400102.", security(("bearer" = [])), request_body = ProfilesReq, responses((status = 200, body = Envelope<Vec<crate::logic::PublicProfile>>)))]
async fn profiles(
    State(svc): State<Svc>,
    _user: AuthUser,
    Json(req): Json<ProfilesReq>,
) -> Result<Reply<Vec<crate::logic::PublicProfile>>> {
    Ok(Reply(svc.profiles(&req.user_ids).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Verified {
    msg: &'static str,
    /// When the token expires, unix seconds (as text, go-game's field type).
    value: String,
    id: i64,
}

#[utoipa::path(post, path = "/usercenter/v1/user/tokenVerify", tag = "usercenter", summary = "Check my token", description = "value: when it expires (unix seconds).", security(("bearer" = [])), responses((status = 200, body = Envelope<Verified>), (status = 401, description = "No valid token: code 400103")))]
async fn token_verify(user: AuthUser) -> Result<Reply<Verified>> {
    Ok(Reply(Verified { msg: "ok", value: user.claims.exp.to_string(), id: user.user_id }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct LogoutReq {
    #[serde(default)]
    refresh_token: String,
}

#[utoipa::path(post, path = "/usercenter/v1/user/logout", tag = "usercenter", summary = "Log out", description = "Revokes this access token and the refresh token's family (every refresh token of the account when none is given).", security(("bearer" = [])), request_body = LogoutReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn logout(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<LogoutReq>,
) -> Result<Reply<serde_json::Value>> {
    svc.logout(&user.claims, Some(&req.refresh_token), &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

#[utoipa::path(post, path = "/usercenter/v1/user/logoutAll", tag = "usercenter", summary = "Log out everywhere", description = "Ends every session of the account: every access and refresh token issued until now stops working at once, on every server, and open game connections are closed (LogoutResp type 4).", security(("bearer" = [])), responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn logout_all(
    State(svc): State<Svc>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
) -> Result<Reply<serde_json::Value>> {
    svc.logout_all(user.user_id, &ip).await?;
    Ok(Reply(serde_json::json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ChangePasswordReq {
    /// The password now.
    old: String,
    /// The new one: usercenter.password_min_len to 128 characters, with a letter and a digit.
    new: String,
}

#[utoipa::path(post, path = "/usercenter/v1/user/changePassword", tag = "usercenter", summary = "Change my password", description = "Needs the password now (old). Every session of the account ends, on every server (LogoutResp type 4 on open game connections); the reply holds new tokens for this client. A wrong old password is 400507 and counts like a failed login (400510 once locked); a weak new one 400102. A guest account has no password to change.", security(("bearer" = [])), request_body = ChangePasswordReq, responses((status = 200, body = Envelope<TokenReply>), (status = 401, description = "No valid token: code 400103")))]
async fn change_password(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(req): Json<ChangePasswordReq>,
) -> Result<Reply<TokenReply>> {
    let t = svc.change_password(user.user_id, req.old, req.new, &ip).await?;
    Ok(with_servers(&servers, t).await)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ScanReq {
    value: String,
}

#[utoipa::path(post, path = "/usercenter/v1/user/loginScan/create", tag = "usercenter", summary = "Start a QR login", description = "Show qr as a QR code; then call loginScan with value.", responses((status = 200, body = Envelope<ScanTicket>)))]
/// The waiting page starts a QR login.
async fn scan_create(State(svc): State<Svc>, ClientIp(ip): ClientIp) -> Result<Reply<ScanTicket>> {
    svc.scan_create(&ip).await.map(Reply)
}

#[utoipa::path(post, path = "/usercenter/v1/user/loginScan/confirm", tag = "usercenter", summary = "Confirm a scanned QR login", description = "Called by a device where the user is logged in.", security(("bearer" = [])), request_body = ScanReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
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

#[utoipa::path(post, path = "/usercenter/v1/user/loginScan", tag = "usercenter", summary = "Wait for a QR login", description = "Held up to 20 s until the code is confirmed, then answers tokens (once); 400511 while still pending: ask again.", request_body = ScanReq, responses((status = 200, body = Envelope<TokenReply>)))]
/// go-game's `loginScan`: the waiting page asks for its tokens. It is held up to 20 s while
/// the code is not confirmed (a long poll), then answers 400511 so the page asks again.
async fn login_scan(
    State(svc): State<Svc>,
    Extension(servers): Extension<Servers>,
    ClientIp(ip): ClientIp,
    Json(req): Json<ScanReq>,
) -> Result<Reply<TokenReply>> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match svc.login_scan(&req.value, &ip).await {
            Err(e) if e.code() == rsgame_kit::Code::ScanPending && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return Ok(with_servers(&servers, other?).await),
        }
    }
}

/// The OpenAPI document of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    login_device,
    login_code,
    login_wechat,
    reset_password,
    bind,
    unbind,
    update,
    delete,
    refresh,
    detail,
    profiles,
    token_verify,
    logout,
    logout_all,
    change_password,
    scan_create,
    scan_confirm,
    login_scan
))]
struct Doc;

/// The OpenAPI document of usercenter's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
