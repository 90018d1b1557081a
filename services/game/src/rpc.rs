//! game over gRPC: [`GameRpc`] serves any [`Game`]; [`RemoteGame`] calls one and implements
//! the same trait.

use std::sync::Arc;

use rsgame_kit::{Code, Error, Result};
use rsgame_rpc::pb::gamesvc as pb;
use rsgame_rpc::pb::gamesvc::game_client::GameClient;
use rsgame_rpc::pb::gamesvc::game_server::{Game as GameService, GameServer};
use tonic::{Request, Response, Status};

use crate::battle::{Hit, WarInfo};
use crate::data::{Effect, Enemy, Goods, ItemCount, Kind, Level, Notice, Rewards, Slot};
use crate::inbox::{InboxPage, Mail, NewMail};
use crate::logic::{BattleResult, Game, Grant, Pack, PackItem, Player, Progress, RankBy, RankEntry, Ranking, ShopItem};

type Reply<T> = std::result::Result<Response<T>, Status>;

fn ok<T>(r: Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(rsgame_rpc::status)
}

fn missing(what: &str) -> Error {
    Error::internal(Code::Failed, std::io::Error::other(format!("game replied without {what}")))
}

// ---- to the wire ----

fn counts(v: Vec<ItemCount>) -> Vec<pb::ItemCount> {
    v.into_iter().map(|i| pb::ItemCount { goods_id: i.goods_id, count: i.count }).collect()
}

fn from_counts(v: Vec<pb::ItemCount>) -> Vec<ItemCount> {
    v.into_iter().map(|i| ItemCount { goods_id: i.goods_id, count: i.count }).collect()
}

fn mail(m: Mail) -> pb::Mail {
    pb::Mail {
        id: m.id,
        kind: m.kind,
        title: m.title,
        body: m.body,
        coins: m.coins,
        goods: counts(m.goods),
        created_at: m.created_at,
        expires_at: m.expires_at,
        read: m.read,
        claimed: m.claimed,
    }
}

fn from_mail(m: pb::Mail) -> Mail {
    Mail {
        id: m.id,
        kind: m.kind,
        title: m.title,
        body: m.body,
        coins: m.coins,
        goods: from_counts(m.goods),
        created_at: m.created_at,
        expires_at: m.expires_at,
        read: m.read,
        claimed: m.claimed,
    }
}

fn player(p: Player) -> pb::Player {
    pb::Player {
        user_id: p.user_id,
        level: p.level,
        exp: p.exp,
        coins: p.coins,
        score: p.score,
        hp: p.hp,
        max_hp: p.max_hp,
        attack: p.attack,
        defence: p.defence,
        weapon: p.weapon,
        armor: p.armor,
        buff_attack: p.buff_attack,
        buff_until: p.buff_until,
    }
}

fn goods(g: Goods) -> pb::Goods {
    let kind = match g.kind {
        Kind::Consumable => "consumable",
        Kind::Equipment => "equipment",
        Kind::Material => "material",
    };
    let effect = g.effect.map(|e| match e {
        Effect::Heal(n) => pb::goods::Effect::Heal(n),
        Effect::Exp(n) => pb::goods::Effect::Exp(n),
        Effect::Buff { attack, secs } => pb::goods::Effect::Buff(pb::Buff { attack, secs }),
    });
    let slot = match g.slot {
        Some(Slot::Weapon) => "weapon",
        Some(Slot::Armor) => "armor",
        None => "",
    };
    pb::Goods {
        id: g.id,
        name: g.name,
        kind: kind.into(),
        effect,
        slot: slot.into(),
        attack: g.attack,
        defence: g.defence,
    }
}

fn pack(p: Pack) -> pb::Pack {
    pb::Pack {
        player: Some(player(p.player)),
        total_attack: p.total_attack,
        total_defence: p.total_defence,
        items: p
            .items
            .into_iter()
            .map(|i| pb::PackItem { goods: Some(goods(i.goods)), count: i.count, equipped: i.equipped })
            .collect(),
        level_exp: p.level_exp,
        next_level_exp: p.next_level_exp,
    }
}

fn rewards(r: Rewards) -> pb::Rewards {
    pb::Rewards {
        coins: r.coins,
        exp: r.exp,
        score: r.score,
        items: r.items.into_iter().map(|i| pb::ItemCount { goods_id: i.goods_id, count: i.count }).collect(),
    }
}

fn entry(e: RankEntry) -> pb::RankEntry {
    pb::RankEntry { rank: e.rank, user_id: e.user_id, value: e.value }
}

// ---- from the wire ----

fn from_player(p: pb::Player) -> Player {
    Player {
        user_id: p.user_id,
        level: p.level,
        exp: p.exp,
        coins: p.coins,
        score: p.score,
        hp: p.hp,
        max_hp: p.max_hp,
        attack: p.attack,
        defence: p.defence,
        weapon: p.weapon,
        armor: p.armor,
        buff_attack: p.buff_attack,
        buff_until: p.buff_until,
    }
}

fn from_goods(g: pb::Goods) -> Goods {
    let kind = match g.kind.as_str() {
        "consumable" => Kind::Consumable,
        "equipment" => Kind::Equipment,
        _ => Kind::Material,
    };
    let effect = g.effect.map(|e| match e {
        pb::goods::Effect::Heal(n) => Effect::Heal(n),
        pb::goods::Effect::Exp(n) => Effect::Exp(n),
        pb::goods::Effect::Buff(b) => Effect::Buff { attack: b.attack, secs: b.secs },
    });
    let slot = match g.slot.as_str() {
        "weapon" => Some(Slot::Weapon),
        "armor" => Some(Slot::Armor),
        _ => None,
    };
    Goods { id: g.id, name: g.name, kind, effect, slot, attack: g.attack, defence: g.defence }
}

fn from_pack(p: pb::Pack) -> Result<Pack> {
    Ok(Pack {
        player: from_player(p.player.ok_or_else(|| missing("a player"))?),
        total_attack: p.total_attack,
        total_defence: p.total_defence,
        items: p
            .items
            .into_iter()
            .filter_map(|i| Some(PackItem { goods: from_goods(i.goods?), count: i.count, equipped: i.equipped }))
            .collect(),
        level_exp: p.level_exp,
        next_level_exp: p.next_level_exp,
    })
}

fn from_rewards(r: pb::Rewards) -> Rewards {
    Rewards {
        coins: r.coins,
        exp: r.exp,
        score: r.score,
        items: r.items.into_iter().map(|i| ItemCount { goods_id: i.goods_id, count: i.count }).collect(),
    }
}

fn from_entry(e: pb::RankEntry) -> RankEntry {
    RankEntry { rank: e.rank, user_id: e.user_id, value: e.value }
}

fn by_name(by: RankBy) -> &'static str {
    match by {
        RankBy::Score => "score",
        RankBy::Level => "level",
    }
}

/// The gRPC server over a [`Game`].
pub struct GameRpc(pub Arc<dyn Game>);

impl GameRpc {
    /// The tonic service.
    pub fn service(svc: Arc<dyn Game>) -> GameServer<GameRpc> {
        GameServer::new(GameRpc(svc))
    }
}

#[tonic::async_trait]
impl GameService for GameRpc {
    async fn get_player(&self, r: Request<pb::UserReq>) -> Reply<pb::Player> {
        ok(self.0.player(r.into_inner().user_id).await.map(player))
    }

    async fn get_shop(&self, _: Request<pb::Empty>) -> Reply<pb::ShopResp> {
        ok(self.0.shop().await.map(|items| pb::ShopResp {
            items: items
                .into_iter()
                .map(|s| pb::ShopItem { id: s.id, price: s.price, goods: Some(goods(s.goods)) })
                .collect(),
        }))
    }

    async fn buy_goods(&self, r: Request<pb::BuyReq>) -> Reply<pb::Pack> {
        let r = r.into_inner();
        ok(self.0.buy(r.user_id, r.listing_id, r.count).await.map(pack))
    }

    async fn get_pack(&self, r: Request<pb::UserReq>) -> Reply<pb::Pack> {
        ok(self.0.pack(r.into_inner().user_id).await.map(pack))
    }

    async fn use_goods(&self, r: Request<pb::UseReq>) -> Reply<pb::Pack> {
        let r = r.into_inner();
        ok(self.0.use_goods(r.user_id, r.goods_id).await.map(pack))
    }

    async fn get_battle(&self, _: Request<pb::Empty>) -> Reply<pb::LevelsResp> {
        ok(self.0.levels().await.map(|levels| pb::LevelsResp {
            levels: levels
                .into_iter()
                .map(|l| pb::Level {
                    id: l.id,
                    name: l.name,
                    min_level: l.min_level,
                    enemies: l
                        .enemies
                        .into_iter()
                        .map(|e| pb::Enemy { name: e.name, hp: e.hp, attack: e.attack, defence: e.defence })
                        .collect(),
                    rewards: Some(rewards(l.rewards)),
                })
                .collect(),
        }))
    }

    async fn get_my_battle(&self, r: Request<pb::UserReq>) -> Reply<pb::ProgressResp> {
        ok(self.0.my_battles(r.into_inner().user_id).await.map(|v| pb::ProgressResp {
            levels: v
                .into_iter()
                .map(|p| pb::Progress {
                    level_id: p.level_id,
                    name: p.name,
                    wins: p.wins,
                    losses: p.losses,
                    best_rounds: p.best_rounds,
                    unlocked: p.unlocked,
                })
                .collect(),
        }))
    }

    async fn battle(&self, r: Request<pb::BattleReq>) -> Reply<pb::BattleResult> {
        let r = r.into_inner();
        ok(self.0.battle(r.user_id, r.level_id, &r.request_id).await.map(|b| pb::BattleResult {
            level_id: b.level_id,
            request_id: b.request_id,
            war_info: Some(pb::WarInfo {
                seed: b.war_info.seed,
                win: b.war_info.win,
                rounds: b.war_info.rounds,
                player_hp: b.war_info.player_hp,
                hits: b
                    .war_info
                    .hits
                    .into_iter()
                    .map(|h| pb::Hit {
                        round: h.round,
                        attacker: h.attacker,
                        target: h.target,
                        damage: h.damage,
                        crit: h.crit,
                        target_hp: h.target_hp,
                    })
                    .collect(),
            }),
            rewards: Some(rewards(b.rewards)),
        }))
    }

    async fn get_rank(&self, r: Request<pb::RankReq>) -> Reply<pb::Ranking> {
        let r = r.into_inner();
        let by = match r.by.as_str() {
            "score" | "" => RankBy::Score,
            "level" => RankBy::Level,
            _ => return Err(rsgame_rpc::status(Error::bad_param("by: score or level"))),
        };
        let me = (r.me > 0).then_some(r.me);
        ok(self
            .0
            .rank(by, r.page, r.page_size, me)
            .await
            .map(|rk| pb::Ranking { list: rk.list.into_iter().map(entry).collect(), me: rk.me.map(entry) }))
    }

    async fn get_notify(&self, _: Request<pb::Empty>) -> Reply<pb::NoticesResp> {
        ok(self.0.notices().await.map(|v| pb::NoticesResp {
            notices: v
                .into_iter()
                .map(|n| pb::Notice {
                    id: n.id,
                    title: n.title,
                    content: n.content,
                    start: n.start,
                    end: n.end.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn change_score(&self, r: Request<pb::ChangeScoreReq>) -> Reply<pb::Player> {
        let r = r.into_inner();
        ok(self.0.change_score(r.user_id, r.coins, r.score, &r.reason, &r.reference).await.map(player))
    }

    async fn reward(&self, r: Request<pb::RewardReq>) -> Reply<pb::Player> {
        let r = r.into_inner();
        let grant = Grant { exp: r.exp, coins: r.coins, score: r.score };
        ok(self.0.reward(r.user_id, grant, &r.reason, &r.reference).await.map(player))
    }

    async fn save_hp(&self, r: Request<pb::SaveHpReq>) -> Reply<pb::Empty> {
        let entries: Vec<(i64, i64)> = r.into_inner().entries.into_iter().map(|e| (e.user_id, e.hp)).collect();
        ok(self.0.save_hp(&entries).await.map(|()| pb::Empty {}))
    }

    async fn send_mail(&self, r: Request<pb::SendMailReq>) -> Reply<pb::MailId> {
        let r = r.into_inner();
        let m = NewMail {
            user_id: r.user_id,
            kind: r.kind,
            title: r.title,
            body: r.body,
            coins: r.coins,
            goods: from_counts(r.goods),
            expires_at: r.expires_at,
            reference: r.reference,
        };
        ok(self.0.send_mail(m).await.map(|id| pb::MailId { id }))
    }

    async fn get_inbox(&self, r: Request<pb::InboxReq>) -> Reply<pb::InboxPage> {
        let r = r.into_inner();
        ok(self.0.inbox(r.user_id, r.before, r.limit).await.map(|p| pb::InboxPage {
            mails: p.mails.into_iter().map(mail).collect(),
            unread: p.unread,
            next: p.next,
        }))
    }

    async fn read_mail(&self, r: Request<pb::MailIdsReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        ok(self.0.read_mail(r.user_id, &r.ids).await.map(|()| pb::Empty {}))
    }

    async fn claim_mail(&self, r: Request<pb::ClaimMailReq>) -> Reply<pb::Player> {
        let r = r.into_inner();
        ok(self.0.claim_mail(r.user_id, r.id).await.map(player))
    }

    async fn delete_mail(&self, r: Request<pb::MailIdsReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        ok(self.0.delete_mail(r.user_id, &r.ids).await.map(|()| pb::Empty {}))
    }

    async fn guild_chat(&self, r: Request<pb::GuildChatMsg>) -> Reply<pb::GuildMembers> {
        let r = r.into_inner();
        let m = crate::guild::GuildChat {
            user_id: r.user_id,
            msg_type: r.msg_type,
            msg: r.msg,
            url: r.url,
            sent_at: r.sent_at,
        };
        ok(self.0.guild_chat(m).await.map(|user_ids| pb::GuildMembers { user_ids }))
    }

    async fn get_guild_chat(&self, r: Request<pb::GuildChatHistoryReq>) -> Reply<pb::GuildChatHistory> {
        let r = r.into_inner();
        ok(self.0.guild_chat_history(r.user_id, r.before, r.limit).await.map(|v| pb::GuildChatHistory {
            msgs: v
                .into_iter()
                .map(|m| pb::GuildChatMsg {
                    user_id: m.user_id,
                    msg_type: m.msg_type,
                    msg: m.msg,
                    url: m.url,
                    sent_at: m.sent_at,
                })
                .collect(),
        }))
    }
}

/// A game service reached over gRPC.
#[derive(Clone)]
pub struct RemoteGame {
    client: GameClient<rsgame_rpc::RpcChannel>,
}

impl RemoteGame {
    /// The methods that read or set a value, which a retry cannot apply twice.
    pub const IDEMPOTENT: &'static [&'static str] = &[
        "GetPlayer",
        "GetShop",
        "GetPack",
        "GetBattle",
        "GetMyBattle",
        "GetRank",
        "GetNotify",
        "SaveHp",
        "GetInbox",
        "GetGuildChat",
        "ReadMail",
        "DeleteMail",
    ];

    /// A client over `connector`'s channel to `url` (`http://host:port`, a list, or `etcd`).
    pub fn connect(connector: &rsgame_rpc::Connector, url: &str) -> Result<RemoteGame> {
        Ok(RemoteGame::over(connector.channel("game", url, Self::IDEMPOTENT)?))
    }

    /// A client over `channel`.
    pub fn over(channel: rsgame_rpc::RpcChannel) -> RemoteGame {
        RemoteGame { client: GameClient::new(channel) }
    }
}

#[async_trait::async_trait]
impl Game for RemoteGame {
    async fn player(&self, user_id: i64) -> Result<Player> {
        let r = self.client.clone().get_player(pb::UserReq { user_id }).await.map_err(rsgame_rpc::error)?;
        Ok(from_player(r.into_inner()))
    }

    async fn shop(&self) -> Result<Vec<ShopItem>> {
        let r = self.client.clone().get_shop(pb::Empty {}).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(r.items
            .into_iter()
            .filter_map(|s| Some(ShopItem { id: s.id, price: s.price, goods: from_goods(s.goods?) }))
            .collect())
    }

    async fn buy(&self, user_id: i64, listing_id: i64, count: i64) -> Result<Pack> {
        let r = self
            .client
            .clone()
            .buy_goods(pb::BuyReq { user_id, listing_id, count })
            .await
            .map_err(rsgame_rpc::error)?;
        from_pack(r.into_inner())
    }

    async fn pack(&self, user_id: i64) -> Result<Pack> {
        let r = self.client.clone().get_pack(pb::UserReq { user_id }).await.map_err(rsgame_rpc::error)?;
        from_pack(r.into_inner())
    }

    async fn use_goods(&self, user_id: i64, goods_id: i64) -> Result<Pack> {
        let r = self.client.clone().use_goods(pb::UseReq { user_id, goods_id }).await.map_err(rsgame_rpc::error)?;
        from_pack(r.into_inner())
    }

    async fn levels(&self) -> Result<Vec<Level>> {
        let r = self.client.clone().get_battle(pb::Empty {}).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(r.levels
            .into_iter()
            .map(|l| Level {
                id: l.id,
                name: l.name,
                min_level: l.min_level,
                enemies: l
                    .enemies
                    .into_iter()
                    .map(|e| Enemy { name: e.name, hp: e.hp, attack: e.attack, defence: e.defence })
                    .collect(),
                rewards: l.rewards.map(from_rewards).unwrap_or_default(),
            })
            .collect())
    }

    async fn my_battles(&self, user_id: i64) -> Result<Vec<Progress>> {
        let r = self.client.clone().get_my_battle(pb::UserReq { user_id }).await.map_err(rsgame_rpc::error)?;
        Ok(r.into_inner()
            .levels
            .into_iter()
            .map(|p| Progress {
                level_id: p.level_id,
                name: p.name,
                wins: p.wins,
                losses: p.losses,
                best_rounds: p.best_rounds,
                unlocked: p.unlocked,
            })
            .collect())
    }

    async fn battle(&self, user_id: i64, level_id: i64, request_id: &str) -> Result<BattleResult> {
        let req = pb::BattleReq { user_id, level_id, request_id: request_id.into() };
        let b = self.client.clone().battle(req).await.map_err(rsgame_rpc::error)?.into_inner();
        let w = b.war_info.ok_or_else(|| missing("a war info"))?;
        Ok(BattleResult {
            level_id: b.level_id,
            request_id: b.request_id,
            war_info: WarInfo {
                seed: w.seed,
                win: w.win,
                rounds: w.rounds,
                player_hp: w.player_hp,
                hits: w
                    .hits
                    .into_iter()
                    .map(|h| Hit {
                        round: h.round,
                        attacker: h.attacker,
                        target: h.target,
                        damage: h.damage,
                        crit: h.crit,
                        target_hp: h.target_hp,
                    })
                    .collect(),
            },
            rewards: b.rewards.map(from_rewards).unwrap_or_default(),
        })
    }

    async fn rank(&self, by: RankBy, page: i64, page_size: i64, me: Option<i64>) -> Result<Ranking> {
        let req = pb::RankReq { by: by_name(by).into(), page, page_size, me: me.unwrap_or(0) };
        let r = self.client.clone().get_rank(req).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(Ranking { list: r.list.into_iter().map(from_entry).collect(), me: r.me.map(from_entry) })
    }

    async fn notices(&self) -> Result<Vec<Notice>> {
        let r = self.client.clone().get_notify(pb::Empty {}).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(r.notices
            .into_iter()
            .map(|n| Notice {
                id: n.id,
                title: n.title,
                content: n.content,
                start: n.start,
                end: (!n.end.is_empty()).then_some(n.end),
            })
            .collect())
    }

    async fn change_score(
        &self,
        user_id: i64,
        coins: i64,
        score: i64,
        reason: &str,
        reference: &str,
    ) -> Result<Player> {
        let req = pb::ChangeScoreReq { user_id, coins, score, reason: reason.into(), reference: reference.into() };
        let r = self.client.clone().change_score(req).await.map_err(rsgame_rpc::error)?;
        Ok(from_player(r.into_inner()))
    }

    async fn reward(&self, user_id: i64, grant: Grant, reason: &str, reference: &str) -> Result<Player> {
        let Grant { exp, coins, score } = grant;
        let req = pb::RewardReq { user_id, exp, coins, score, reason: reason.into(), reference: reference.into() };
        let r = self.client.clone().reward(req).await.map_err(rsgame_rpc::error)?;
        Ok(from_player(r.into_inner()))
    }

    async fn save_hp(&self, entries: &[(i64, i64)]) -> Result<()> {
        let entries = entries.iter().map(|&(user_id, hp)| pb::HpEntry { user_id, hp }).collect();
        self.client.clone().save_hp(pb::SaveHpReq { entries }).await.map_err(rsgame_rpc::error)?;
        Ok(())
    }
    async fn send_mail(&self, m: NewMail) -> Result<i64> {
        let req = pb::SendMailReq {
            user_id: m.user_id,
            kind: m.kind,
            title: m.title,
            body: m.body,
            coins: m.coins,
            goods: counts(m.goods),
            expires_at: m.expires_at,
            reference: m.reference,
        };
        Ok(self.client.clone().send_mail(req).await.map_err(rsgame_rpc::error)?.into_inner().id)
    }

    async fn inbox(&self, user_id: i64, before: i64, limit: i64) -> Result<InboxPage> {
        let req = pb::InboxReq { user_id, before, limit };
        let r = self.client.clone().get_inbox(req).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(InboxPage { mails: r.mails.into_iter().map(from_mail).collect(), unread: r.unread, next: r.next })
    }

    async fn read_mail(&self, user_id: i64, ids: &[i64]) -> Result<()> {
        let req = pb::MailIdsReq { user_id, ids: ids.to_vec() };
        self.client.clone().read_mail(req).await.map_err(rsgame_rpc::error)?;
        Ok(())
    }

    async fn claim_mail(&self, user_id: i64, id: i64) -> Result<Player> {
        let r = self.client.clone().claim_mail(pb::ClaimMailReq { user_id, id }).await.map_err(rsgame_rpc::error)?;
        Ok(from_player(r.into_inner()))
    }

    async fn delete_mail(&self, user_id: i64, ids: &[i64]) -> Result<()> {
        let req = pb::MailIdsReq { user_id, ids: ids.to_vec() };
        self.client.clone().delete_mail(req).await.map_err(rsgame_rpc::error)?;
        Ok(())
    }

    async fn guild_chat(&self, m: crate::guild::GuildChat) -> Result<Vec<i64>> {
        let req =
            pb::GuildChatMsg { user_id: m.user_id, msg_type: m.msg_type, msg: m.msg, url: m.url, sent_at: m.sent_at };
        Ok(self.client.clone().guild_chat(req).await.map_err(rsgame_rpc::error)?.into_inner().user_ids)
    }

    async fn guild_chat_history(&self, user_id: i64, before: i64, limit: u64) -> Result<Vec<crate::guild::GuildChat>> {
        let req = pb::GuildChatHistoryReq { user_id, before, limit };
        let r = self.client.clone().get_guild_chat(req).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(r.msgs
            .into_iter()
            .map(|m| crate::guild::GuildChat {
                user_id: m.user_id,
                msg_type: m.msg_type,
                msg: m.msg,
                url: m.url,
                sent_at: m.sent_at,
            })
            .collect())
    }
}
