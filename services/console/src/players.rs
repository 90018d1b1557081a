//! Players as operators see them: found by any name or way in, a page with everything about
//! one, and the actions on one — each with a mandatory reason, each written to the audit log
//! with the state before and after.

use rsgame_game::data::ItemCount;
use rsgame_game::inbox::NewMail;
use rsgame_game::logic::{Pack, Progress};
use rsgame_game::operator::{Adjustment, LedgerEntry};
use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_usercenter::lookup::{self, LogLine};
use rsgame_usercenter::model::User;
use rsgame_usercenter::{Ban, UserCenter as _};
use serde::{Deserialize, Serialize};

use crate::Console;
use crate::audit::{self, Change, json};
use crate::sessions::Session;

/// A search hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayerLine {
    /// Account id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// Banned now.
    pub banned: bool,
    /// Closed by its owner.
    pub closed: bool,
    /// The game node it plays on, when online.
    pub online: Option<String>,
}

/// A ban as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanInfo {
    /// Unix ms; 0: without end.
    pub until: i64,
    /// Why.
    pub reason: String,
}

/// One way into the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityLine {
    /// `password`, `device`, `phone`, `email`, `wechat`.
    pub kind: String,
    /// The username, phone or email; a device or WeChat id is not shown (it opens the account).
    pub value: String,
    /// Bound at, unix ms.
    pub created_at: i64,
}

/// A player's page.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlayerPage {
    /// The account.
    pub player: PlayerLine,
    /// Phone (as bound).
    pub mobile: String,
    /// Email (as bound).
    pub email: String,
    /// The ban in force, if any.
    pub ban: Option<BanInfo>,
    /// Closed at, unix ms.
    pub closed_at: Option<i64>,
    /// Ways in.
    pub identities: Vec<IdentityLine>,
    /// Coins, goods, level (none for an account that never played).
    pub pack: Option<Pack>,
    /// The latest ledger rows, newest first.
    pub ledger: Vec<LedgerEntry>,
    /// Logins, logouts and account changes, newest first, with addresses.
    pub history: Vec<LogLine>,
    /// Progress on each battle level.
    pub battles: Vec<Progress>,
    /// The guild's name, when in one.
    pub guild: Option<String>,
    /// The chat mute in force, if any.
    pub mute: Option<rsgame_game::moderation::Mute>,
    /// Where it is now (node, scene or room), when online and its node answered.
    pub whereabouts: Option<rsgame_world::node::servers::Whereabouts>,
    /// Where the world last saved the player (a permanent scene).
    pub place: Option<PlaceInfo>,
    /// Friends and blacklist, with names.
    pub relations: Vec<Relation>,
}

/// Where the world last saved a player.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaceInfo {
    /// The scene.
    pub scene_id: i64,
    /// Position.
    pub x: f64,
    /// Position.
    pub z: f64,
}

/// A friend or a blacklisted player.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    /// The other player.
    pub user_id: i64,
    /// Its nickname.
    pub nickname: String,
    /// `friend` or `blacklist`.
    pub kind: String,
}

/// The most relations a page lists.
const MAX_RELATIONS: u64 = 500;

/// Why an action is taken: every console change needs one (it goes to the audit log).
pub(crate) fn reason(r: &str) -> Result<&str> {
    let r = r.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(Error::bad_param("reason: 1 to 500 characters, required"));
    }
    Ok(r)
}

/// A ban's length and reason.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanReq {
    /// Until when, unix ms; 0: without end.
    #[serde(default)]
    pub until: i64,
    /// Why (shown to the player and kept in the audit log).
    pub reason: String,
}

/// A grant or take of coins and goods.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantReq {
    /// Coins (negative: taken).
    #[serde(default)]
    pub coins: i64,
    /// Goods (a negative count: taken).
    #[serde(default)]
    pub goods: Vec<ItemCount>,
    /// The request's id: the same id again grants nothing more.
    pub request_id: String,
    /// Why.
    pub reason: String,
}

/// Inbox mail from the operators.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailReq {
    /// The players (1 to 1000), or none with `everyone`.
    #[serde(default)]
    pub user_ids: Vec<i64>,
    /// To every player who had played before now (each copy is made when its player next
    /// lists the inbox).
    #[serde(default)]
    pub everyone: bool,
    /// Title.
    pub title: String,
    /// Text.
    #[serde(default)]
    pub body: String,
    /// Attached coins.
    #[serde(default)]
    pub coins: i64,
    /// Attached goods.
    #[serde(default)]
    pub goods: Vec<ItemCount>,
    /// Expiry, unix ms; 0: never.
    #[serde(default)]
    pub expires_at: i64,
    /// The request's id: sending again with it sends nothing more.
    pub request_id: String,
    /// Why.
    pub reason: String,
}

/// A password reset by code.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetReq {
    /// `phone` or `email`; empty: the email if bound, else the phone.
    #[serde(default)]
    pub via: String,
    /// Why.
    pub reason: String,
}

/// Where a reset code went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetSent {
    /// The phone number or email address.
    pub target: String,
    /// When the code expires, unix seconds.
    pub expires_at: i64,
}

/// A reason alone (unban, kick).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ReasonReq {
    /// Why.
    pub reason: String,
}

impl Console {
    async fn online(&self, user_id: i64) -> Option<String> {
        self.cache.get::<String>(&rsgame_store::cache::presence_key(user_id)).await.ok().flatten()
    }

    async fn line(&self, u: &User) -> PlayerLine {
        let now = unix_ms();
        PlayerLine {
            id: u.id,
            username: u.username.clone(),
            nickname: u.nickname.clone(),
            banned: u.banned_at(now),
            closed: u.status == rsgame_usercenter::model::status::CLOSED || u.closed_at.is_some(),
            online: self.online(u.id).await,
        }
    }

    /// Players matching `q` (an id, a name or `prefix*`, a phone, an email, a device or
    /// WeChat id), at most 50.
    pub async fn search(&self, q: &str) -> Result<Vec<PlayerLine>> {
        if q.trim().is_empty() || q.len() > 256 {
            return Err(Error::bad_param("q: 1 to 256 characters"));
        }
        let users = lookup::search(self.db(), q, 50).await?;
        let mut out = Vec::with_capacity(users.len());
        for u in &users {
            out.push(self.line(u).await);
        }
        Ok(out)
    }

    async fn user(&self, user_id: i64) -> Result<User> {
        rsgame_usercenter::model::user_by_id(self.db(), user_id)
            .await?
            .ok_or_else(|| Error::msg(Code::NotFound, "no such player"))
    }

    /// Everything about one player.
    pub async fn player(&self, user_id: i64) -> Result<PlayerPage> {
        let u = self.user(user_id).await?;
        let identities = rsgame_usercenter::identity::account_with_identities(self.db(), user_id)
            .await?
            .map(|(_, ids)| ids)
            .unwrap_or_default();
        let mut lines = vec![IdentityLine { kind: "password".into(), value: u.username.clone(), created_at: 0 }];
        for i in identities {
            let shown = matches!(i.kind.as_str(), "phone" | "email");
            lines.push(IdentityLine {
                kind: i.kind.as_str().to_owned(),
                value: if shown { i.ident } else { String::new() },
                created_at: i.created_at,
            });
        }
        let now = unix_ms();
        let ban = u.banned_at(now).then(|| BanInfo { until: u.ban_until, reason: u.ban_reason.clone() });
        let pack = self.game.existing_pack(user_id).await?;
        let ledger = self.game.ledger_page(user_id, 0, 50).await?;
        let history = lookup::history(self.db(), user_id, 50).await?;
        let battles =
            if pack.is_some() { rsgame_game::Game::my_battles(self.game.as_ref(), user_id).await? } else { Vec::new() };
        let guild = self.game.guild_detail(user_id, 0).await.ok().map(|g| g.guild.name);
        let mute = self.game.moderation().mute(user_id, now).await?;
        let place = self.place(user_id).await?;
        let relations = self.relations(user_id).await?;
        let player = self.line(&u).await;
        let whereabouts = if player.online.is_some() { self.locate(user_id).await } else { None };
        Ok(PlayerPage {
            player,
            mobile: u.mobile.clone(),
            email: u.email.clone(),
            ban,
            closed_at: u.closed_at,
            identities: lines,
            pack,
            ledger,
            history,
            battles,
            guild,
            mute,
            whereabouts,
            place,
            relations,
        })
    }

    /// The world's saved place (the world's own store, read only).
    async fn place(&self, user_id: i64) -> Result<Option<PlaceInfo>> {
        let p = rsgame_world::store::WorldStore::new(self.db().clone()).place(user_id).await?;
        Ok(p.map(|p| PlaceInfo { scene_id: i64::from(p.scene_id), x: f64::from(p.x), z: f64::from(p.z) }))
    }

    /// Friends and blacklist (the world's own store, read only), with names.
    async fn relations(&self, user_id: i64) -> Result<Vec<Relation>> {
        let all = rsgame_world::store::WorldStore::new(self.db().clone()).relations(user_id, 0, MAX_RELATIONS).await?;
        // go-game's kinds: 1 friend, 2 blacklist; 3 (temporary) is not shown.
        let pairs: Vec<(i64, i32)> = all.into_iter().filter(|(_, k)| matches!(k, 1 | 2)).collect();
        let names = self.names(&pairs.iter().map(|(id, _)| *id).collect::<Vec<_>>()).await?;
        Ok(pairs
            .into_iter()
            .map(|(id, kind)| Relation {
                user_id: id,
                nickname: names.get(&id).cloned().unwrap_or_default(),
                kind: if kind == 2 { "blacklist" } else { "friend" }.to_owned(),
            })
            .collect())
    }

    /// The nicknames of the live accounts among `ids`.
    pub(crate) async fn names(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, String>> {
        let found = rsgame_usercenter::model::public_profiles(self.db(), ids).await?;
        Ok(found.into_iter().map(|(id, nickname, _)| (id, nickname)).collect())
    }

    /// Bans a player until a time (0: without end): its sessions end on every server.
    pub async fn ban(&self, s: &Session, ip: &str, user_id: i64, r: &BanReq) -> Result<PlayerLine> {
        let why = reason(&r.reason)?;
        let before = self.user(user_id).await?;
        let ban = Ban { until_ms: r.until, reason: why.to_owned() };
        if !self.usercenter.set_banned(user_id, Some(ban), &format!("console:{}", s.operator.username)).await? {
            return Err(Error::msg(Code::NotFound, "no such player, or a closed account"));
        }
        let after = self.user(user_id).await?;
        let change = Change::by(s, ip, "player.ban", format!("user:{user_id}"));
        let after_ban = BanInfo { until: after.ban_until, reason: after.ban_reason.clone() };
        let change = Change { before: json(&self.line(&before).await), after: json(&after_ban), reason: why, ..change };
        audit::record(self.db(), change).await?;
        Ok(self.line(&after).await)
    }

    /// Lifts a player's ban.
    pub async fn unban(&self, s: &Session, ip: &str, user_id: i64, r: &ReasonReq) -> Result<PlayerLine> {
        let why = reason(&r.reason)?;
        let before = self.user(user_id).await?;
        if !self.usercenter.set_banned(user_id, None, &format!("console:{}", s.operator.username)).await? {
            return Err(Error::msg(Code::NotFound, "no such player, or a closed account"));
        }
        let after = self.user(user_id).await?;
        let line = self.line(&after).await;
        let change = Change::by(s, ip, "player.unban", format!("user:{user_id}"));
        let before_ban = BanInfo { until: before.ban_until, reason: before.ban_reason };
        audit::record(self.db(), Change { before: json(&before_ban), after: json(&line), reason: why, ..change })
            .await?;
        Ok(line)
    }

    /// Ends every session of a player (its game connection closes; it may log in again).
    pub async fn kick(&self, s: &Session, ip: &str, user_id: i64, r: &ReasonReq) -> Result<PlayerLine> {
        let why = reason(&r.reason)?;
        let u = self.user(user_id).await?;
        let before = self.line(&u).await;
        self.usercenter.logout_all(user_id, &format!("console:{}", s.operator.username)).await?;
        let change = Change::by(s, ip, "player.kick", format!("user:{user_id}"));
        let after = r#"{"sessions":"ended"}"#.to_owned();
        audit::record(self.db(), Change { before: json(&before), after, reason: why, ..change }).await?;
        Ok(self.line(&u).await)
    }

    /// Sends a password-reset code to the player's bound phone or email; the player sets a
    /// new password with it (`resetPassword` without a key), which ends its sessions.
    pub async fn reset_password(&self, s: &Session, ip: &str, user_id: i64, r: &ResetReq) -> Result<ResetSent> {
        let why = reason(&r.reason)?;
        self.user(user_id).await?;
        let (target, expires_at) = self.usercenter.send_reset_code(user_id, &r.via).await?;
        let sent = ResetSent { target, expires_at };
        let change = Change::by(s, ip, "player.reset_password", format!("user:{user_id}"));
        audit::record(self.db(), Change { after: json(&sent), reason: why, ..change }).await?;
        Ok(sent)
    }

    /// Gives or takes coins and goods through the ledger, once per request id.
    pub async fn grant(&self, s: &Session, ip: &str, user_id: i64, r: &GrantReq) -> Result<Pack> {
        let why = reason(&r.reason)?;
        self.user(user_id).await?;
        if r.request_id.is_empty() || r.request_id.len() > 64 {
            return Err(Error::bad_param("requestId: 1 to 64 characters"));
        }
        let before = self.game.existing_pack(user_id).await?;
        let a = Adjustment { coins: r.coins, goods: r.goods.clone() };
        let (pack, applied) = self.game.adjust(user_id, &a, &format!("console:{}", r.request_id)).await?;
        if applied {
            let summary = |p: &Pack| {
                serde_json::json!({
                    "coins": p.player.coins,
                    "goods": p.items.iter().map(|i| (i.goods.id, i.count)).collect::<Vec<_>>(),
                })
            };
            let before = before.as_ref().map(summary).unwrap_or_default();
            let after = serde_json::json!({"change": a, "now": summary(&pack), "requestId": r.request_id});
            let change = Change::by(s, ip, "player.grant", format!("user:{user_id}"));
            audit::record(self.db(), Change { before: json(&before), after: json(&after), reason: why, ..change })
                .await?;
        }
        Ok(pack)
    }

    /// Sends inbox mail (with attachments) to players; one audit line for the whole send.
    pub async fn mail(&self, s: &Session, ip: &str, r: &MailReq) -> Result<Vec<i64>> {
        let why = reason(&r.reason)?;
        if r.request_id.is_empty() || r.request_id.len() > 64 {
            return Err(Error::bad_param("requestId: 1 to 64 characters"));
        }
        let mail = NewMail {
            user_id: 0,
            kind: "gm".into(),
            title: r.title.clone(),
            body: r.body.clone(),
            coins: r.coins,
            goods: r.goods.clone(),
            expires_at: r.expires_at,
            reference: format!("console:{}", r.request_id),
        };
        if r.everyone {
            if !r.user_ids.is_empty() {
                return Err(Error::bad_param("userIds: none with everyone"));
            }
            let (id, new) = self.game.broadcast(&mail).await?;
            if new {
                let after = serde_json::json!({
                    "everyone": true, "title": r.title, "coins": r.coins, "goods": r.goods, "requestId": r.request_id,
                });
                let change = Change::by(s, ip, "mail.everyone", "mail:everyone".to_owned());
                audit::record(self.db(), Change { after: json(&after), reason: why, ..change }).await?;
            }
            return Ok(vec![id]);
        }
        if r.user_ids.is_empty() || r.user_ids.len() > 1000 {
            return Err(Error::bad_param("userIds: 1 to 1000 players, or everyone"));
        }
        let mut ids = Vec::with_capacity(r.user_ids.len());
        for &user_id in &r.user_ids {
            self.user(user_id).await?;
            let one = NewMail { user_id, ..mail.clone() };
            ids.push(rsgame_game::Game::send_mail(self.game.as_ref(), one).await?);
        }
        let target = if r.user_ids.len() == 1 { format!("user:{}", r.user_ids[0]) } else { "mail:many".to_owned() };
        let after = serde_json::json!({
            "userIds": r.user_ids, "title": r.title, "coins": r.coins, "goods": r.goods, "requestId": r.request_id,
        });
        let change = Change::by(s, ip, "player.mail", target);
        audit::record(self.db(), Change { after: json(&after), reason: why, ..change }).await?;
        Ok(ids)
    }
}
