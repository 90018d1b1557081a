//! Versioned migrations: each has a version, a name and the statements that apply it, built
//! with sea-query's schema builder so one definition gives each backend's DDL. Applied
//! versions are recorded in `rsgame_migrations`; `migrate` applies the pending ones in order.
//! Later issues append their migrations to [`MIGRATIONS`].

use sea_query::{
    ColumnDef, Expr, Index, MysqlQueryBuilder, PostgresQueryBuilder, Query, SqliteQueryBuilder, Table,
    TableCreateStatement,
};

use crate::db::{Backend, Db, StoreError};

/// One schema change.
pub struct Migration {
    /// Increasing version; never reused.
    pub version: i64,
    /// What it does, for logs.
    pub name: &'static str,
    /// The statements, built for a backend.
    pub up: fn(Backend) -> Vec<String>,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "go-game accounts, logs and files", up: v1 },
    Migration { version: 2, name: "usercenter refresh tokens", up: v2 },
    Migration { version: 3, name: "game players, items, ledger, battles, progress", up: v3 },
    Migration { version: 4, name: "world positions, friends, chat", up: v4 },
    Migration { version: 5, name: "usercenter identities (device login)", up: v5 },
    Migration { version: 6, name: "usercenter bans with an end and a reason, account closing", up: v6 },
    Migration { version: 7, name: "game ledger looked up by reference (idempotent rewards)", up: v7 },
    Migration { version: 8, name: "game inbox: messages with attachments claimed once", up: v8 },
    Migration { version: 9, name: "game guilds: members with roles, join requests, chat", up: v9 },
    Migration { version: 10, name: "console operators, sessions, audit log, game data versions", up: v10 },
    Migration { version: 11, name: "game chat moderation (mutes, the public chat log), mail to every player", up: v11 },
];

fn build(backend: Backend, t: &TableCreateStatement) -> String {
    match backend {
        Backend::Sqlite => t.build(SqliteQueryBuilder),
        Backend::MySql => t.build(MysqlQueryBuilder),
        Backend::Postgres => t.build(PostgresQueryBuilder),
    }
}

fn index(backend: Backend, i: &sea_query::IndexCreateStatement) -> String {
    match backend {
        Backend::Sqlite => i.build(SqliteQueryBuilder),
        Backend::MySql => i.build(MysqlQueryBuilder),
        Backend::Postgres => i.build(PostgresQueryBuilder),
    }
}

/// Auto-increment BIGINT id. SQLite only auto-increments an `INTEGER PRIMARY KEY` (which is
/// 64-bit there anyway).
fn id(backend: Backend) -> ColumnDef {
    let mut c = ColumnDef::new("id");
    if backend == Backend::Sqlite {
        c.integer()
    } else {
        c.big_integer()
    };
    c.not_null().auto_increment().primary_key();
    c
}

/// Timestamps are unix milliseconds in BIGINT columns: the same type and meaning on every
/// backend, no time-zone conversions.
fn v1(b: Backend) -> Vec<String> {
    let user = Table::create()
        .table("mem_user")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("username").string_len(64).not_null().unique_key())
        // argon2id PHC strings are ~100 characters; go-game's column was far too short
        // for them and kept a separate salt, which the PHC string already holds.
        .col(ColumnDef::new("password").string_len(255).not_null())
        .col(ColumnDef::new("nickname").string_len(64).not_null().default(""))
        .col(ColumnDef::new("realname").string_len(64).not_null().default(""))
        .col(ColumnDef::new("email").string_len(255).not_null().default(""))
        .col(ColumnDef::new("mobile").string_len(32).not_null().default(""))
        .col(ColumnDef::new("sex").integer().not_null().default(0))
        .col(ColumnDef::new("avatar").string_len(255).not_null().default(""))
        .col(ColumnDef::new("email_verified").integer().not_null().default(0))
        .col(ColumnDef::new("mobile_verified").integer().not_null().default(0))
        // 0 pending, 1 approved, 2 rejected, 3 login banned, 4 illegal content, 5 closed, 6 attack.
        .col(ColumnDef::new("status").integer().not_null().default(1))
        .col(ColumnDef::new("login_ip").string_len(64).not_null().default(""))
        .col(ColumnDef::new("login_count").big_integer().not_null().default(0))
        .col(ColumnDef::new("login_at").big_integer().not_null().default(0))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .col(ColumnDef::new("deleted_at").big_integer().null())
        .to_owned();
    let logs = Table::create()
        .table("mem_logs")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        // 1 login, 2 logout, 3 new user, 4 new task.
        .col(ColumnDef::new("type").integer().not_null())
        .col(ColumnDef::new("remark").string_len(255).not_null().default(""))
        .col(ColumnDef::new("ip").string_len(64).not_null().default(""))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let file = Table::create()
        .table("basic_file")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("guid").string_len(64).not_null().unique_key())
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("name").string_len(255).not_null())
        // 1 image, 2 video, 3 audio, 4 document.
        .col(ColumnDef::new("media_type").integer().not_null())
        // 0 local disk.
        .col(ColumnDef::new("driver").integer().not_null().default(0))
        .col(ColumnDef::new("path").string_len(512).not_null())
        .col(ColumnDef::new("ext").string_len(16).not_null())
        .col(ColumnDef::new("size").big_integer().not_null())
        .col(ColumnDef::new("md5").string_len(32).not_null())
        .col(ColumnDef::new("sha1").string_len(40).not_null())
        .col(ColumnDef::new("downloads").big_integer().not_null().default(0))
        .col(ColumnDef::new("uses").big_integer().not_null().default(0))
        // 3 deleted.
        .col(ColumnDef::new("status").integer().not_null().default(1))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .to_owned();
    vec![
        build(b, &user),
        build(b, &logs),
        index(b, &Index::create().name("idx_mem_logs_user").table("mem_logs").col("user_id").to_owned()),
        build(b, &file),
        index(b, &Index::create().name("idx_basic_file_md5").table("basic_file").col("md5").to_owned()),
        index(b, &Index::create().name("idx_basic_file_user").table("basic_file").col("user_id").to_owned()),
    ]
}

/// Refresh tokens, stored as SHA-256 hashes (a database leak gives no usable token). Each
/// rotation makes a new row in the same family; a token used twice revokes its family.
fn v2(b: Backend) -> Vec<String> {
    let t = Table::create()
        .table("uc_refresh_token")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("family").string_len(64).not_null())
        .col(ColumnDef::new("token_hash").string_len(64).not_null().unique_key())
        .col(ColumnDef::new("expires_at").big_integer().not_null())
        .col(ColumnDef::new("used_at").big_integer().null())
        .col(ColumnDef::new("revoked_at").big_integer().null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    vec![
        build(b, &t),
        index(b, &Index::create().name("idx_uc_refresh_family").table("uc_refresh_token").col("family").to_owned()),
        index(b, &Index::create().name("idx_uc_refresh_user").table("uc_refresh_token").col("user_id").to_owned()),
    ]
}

/// The game economy. Every change of coins, score, exp or an item count is a `game_ledger`
/// row (who, what, delta, the balance after, reason, reference), so balances can be rebuilt
/// and checked. A battle is stored under its request id, so a retry gets the same record.
fn v3(b: Backend) -> Vec<String> {
    let big = |n: &'static str| ColumnDef::new(n).big_integer().not_null().default(0).to_owned();
    let player = Table::create()
        .table("game_player")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null().unique_key())
        .col(big("level"))
        .col(big("exp"))
        .col(big("coins"))
        .col(big("score"))
        .col(big("hp"))
        .col(big("max_hp"))
        .col(big("attack"))
        .col(big("defence"))
        // Equipped goods ids (0: nothing).
        .col(big("weapon"))
        .col(big("armor"))
        .col(big("buff_attack"))
        .col(big("buff_until"))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .to_owned();
    let item = Table::create()
        .table("game_item")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("goods_id").big_integer().not_null())
        .col(big("count"))
        .to_owned();
    let ledger = Table::create()
        .table("game_ledger")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        // coins, score, exp, or item:<goods id>.
        .col(ColumnDef::new("asset").string_len(32).not_null())
        .col(ColumnDef::new("delta").big_integer().not_null())
        .col(ColumnDef::new("balance").big_integer().not_null())
        .col(ColumnDef::new("reason").string_len(32).not_null())
        .col(ColumnDef::new("reference").string_len(128).not_null().default(""))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let battle = Table::create()
        .table("game_battle")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("level_id").big_integer().not_null())
        .col(ColumnDef::new("request_id").string_len(64).not_null())
        .col(ColumnDef::new("seed").big_integer().not_null())
        .col(ColumnDef::new("win").integer().not_null())
        .col(ColumnDef::new("record").text().not_null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let progress = Table::create()
        .table("game_progress")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("level_id").big_integer().not_null())
        .col(big("wins"))
        .col(big("losses"))
        .col(big("best_rounds"))
        .col(big("first_win_at"))
        .to_owned();
    let unique = |name: &str, table: &str, cols: &[&str]| {
        let mut i = Index::create();
        i.name(name).table(table.to_owned()).unique();
        for c in cols {
            i.col(c.to_string());
        }
        index(b, &i)
    };
    vec![
        build(b, &player),
        build(b, &item),
        unique("ux_game_item_user_goods", "game_item", &["user_id", "goods_id"]),
        build(b, &ledger),
        index(b, &Index::create().name("idx_game_ledger_user").table("game_ledger").col("user_id").to_owned()),
        build(b, &battle),
        unique("ux_game_battle_request", "game_battle", &["user_id", "request_id"]),
        build(b, &progress),
        unique("ux_game_progress_user_level", "game_progress", &["user_id", "level_id"]),
        index(b, &Index::create().name("idx_game_player_score").table("game_player").col("score").to_owned()),
    ]
}

/// The world: where each player was (saved write-behind by the scene), friendships and
/// blacklists, and private chat (kept for history and for delivery at the next login).
fn v4(b: Backend) -> Vec<String> {
    let state = Table::create()
        .table("world_state")
        .if_not_exists()
        .col(ColumnDef::new("user_id").big_integer().not_null().primary_key())
        .col(ColumnDef::new("scene_id").big_integer().not_null())
        .col(ColumnDef::new("x").double().not_null())
        .col(ColumnDef::new("z").double().not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .to_owned();
    let friend = Table::create()
        .table("world_friend")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("friend_id").big_integer().not_null())
        // go-game's AddFriend type: 1 friend, 2 blacklist, 3 temporary.
        .col(ColumnDef::new("kind").integer().not_null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let chat = Table::create()
        .table("world_chat")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("from_id").big_integer().not_null())
        .col(ColumnDef::new("to_id").big_integer().not_null())
        .col(ColumnDef::new("msg_type").integer().not_null())
        .col(ColumnDef::new("msg").text().not_null())
        .col(ColumnDef::new("url").string_len(512).not_null().default(""))
        .col(ColumnDef::new("sent_at").big_integer().not_null())
        // 0 waiting for the receiver, 1 delivered, 2 withheld (the receiver blacklisted the sender).
        .col(ColumnDef::new("delivered").integer().not_null().default(0))
        .to_owned();
    let mut ux = Index::create();
    ux.name("ux_world_friend_pair").table("world_friend").col("user_id").col("friend_id").unique();
    vec![
        build(b, &state),
        build(b, &friend),
        index(b, &ux),
        index(b, &Index::create().name("idx_world_friend_friend").table("world_friend").col("friend_id").to_owned()),
        build(b, &chat),
        index(
            b,
            &Index::create().name("idx_world_chat_to").table("world_chat").col("to_id").col("delivered").to_owned(),
        ),
        index(
            b,
            &Index::create().name("idx_world_chat_from").table("world_chat").col("from_id").col("sent_at").to_owned(),
        ),
    ]
}

/// Ways into an account besides its username and password: a `kind` (`device` now) and the
/// identity's key. A device id is a bearer secret (whoever holds it logs in as its account),
/// so its SHA-256 is stored, never the id: a database leak hands out no login. An identity
/// belongs to one account, which may have several.
fn v5(b: Backend) -> Vec<String> {
    let t = Table::create()
        .table("uc_identity")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("kind").string_len(16).not_null())
        .col(ColumnDef::new("ident").string_len(191).not_null())
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let mut ux = Index::create();
    ux.name("ux_uc_identity").table("uc_identity").col("kind").col("ident").unique();
    vec![
        build(b, &t),
        index(b, &ux),
        index(b, &Index::create().name("idx_uc_identity_user").table("uc_identity").col("user_id").to_owned()),
    ]
}

/// A ban's end and reason beside go-game's status 3, and when an account was closed by its
/// owner (its personal data is erased `usercenter.delete_grace_days` later).
fn v6(b: Backend) -> Vec<String> {
    let add = |c: &mut ColumnDef| {
        let t = Table::alter().table("mem_user").add_column(c.to_owned()).to_owned();
        match b {
            Backend::Sqlite => t.build(SqliteQueryBuilder),
            Backend::MySql => t.build(MysqlQueryBuilder),
            Backend::Postgres => t.build(PostgresQueryBuilder),
        }
    };
    vec![
        // 0: a ban (status 3) without an end.
        add(ColumnDef::new("ban_until").big_integer().not_null().default(0)),
        add(ColumnDef::new("ban_reason").string_len(255).not_null().default("")),
        add(ColumnDef::new("closed_at").big_integer().null()),
        index(b, &Index::create().name("idx_mem_user_closed").table("mem_user").col("closed_at").to_owned()),
    ]
}

/// A grant's ledger rows found by their reference, so granting the same reference again
/// (a retry after a lost answer) is a lookup, not a scan of the player's whole ledger.
fn v7(b: Backend) -> Vec<String> {
    vec![index(
        b,
        &Index::create().name("idx_game_ledger_ref").table("game_ledger").col("user_id").col("reference").to_owned(),
    )]
}

/// Applies every pending migration in order; returns the versions applied.
pub async fn migrate(db: &Db) -> Result<Vec<i64>, StoreError> {
    let b = db.backend();
    let table = Table::create()
        .table("rsgame_migrations")
        .if_not_exists()
        .col(ColumnDef::new("version").big_integer().not_null().primary_key())
        .col(ColumnDef::new("name").string_len(255).not_null())
        .col(ColumnDef::new("applied_at").big_integer().not_null())
        .to_owned();
    db.raw(&build(b, &table)).await?;
    let applied: Vec<i64> = db
        .fetch_all(&Query::select().column("version").from("rsgame_migrations").to_owned())
        .await?
        .iter()
        .map(|r| r.i64("version"))
        .collect::<Result<_, _>>()?;
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(version = m.version, name = m.name, "applying migration");
        let run = async {
            for stmt in (m.up)(b) {
                db.raw(&stmt).await?;
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let mut record = Query::insert();
            record
                .into_table("rsgame_migrations")
                .columns(["version", "name", "applied_at"])
                .values([Expr::val(m.version), Expr::val(m.name), Expr::val(now)])
                .map_err(|e| StoreError::Config(e.to_string()))?;
            db.execute(&record).await?;
            Ok::<_, StoreError>(())
        };
        run.await.map_err(|e| StoreError::Migration { version: m.version, name: m.name, source: Box::new(e) })?;
        done.push(m.version);
    }
    Ok(done)
}

/// A player's inbox. A message has a kind (`system`, `gm`, `friend`, `guild`, `match`…), a
/// title and text, and may carry an attachment (coins and goods, as JSON) claimed once
/// through the ledger under the reference `mail:{id}`. `reference` makes a send idempotent
/// per player (NULL: none; NULLs never collide in a unique index). Read, claimed and deleted
/// are times (0: not yet); a deleted or expired message is purged `game.mail_keep_days`
/// later (a claim's ledger rows stay).
fn v8(b: Backend) -> Vec<String> {
    let big = |n: &'static str| ColumnDef::new(n).big_integer().not_null().default(0).to_owned();
    let t = Table::create()
        .table("game_mail")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("kind").string_len(16).not_null())
        .col(ColumnDef::new("title").string_len(191).not_null())
        .col(ColumnDef::new("body").text().not_null())
        .col(big("coins"))
        // [{"goods_id":1,"count":2}, …]; empty: no goods.
        .col(ColumnDef::new("goods").text().not_null())
        .col(ColumnDef::new("reference").string_len(128).null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(big("expires_at"))
        .col(big("read_at"))
        .col(big("claimed_at"))
        .col(big("deleted_at"))
        .to_owned();
    let mut ux = Index::create();
    ux.name("ux_game_mail_ref").table("game_mail").col("user_id").col("reference").unique();
    vec![
        build(b, &t),
        index(b, &ux),
        index(b, &Index::create().name("idx_game_mail_user").table("game_mail").col("user_id").col("id").to_owned()),
    ]
}

fn v9(b: Backend) -> Vec<String> {
    let guild = Table::create()
        .table("game_guild")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("name").string_len(64).not_null())
        // The name folded to lower case: unique, so "Dragons" and "dragons" are one name.
        .col(ColumnDef::new("name_key").string_len(191).not_null().unique_key())
        .col(ColumnDef::new("notice").text().not_null())
        .col(ColumnDef::new("open").big_integer().not_null().default(0))
        .col(ColumnDef::new("leader").big_integer().not_null())
        .col(ColumnDef::new("members").big_integer().not_null().default(0))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let member = Table::create()
        .table("game_guild_member")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("guild_id").big_integer().not_null())
        // One guild per player.
        .col(ColumnDef::new("user_id").big_integer().not_null().unique_key())
        // 1 member, 2 officer, 3 leader.
        .col(ColumnDef::new("role").big_integer().not_null())
        .col(ColumnDef::new("joined_at").big_integer().not_null())
        .to_owned();
    let request = Table::create()
        .table("game_guild_request")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("guild_id").big_integer().not_null())
        .col(ColumnDef::new("user_id").big_integer().not_null())
        // 1 the player asked to join, 2 an officer invited the player.
        .col(ColumnDef::new("kind").big_integer().not_null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .to_owned();
    let chat = Table::create()
        .table("game_guild_chat")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("guild_id").big_integer().not_null())
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("msg_type").big_integer().not_null())
        .col(ColumnDef::new("msg").text().not_null())
        .col(ColumnDef::new("url").string_len(512).not_null())
        .col(ColumnDef::new("sent_at").big_integer().not_null())
        .to_owned();
    vec![
        build(b, &guild),
        build(b, &member),
        index(
            b,
            &Index::create().name("idx_game_guild_member_guild").table("game_guild_member").col("guild_id").to_owned(),
        ),
        build(b, &request),
        index(
            b,
            &Index::create()
                .name("ux_game_guild_request")
                .table("game_guild_request")
                .col("guild_id")
                .col("user_id")
                .unique()
                .to_owned(),
        ),
        build(b, &chat),
        index(
            b,
            &Index::create().name("idx_game_guild_chat").table("game_guild_chat").col("guild_id").col("id").to_owned(),
        ),
    ]
}

/// A text column for up to a few MiB: MySQL's TEXT stops at 64 KiB.
fn long_text(b: Backend, name: &str) -> ColumnDef {
    let mut c = ColumnDef::new(name.to_owned());
    if b == Backend::MySql {
        c.custom(sea_query::Alias::new("LONGTEXT"));
    } else {
        c.text();
    }
    c
}

fn v10(b: Backend) -> Vec<String> {
    // Operators are not players: their own accounts, never in mem_user.
    let operator = Table::create()
        .table("console_operator")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("username").string_len(64).not_null().unique_key())
        // argon2id PHC string.
        .col(ColumnDef::new("password").string_len(255).not_null())
        // 1 viewer, 2 gm, 3 admin.
        .col(ColumnDef::new("role").big_integer().not_null())
        // Base32 TOTP secret; empty: no second factor.
        .col(ColumnDef::new("totp").string_len(64).not_null().default(""))
        .col(ColumnDef::new("disabled").big_integer().not_null().default(0))
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("last_login_at").big_integer().not_null().default(0))
        .to_owned();
    let session = Table::create()
        .table("console_session")
        .if_not_exists()
        .col(id(b))
        // SHA-256 of the cookie's token (hex): a leaked table opens no session.
        .col(ColumnDef::new("token_hash").string_len(64).not_null().unique_key())
        .col(ColumnDef::new("operator_id").big_integer().not_null())
        .col(ColumnDef::new("csrf").string_len(64).not_null())
        .col(ColumnDef::new("ip").string_len(64).not_null())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("seen_at").big_integer().not_null())
        .col(ColumnDef::new("expires_at").big_integer().not_null())
        .to_owned();
    // Written once per change, never updated nor deleted by the console.
    let audit = Table::create()
        .table("console_audit")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("operator_id").big_integer().not_null())
        .col(ColumnDef::new("operator").string_len(64).not_null())
        .col(ColumnDef::new("action").string_len(64).not_null())
        .col(ColumnDef::new("target").string_len(191).not_null())
        .col(ColumnDef::new("before_value").text().not_null())
        .col(ColumnDef::new("after_value").text().not_null())
        .col(ColumnDef::new("reason").string_len(500).not_null())
        .col(ColumnDef::new("ip").string_len(64).not_null())
        .col(ColumnDef::new("at").big_integer().not_null())
        .to_owned();
    // Every game data file an operator applied, whole, for history and rollback.
    let data = Table::create()
        .table("console_data_version")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("file").string_len(64).not_null())
        .col(long_text(b, "content").not_null())
        .col(ColumnDef::new("operator_id").big_integer().not_null())
        .col(ColumnDef::new("operator").string_len(64).not_null())
        .col(ColumnDef::new("reason").string_len(500).not_null())
        .col(ColumnDef::new("at").big_integer().not_null())
        .to_owned();
    vec![
        build(b, &data),
        index(b, &Index::create().name("idx_console_data_file").table("console_data_version").col("file").to_owned()),
        build(b, &operator),
        build(b, &session),
        index(
            b,
            &Index::create()
                .name("idx_console_session_operator")
                .table("console_session")
                .col("operator_id")
                .to_owned(),
        ),
        build(b, &audit),
        index(b, &Index::create().name("idx_console_audit_target").table("console_audit").col("target").to_owned()),
        index(b, &Index::create().name("idx_console_audit_at").table("console_audit").col("at").to_owned()),
    ]
}

fn v11(b: Backend) -> Vec<String> {
    // One row per muted player: chat from it is refused until `until` (unix ms).
    let mute = Table::create()
        .table("game_mute")
        .if_not_exists()
        .col(ColumnDef::new("user_id").big_integer().not_null().primary_key())
        .col(ColumnDef::new("until").big_integer().not_null())
        .col(ColumnDef::new("reason").string_len(500).not_null())
        .col(ColumnDef::new("by_whom").string_len(64).not_null())
        .col(ColumnDef::new("updated_at").big_integer().not_null())
        .to_owned();
    // World and room chat lines, for moderators (guild chat has its own table); pruned
    // after `world.chat_log_days`.
    let log = Table::create()
        .table("game_chat_log")
        .if_not_exists()
        .col(id(b))
        // pb.ChatType: 1 world, 2 room.
        .col(ColumnDef::new("chat_type").integer().not_null())
        .col(ColumnDef::new("room_id").big_integer().not_null())
        .col(ColumnDef::new("user_id").big_integer().not_null())
        .col(ColumnDef::new("msg_type").integer().not_null())
        .col(ColumnDef::new("msg").text().not_null())
        .col(ColumnDef::new("url").string_len(512).not_null())
        .col(ColumnDef::new("sent_at").big_integer().not_null())
        .to_owned();
    // Mail to every player: each one's copy is made in its inbox when it next lists it.
    let broadcast = Table::create()
        .table("game_broadcast")
        .if_not_exists()
        .col(id(b))
        .col(ColumnDef::new("kind").string_len(16).not_null())
        .col(ColumnDef::new("title").string_len(400).not_null())
        .col(ColumnDef::new("body").text().not_null())
        .col(ColumnDef::new("coins").big_integer().not_null())
        .col(ColumnDef::new("goods").text().not_null())
        .col(ColumnDef::new("reference").string_len(128).not_null().unique_key())
        .col(ColumnDef::new("created_at").big_integer().not_null())
        .col(ColumnDef::new("expires_at").big_integer().not_null())
        .to_owned();
    // The newest broadcast each player's inbox has been given (or found not meant for it).
    let seen = Table::create()
        .table("game_broadcast_seen")
        .if_not_exists()
        .col(ColumnDef::new("user_id").big_integer().not_null().primary_key())
        .col(ColumnDef::new("last_id").big_integer().not_null())
        .to_owned();
    vec![
        build(b, &broadcast),
        build(b, &seen),
        build(b, &mute),
        build(b, &log),
        index(b, &Index::create().name("idx_game_chat_log_at").table("game_chat_log").col("sent_at").to_owned()),
        index(
            b,
            &Index::create()
                .name("idx_game_chat_log_user")
                .table("game_chat_log")
                .col("user_id")
                .col("sent_at")
                .to_owned(),
        ),
    ]
}
