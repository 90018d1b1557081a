//! game's REST routes under `/game/v1/game/` (go-game's paths; their request and reply shapes
//! are rsgame's, go-game's were empty stubs).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Router};
use rsgame_kit::auth::{Auth, AuthUser, MaybeUser};
use rsgame_kit::extract::Json;
use rsgame_kit::{Code, Envelope, Error, Reply, Result};
use serde::Deserialize;

use rsgame_proto::events::{PLAYER_CHANGED_TOPIC, PlayerChanged};
use rsgame_store::Bus;

use crate::data::{Effect, ItemCount, Level, Notice};
use crate::inbox::{InboxPage, NewMail};
use crate::logic::{BattleResult, Game, Pack, Player, Progress, RankBy, Ranking, ShopItem};

#[derive(Clone)]
struct St {
    game: Arc<dyn Game>,
    admin_token: Arc<String>,
    changes: Option<Bus>,
}

/// The routes over any [`Game`]. `admin_token` guards `changeScore` (empty: refused to all).
/// `changes`, the bus the game nodes read: every change to a player's numbers made here is
/// announced there ([`PlayerChanged`]), so the node that holds an online player applies it
/// to the live player (the world owns its hit points while it plays) and tells it.
pub fn router(game: Arc<dyn Game>, auth: Auth, admin_token: &str, changes: Option<Bus>) -> Router {
    let st = St { game, admin_token: Arc::new(admin_token.to_owned()), changes };
    Router::new()
        .route("/game/v1/game/getRank", post(get_rank).get(get_rank))
        .route("/game/v1/game/getShop", post(get_shop).get(get_shop))
        .route("/game/v1/game/getNotify", post(get_notify).get(get_notify))
        .route("/game/v1/game/getBattle", post(get_battle).get(get_battle))
        .route("/game/v1/game/getPack", post(get_pack))
        .route("/game/v1/game/useGoods", post(use_goods))
        .route("/game/v1/game/buyGoods", post(buy_goods))
        .route("/game/v1/game/battle", post(battle))
        .route("/game/v1/game/getMyBattle", post(get_my_battle))
        .route("/game/v1/game/changeScore", post(change_score))
        .route("/game/v1/inbox/list", post(inbox_list))
        .route("/game/v1/inbox/read", post(inbox_read))
        .route("/game/v1/inbox/claim", post(inbox_claim))
        .route("/game/v1/inbox/delete", post(inbox_delete))
        .route("/game/v1/inbox/send", post(inbox_send))
        .with_state(st)
        .layer(Extension(auth))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RankReq {
    /// `score` (default) or `level`.
    #[serde(default = "by_score")]
    by: RankBy,
    #[serde(default = "one")]
    page: i64,
    #[serde(default = "twenty")]
    page_size: i64,
}

fn by_score() -> RankBy {
    RankBy::Score
}

fn one() -> i64 {
    1
}

fn twenty() -> i64 {
    20
}

#[utoipa::path(post, path = "/game/v1/game/getRank", tag = "game", summary = "A leaderboard", description = "By score or by level (then experience). With a token, `me` is the caller's own line.", request_body = RankReq, responses((status = 200, body = Envelope<Ranking>)))]
async fn get_rank(State(st): State<St>, MaybeUser(user): MaybeUser, Json(r): Json<RankReq>) -> Result<Reply<Ranking>> {
    st.game.rank(r.by, r.page, r.page_size, user.map(|u| u.user_id)).await.map(Reply)
}

#[utoipa::path(post, path = "/game/v1/game/getShop", tag = "game", summary = "What the shop sells", responses((status = 200, body = Envelope<Vec<ShopItem>>)))]
async fn get_shop(State(st): State<St>) -> Result<Reply<Vec<ShopItem>>> {
    st.game.shop().await.map(Reply)
}

#[utoipa::path(post, path = "/game/v1/game/getNotify", tag = "game", summary = "Announcements showing now", responses((status = 200, body = Envelope<Vec<Notice>>)))]
async fn get_notify(State(st): State<St>) -> Result<Reply<Vec<Notice>>> {
    st.game.notices().await.map(Reply)
}

#[utoipa::path(post, path = "/game/v1/game/getBattle", tag = "game", summary = "The levels", description = "Each level's enemies, the player level it needs and its rewards.", responses((status = 200, body = Envelope<Vec<Level>>)))]
async fn get_battle(State(st): State<St>) -> Result<Reply<Vec<Level>>> {
    st.game.levels().await.map(Reply)
}

#[utoipa::path(post, path = "/game/v1/game/getPack", tag = "game", summary = "My profile and items", description = "The profile is created on first use.", security(("bearer" = [])), responses((status = 200, body = Envelope<Pack>)))]
async fn get_pack(State(st): State<St>, user: AuthUser) -> Result<Reply<Pack>> {
    st.game.pack(user.user_id).await.map(Reply)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct IdReq {
    /// For useGoods: the goods id; for buyGoods: the shop listing id.
    id: i64,
    /// For buyGoods: how many (1 to 99, default 1).
    #[serde(default = "one_count")]
    count: i64,
}

fn one_count() -> i64 {
    1
}

#[utoipa::path(post, path = "/game/v1/game/useGoods", tag = "game", summary = "Use or equip goods", description = "A consumable applies its effect (heal, exp, a timed attack buff) and is used up; equipment is equipped. Not in the pack: 400513.", security(("bearer" = [])), request_body = IdReq, responses((status = 200, body = Envelope<Pack>)))]
async fn use_goods(State(st): State<St>, user: AuthUser, Json(r): Json<IdReq>) -> Result<Reply<Pack>> {
    // A heal is added to the live hit points by the node that holds the player: the stored
    // value is only the last save while it plays.
    let heal = match &st.changes {
        Some(_) => st.game.pack(user.user_id).await?.items.iter().find(|i| i.goods.id == r.id).map_or(0, |i| {
            match i.goods.effect {
                Some(Effect::Heal(n)) => n,
                _ => 0,
            }
        }),
        None => 0,
    };
    let pack = st.game.use_goods(user.user_id, r.id).await?;
    st.changed(user.user_id, heal, "use").await;
    Ok(Reply(pack))
}

#[utoipa::path(post, path = "/game/v1/game/buyGoods", tag = "game", summary = "Buy from the shop", description = "Coins are taken and the items added in one transaction; not enough coins: 400512.", security(("bearer" = [])), request_body = IdReq, responses((status = 200, body = Envelope<Pack>)))]
async fn buy_goods(State(st): State<St>, user: AuthUser, Json(r): Json<IdReq>) -> Result<Reply<Pack>> {
    let pack = st.game.buy(user.user_id, r.id, r.count).await?;
    st.changed(user.user_id, 0, "buy").await;
    Ok(Reply(pack))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BattleReq {
    level_id: i64,
    /// Unique per battle: a retry with the same id gets the same result and no second reward.
    request_id: String,
}

#[utoipa::path(post, path = "/game/v1/game/battle", tag = "game", summary = "Fight a level", description = "A deterministic turn-based fight from a seed and the player's stats; the record (warInfo: who hit whom for how much) and the rewards of a win. Level too low: 400514.", security(("bearer" = [])), request_body = BattleReq, responses((status = 200, body = Envelope<BattleResult>)))]
async fn battle(State(st): State<St>, user: AuthUser, Json(r): Json<BattleReq>) -> Result<Reply<BattleResult>> {
    // A fight leaves the player with the hit points it ended with: the node that holds an
    // online player applies the same change to its live hit points.
    let before = match &st.changes {
        Some(_) => Some(st.game.player(user.user_id).await?.hp),
        None => None,
    };
    let result = st.game.battle(user.user_id, r.level_id, &r.request_id).await?;
    let hp_delta = match before {
        Some(before) => st.game.player(user.user_id).await.map_or(0, |p| p.hp - before),
        None => 0,
    };
    st.changed(user.user_id, hp_delta, "battle").await;
    Ok(Reply(result))
}

#[utoipa::path(post, path = "/game/v1/game/getMyBattle", tag = "game", summary = "My progress on each level", security(("bearer" = [])), responses((status = 200, body = Envelope<Vec<Progress>>)))]
async fn get_my_battle(State(st): State<St>, user: AuthUser) -> Result<Reply<Vec<Progress>>> {
    st.game.my_battles(user.user_id).await.map(Reply)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ChangeScoreReq {
    user_id: i64,
    #[serde(default)]
    coins: i64,
    #[serde(default)]
    score: i64,
    reason: String,
    #[serde(default)]
    reference: String,
}

#[utoipa::path(post, path = "/game/v1/game/changeScore", tag = "game", summary = "Change a player's coins and score (server-side only)", description = "Only for server-side tools holding game.admin_token, sent as X-Admin-Token; a player's token never grants it (400501). Every change is a ledger row with the reason and reference.", request_body = ChangeScoreReq, params(("X-Admin-Token" = String, Header, description = "game.admin_token")), responses((status = 200, body = Envelope<Player>)))]
async fn change_score(
    State(st): State<St>,
    headers: HeaderMap,
    Json(r): Json<ChangeScoreReq>,
) -> Result<Reply<Player>> {
    st.admin(&headers, "changeScore")?;
    let player = st.game.change_score(r.user_id, r.coins, r.score, &r.reason, &r.reference).await?;
    st.changed(r.user_id, 0, "admin").await;
    Ok(Reply(player))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct InboxReq {
    /// Messages with ids below this (the previous page's `next`); 0 or absent: the newest.
    #[serde(default)]
    before: i64,
    /// 1 to 100 (default 20).
    #[serde(default = "twenty")]
    limit: i64,
}

#[utoipa::path(post, path = "/game/v1/inbox/list", tag = "inbox", summary = "My inbox, newest first", description = "Messages not deleted and not expired, a page at a time (`next` is the next page's `before`, 0 on the last), and how many are unread.", security(("bearer" = [])), request_body = InboxReq, responses((status = 200, body = Envelope<InboxPage>)))]
async fn inbox_list(State(st): State<St>, user: AuthUser, Json(r): Json<InboxReq>) -> Result<Reply<InboxPage>> {
    st.game.inbox(user.user_id, r.before, r.limit).await.map(Reply)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct IdsReq {
    /// 1 to 100 message ids; others' ids change nothing.
    ids: Vec<i64>,
}

#[utoipa::path(post, path = "/game/v1/inbox/read", tag = "inbox", summary = "Mark messages read", security(("bearer" = [])), request_body = IdsReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn inbox_read(State(st): State<St>, user: AuthUser, Json(r): Json<IdsReq>) -> Result<Reply<serde_json::Value>> {
    st.game.read_mail(user.user_id, &r.ids).await?;
    Ok(Reply(serde_json::json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ClaimReq {
    /// The message.
    id: i64,
}

#[utoipa::path(post, path = "/game/v1/inbox/claim", tag = "inbox", summary = "Claim a message's attachment", description = "Its coins and goods are added in one transaction with ledger rows (reference `mail:{id}`); the profile after it. Once only: again is 400521, even at the same moment; expired: 400522; another player's message: 400201.", security(("bearer" = [])), request_body = ClaimReq, responses((status = 200, body = Envelope<Player>)))]
async fn inbox_claim(State(st): State<St>, user: AuthUser, Json(r): Json<ClaimReq>) -> Result<Reply<Player>> {
    let player = st.game.claim_mail(user.user_id, r.id).await?;
    st.changed(user.user_id, 0, "mail").await;
    Ok(Reply(player))
}

#[utoipa::path(post, path = "/game/v1/inbox/delete", tag = "inbox", summary = "Delete messages", description = "A message whose attachment is not claimed (and not expired) is refused with 400523, and then none is deleted.", security(("bearer" = [])), request_body = IdsReq, responses((status = 200, body = Envelope<serde_json::Value>)))]
async fn inbox_delete(State(st): State<St>, user: AuthUser, Json(r): Json<IdsReq>) -> Result<Reply<serde_json::Value>> {
    st.game.delete_mail(user.user_id, &r.ids).await?;
    Ok(Reply(serde_json::json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SendReq {
    /// The players (1 to 1000).
    user_ids: Vec<i64>,
    /// 1 to 16 of a-z, 0-9 and _ (default `gm`).
    #[serde(default = "gm")]
    kind: String,
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    coins: i64,
    #[serde(default)]
    goods: Vec<ItemCount>,
    /// Unix ms; 0: never.
    #[serde(default)]
    expires_at: i64,
    /// Makes the send idempotent per player: sending again with it stores nothing more.
    #[serde(default)]
    reference: String,
}

fn gm() -> String {
    "gm".into()
}

#[utoipa::path(post, path = "/game/v1/inbox/send", tag = "inbox", summary = "Send a message to players (server-side only)", description = "For server-side tools holding game.admin_token, sent as X-Admin-Token (400501 without). Each player gets the message (with its attachment) in its inbox; the ids come back in the same order. Online players get a MailNotice (200450) push.", request_body = SendReq, params(("X-Admin-Token" = String, Header, description = "game.admin_token")), responses((status = 200, body = Envelope<Vec<i64>>)))]
async fn inbox_send(State(st): State<St>, headers: HeaderMap, Json(r): Json<SendReq>) -> Result<Reply<Vec<i64>>> {
    st.admin(&headers, "inbox/send")?;
    // Checked whole before any is sent: a bad id never leaves the list half sent.
    if r.user_ids.is_empty() || r.user_ids.len() > 1000 || r.user_ids.iter().any(|&u| u <= 0) {
        return Err(Error::bad_param("userIds: 1 to 1000 account ids"));
    }
    let mut ids = Vec::with_capacity(r.user_ids.len());
    for &user_id in &r.user_ids {
        let mail = NewMail {
            user_id,
            kind: r.kind.clone(),
            title: r.title.clone(),
            body: r.body.clone(),
            coins: r.coins,
            goods: r.goods.clone(),
            expires_at: r.expires_at,
            reference: r.reference.clone(),
        };
        ids.push(st.game.send_mail(mail).await?);
    }
    Ok(Reply(ids))
}

impl St {
    /// Refuses a caller without `game.admin_token` in `X-Admin-Token`.
    fn admin(&self, headers: &HeaderMap, what: &str) -> Result<()> {
        let sent = headers.get("x-admin-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if self.admin_token.is_empty()
            || !rsgame_kit::auth::constant_time_eq(sent.as_bytes(), self.admin_token.as_bytes())
        {
            tracing::warn!(what, "refused: no valid admin token");
            return Err(Error::msg(Code::Forbidden, format!("{what} is for server-side tools")));
        }
        Ok(())
    }

    /// Tells the game nodes that `user_id`'s numbers changed. The change itself is stored
    /// whatever happens here; a node not told shows old numbers until the player's next
    /// room change or login, so a failure is logged and counted, not hidden.
    async fn changed(&self, user_id: i64, hp_delta: i64, reason: &str) {
        let Some(bus) = &self.changes else { return };
        let event = PlayerChanged { user_id, hp_delta, reason: reason.to_owned(), id: rand::random() };
        if let Err(e) = bus.publish(PLAYER_CHANGED_TOPIC, &prost::Message::encode_to_vec(&event)).await {
            metrics::counter!(crate::metrics::PLAYER_CHANGED_ERRORS).increment(1);
            tracing::error!(user_id, reason, error = %e, "game nodes not told of a player's change");
        }
    }
}

/// The OpenAPI document of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    get_rank,
    get_shop,
    get_notify,
    get_battle,
    get_pack,
    use_goods,
    buy_goods,
    battle,
    get_my_battle,
    change_score,
    inbox_list,
    inbox_read,
    inbox_claim,
    inbox_delete,
    inbox_send
))]
struct Doc;

/// The OpenAPI document of game's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
