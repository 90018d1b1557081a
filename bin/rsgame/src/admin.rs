//! `rsgame admin`: operator actions on accounts from the command line, done by the same logic
//! the servers run, through the database, cache and bus they share; and the console's first
//! operator.

use std::sync::Arc;

use crate::config::Config;
use rsgame_usercenter::Ban;

use crate::serve::{ServeError, open_database};

/// `30m`, `12h`, `7d`, `90s`: a ban's length.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: a number and a unit (s, m, h, d), like 7d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: the unit is s, m, h or d, like 7d")),
    };
    if secs == 0 {
        return Err("a ban lasts at least a second".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// The ban `--for` and `--reason` describe, from now.
pub fn ban(duration: Option<std::time::Duration>, reason: String) -> Ban {
    let until_ms =
        duration.map_or(0, |d| rsgame_kit::time::unix_ms().saturating_add(d.as_millis().min(i64::MAX as u128) as i64));
    Ban { until_ms, reason }
}

/// `rsgame admin ban|unban USER_ID`: a ban sets the account's status to 3 (no login), until a
/// time and with a reason when given, and ends its sessions on every server: its tokens are
/// refused and its game connections close.
pub async fn set_banned(cfg: Config, user_id: i64, ban: Option<Ban>) -> Result<(), ServeError> {
    let banned = ban.is_some();
    let cache = rsgame_store::Cache::from_config(&cfg.cache).await?;
    let bus = rsgame_store::Bus::from_config(&cfg.bus).await?;
    // With the embedded defaults the cache and the bus live inside each process: a ban
    // written here would never reach a running server's tokens or connections.
    if banned && (!cache.is_shared() || bus.backend_name() == "memory") {
        return Err(ServeError::Worker(
            "a ban reaches running servers through the shared cache and bus: set cache.backend: redis and \
             bus.url (with the embedded defaults each process keeps its own)"
                .into(),
        ));
    }
    let db = open_database(&cfg).await?;
    let jwt = Arc::new(rsgame_kit::auth::Jwt::from_config(&cfg.auth));
    let basic = rsgame_basic::BasicLogic::new(
        db.clone(),
        cache.clone(),
        bus.clone(),
        cfg.basic.clone(),
        jwt.derive_key("basic file links"),
    )
    .map_err(|e| ServeError::Worker(e.to_string()))?;
    let usercenter =
        rsgame_usercenter::UserCenterLogic::new(db.clone(), cache, bus, jwt, Arc::new(basic), cfg.usercenter.clone());
    let done = usercenter.set_banned(user_id, ban, "admin-cli").await;
    db.close().await;
    match done.map_err(|e| ServeError::Worker(e.to_string()))? {
        true if banned => println!("user {user_id} banned: its sessions were ended"),
        true => println!("user {user_id} may log in again"),
        false => return Err(ServeError::Worker(format!("there is no user {user_id}"))),
    }
    Ok(())
}

/// `rsgame admin create-operator NAME --role admin`: an operator of the console, its
/// password from `OPERATOR_PASSWORD` or the first line of standard input.
pub async fn create_operator(cfg: Config, username: String, role: String) -> Result<(), ServeError> {
    let role = rsgame_console::roles::Role::parse(&role)
        .ok_or_else(|| ServeError::Worker(format!("--role {role:?}: viewer, gm or admin")))?;
    let password = match std::env::var("OPERATOR_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| ServeError::Worker(format!("stdin: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let db = open_database(&cfg).await?;
    if cfg.database.migrate_on_start {
        rsgame_store::migrate::migrate(&db).await?;
    }
    let made = rsgame_console::operators::create(&db, &username, &password, role).await;
    db.close().await;
    let op = made.map_err(|e| ServeError::Worker(e.to_string()))?;
    println!("operator {} ({}) created with id {}", op.username, op.role.name(), op.id);
    Ok(())
}
