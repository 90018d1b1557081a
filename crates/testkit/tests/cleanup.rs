//! A failing check leaves no database behind.

use rsgame_store::Db;
use rsgame_store::config::DatabaseConfig;
use sea_query::{Expr, ExprTrait as _, Query};

#[tokio::test]
async fn a_failing_check_still_drops_its_database() {
    let servers: Vec<(String, &str, &str)> = [
        ("RSGAME_TEST_MYSQL_URL", "information_schema.schemata", "schema_name"),
        ("RSGAME_TEST_POSTGRES_URL", "pg_database", "datname"),
    ]
    .into_iter()
    .filter_map(|(var, table, col)| rsgame_testkit::service(var).map(|url| (url, table, col)))
    .collect();
    if servers.is_empty() || rsgame_testkit::service("RSGAME_TEST_REDIS_URL").is_none() {
        return;
    }
    let failed = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(rsgame_testkit::on_every_backend(
        |stack, _, _| async move {
            assert_eq!(stack, rsgame_testkit::Stack::Embedded, "fails on the server databases");
        },
    )))
    .await;
    assert!(failed.is_err(), "the check failed");
    let ours = format!("rsgame_t_{}_%", std::process::id());
    for (url, table, col) in servers {
        let admin = Db::connect(&DatabaseConfig { url, ..DatabaseConfig::default() }).await.expect("admin");
        let mut q = Query::select();
        match table.split_once('.') {
            Some((schema, t)) => q.from((schema, t)),
            None => q.from(table),
        };
        let q = q.column(col).and_where(Expr::col(col).like(ours.as_str())).to_owned();
        let left = admin.fetch_all(&q).await.expect("list");
        assert!(left.is_empty(), "{table}: {} databases left behind", left.len());
    }
}
