//! The database layer on every backend it supports: SQLite always; MariaDB and PostgreSQL
//! when `RSGAME_TEST_MYSQL_URL` / `RSGAME_TEST_POSTGRES_URL` are set. Each run gets its own
//! database and drops it afterwards.

use rsgame_store::config::DatabaseConfig;
use rsgame_store::{Backend, Db, StoreError, migrate};
use sea_query::{Expr, ExprTrait as _, Query};

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
}

fn cfg(url: String) -> DatabaseConfig {
    DatabaseConfig { url, max_open: 4, max_idle: 1, ..DatabaseConfig::default() }
}

/// A fresh database on the server at `admin_url`; returns its URL.
async fn fresh_database(admin_url: &str, backend: Backend) -> (Db, String, String) {
    let admin = Db::connect(&cfg(admin_url.to_owned())).await.expect("admin connection");
    let name = unique("rsgame_t");
    admin.raw(&format!("CREATE DATABASE {name}")).await.expect("create database");
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    let url = format!("{base}/{name}");
    assert_eq!(admin.backend(), backend);
    (admin, url, name)
}

/// Runs `check` on every configured backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}/nested/test.db", dir.path().display());
    check(Db::connect(&cfg(sqlite)).await.expect("sqlite")).await;

    for (var, backend) in [("RSGAME_TEST_MYSQL_URL", Backend::MySql), ("RSGAME_TEST_POSTGRES_URL", Backend::Postgres)] {
        let Some(admin_url) = rsgame_testkit::service(var) else {
            continue;
        };
        let (admin, url, name) = fresh_database(&admin_url, backend).await;
        let db = Db::connect(&cfg(url)).await.expect("connect to fresh database");
        assert_eq!(db.backend(), backend);
        check(db.clone()).await;
        drop(db);
        let drop_sql = match backend {
            Backend::Postgres => format!("DROP DATABASE {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE {name}"),
        };
        admin.raw(&drop_sql).await.expect("drop database");
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn insert_user(username: &str) -> sea_query::InsertStatement {
    let mut q = Query::insert();
    q.into_table("mem_user")
        .columns(["username", "password", "nickname", "created_at", "updated_at"])
        .values([
            Expr::val(username),
            Expr::val("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"),
            Expr::val("Nick"),
            Expr::val(now()),
            Expr::val(now()),
        ])
        .expect("values match columns");
    q
}

#[tokio::test]
async fn migrations_apply_once_and_the_schema_works_everywhere() {
    on_every_backend(|db| async move {
        assert_eq!(
            migrate::migrate(&db).await.expect("migrate"),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "{:?}",
            db.backend()
        );
        assert!(migrate::migrate(&db).await.expect("again").is_empty(), "nothing pending the second time");
        db.ping().await.expect("ping");

        // Insert, read back, conflict on the unique username.
        let id = db.insert_id(&insert_user("alice")).await.expect("insert");
        assert!(id > 0);
        let id2 = db.insert_id(&insert_user("bob")).await.expect("insert");
        assert_eq!(id2, id + 1);
        match db.insert_id(&insert_user("alice")).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("duplicate username must be a conflict, got {other:?}"),
        }

        // SQL metacharacters are data, never SQL.
        let evil = "x'); DROP TABLE mem_user; --";
        db.insert_id(&insert_user(evil)).await.expect("insert evil");
        let row = db
            .fetch_optional(
                &Query::select()
                    .columns(["id", "username", "password", "sex", "status", "deleted_at"])
                    .from("mem_user")
                    .and_where(Expr::col("username").eq(evil))
                    .to_owned(),
            )
            .await
            .expect("select")
            .expect("row");
        assert_eq!(row.string("username").expect("username"), evil);
        assert!(row.string("password").expect("password").starts_with("$argon2id$"));
        assert_eq!(row.i32("sex").expect("sex"), 0, "default");
        assert_eq!(row.i32("status").expect("status"), 1, "default");
        assert_eq!(row.opt_i64("deleted_at").expect("deleted_at"), None);
        assert!(matches!(row.string("no_such_column"), Err(StoreError::Column { .. })));

        // Update counts rows.
        let n = db
            .execute(
                &Query::update()
                    .table("mem_user")
                    .value("login_count", Expr::col("login_count").add(1))
                    .and_where(Expr::col("username").is_in(["alice", "bob"]))
                    .to_owned(),
            )
            .await
            .expect("update");
        assert_eq!(n, 2);
        let rows = db
            .fetch_all(
                &Query::select()
                    .column("login_count")
                    .from("mem_user")
                    .and_where(Expr::col("login_count").gt(0))
                    .to_owned(),
            )
            .await
            .expect("select");
        assert_eq!(rows.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn bad_urls_are_configuration_errors() {
    assert!(matches!(Db::connect(&cfg("oracle://x".into())).await, Err(StoreError::Config(_))));
    assert!(Backend::from_url("postgresql://u@h/db").is_ok());
}

#[tokio::test]
async fn unreachable_server_is_a_db_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let mut c = cfg(format!("postgres://postgres@127.0.0.1:{port}/x"));
    c.max_idle = 0;
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), Db::connect(&c)).await.expect("fails in time");
    assert!(matches!(r, Err(StoreError::Db(_))), "{:?}", r.err());
}

/// Kills every server-side connection of the database `name` (MariaDB: KILL; PostgreSQL:
/// pg_terminate_backend), as a crashed proxy or a restarted server would.
async fn cut_connections(admin: &Db, backend: Backend, name: &str) {
    let ids: Vec<i64> = match backend {
        Backend::MySql => admin
            .fetch_all(
                &Query::select()
                    .column("ID")
                    .from(("information_schema", "PROCESSLIST"))
                    .and_where(Expr::col("DB").eq(name))
                    .to_owned(),
            )
            .await
            .expect("processlist")
            .iter()
            .map(|r| r.i64("ID").expect("id"))
            .collect(),
        Backend::Postgres => admin
            .fetch_all(
                &Query::select()
                    .column("pid")
                    .from("pg_stat_activity")
                    .and_where(Expr::col("datname").eq(name))
                    .to_owned(),
            )
            .await
            .expect("pg_stat_activity")
            .iter()
            .map(|r| r.i32("pid").map(i64::from).expect("pid"))
            .collect(),
        Backend::Sqlite => return,
    };
    assert!(!ids.is_empty(), "the pool holds connections to cut");
    for id in ids {
        let sql = match backend {
            Backend::MySql => format!("KILL {id}"),
            _ => format!("SELECT pg_terminate_backend({id})"),
        };
        // A connection may already be gone: fine.
        let _ = admin.raw(&sql).await;
    }
}

#[tokio::test]
async fn connections_cut_mid_stream_lose_no_acknowledged_write() {
    for (var, backend) in [("RSGAME_TEST_MYSQL_URL", Backend::MySql), ("RSGAME_TEST_POSTGRES_URL", Backend::Postgres)] {
        let Some(admin_url) = rsgame_testkit::service(var) else {
            continue;
        };
        let (admin, url, name) = fresh_database(&admin_url, backend).await;
        let db = Db::connect(&cfg(url)).await.expect("connect");
        migrate::migrate(&db).await.expect("migrate");

        let mut acknowledged = Vec::new();
        let mut failed = 0;
        for i in 0..60 {
            if i == 20 || i == 40 {
                cut_connections(&admin, backend, &name).await;
            }
            match db.insert_id(&insert_user(&format!("user{i}"))).await {
                Ok(_) => acknowledged.push(format!("user{i}")),
                // The statement that met the cut connection may fail; it was never acknowledged.
                Err(StoreError::Db(_)) => failed += 1,
                Err(e) => panic!("{backend:?}: unexpected {e:?}"),
            }
        }
        eprintln!("{backend:?}: {} acknowledged, {failed} failed at the cuts", acknowledged.len());
        assert!(failed <= 4, "{backend:?}: the pool replaced its connections ({failed} failed)");
        let rows = db
            .fetch_all(&Query::select().column("username").from("mem_user").to_owned())
            .await
            .expect("select after the cuts");
        let stored: std::collections::HashSet<String> =
            rows.iter().map(|r| r.string("username").expect("username")).collect();
        for u in &acknowledged {
            assert!(stored.contains(u), "{backend:?}: acknowledged insert {u} lost");
        }
        assert!(acknowledged.len() >= 56, "{backend:?}: reconnected by itself ({} acknowledged)", acknowledged.len());
        db.close().await;
        let drop_sql = match backend {
            Backend::Postgres => format!("DROP DATABASE {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE {name}"),
        };
        admin.raw(&drop_sql).await.expect("drop database");
    }
}

/// A SQLite transaction that reads before it writes waits for a writer it does not know of
/// (another process on the same file, or the rollback of a transaction this process dropped,
/// which sqlx runs later on that connection) instead of failing at once with "database is
/// locked": a deferred transaction that finds the lock held on its first write gets no busy
/// wait at all, which once failed a guild invitation in CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_transaction_waits_for_a_writer_it_does_not_know_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/shared.db", dir.path().display());
    let ours = Db::connect(&cfg(url.clone())).await.expect("ours");
    migrate::migrate(&ours).await.expect("migrate");
    let theirs = Db::connect(&cfg(url)).await.expect("another process's pool");
    for round in 0..3 {
        let mut other = theirs.begin().await.expect("their transaction");
        other.execute(&insert_user(&format!("theirs{round}"))).await.expect("they hold the write lock");
        let held = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            other.commit().await.expect("they commit");
        });
        let mut tx = ours.begin().await.expect("begin");
        let seen =
            tx.fetch_all(&Query::select().column("username").from("mem_user").to_owned()).await.expect("read first");
        tx.execute(&insert_user(&format!("ours{round}")))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the write after the read waits its turn: {e:?}"));
        tx.commit().await.expect("commit");
        held.await.expect("their task");
        assert_eq!(seen.len(), 2 * round + 1, "theirs committed before ours began");
    }
}
