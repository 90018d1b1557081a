//! Guilds: a lasting group with a name, a notice, roles (leader, officer, member), a member
//! cap from the game data (`guild.yaml`), join requests an officer answers, invitations sent
//! through the inbox, and a chat whose history is kept in the database.
//!
//! Founding one costs coins, taken through the ledger (reference `guild:{id}`) in the same
//! transaction that creates it, so a failed creation costs nothing. A player is in one guild
//! at most (a unique row per player). A guild whose last member leaves is closed: its rows go,
//! and its name is free again. Every change is announced on the bus
//! ([`GuildChanged`](rsgame_proto::events::GuildChanged)) for the game nodes to push a
//! GuildNotice to the members online.

use rsgame_kit::time::unix_ms as now_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_proto::pb::GuildEvent;
use rsgame_store::{Row, StoreError, Tx};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::inbox::NewMail;
use crate::logic::{Change, GameLogic, lock_player};

/// A guild name's length, in characters.
pub const NAME_CHARS: std::ops::RangeInclusive<usize> = 2..=20;
/// The longest notice, in characters.
pub const MAX_NOTICE: usize = 500;
/// The most guilds one search returns.
pub const MAX_SEARCH: u64 = 50;
/// The most chat messages one history page returns.
pub const MAX_HISTORY: u64 = 100;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Chats and plays.
    Member = 1,
    /// Also answers join requests, invites, kicks members and edits the notice.
    Officer = 2,
    /// Also sets roles and hands the guild on; one per guild.
    Leader = 3,
}

impl Role {
    fn from_i64(n: i64) -> Role {
        match n {
            3 => Role::Leader,
            2 => Role::Officer,
            _ => Role::Member,
        }
    }
}

/// A guild as anyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guild {
    /// Its id.
    pub id: i64,
    /// Its name (unique, compared without case).
    pub name: String,
    /// Its notice.
    pub notice: String,
    /// Whether anyone may join without an officer's answer.
    pub open: bool,
    /// The leader's account.
    pub leader: i64,
    /// Members now.
    pub members: i64,
    /// The most members (game data).
    pub max_members: i64,
    /// When it was founded, unix ms.
    pub created_at: i64,
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuildMember {
    /// The account.
    pub user_id: i64,
    /// Its role.
    pub role: Role,
    /// When it joined, unix ms.
    pub joined_at: i64,
    /// Whether it is on a game node now.
    pub online: bool,
}

/// A guild with its members (listed to members only) and the asker's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuildDetail {
    /// The guild.
    pub guild: Guild,
    /// Its members, leader first (empty for a non-member).
    pub members: Vec<GuildMember>,
    /// The asker's role; none when it is not a member.
    pub my_role: Option<Role>,
}

/// A player's request to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The account asking.
    pub user_id: i64,
    /// When, unix ms.
    pub created_at: i64,
}

/// A guild chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildChat {
    /// The sender.
    pub user_id: i64,
    /// ChatMsgType.
    pub msg_type: i32,
    /// The text.
    pub msg: String,
    /// An upload's link.
    pub url: String,
    /// When, unix ms.
    pub sent_at: i64,
}

/// Join requests kept per guild: the oldest go first.
const MAX_REQUESTS: i64 = 100;
const ASKED: i64 = 1;
const INVITED: i64 = 2;

const GUILD_COLS: [&str; 7] = ["id", "name", "notice", "open", "leader", "members", "created_at"];

fn bad(msg: &str) -> Error {
    Error::bad_param(msg)
}

fn guild_row(r: &Row, max_members: i64) -> std::result::Result<Guild, StoreError> {
    Ok(Guild {
        id: r.i64("id")?,
        name: r.string("name")?,
        notice: r.string("notice")?,
        open: r.i64("open")? != 0,
        leader: r.i64("leader")?,
        members: r.i64("members")?,
        max_members,
        created_at: r.i64("created_at")?,
    })
}

/// Checks a guild's name: the trimmed name, and its folded key.
pub fn check_name(name: &str) -> Result<(String, String)> {
    let name = name.trim();
    let n = name.chars().count();
    if !NAME_CHARS.contains(&n) || name.chars().any(char::is_control) {
        return Err(bad("name: 2 to 20 characters, no control characters"));
    }
    Ok((name.to_owned(), name.to_lowercase()))
}

fn check_notice(notice: &str) -> Result<()> {
    if notice.chars().count() > MAX_NOTICE || notice.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad("notice: at most 500 characters; line breaks are the only control characters"));
    }
    Ok(())
}

/// The guild and role of `user_id`, read in `tx`.
async fn membership(tx: &mut Tx, user_id: i64) -> Result<Option<(i64, Role)>> {
    let q = Query::select()
        .columns(["guild_id", "role"])
        .from("game_guild_member")
        .and_where(Expr::col("user_id").eq(user_id))
        .to_owned();
    Ok(match tx.fetch_optional(&q).await? {
        Some(r) => Some((r.i64("guild_id")?, Role::from_i64(r.i64("role")?))),
        None => None,
    })
}

/// Locks the guild's row for the rest of `tx` (a write to it): changes to one guild's members
/// go one at a time, so its count and cap hold. Not found when it is gone.
async fn lock_guild(tx: &mut Tx, guild_id: i64) -> Result<()> {
    let touch = Query::update()
        .table("game_guild")
        .value("members", Expr::col("members"))
        .and_where(Expr::col("id").eq(guild_id))
        .to_owned();
    // The count is not a test of existence: MySQL counts changed rows, and this changes none.
    tx.execute(&touch).await?;
    let q = Query::select().column("id").from("game_guild").and_where(Expr::col("id").eq(guild_id)).to_owned();
    if tx.fetch_optional(&q).await?.is_none() {
        return Err(Error::msg(Code::NotFound, "no such guild"));
    }
    Ok(())
}

/// The guild and role of `user_id`, its guild locked for the rest of `tx`: read again once
/// locked, so a change made meanwhile (a kick, a new role) is what the caller sees.
async fn acting(tx: &mut Tx, user_id: i64) -> Result<(i64, Role)> {
    let (guild_id, _) = membership(tx, user_id).await?.ok_or_else(not_member)?;
    lock_guild(tx, guild_id).await?;
    membership(tx, user_id).await?.filter(|(g, _)| *g == guild_id).ok_or_else(not_member)
}

async fn add_members(tx: &mut Tx, guild_id: i64, by: i64) -> Result<i64> {
    let q = Query::update()
        .table("game_guild")
        .value("members", Expr::col("members").add(by))
        .and_where(Expr::col("id").eq(guild_id))
        .to_owned();
    tx.execute(&q).await?;
    let q = Query::select().column("members").from("game_guild").and_where(Expr::col("id").eq(guild_id)).to_owned();
    Ok(tx.fetch_optional(&q).await?.map(|r| r.i64("members")).transpose()?.unwrap_or(0))
}

async fn insert_member(tx: &mut Tx, guild_id: i64, user_id: i64, role: Role) -> Result<()> {
    let mut q = Query::insert();
    q.into_table("game_guild_member")
        .columns(["guild_id", "user_id", "role", "joined_at"])
        .values([Expr::val(guild_id), Expr::val(user_id), Expr::val(role as i64), Expr::val(now_ms())])
        .map_err(|e| Error::internal(Code::InsertFailed, e))?;
    match tx.execute(&q).await {
        Ok(_) => Ok(()),
        // The unique row per player: it joined another guild at this moment.
        Err(StoreError::Conflict(_)) => Err(in_a_guild()),
        Err(e) => Err(e.into()),
    }
}

fn in_a_guild() -> Error {
    Error::msg(Code::Failed, "already in a guild: leave it first")
}

fn not_member() -> Error {
    Error::msg(Code::Forbidden, "not a member of that guild")
}

async fn delete_requests(tx: &mut Tx, guild_id: i64, user_id: i64) -> Result<()> {
    let q = Query::delete()
        .from_table("game_guild_request")
        .and_where(Expr::col("guild_id").eq(guild_id))
        .and_where(Expr::col("user_id").eq(user_id))
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// All of a guild's members' ids.
async fn member_ids(tx: &mut Tx, guild_id: i64) -> Result<Vec<i64>> {
    let q = Query::select()
        .column("user_id")
        .from("game_guild_member")
        .and_where(Expr::col("guild_id").eq(guild_id))
        .to_owned();
    Ok(tx.fetch_all(&q).await?.iter().map(|r| r.i64("user_id")).collect::<std::result::Result<_, _>>()?)
}

/// A guild's officers and leader.
async fn officer_ids(tx: &mut Tx, guild_id: i64) -> Result<Vec<i64>> {
    let q = Query::select()
        .column("user_id")
        .from("game_guild_member")
        .and_where(Expr::col("guild_id").eq(guild_id))
        .and_where(Expr::col("role").gte(Role::Officer as i64))
        .to_owned();
    Ok(tx.fetch_all(&q).await?.iter().map(|r| r.i64("user_id")).collect::<std::result::Result<_, _>>()?)
}

async fn guild_name(tx: &mut Tx, guild_id: i64) -> Result<String> {
    let q = Query::select().column("name").from("game_guild").and_where(Expr::col("id").eq(guild_id)).to_owned();
    Ok(tx.fetch_optional(&q).await?.map(|r| r.string("name")).transpose()?.unwrap_or_default())
}

/// What a change announces once committed.
struct News {
    guild_id: i64,
    name: String,
    event: GuildEvent,
    subject: i64,
    users: Vec<i64>,
}

impl GameLogic {
    async fn tell(&self, n: News) {
        self.announce_guild(n.guild_id, &n.name, n.event as i32, n.subject, n.users).await;
    }

    /// Commits `tx`, then tells the guild's members (as they are in it) of `event`.
    async fn commit_and_tell(&self, mut tx: Tx, guild_id: i64, event: GuildEvent, subject: i64) -> Result<()> {
        let name = guild_name(&mut tx, guild_id).await?;
        let users = member_ids(&mut tx, guild_id).await?;
        tx.commit().await?;
        self.tell(News { guild_id, name, event, subject, users }).await;
        Ok(())
    }

    /// Founds a guild led by `user_id`, paying the game data's cost through the ledger.
    pub async fn guild_create(&self, user_id: i64, name: &str, notice: &str, open: bool) -> Result<GuildDetail> {
        let (name, key) = check_name(name)?;
        check_notice(notice)?;
        let data = self.data();
        self.ensure(user_id).await?;
        let mut tx = self.db().begin().await?;
        lock_player(&mut tx, user_id).await?;
        if membership(&mut tx, user_id).await?.is_some() {
            return Err(in_a_guild());
        }
        let mut q = Query::insert();
        q.into_table("game_guild")
            .columns(["name", "name_key", "notice", "open", "leader", "members", "created_at"])
            .values([
                Expr::val(name.as_str()),
                Expr::val(key),
                Expr::val(notice),
                Expr::val(i64::from(open)),
                Expr::val(user_id),
                Expr::val(1i64),
                Expr::val(now_ms()),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        let id = match tx.insert_id(&q).await {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => return Err(Error::msg(Code::NameTaken, "that guild name is taken")),
            Err(e) => return Err(e.into()),
        };
        insert_member(&mut tx, id, user_id, Role::Leader).await?;
        if data.guild.create_cost > 0 {
            let pay = Change { coins: -data.guild.create_cost, ..Change::default() };
            self.apply(&mut tx, &data, user_id, &pay, "guild", &format!("guild:{id}")).await?;
        }
        tx.commit().await?;
        tracing::info!(user_id, guild = id, "guild founded");
        self.tell(News { guild_id: id, name, event: GuildEvent::Created, subject: user_id, users: vec![user_id] })
            .await;
        self.guild_detail(user_id, id).await
    }

    /// Guilds whose name holds `text` (any, when empty), the largest first.
    pub async fn guild_search(&self, text: &str, limit: u64) -> Result<Vec<Guild>> {
        if text.chars().count() > 20 || text.chars().any(char::is_control) {
            return Err(bad("name: at most 20 characters"));
        }
        let max = self.data().guild.max_members;
        let mut q = Query::select();
        q.columns(GUILD_COLS).from("game_guild");
        let text = text.trim().to_lowercase();
        if !text.is_empty() {
            // LIKE's own characters stand for themselves.
            let escaped: String = text
                .chars()
                .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
                .collect();
            q.and_where(Expr::col("name_key").like(sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\')));
        }
        q.order_by("members", Order::Desc).order_by("id", Order::Asc).limit(limit.clamp(1, MAX_SEARCH));
        let rows = self.db().fetch_all(&q).await?;
        Ok(rows.iter().map(|r| guild_row(r, max)).collect::<std::result::Result<_, _>>()?)
    }

    /// A guild (the asker's own with `guild_id` 0); its members for a member only.
    pub async fn guild_detail(&self, user_id: i64, guild_id: i64) -> Result<GuildDetail> {
        let max = self.data().guild.max_members;
        let mut tx = self.db().begin().await?;
        let mine = membership(&mut tx, user_id).await?;
        let id = match (guild_id, mine) {
            (0, Some((g, _))) => g,
            (0, None) => return Err(Error::msg(Code::NotFound, "not in a guild")),
            (g, _) => g,
        };
        let q = Query::select().columns(GUILD_COLS).from("game_guild").and_where(Expr::col("id").eq(id)).to_owned();
        let guild =
            guild_row(&tx.fetch_optional(&q).await?.ok_or_else(|| Error::msg(Code::NotFound, "no such guild"))?, max)?;
        let my_role = mine.filter(|(g, _)| *g == id).map(|(_, r)| r);
        let members = if my_role.is_some() {
            let q = Query::select()
                .columns(["user_id", "role", "joined_at"])
                .from("game_guild_member")
                .and_where(Expr::col("guild_id").eq(id))
                .order_by("role", Order::Desc)
                .order_by("joined_at", Order::Asc)
                .to_owned();
            tx.fetch_all(&q)
                .await?
                .iter()
                .map(|r| {
                    Ok(GuildMember {
                        user_id: r.i64("user_id")?,
                        role: Role::from_i64(r.i64("role")?),
                        joined_at: r.i64("joined_at")?,
                        online: false,
                    })
                })
                .collect::<std::result::Result<_, StoreError>>()?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        let mut members: Vec<GuildMember> = members;
        let ids: Vec<i64> = members.iter().map(|m| m.user_id).collect();
        for (m, on) in members.iter_mut().zip(self.online(&ids).await) {
            m.online = on;
        }
        Ok(GuildDetail { guild, members, my_role })
    }

    /// Joins an open guild, or one that invited the player; otherwise leaves a request for
    /// the officers. True when the player is a member now.
    pub async fn guild_join(&self, user_id: i64, guild_id: i64) -> Result<bool> {
        if guild_id <= 0 {
            return Err(bad("guildId: a guild's id"));
        }
        let max = self.data().guild.max_members;
        let mut tx = self.db().begin().await?;
        lock_guild(&mut tx, guild_id).await?;
        if membership(&mut tx, user_id).await?.is_some() {
            return Err(in_a_guild());
        }
        let q = Query::select().columns(["open"]).from("game_guild").and_where(Expr::col("id").eq(guild_id)).to_owned();
        let open = tx.fetch_optional(&q).await?.map(|r| r.i64("open")).transpose()?.unwrap_or(0) != 0;
        let q = Query::select()
            .column("kind")
            .from("game_guild_request")
            .and_where(Expr::col("guild_id").eq(guild_id))
            .and_where(Expr::col("user_id").eq(user_id))
            .to_owned();
        let invited = tx.fetch_optional(&q).await?.map(|r| r.i64("kind")).transpose()? == Some(INVITED);
        let name = guild_name(&mut tx, guild_id).await?;
        if open || invited {
            if add_members(&mut tx, guild_id, 1).await? > max {
                return Err(Error::msg(Code::Forbidden, "the guild is full"));
            }
            insert_member(&mut tx, guild_id, user_id, Role::Member).await?;
            delete_requests(&mut tx, guild_id, user_id).await?;
            self.commit_and_tell(tx, guild_id, GuildEvent::Joined, user_id).await?;
            return Ok(true);
        }
        // A request, once: asking again changes nothing. Looked up first: on PostgreSQL a
        // refused insert would end the transaction.
        if tx
            .fetch_optional(
                &Query::select()
                    .column("id")
                    .from("game_guild_request")
                    .and_where(Expr::col("guild_id").eq(guild_id))
                    .and_where(Expr::col("user_id").eq(user_id))
                    .to_owned(),
            )
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let q = Query::select()
            .expr_as(Expr::col("id").count(), "n")
            .from("game_guild_request")
            .and_where(Expr::col("guild_id").eq(guild_id))
            .to_owned();
        let waiting = tx.fetch_optional(&q).await?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
        if waiting >= MAX_REQUESTS {
            return Err(Error::msg(Code::TooManyRequests, "the guild has too many requests waiting"));
        }
        let mut q = Query::insert();
        q.into_table("game_guild_request")
            .columns(["guild_id", "user_id", "kind", "created_at"])
            .values([Expr::val(guild_id), Expr::val(user_id), Expr::val(ASKED), Expr::val(now_ms())])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        match tx.execute(&q).await {
            Ok(_) => {}
            // The same request at the same moment: the other one is kept (this transaction
            // ends here, as PostgreSQL requires after a refused insert).
            Err(StoreError::Conflict(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let users = officer_ids(&mut tx, guild_id).await?;
        tx.commit().await?;
        self.tell(News { guild_id, name, event: GuildEvent::Requested, subject: user_id, users }).await;
        Ok(false)
    }

    /// The requests waiting in the officer's guild, oldest first.
    pub async fn guild_requests(&self, user_id: i64) -> Result<Vec<JoinRequest>> {
        let mut tx = self.db().begin().await?;
        let (guild_id, role) = membership(&mut tx, user_id).await?.ok_or_else(not_member)?;
        if role < Role::Officer {
            return Err(Error::msg(Code::Forbidden, "officers answer join requests"));
        }
        let q = Query::select()
            .columns(["user_id", "created_at"])
            .from("game_guild_request")
            .and_where(Expr::col("guild_id").eq(guild_id))
            .and_where(Expr::col("kind").eq(ASKED))
            .order_by("id", Order::Asc)
            .to_owned();
        let rows = tx.fetch_all(&q).await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| Ok(JoinRequest { user_id: r.i64("user_id")?, created_at: r.i64("created_at")? }))
            .collect::<std::result::Result<_, StoreError>>()?)
    }

    /// An officer accepts or declines `applicant`'s request.
    pub async fn guild_answer(&self, user_id: i64, applicant: i64, accept: bool) -> Result<()> {
        let max = self.data().guild.max_members;
        let mut tx = self.db().begin().await?;
        let (guild_id, role) = acting(&mut tx, user_id).await?;
        if role < Role::Officer {
            return Err(Error::msg(Code::Forbidden, "officers answer join requests"));
        }
        let q = Query::delete()
            .from_table("game_guild_request")
            .and_where(Expr::col("guild_id").eq(guild_id))
            .and_where(Expr::col("user_id").eq(applicant))
            .and_where(Expr::col("kind").eq(ASKED))
            .to_owned();
        if tx.execute(&q).await? == 0 {
            return Err(Error::msg(Code::NotFound, "no such request (answered already?)"));
        }
        let name = guild_name(&mut tx, guild_id).await?;
        if !accept {
            tx.commit().await?;
            let news = News { guild_id, name, event: GuildEvent::Declined, subject: applicant, users: vec![applicant] };
            self.tell(news).await;
            return Ok(());
        }
        if add_members(&mut tx, guild_id, 1).await? > max {
            return Err(Error::msg(Code::Forbidden, "the guild is full"));
        }
        insert_member(&mut tx, guild_id, applicant, Role::Member).await?;
        self.commit_and_tell(tx, guild_id, GuildEvent::Joined, applicant).await
    }

    /// Leaves the guild. A leader hands it on first, unless it is the last member: then the
    /// guild closes.
    pub async fn guild_leave(&self, user_id: i64) -> Result<()> {
        let mut tx = self.db().begin().await?;
        let (guild_id, role) = acting(&mut tx, user_id).await?;
        let name = guild_name(&mut tx, guild_id).await?;
        let members = member_ids(&mut tx, guild_id).await?;
        if role == Role::Leader && members.len() > 1 {
            return Err(Error::msg(Code::Failed, "a leader hands the guild to another member first (role)"));
        }
        let q = Query::delete().from_table("game_guild_member").and_where(Expr::col("user_id").eq(user_id)).to_owned();
        tx.execute(&q).await?;
        let left = add_members(&mut tx, guild_id, -1).await?;
        let event = if left <= 0 {
            for table in ["game_guild_request", "game_guild_chat"] {
                tx.execute(&Query::delete().from_table(table).and_where(Expr::col("guild_id").eq(guild_id)).to_owned())
                    .await?;
            }
            tx.execute(&Query::delete().from_table("game_guild").and_where(Expr::col("id").eq(guild_id)).to_owned())
                .await?;
            GuildEvent::Closed
        } else {
            GuildEvent::Left
        };
        tx.commit().await?;
        if event == GuildEvent::Closed {
            tracing::info!(guild = guild_id, "guild closed: its last member left");
        }
        self.tell(News { guild_id, name, event, subject: user_id, users: members }).await;
        Ok(())
    }

    /// An officer or the leader removes a member of a lower role from its own guild.
    pub async fn guild_kick(&self, user_id: i64, target: i64) -> Result<()> {
        let mut tx = self.db().begin().await?;
        let (guild_id, role) = acting(&mut tx, user_id).await?;
        let theirs = membership(&mut tx, target).await?;
        // Another guild's member is nobody this officer may touch.
        let Some((_, target_role)) = theirs.filter(|(g, _)| *g == guild_id) else {
            return Err(Error::msg(Code::Forbidden, "not a member of your guild"));
        };
        if role < Role::Officer || target_role >= role {
            return Err(Error::msg(Code::Forbidden, "only an officer or the leader removes members of a lower role"));
        }
        let members = member_ids(&mut tx, guild_id).await?;
        let q = Query::delete()
            .from_table("game_guild_member")
            .and_where(Expr::col("user_id").eq(target))
            .and_where(Expr::col("guild_id").eq(guild_id))
            .to_owned();
        tx.execute(&q).await?;
        add_members(&mut tx, guild_id, -1).await?;
        let name = guild_name(&mut tx, guild_id).await?;
        tx.commit().await?;
        self.tell(News { guild_id, name, event: GuildEvent::Kicked, subject: target, users: members }).await;
        Ok(())
    }

    /// The leader sets a member's role; `Leader` hands the guild on (the old leader becomes
    /// an officer).
    pub async fn guild_set_role(&self, user_id: i64, target: i64, role: Role) -> Result<()> {
        let mut tx = self.db().begin().await?;
        let (guild_id, mine) = acting(&mut tx, user_id).await?;
        if mine != Role::Leader {
            return Err(Error::msg(Code::Forbidden, "only the leader sets roles"));
        }
        if target == user_id {
            return Err(bad("userId: another member"));
        }
        if membership(&mut tx, target).await?.is_none_or(|(g, _)| g != guild_id) {
            return Err(Error::msg(Code::Forbidden, "not a member of your guild"));
        }
        let set = |who: i64, r: Role| {
            Query::update()
                .table("game_guild_member")
                .value("role", r as i64)
                .and_where(Expr::col("user_id").eq(who))
                .to_owned()
        };
        tx.execute(&set(target, role)).await?;
        if role == Role::Leader {
            tx.execute(&set(user_id, Role::Officer)).await?;
            let q = Query::update()
                .table("game_guild")
                .value("leader", target)
                .and_where(Expr::col("id").eq(guild_id))
                .to_owned();
            tx.execute(&q).await?;
        }
        self.commit_and_tell(tx, guild_id, GuildEvent::Role, target).await
    }

    /// An officer or the leader sets the guild's notice.
    pub async fn guild_set_notice(&self, user_id: i64, notice: &str) -> Result<()> {
        check_notice(notice)?;
        let mut tx = self.db().begin().await?;
        let (guild_id, role) = acting(&mut tx, user_id).await?;
        if role < Role::Officer {
            return Err(Error::msg(Code::Forbidden, "officers edit the notice"));
        }
        let q = Query::update()
            .table("game_guild")
            .value("notice", notice)
            .and_where(Expr::col("id").eq(guild_id))
            .to_owned();
        tx.execute(&q).await?;
        self.commit_and_tell(tx, guild_id, GuildEvent::Notice, user_id).await
    }

    /// An officer invites `target`: it may then join even a closed guild, and finds the
    /// invitation in its inbox (kind `guild`).
    pub async fn guild_invite(&self, user_id: i64, target: i64) -> Result<()> {
        if target <= 0 || target == user_id {
            return Err(bad("userId: another player's id"));
        }
        let mut tx = self.db().begin().await?;
        let (guild_id, role) = acting(&mut tx, user_id).await?;
        if role < Role::Officer {
            return Err(Error::msg(Code::Forbidden, "officers invite"));
        }
        if membership(&mut tx, target).await?.is_some() {
            return Err(Error::msg(Code::Failed, "that player is in a guild already"));
        }
        delete_requests(&mut tx, guild_id, target).await?;
        let mut q = Query::insert();
        q.into_table("game_guild_request")
            .columns(["guild_id", "user_id", "kind", "created_at"])
            .values([Expr::val(guild_id), Expr::val(target), Expr::val(INVITED), Expr::val(now_ms())])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        tx.execute(&q).await?;
        let name = guild_name(&mut tx, guild_id).await?;
        tx.commit().await?;
        let mail = NewMail {
            user_id: target,
            kind: "guild".into(),
            title: format!("An invitation to the guild {name}"),
            body: format!("Join it from the guild panel: guild {guild_id}."),
            reference: format!("guild:{guild_id}:invite:{target}"),
            ..NewMail::default()
        };
        let (id, new) = self.store_mail(&mail).await?;
        if new {
            self.announce_mail(&mail, id).await;
        }
        self.tell(News { guild_id, name, event: GuildEvent::Invited, subject: target, users: vec![target] }).await;
        Ok(())
    }

    /// Keeps a guild chat message of `user_id`'s guild; the members to deliver it to.
    pub async fn guild_chat_post(&self, m: &GuildChat) -> Result<Vec<i64>> {
        let mut tx = self.db().begin().await?;
        let (guild_id, _) =
            membership(&mut tx, m.user_id).await?.ok_or_else(|| Error::msg(Code::NotFound, "not in a guild"))?;
        let mut q = Query::insert();
        q.into_table("game_guild_chat")
            .columns(["guild_id", "user_id", "msg_type", "msg", "url", "sent_at"])
            .values([
                Expr::val(guild_id),
                Expr::val(m.user_id),
                Expr::val(i64::from(m.msg_type)),
                Expr::val(m.msg.as_str()),
                Expr::val(m.url.as_str()),
                Expr::val(m.sent_at),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        tx.execute(&q).await?;
        let users = member_ids(&mut tx, guild_id).await?;
        tx.commit().await?;
        Ok(users)
    }

    /// `user_id`'s guild's chat sent before `before` (unix ms; 0: now), newest last.
    pub async fn guild_chat_history(&self, user_id: i64, before: i64, limit: u64) -> Result<Vec<GuildChat>> {
        let mut tx = self.db().begin().await?;
        let (guild_id, _) =
            membership(&mut tx, user_id).await?.ok_or_else(|| Error::msg(Code::NotFound, "not in a guild"))?;
        let before = if before <= 0 { i64::MAX } else { before };
        let q = Query::select()
            .columns(["user_id", "msg_type", "msg", "url", "sent_at"])
            .from("game_guild_chat")
            .and_where(Expr::col("guild_id").eq(guild_id))
            .and_where(Expr::col("sent_at").lt(before))
            .order_by("id", Order::Desc)
            .limit(limit.clamp(1, MAX_HISTORY))
            .to_owned();
        let rows = tx.fetch_all(&q).await?;
        tx.commit().await?;
        let mut v = rows
            .iter()
            .map(|r| {
                Ok(GuildChat {
                    user_id: r.i64("user_id")?,
                    msg_type: r.i64("msg_type")? as i32,
                    msg: r.string("msg")?,
                    url: r.string("url")?,
                    sent_at: r.i64("sent_at")?,
                })
            })
            .collect::<std::result::Result<Vec<_>, StoreError>>()?;
        v.reverse();
        Ok(v)
    }
}
