//! The guild REST routes under `/game/v1/guild/` (POST, JSON, the player's token), over the
//! game service in this process (the role that serves them holds the database).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Router};
use rsgame_kit::auth::{Auth, AuthUser};
use rsgame_kit::extract::Json;
use rsgame_kit::{Envelope, Reply, Result};
use rsgame_proto::events::{PLAYER_CHANGED_TOPIC, PlayerChanged};
use rsgame_store::Bus;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::GameLogic;
use crate::guild::{Guild, GuildDetail, JoinRequest, Role};

#[derive(Clone)]
struct St {
    game: Arc<GameLogic>,
    changes: Option<Bus>,
}

/// The guild routes. `changes`: where founding a guild (it costs coins) is announced to the
/// game nodes, as every change to a player's numbers is.
pub fn router(game: Arc<GameLogic>, auth: Auth, changes: Option<Bus>) -> Router {
    Router::new()
        .route("/game/v1/guild/create", post(create))
        .route("/game/v1/guild/search", post(search))
        .route("/game/v1/guild/detail", post(detail))
        .route("/game/v1/guild/join", post(join))
        .route("/game/v1/guild/requests", post(requests))
        .route("/game/v1/guild/answer", post(answer))
        .route("/game/v1/guild/leave", post(leave))
        .route("/game/v1/guild/kick", post(kick))
        .route("/game/v1/guild/role", post(role))
        .route("/game/v1/guild/notice", post(notice))
        .route("/game/v1/guild/invite", post(invite))
        .with_state(St { game, changes })
        .layer(Extension(auth))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateReq {
    /// 2 to 20 characters, no control characters; unique without regard to case.
    name: String,
    /// At most 500 characters.
    #[serde(default)]
    notice: String,
    /// Anyone may join without an officer's answer.
    #[serde(default)]
    open: bool,
}

#[utoipa::path(post, path = "/game/v1/guild/create", tag = "guild", summary = "Found a guild", description = "Costs guild.yaml's create_cost in coins, through the ledger (reason `guild`, reference `guild:{id}`), in the same transaction: not enough coins is 400512 and nothing is created. A taken name: 400525; already in a guild: 400; a bad name: 400102.", security(("bearer" = [])), request_body = CreateReq, responses((status = 200, body = Envelope<GuildDetail>)))]
async fn create(State(st): State<St>, user: AuthUser, Json(r): Json<CreateReq>) -> Result<Reply<GuildDetail>> {
    let d = st.game.guild_create(user.user_id, &r.name, &r.notice, r.open).await?;
    if let Some(bus) = &st.changes {
        let event = PlayerChanged { user_id: user.user_id, hp_delta: 0, reason: "guild".into(), id: rand::random() };
        if let Err(e) = bus.publish(PLAYER_CHANGED_TOPIC, &prost::Message::encode_to_vec(&event)).await {
            metrics::counter!(crate::metrics::PLAYER_CHANGED_ERRORS).increment(1);
            tracing::error!(user_id = user.user_id, error = %e, "game nodes not told of a guild's cost");
        }
    }
    Ok(Reply(d))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SearchReq {
    /// Part of the name (any guild when empty).
    #[serde(default)]
    name: String,
    /// 1 to 50 (default 20).
    #[serde(default)]
    limit: u64,
}

#[utoipa::path(post, path = "/game/v1/guild/search", tag = "guild", summary = "Find guilds by name", description = "Guilds whose name holds the text, without regard to case, the largest first.", security(("bearer" = [])), request_body = SearchReq, responses((status = 200, body = Envelope<Vec<Guild>>)))]
async fn search(State(st): State<St>, _user: AuthUser, Json(r): Json<SearchReq>) -> Result<Reply<Vec<Guild>>> {
    let limit = if r.limit == 0 { 20 } else { r.limit };
    Ok(Reply(st.game.guild_search(&r.name, limit).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct GuildReq {
    /// The guild (0: the player's own).
    #[serde(default)]
    guild_id: i64,
}

#[utoipa::path(post, path = "/game/v1/guild/detail", tag = "guild", summary = "A guild", description = "The player's own (guildId 0) or any; members and their roles are listed to members only. Not in a guild (guildId 0): 400201.", security(("bearer" = [])), request_body = GuildReq, responses((status = 200, body = Envelope<GuildDetail>)))]
async fn detail(State(st): State<St>, user: AuthUser, Json(r): Json<GuildReq>) -> Result<Reply<GuildDetail>> {
    Ok(Reply(st.game.guild_detail(user.user_id, r.guild_id).await?))
}

#[utoipa::path(post, path = "/game/v1/guild/join", tag = "guild", summary = "Join a guild, or ask to", description = "An open guild, or one that invited the player: joined at once (`joined` true). Otherwise a request waits for an officer (`joined` false; officers online get a GuildNotice). Full: 400501; in a guild already: 400.", security(("bearer" = [])), request_body = GuildReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn join(State(st): State<St>, user: AuthUser, Json(r): Json<GuildReq>) -> Result<Reply<Value>> {
    let joined = st.game.guild_join(user.user_id, r.guild_id).await?;
    Ok(Reply(json!({ "joined": joined })))
}

#[utoipa::path(post, path = "/game/v1/guild/requests", tag = "guild", summary = "Join requests waiting", description = "For the officers and the leader of the player's guild (400501 for others), oldest first.", security(("bearer" = [])), responses((status = 200, body = Envelope<Vec<JoinRequest>>)))]
async fn requests(State(st): State<St>, user: AuthUser) -> Result<Reply<Vec<JoinRequest>>> {
    Ok(Reply(st.game.guild_requests(user.user_id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AnswerReq {
    /// The player who asked.
    user_id: i64,
    /// Let it in, or not.
    accept: bool,
}

#[utoipa::path(post, path = "/game/v1/guild/answer", tag = "guild", summary = "Answer a join request", description = "Officers and the leader. No such request (answered already): 400201; full: 400501; the player joined another guild meanwhile: 400.", security(("bearer" = [])), request_body = AnswerReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn answer(State(st): State<St>, user: AuthUser, Json(r): Json<AnswerReq>) -> Result<Reply<Value>> {
    st.game.guild_answer(user.user_id, r.user_id, r.accept).await?;
    Ok(Reply(json!({})))
}

#[utoipa::path(post, path = "/game/v1/guild/leave", tag = "guild", summary = "Leave the guild", description = "A leader hands the guild on first (role) unless it is the last member (400); the last member's leaving closes the guild and frees its name.", security(("bearer" = [])), responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn leave(State(st): State<St>, user: AuthUser) -> Result<Reply<Value>> {
    st.game.guild_leave(user.user_id).await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserReq {
    /// The other player.
    user_id: i64,
}

#[utoipa::path(post, path = "/game/v1/guild/kick", tag = "guild", summary = "Remove a member", description = "An officer removes members; the leader removes officers too. A member of another guild, or of an equal or higher role: 400501.", security(("bearer" = [])), request_body = UserReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn kick(State(st): State<St>, user: AuthUser, Json(r): Json<UserReq>) -> Result<Reply<Value>> {
    st.game.guild_kick(user.user_id, r.user_id).await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RoleReq {
    /// A member.
    user_id: i64,
    /// `member`, `officer`, or `leader` (hands the guild on; the old leader becomes an officer).
    role: Role,
}

#[utoipa::path(post, path = "/game/v1/guild/role", tag = "guild", summary = "Set a member's role", description = "The leader only (400501 for others).", security(("bearer" = [])), request_body = RoleReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn role(State(st): State<St>, user: AuthUser, Json(r): Json<RoleReq>) -> Result<Reply<Value>> {
    st.game.guild_set_role(user.user_id, r.user_id, r.role).await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NoticeReq {
    /// At most 500 characters; line breaks allowed.
    notice: String,
}

#[utoipa::path(post, path = "/game/v1/guild/notice", tag = "guild", summary = "Set the guild's notice", description = "Officers and the leader.", security(("bearer" = [])), request_body = NoticeReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn notice(State(st): State<St>, user: AuthUser, Json(r): Json<NoticeReq>) -> Result<Reply<Value>> {
    st.game.guild_set_notice(user.user_id, &r.notice).await?;
    Ok(Reply(json!({})))
}

#[utoipa::path(post, path = "/game/v1/guild/invite", tag = "guild", summary = "Invite a player", description = "Officers and the leader. The player may then join even a closed guild; the invitation is in its inbox (kind `guild`) and, online, it gets a GuildNotice.", security(("bearer" = [])), request_body = UserReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn invite(State(st): State<St>, user: AuthUser, Json(r): Json<UserReq>) -> Result<Reply<Value>> {
    st.game.guild_invite(user.user_id, r.user_id).await?;
    Ok(Reply(json!({})))
}

/// The OpenAPI document of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, search, detail, join, requests, answer, leave, kick, role, notice, invite))]
struct Doc;

/// The OpenAPI document of the guild routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
