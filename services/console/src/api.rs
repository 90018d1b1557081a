//! The console's REST routes under `/console/v1/`, for its pages (and scripts an operator
//! writes). Every route but the login needs an operator's session cookie; every change also
//! needs the session's CSRF token in `X-CSRF-Token`; every route checks the operator's role
//! ([`crate::roles`]). Players' bearer tokens open nothing here.

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rsgame_game::logic::Pack;
use rsgame_kit::auth::constant_time_eq;
use rsgame_kit::extract::Json;
use rsgame_kit::http::ClientIp;
use rsgame_kit::{Code, Envelope, Error, Reply, Result};
use serde::{Deserialize, Serialize};

use crate::Console;
use crate::audit::{self, Entry};
use crate::chat::{ChatView, MuteReq, RemoveReq};
use crate::data::{FileReq, Version};
use crate::operators::{self, Operator};
use crate::players::{BanReq, GrantReq, MailReq, PlayerLine, PlayerPage, ReasonReq, ResetReq, ResetSent};
use crate::roles::{Permission, Role};
use crate::servers::{CloseRoomReq, DrainReq};
use crate::sessions::{self, LoginReq, Session};
use rsgame_game::data::Notice;
use rsgame_game::moderation::{ChatFilter, ChatLine, Mute};
use rsgame_world::node::servers::NodeStatus;

/// The routes, over `console`.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/console/v1/auth/login", post(login))
        .route("/console/v1/auth/logout", post(logout))
        .route("/console/v1/auth/me", get(me))
        .route("/console/v1/me/password", post(change_password))
        .route("/console/v1/me/totp/begin", post(totp_begin))
        .route("/console/v1/me/totp/enable", post(totp_enable))
        .route("/console/v1/players", get(search))
        .route("/console/v1/players/{id}", get(player))
        .route("/console/v1/players/{id}/ban", post(ban))
        .route("/console/v1/players/{id}/unban", post(unban))
        .route("/console/v1/players/{id}/kick", post(kick))
        .route("/console/v1/players/{id}/grant", post(grant))
        .route("/console/v1/players/{id}/mute", post(mute))
        .route("/console/v1/players/{id}/reset-password", post(reset_password))
        .route("/console/v1/mail", post(mail))
        .route("/console/v1/servers", get(servers))
        .route("/console/v1/servers/drain", post(drain))
        .route("/console/v1/servers/close-room", post(close_room))
        .route("/console/v1/chat", get(chat_lines))
        .route("/console/v1/chat/remove", post(chat_remove))
        .route("/console/v1/operators", get(list_operators).post(create_operator))
        .route("/console/v1/operators/{id}", post(update_operator))
        .route("/console/v1/audit", get(audit_log))
        .route("/console/v1/dashboard", get(dashboard))
        .route("/console/v1/data", get(data_tables))
        .route("/console/v1/data/file", get(data_file))
        .route("/console/v1/data/check", post(data_check))
        .route("/console/v1/data/apply", post(data_apply))
        .route("/console/v1/data/versions", get(data_versions))
        .route("/console/v1/data/versions/{id}", get(data_version))
        .route("/console/v1/data/rollback", post(data_rollback))
        .route("/console/v1/notices", get(notices).post(set_notices))
        .with_state(console)
}

/// The operator behind a request: a live session, and for anything but a read the session's
/// CSRF token in `X-CSRF-Token` (a page on another site can make the browser send the
/// cookie, never read the token).
pub struct Op(pub Session);

impl FromRequestParts<Console> for Op {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let token = sessions::token_of(&parts.headers)
            .ok_or_else(|| Error::msg(Code::Unauthorized, "log in to the console"))?;
        let s = console.session(&token).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts.headers.get("x-csrf-token").map(HeaderValue::as_bytes).unwrap_or_default();
            if !constant_time_eq(sent, s.csrf.as_bytes()) {
                return Err(Error::msg(Code::Forbidden, "X-CSRF-Token: the session's token is required"));
            }
        }
        Ok(Op(s))
    }
}

impl Op {
    fn need(&self, p: Permission) -> Result<&Session> {
        if self.0.operator.role.may(p) {
            Ok(&self.0)
        } else {
            Err(Error::msg(Code::Forbidden, format!("the {} role may not do this", self.0.operator.role.name())))
        }
    }
}

/// Who is logged in, and the token changes must send.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The operator.
    pub operator: Operator,
    /// Send it back as `X-CSRF-Token` with every change.
    pub csrf: String,
}

#[utoipa::path(post, path = "/console/v1/auth/login", tag = "console", summary = "Log an operator in", description = "Sets the session cookie (HttpOnly, SameSite=Strict). A wrong name, password or code: 400507; an operator with a second factor and no `totp`: 400500 asking for it; too many failures from this address: 400510.", request_body = LoginReq, responses((status = 200, body = Envelope<Me>)))]
async fn login(State(c): State<Console>, ClientIp(ip): ClientIp, Json(r): Json<LoginReq>) -> Result<Response> {
    let (token, s) = c.login(&r, &ip).await?;
    let cookie = HeaderValue::from_str(&sessions::set_cookie(&token, c.config()))
        .map_err(|e| Error::internal(Code::Failed, e))?;
    let mut res = Reply(Me { operator: s.operator, csrf: s.csrf }).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(res)
}

#[utoipa::path(post, path = "/console/v1/auth/logout", tag = "console", summary = "End this session", responses((status = 200, body = Envelope<bool>)))]
async fn logout(State(c): State<Console>, op: Op) -> Result<Response> {
    c.delete_session(op.0.id).await?;
    let cookie =
        HeaderValue::from_str(&sessions::clear_cookie(c.config())).map_err(|e| Error::internal(Code::Failed, e))?;
    let mut res = Reply(true).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(res)
}

#[utoipa::path(get, path = "/console/v1/auth/me", tag = "console", summary = "The operator of this session", responses((status = 200, body = Envelope<Me>)))]
async fn me(op: Op) -> Result<Reply<Me>> {
    Ok(Reply(Me { operator: op.0.operator, csrf: op.0.csrf }))
}

/// A password change.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordReq {
    /// The current password.
    pub old: String,
    /// The new one (12 to 128 characters).
    pub new: String,
}

#[utoipa::path(post, path = "/console/v1/me/password", tag = "console", summary = "Change my password", description = "Ends every session of this operator, this one included.", request_body = PasswordReq, responses((status = 200, body = Envelope<bool>)))]
async fn change_password(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<PasswordReq>,
) -> Result<Reply<bool>> {
    c.change_password(&op.0, &ip, &r.old, &r.new).await.map(|()| Reply(true))
}

/// A second factor being set up.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpSetup {
    /// The secret (base32), to type into an authenticator app.
    pub secret: String,
    /// The `otpauth://` link, to show as a QR code.
    pub link: String,
}

#[utoipa::path(post, path = "/console/v1/me/totp/begin", tag = "console", summary = "Start setting up a second factor", description = "A new secret, held for ten minutes until `totp/enable` proves the app has it.", responses((status = 200, body = Envelope<TotpSetup>)))]
async fn totp_begin(State(c): State<Console>, op: Op) -> Result<Reply<TotpSetup>> {
    c.totp_begin(&op.0).await.map(Reply)
}

/// A code from the app.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CodeReq {
    /// Six digits.
    pub code: String,
}

#[utoipa::path(post, path = "/console/v1/me/totp/enable", tag = "console", summary = "Turn the second factor on", description = "With a code from the app for the secret `totp/begin` gave; from then on every login needs a code.", request_body = CodeReq, responses((status = 200, body = Envelope<bool>)))]
async fn totp_enable(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<CodeReq>,
) -> Result<Reply<bool>> {
    c.totp_enable(&op.0, &ip, &r.code).await.map(|()| Reply(true))
}

/// A search.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// An id, a username or nickname (`prefix*` for a prefix), a phone, an email, a device
    /// or WeChat id.
    pub q: String,
}

#[utoipa::path(get, path = "/console/v1/players", tag = "console", summary = "Find players", params(SearchQuery), responses((status = 200, body = Envelope<Vec<PlayerLine>>)))]
async fn search(State(c): State<Console>, op: Op, Query(q): Query<SearchQuery>) -> Result<Reply<Vec<PlayerLine>>> {
    op.need(Permission::View)?;
    c.search(&q.q).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/players/{id}", tag = "console", summary = "A player's page", description = "Profile, ways in, ban, online status, coins and goods, the latest ledger rows and logins with addresses, battles, guild.", params(("id" = i64, Path)), responses((status = 200, body = Envelope<PlayerPage>)))]
async fn player(State(c): State<Console>, op: Op, Path(id): Path<i64>) -> Result<Reply<PlayerPage>> {
    op.need(Permission::View)?;
    c.player(id).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/players/{id}/ban", tag = "console", summary = "Ban a player", description = "Until `until` (unix ms; 0: without end), with a reason; the player's sessions end on every server. gm or admin.", params(("id" = i64, Path)), request_body = BanReq, responses((status = 200, body = Envelope<PlayerLine>)))]
async fn ban(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<BanReq>,
) -> Result<Reply<PlayerLine>> {
    c.ban(op.need(Permission::Moderate)?, &ip, id, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/players/{id}/mute", tag = "console", summary = "Mute a player in chat, or lift the mute", description = "Until `until` (unix ms, within ten years; 0 lifts it), with a reason the player is told with every refused message (400526). Holds on every game node at once. gm or admin.", params(("id" = i64, Path)), request_body = MuteReq, responses((status = 200, body = Envelope<Option<Mute>>)))]
async fn mute(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<MuteReq>,
) -> Result<Reply<Option<Mute>>> {
    c.mute(op.need(Permission::Moderate)?, &ip, id, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/players/{id}/reset-password", tag = "console", summary = "Send a player a password-reset code", description = "A 6-digit code to the phone or email bound to the account (`via`; by default the email, else the phone), good for 30 minutes and five tries. The player calls /usercenter/v1/user/resetPassword with that target, the code, an empty key and a new password; every session then ends. No phone or email: 400. gm or admin.", params(("id" = i64, Path)), request_body = ResetReq, responses((status = 200, body = Envelope<ResetSent>)))]
async fn reset_password(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<ResetReq>,
) -> Result<Reply<ResetSent>> {
    c.reset_password(op.need(Permission::Moderate)?, &ip, id, &r).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/servers", tag = "console", summary = "The game nodes", description = "Each live node (one that wrote its status in the last 15 s) with its players, whether it is draining, and its scenes and rooms with their players.", responses((status = 200, body = Envelope<Vec<NodeStatus>>)))]
async fn servers(State(c): State<Console>, op: Op) -> Result<Reply<Vec<NodeStatus>>> {
    op.need(Permission::View)?;
    c.nodes().await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/servers/drain", tag = "console", summary = "Drain a game node, or reopen it", description = "A draining node refuses new game logins (400503), and the node directory sends players to the others; those on it play on, and go elsewhere at their next login. Answers once the node shows the change (400504 if it has not within 10 s). admin only.", request_body = DrainReq, responses((status = 200, body = Envelope<NodeStatus>)))]
async fn drain(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<DrainReq>,
) -> Result<Reply<NodeStatus>> {
    c.drain(op.need(Permission::Data)?, &ip, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/servers/close-room", tag = "console", summary = "Close a room players created", description = "Its players go back to the scenes they came from, told with a QuitRoomResp whose remark gives the reason. Scenes of the world cannot be closed (400102). gm or admin.", request_body = CloseRoomReq, responses((status = 200, body = Envelope<NodeStatus>)))]
async fn close_room(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<CloseRoomReq>,
) -> Result<Reply<NodeStatus>> {
    c.close_room(op.need(Permission::Moderate)?, &ip, &r).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/chat", tag = "console", summary = "Recent chat lines", description = "World or room lines (kept `world.chat_log_days`) or guild lines, newest first, filtered by sender, room or guild, and text; page back with `beforeId`.", params(ChatFilter), responses((status = 200, body = Envelope<Vec<ChatView>>)))]
async fn chat_lines(State(c): State<Console>, op: Op, Query(f): Query<ChatFilter>) -> Result<Reply<Vec<ChatView>>> {
    op.need(Permission::View)?;
    c.chat_lines(&f).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/chat/remove", tag = "console", summary = "Remove a chat line", description = "From the log and from every game node's history; players who could see it get a ChatRemoved push. Audited with the line. gm or admin.", request_body = RemoveReq, responses((status = 200, body = Envelope<ChatLine>)))]
async fn chat_remove(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<RemoveReq>,
) -> Result<Reply<ChatLine>> {
    c.remove_chat(op.need(Permission::Moderate)?, &ip, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/players/{id}/unban", tag = "console", summary = "Lift a ban", params(("id" = i64, Path)), request_body = ReasonReq, responses((status = 200, body = Envelope<PlayerLine>)))]
async fn unban(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<ReasonReq>,
) -> Result<Reply<PlayerLine>> {
    c.unban(op.need(Permission::Moderate)?, &ip, id, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/players/{id}/kick", tag = "console", summary = "End a player's sessions", description = "Its game connection closes and its tokens stop working; it may log in again.", params(("id" = i64, Path)), request_body = ReasonReq, responses((status = 200, body = Envelope<PlayerLine>)))]
async fn kick(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<ReasonReq>,
) -> Result<Reply<PlayerLine>> {
    c.kick(op.need(Permission::Moderate)?, &ip, id, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/players/{id}/grant", tag = "console", summary = "Give or take coins and goods", description = "Through the ledger in one transaction, never below zero; the same requestId again changes nothing. The player sees it at once if online.", params(("id" = i64, Path)), request_body = GrantReq, responses((status = 200, body = Envelope<Pack>)))]
async fn grant(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<GrantReq>,
) -> Result<Reply<Pack>> {
    c.grant(op.need(Permission::Grant)?, &ip, id, &r).await.map(Reply)
}

#[utoipa::path(post, path = "/console/v1/mail", tag = "console", summary = "Send inbox mail", description = "To 1 to 1000 players, or with `everyone` to every player who had played before now (one stored send; each player's copy is made when it next lists its inbox, and online players get a MailNotice at once), with coins and goods attached (claimed once, through the ledger). The same requestId again sends nothing more. Answers the messages' ids (for everyone: the send's id).", request_body = MailReq, responses((status = 200, body = Envelope<Vec<i64>>)))]
async fn mail(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<MailReq>,
) -> Result<Reply<Vec<i64>>> {
    c.mail(op.need(Permission::Moderate)?, &ip, &r).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/operators", tag = "console", summary = "The operators", responses((status = 200, body = Envelope<Vec<Operator>>)))]
async fn list_operators(State(c): State<Console>, op: Op) -> Result<Reply<Vec<Operator>>> {
    op.need(Permission::Operators)?;
    operators::list(c.db()).await.map(Reply)
}

/// A new operator.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewOperator {
    /// Login name.
    pub username: String,
    /// First password (12 to 128 characters).
    pub password: String,
    /// Role.
    pub role: Role,
    /// Why.
    pub reason: String,
}

#[utoipa::path(post, path = "/console/v1/operators", tag = "console", summary = "Create an operator", description = "admin only.", request_body = NewOperator, responses((status = 200, body = Envelope<Operator>)))]
async fn create_operator(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<NewOperator>,
) -> Result<Reply<Operator>> {
    c.create_operator(op.need(Permission::Operators)?, &ip, &r.username, &r.password, r.role, &r.reason)
        .await
        .map(Reply)
}

/// A change to an operator.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorChange {
    /// A new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Disable (true) or enable (false).
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password (12 to 128 characters).
    #[serde(default)]
    pub password: Option<String>,
    /// Remove the second factor (a lost phone).
    #[serde(default)]
    pub clear_totp: bool,
    /// Why.
    pub reason: String,
}

#[utoipa::path(post, path = "/console/v1/operators/{id}", tag = "console", summary = "Change an operator", description = "Role, disabled, password, second factor; its sessions end. admin only; an admin cannot demote or disable itself.", params(("id" = i64, Path)), request_body = OperatorChange, responses((status = 200, body = Envelope<Operator>)))]
async fn update_operator(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Path(id): Path<i64>,
    Json(r): Json<OperatorChange>,
) -> Result<Reply<Operator>> {
    c.update_operator(op.need(Permission::Operators)?, &ip, id, &r).await.map(Reply)
}

/// Which audit lines.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    /// Only lines on this target (`user:42`, `operator:3`).
    #[serde(default)]
    pub target: Option<String>,
    /// Only lines by this operator.
    #[serde(default)]
    pub operator_id: Option<i64>,
    /// Lines before this id (paging back); 0 or none: the newest.
    #[serde(default)]
    pub before: i64,
    /// How many (1 to 200; 50 by default).
    #[serde(default)]
    pub limit: Option<u64>,
}

#[utoipa::path(get, path = "/console/v1/audit", tag = "console", summary = "The audit log", description = "Newest first. Read-only: nothing in the console edits or deletes a line.", params(AuditQuery), responses((status = 200, body = Envelope<Vec<Entry>>)))]
async fn audit_log(State(c): State<Console>, op: Op, Query(q): Query<AuditQuery>) -> Result<Reply<Vec<Entry>>> {
    op.need(Permission::View)?;
    audit::page(c.db(), q.target.as_deref(), q.operator_id, q.before, q.limit.unwrap_or(50)).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/dashboard", tag = "console", summary = "The dashboard", description = "This process's metrics sampled every 10 s for the last hour (players, connections, rooms, REST and message rates, server errors, tick p99, database pool), players per scene now, and logins and new accounts per minute.", responses((status = 200, body = Envelope<crate::dashboard::DashboardView>)))]
async fn dashboard(State(c): State<Console>, op: Op) -> Result<Reply<crate::dashboard::DashboardView>> {
    op.need(Permission::View)?;
    c.dashboard().await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/data", tag = "console", summary = "The game data in force, as tables", description = "Goods, shop, levels, the experience table, notices, guild rules, and the names of the files.", responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn data_tables(State(c): State<Console>, op: Op) -> Result<Reply<serde_json::Value>> {
    op.need(Permission::View)?;
    Ok(Reply(c.data_tables()))
}

/// A data file by name.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
pub struct FileQuery {
    /// `goods.yaml`, `shop.yaml`, `levels.yaml`, `exp.yaml`, `notices.yaml` or `guild.yaml`.
    pub name: String,
}

/// A data file's text.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileText {
    /// The file.
    pub file: String,
    /// Its text.
    pub content: String,
}

#[utoipa::path(get, path = "/console/v1/data/file", tag = "console", summary = "A game data file's text", params(FileQuery), responses((status = 200, body = Envelope<FileText>)))]
async fn data_file(State(c): State<Console>, op: Op, Query(q): Query<FileQuery>) -> Result<Reply<FileText>> {
    op.need(Permission::View)?;
    Ok(Reply(FileText { content: c.data_file(&q.name)?, file: q.name }))
}

#[utoipa::path(post, path = "/console/v1/data/check", tag = "console", summary = "Check a data file before applying it", description = "Checked with the other files as they are now; 400102 names the file and entry at fault. Changes nothing. admin only.", request_body = FileReq, responses((status = 200, body = Envelope<bool>)))]
async fn data_check(State(c): State<Console>, op: Op, Json(r): Json<FileReq>) -> Result<Reply<bool>> {
    op.need(Permission::Data)?;
    c.check_data(&r).map(|()| Reply(true))
}

#[utoipa::path(post, path = "/console/v1/data/apply", tag = "console", summary = "Apply a data file", description = "Checked, written, reloaded at once in this process (others watching the folder within game.reload_secs), kept as a version, audited. A bad file: 400102 and nothing changes. admin only.", request_body = FileReq, responses((status = 200, body = Envelope<Version>)))]
async fn data_apply(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<FileReq>,
) -> Result<Reply<Version>> {
    c.apply_data(op.need(Permission::Data)?, &ip, &r).await.map(Reply)
}

/// Which versions.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
pub struct VersionsQuery {
    /// Only this file's.
    #[serde(default)]
    pub file: Option<String>,
}

#[utoipa::path(get, path = "/console/v1/data/versions", tag = "console", summary = "Applied data versions", params(VersionsQuery), responses((status = 200, body = Envelope<Vec<Version>>)))]
async fn data_versions(
    State(c): State<Console>,
    op: Op,
    Query(q): Query<VersionsQuery>,
) -> Result<Reply<Vec<Version>>> {
    op.need(Permission::View)?;
    c.data_versions(q.file.as_deref()).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/data/versions/{id}", tag = "console", summary = "One data version, with its text", params(("id" = i64, Path)), responses((status = 200, body = Envelope<Version>)))]
async fn data_version(State(c): State<Console>, op: Op, Path(id): Path<i64>) -> Result<Reply<Version>> {
    op.need(Permission::View)?;
    c.data_version(id).await.map(Reply)
}

/// A rollback.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RollbackReq {
    /// The version to apply again.
    pub id: i64,
    /// Why.
    pub reason: String,
}

#[utoipa::path(post, path = "/console/v1/data/rollback", tag = "console", summary = "Apply an earlier version again", description = "Checked like any file (the others may have changed since). admin only.", request_body = RollbackReq, responses((status = 200, body = Envelope<Version>)))]
async fn data_rollback(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<RollbackReq>,
) -> Result<Reply<Version>> {
    c.rollback_data(op.need(Permission::Data)?, &ip, r.id, &r.reason).await.map(Reply)
}

#[utoipa::path(get, path = "/console/v1/notices", tag = "console", summary = "Every notice", description = "Scheduled, showing and expired alike (getNotify shows those whose time it is).", responses((status = 200, body = Envelope<Vec<Notice>>)))]
async fn notices(State(c): State<Console>, op: Op) -> Result<Reply<Vec<Notice>>> {
    op.need(Permission::View)?;
    Ok(Reply(c.data_notices()))
}

/// The notices, all of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NoticesReq {
    /// The whole list (ids unique; start and end RFC 3339).
    pub notices: Vec<Notice>,
    /// Why.
    pub reason: String,
}

#[utoipa::path(post, path = "/console/v1/notices", tag = "console", summary = "Replace the notices", description = "Written as notices.yaml and applied like any data file: checked, reloaded, versioned, audited. admin only.", request_body = NoticesReq, responses((status = 200, body = Envelope<Version>)))]
async fn set_notices(
    State(c): State<Console>,
    ClientIp(ip): ClientIp,
    op: Op,
    Json(r): Json<NoticesReq>,
) -> Result<Reply<Version>> {
    c.set_notices(op.need(Permission::Data)?, &ip, &r.notices, &r.reason).await.map(Reply)
}

/// The OpenAPI document of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    login,
    logout,
    me,
    change_password,
    totp_begin,
    totp_enable,
    search,
    player,
    ban,
    unban,
    kick,
    grant,
    mute,
    reset_password,
    mail,
    chat_lines,
    chat_remove,
    servers,
    drain,
    close_room,
    list_operators,
    create_operator,
    update_operator,
    audit_log,
    dashboard,
    data_tables,
    data_file,
    data_check,
    data_apply,
    data_versions,
    data_version,
    data_rollback,
    notices,
    set_notices
))]
struct Doc;

/// The OpenAPI document of the console's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
