//! `rsgame admin`: operator actions on accounts from the command line, done by the same logic
//! the servers run, through the database, cache and bus they share.

use std::sync::Arc;

use rsgame_kit::Config;

use crate::serve::{ServeError, open_database};

/// `rsgame admin ban|unban USER_ID`: a ban sets the account's status to 3 (no login) and
/// ends its sessions on every server: its tokens are refused and its game connections close.
pub async fn set_banned(cfg: Config, user_id: i64, banned: bool) -> Result<(), ServeError> {
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
    let done = usercenter.set_banned(user_id, banned, "admin-cli").await;
    db.close().await;
    match done.map_err(|e| ServeError::Worker(e.to_string()))? {
        true if banned => println!("user {user_id} banned: its sessions were ended"),
        true => println!("user {user_id} may log in again"),
        false => return Err(ServeError::Worker(format!("there is no user {user_id}"))),
    }
    Ok(())
}
