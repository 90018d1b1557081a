//! The world's tests' database and game service: a migrated SQLite file in a temporary
//! folder, and the game service in process on the sample game data.

use std::sync::Arc;

use rsgame_store::Db;
use rsgame_store::config::DatabaseConfig;

/// A migrated SQLite database under `dir`.
pub(crate) async fn database(dir: &tempfile::TempDir) -> Db {
    let cfg = DatabaseConfig {
        url: format!("sqlite://{}/w.db", dir.path().display()),
        max_open: 4,
        max_idle: 1,
        ..DatabaseConfig::default()
    };
    let db = Db::connect(&cfg).await.expect("sqlite");
    rsgame_store::migrate::migrate(&db).await.expect("migrate");
    db
}

/// The game service on `db`, with the sample goods, shop and levels.
pub(crate) fn game(db: &Db) -> Arc<rsgame_game::GameLogic> {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../game/sample");
    Arc::new(rsgame_game::GameLogic::new(db.clone(), rsgame_game::DataStore::open(sample).expect("game data")))
}
