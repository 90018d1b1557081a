//! One database code path for SQLite, MySQL/MariaDB and PostgreSQL.
//!
//! Statements are built with sea-query, which writes each backend's SQL (placeholders,
//! quoting, `RETURNING`, auto-increment), and run on the matching sqlx pool. Rows are read
//! through [`Row`]'s typed getters, the same for every backend. Every statement is timed:
//! `db_query_duration_seconds{backend,op}`, and a warn line above `database.slow_query_ms`
//! (with the SQL, never the bound values).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::DatabaseConfig;
use sea_query::{InsertStatement, MysqlQueryBuilder, PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_sqlx::SqlxBinder;
use sqlx::{AssertSqlSafe, Row as _};
use tracing::Instrument as _;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (the embedded default).
    Sqlite,
    /// MySQL or MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a URL names by its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split("://").next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(StoreError::Config(format!(
                "database.url: unknown scheme {other:?} (sqlite://, mysql://, postgres://)"
            ))),
        }
    }

    /// The label in metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::MySql => "mysql",
            Backend::Postgres => "postgres",
        }
    }
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// A unique key already holds this value (a duplicate username, say).
    #[error("duplicate value: {0}")]
    Conflict(String),
    /// A column is missing or of another type than asked.
    #[error("column {column}: {msg}")]
    Column {
        /// The column.
        column: String,
        /// What went wrong.
        msg: String,
    },
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Db(#[source] sqlx::Error),
    /// The cache backend failed or holds a value of another type.
    #[error("cache: {0}")]
    Cache(String),
    /// A quota refused a new entry (too many reserved entries for one owner, or in all).
    #[error("full: {0}")]
    Full(String),
    /// A statement could not be built (a column and value count that differ: a bug).
    #[error("query: {0}")]
    Query(String),
    /// A migration failed.
    #[error("migration {version} ({name}): {source}")]
    Migration {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// Why.
        #[source]
        source: Box<StoreError>,
    },
}

impl StoreError {
    /// A deadlock or a serialization failure (SQLSTATE 40001, PostgreSQL's 40P01; MySQL's
    /// 1213 reports 40001): the database rolled the transaction back, and running it again is
    /// the documented answer. Two transactions inserting the same unique key after deleting
    /// rows near it deadlock this way on InnoDB.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(e) => {
                e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40001" || c == "40P01")
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e {
            if d.is_unique_violation() {
                return StoreError::Conflict(d.message().to_owned());
            }
        }
        StoreError::Db(e)
    }
}

impl From<StoreError> for rsgame_kit::Error {
    fn from(e: StoreError) -> Self {
        use rsgame_kit::Code;
        let code = match &e {
            StoreError::Conflict(_) => Code::InsertFailed,
            // The caller asked for more than its share: its own doing, said plainly.
            StoreError::Full(why) => return rsgame_kit::Error::msg(Code::TooManyRequests, why.clone()),
            _ => Code::Db,
        };
        rsgame_kit::Error::internal(code, e)
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    MySql(sqlx::MySqlPool),
    Postgres(sqlx::PgPool),
}

/// A pool of connections to one database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend: Backend,
    slow: Duration,
    /// SQLite only: this process's writers take turns here. SQLite has one writer at a time;
    /// left to itself, a writer that finds the file busy sleeps in its busy handler (backing
    /// off up to 100 ms) however soon the lock frees, which capped logins below 800/s with a
    /// p99 over 100 ms. Queued here, the next writer starts the moment the last one commits.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// How long a writer waits for its turn before going ahead and leaving the wait to SQLite's
/// busy handler: a task that writes through the pool while holding a transaction (which has
/// the turn) gets the old behaviour, a busy timeout, rather than waiting forever.
const WRITER_TURN: Duration = Duration::from_secs(5);

/// How long [`Db::close`] waits for connections still checked out (well inside the default
/// 10-second shutdown grace period, which the hooks before it share).
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// One row, read the same way whatever the backend.
pub enum Row {
    /// A SQLite row.
    Sqlite(sqlx::sqlite::SqliteRow),
    /// A MySQL row.
    MySql(sqlx::mysql::MySqlRow),
    /// A PostgreSQL row.
    Postgres(sqlx::postgres::PgRow),
}

macro_rules! get {
    ($row:expr, $col:expr, $t:ty) => {{
        let r: Result<$t, sqlx::Error> = match $row {
            Row::Sqlite(r) => r.try_get($col),
            Row::MySql(r) => r.try_get($col),
            Row::Postgres(r) => r.try_get($col),
        };
        r.map_err(|e| StoreError::Column { column: $col.to_owned(), msg: e.to_string() })
    }};
}

impl Row {
    /// A BIGINT column.
    pub fn i64(&self, col: &str) -> Result<i64, StoreError> {
        get!(self, col, i64)
    }
    /// A nullable BIGINT column.
    pub fn opt_i64(&self, col: &str) -> Result<Option<i64>, StoreError> {
        get!(self, col, Option<i64>)
    }
    /// An INTEGER column.
    pub fn i32(&self, col: &str) -> Result<i32, StoreError> {
        get!(self, col, i32)
    }
    /// A DOUBLE column.
    pub fn f64(&self, col: &str) -> Result<f64, StoreError> {
        get!(self, col, f64)
    }
    /// A text column.
    pub fn string(&self, col: &str) -> Result<String, StoreError> {
        get!(self, col, String)
    }
    /// A nullable text column.
    pub fn opt_string(&self, col: &str) -> Result<Option<String>, StoreError> {
        get!(self, col, Option<String>)
    }
}

/// The span of one statement: with trace export on, each query is a client span of the
/// request that ran it (REST → gRPC → database in one trace).
fn query_span(op: &'static str, backend: Backend) -> tracing::Span {
    let name = match op {
        "execute" => "db.execute",
        "fetch" => "db.fetch",
        "insert" => "db.insert",
        _ => "db.query",
    };
    tracing::info_span!(
        "db.query",
        otel.name = name,
        otel.kind = "client",
        db.system = backend.as_str(),
        db.operation = op
    )
}

impl Db {
    /// Opens a pool for `database.url` with go-game's pool settings: `max_open` connections
    /// at most (`sqlite_max_open` for a SQLite file), `max_idle` kept open, idle ones closed after `idle_time_secs`, every one
    /// replaced after `lifetime_secs`. A SQLite file's folder is created if missing.
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Db, StoreError> {
        let backend = Backend::from_url(&cfg.url)?;
        let slow = Duration::from_millis(cfg.slow_query_ms);
        // SQLite has a pool size of its own: see `DatabaseConfig::sqlite_max_open`.
        let max_open = if backend == Backend::Sqlite { cfg.sqlite_max_open } else { cfg.max_open };
        macro_rules! opts {
            ($t:ty) => {
                <$t>::new()
                    .max_connections(max_open)
                    .min_connections(cfg.max_idle.min(max_open))
                    .idle_timeout(Some(Duration::from_secs(cfg.idle_time_secs)))
                    .max_lifetime(Some(Duration::from_secs(cfg.lifetime_secs)))
                    .acquire_timeout(Duration::from_secs(10))
            };
        }
        let pool = match backend {
            Backend::Sqlite => {
                let opts: sqlx::sqlite::SqliteConnectOptions =
                    cfg.url.parse().map_err(|e: sqlx::Error| StoreError::Config(format!("database.url: {e}")))?;
                let opts = opts
                    .create_if_missing(true)
                    // WAL lets readers run beside the one writer; the busy timeout queues
                    // writers instead of failing them.
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                if let Some(dir) = opts.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Config(format!("database.url: cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                Pool::Sqlite(opts!(sqlx::sqlite::SqlitePoolOptions).connect_with(opts).await?)
            }
            Backend::MySql => Pool::MySql(opts!(sqlx::mysql::MySqlPoolOptions).connect(&cfg.url).await?),
            Backend::Postgres => Pool::Postgres(opts!(sqlx::postgres::PgPoolOptions).connect(&cfg.url).await?),
        };
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Db { pool, backend, slow, writer })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connections open and idle, for the pool gauge.
    pub fn pool_state(&self) -> (u32, usize) {
        match &self.pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::MySql(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        }
    }

    /// Closes every connection (graceful shutdown), waiting at most `CLOSE_WAIT` for
    /// connections still checked out. sqlx's close waits for each one to come back; by the
    /// time the process closes its pool every request, call and save has finished, so a
    /// connection still out then is held by a task that is going away with the process (once,
    /// in CI, one held the shutdown for its whole grace period). It is logged with the pool's
    /// numbers, so the holder can be found, and dropped: nothing it did is reported as done.
    pub async fn close(&self) {
        let closing = async {
            match &self.pool {
                Pool::Sqlite(p) => p.close().await,
                Pool::MySql(p) => p.close().await,
                Pool::Postgres(p) => p.close().await,
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, closing).await.is_err() {
            let (open, idle) = self.pool_state();
            tracing::warn!(
                open,
                idle,
                wait_secs = CLOSE_WAIT.as_secs(),
                "database connections still checked out at close: dropped"
            );
        }
    }

    /// Runs a cheap query: the readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.raw("SELECT 1").await
    }

    /// This process's turn to write to SQLite (none needed elsewhere); see [`Db::writer`].
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let w = self.writer.clone()?;
        tokio::time::timeout(WRITER_TURN, w.lock_owned()).await.ok()
    }

    /// Runs a statement; returns the rows it affected.
    pub async fn execute<S: SqlxBinder>(&self, stmt: &S) -> Result<u64, StoreError> {
        let start = Instant::now();
        let _turn = self.write_turn().await;
        let r = async {
            match &self.pool {
                Pool::Sqlite(p) => {
                    let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values).execute(p).await.map(|r| r.rows_affected())
                }
                Pool::MySql(p) => {
                    let (sql, values) = stmt.build_sqlx(MysqlQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values).execute(p).await.map(|r| r.rows_affected())
                }
                Pool::Postgres(p) => {
                    let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values).execute(p).await.map(|r| r.rows_affected())
                }
            }
        }
        .instrument(query_span("execute", self.backend))
        .await;
        self.observe("execute", start, || self.sql_of(stmt));
        Ok(r?)
    }

    /// Runs a query; returns every row.
    pub async fn fetch_all<S: SqlxBinder>(&self, stmt: &S) -> Result<Vec<Row>, StoreError> {
        let start = Instant::now();
        let r: Result<Vec<Row>, sqlx::Error> = async {
            match &self.pool {
                Pool::Sqlite(p) => {
                    let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values)
                        .fetch_all(p)
                        .await
                        .map(|v| v.into_iter().map(Row::Sqlite).collect())
                }
                Pool::MySql(p) => {
                    let (sql, values) = stmt.build_sqlx(MysqlQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values)
                        .fetch_all(p)
                        .await
                        .map(|v| v.into_iter().map(Row::MySql).collect())
                }
                Pool::Postgres(p) => {
                    let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values)
                        .fetch_all(p)
                        .await
                        .map(|v| v.into_iter().map(Row::Postgres).collect())
                }
            }
        }
        .instrument(query_span("fetch", self.backend))
        .await;
        self.observe("fetch", start, || self.sql_of(stmt));
        Ok(r?)
    }

    /// Runs a query; returns its first row, if any.
    pub async fn fetch_optional<S: SqlxBinder>(&self, stmt: &S) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// Inserts one row and returns its generated `id` (RETURNING on PostgreSQL and SQLite,
    /// LAST_INSERT_ID on MySQL).
    pub async fn insert_id(&self, stmt: &InsertStatement) -> Result<i64, StoreError> {
        let start = Instant::now();
        let _turn = self.write_turn().await;
        let r: Result<i64, sqlx::Error> = async {
            match &self.pool {
                Pool::MySql(p) => {
                    let (sql, values) = stmt.build_sqlx(MysqlQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values).execute(p).await.map(|r| r.last_insert_id() as i64)
                }
                Pool::Sqlite(p) => {
                    let mut stmt = stmt.clone();
                    stmt.returning_col("id");
                    let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values).fetch_one(p).await.and_then(|r| r.try_get::<i64, _>(0))
                }
                Pool::Postgres(p) => {
                    let mut stmt = stmt.clone();
                    stmt.returning_col("id");
                    let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), values).fetch_one(p).await.and_then(|r| r.try_get::<i64, _>(0))
                }
            }
        }
        .instrument(query_span("insert", self.backend))
        .await;
        self.observe("insert", start, || self.sql_of(stmt));
        Ok(r?)
    }

    /// Starts a transaction on one connection of the pool. Dropped without [`Tx::commit`], it
    /// rolls back.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        // A transaction is for writing: on SQLite it holds the writers' turn until it ends.
        let turn = self.write_turn().await;
        let conn = match &self.pool {
            // IMMEDIATE takes SQLite's write lock at BEGIN, where the busy timeout applies. A
            // deferred transaction takes it at its first write; if it has read by then and
            // another connection holds the lock (another process, or a dropped transaction
            // whose rollback sqlx runs later on its own connection), SQLite fails it at once
            // with "database is locked" rather than wait, since waiting could deadlock.
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::MySql(p) => TxConn::MySql(p.begin().await?),
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        Ok(Tx { conn, db: self.clone(), _turn: turn })
    }

    /// Runs literal SQL that has no parameters (DDL from migrations, `SELECT 1`).
    pub async fn raw(&self, sql: &str) -> Result<(), StoreError> {
        let start = Instant::now();
        let sql_owned = sql.to_owned();
        let r = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(AssertSqlSafe(sql_owned)).execute(p).await.map(|_| ()),
            Pool::MySql(p) => sqlx::query(AssertSqlSafe(sql_owned)).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::query(AssertSqlSafe(sql_owned)).execute(p).await.map(|_| ()),
        };
        self.observe("raw", start, || sql.to_owned());
        Ok(r?)
    }

    /// The SQL of a statement for this backend, for logs.
    fn sql_of<S: SqlxBinder>(&self, stmt: &S) -> String {
        match self.backend {
            Backend::Sqlite => stmt.build_sqlx(SqliteQueryBuilder).0,
            Backend::MySql => stmt.build_sqlx(MysqlQueryBuilder).0,
            Backend::Postgres => stmt.build_sqlx(PostgresQueryBuilder).0,
        }
    }

    fn observe(&self, op: &'static str, start: Instant, sql: impl FnOnce() -> String) {
        let took = start.elapsed();
        metrics::histogram!(crate::metrics::DB_QUERY_SECONDS, "backend" => self.backend.as_str(), "op" => op)
            .record(took.as_secs_f64());
        let (size, idle) = self.pool_state();
        metrics::gauge!(crate::metrics::DB_POOL_IN_USE, "backend" => self.backend.as_str())
            .set(size.saturating_sub(idle as u32) as f64);
        if took >= self.slow {
            // The SQL only: bound values may be personal data or secrets.
            tracing::warn!(backend = self.backend.as_str(), op, took_ms = took.as_millis() as u64, sql = %sql(), "slow query");
        }
    }
}

/// A transaction: the same statements as [`Db`], on one connection, applied together by
/// [`Tx::commit`] or not at all. Its statements are timed and slow-logged like the pool's:
/// a slow one here holds its locks all that time.
pub struct Tx {
    conn: TxConn,
    db: Db,
    /// SQLite: this process's writers' turn, released when the transaction ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

enum TxConn {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Runs a statement; returns the rows it affected.
    pub async fn execute<S: SqlxBinder>(&mut self, stmt: &S) -> Result<u64, StoreError> {
        let start = Instant::now();
        let span = query_span("execute", self.db.backend);
        let r = async {
            match &mut self.conn {
                TxConn::Sqlite(t) => {
                    let (sql, v) = stmt.build_sqlx(SqliteQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v).execute(&mut **t).await.map(|r| r.rows_affected())
                }
                TxConn::MySql(t) => {
                    let (sql, v) = stmt.build_sqlx(MysqlQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v).execute(&mut **t).await.map(|r| r.rows_affected())
                }
                TxConn::Postgres(t) => {
                    let (sql, v) = stmt.build_sqlx(PostgresQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v).execute(&mut **t).await.map(|r| r.rows_affected())
                }
            }
        }
        .instrument(span)
        .await;
        self.db.observe("execute", start, || self.db.sql_of(stmt));
        Ok(r?)
    }

    /// Runs a query; returns every row.
    pub async fn fetch_all<S: SqlxBinder>(&mut self, stmt: &S) -> Result<Vec<Row>, StoreError> {
        let start = Instant::now();
        let span = query_span("fetch", self.db.backend);
        let r: Result<Vec<Row>, sqlx::Error> = async {
            match &mut self.conn {
                TxConn::Sqlite(t) => {
                    let (sql, v) = stmt.build_sqlx(SqliteQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v)
                        .fetch_all(&mut **t)
                        .await
                        .map(|v| v.into_iter().map(Row::Sqlite).collect())
                }
                TxConn::MySql(t) => {
                    let (sql, v) = stmt.build_sqlx(MysqlQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v)
                        .fetch_all(&mut **t)
                        .await
                        .map(|v| v.into_iter().map(Row::MySql).collect())
                }
                TxConn::Postgres(t) => {
                    let (sql, v) = stmt.build_sqlx(PostgresQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v)
                        .fetch_all(&mut **t)
                        .await
                        .map(|v| v.into_iter().map(Row::Postgres).collect())
                }
            }
        }
        .instrument(span)
        .await;
        self.db.observe("fetch", start, || self.db.sql_of(stmt));
        Ok(r?)
    }

    /// Runs a query; returns its first row, if any.
    pub async fn fetch_optional<S: SqlxBinder>(&mut self, stmt: &S) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch_all(stmt).await?.into_iter().next())
    }

    /// Inserts one row and returns its generated `id`.
    pub async fn insert_id(&mut self, stmt: &InsertStatement) -> Result<i64, StoreError> {
        let start = Instant::now();
        let span = query_span("insert", self.db.backend);
        let r: Result<i64, sqlx::Error> = async {
            match &mut self.conn {
                TxConn::MySql(t) => {
                    let (sql, v) = stmt.build_sqlx(MysqlQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v).execute(&mut **t).await.map(|r| r.last_insert_id() as i64)
                }
                TxConn::Sqlite(t) => {
                    let mut stmt = stmt.clone();
                    stmt.returning_col("id");
                    let (sql, v) = stmt.build_sqlx(SqliteQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v)
                        .fetch_one(&mut **t)
                        .await
                        .and_then(|r| r.try_get::<i64, _>(0))
                }
                TxConn::Postgres(t) => {
                    let mut stmt = stmt.clone();
                    stmt.returning_col("id");
                    let (sql, v) = stmt.build_sqlx(PostgresQueryBuilder);
                    sqlx::query_with(AssertSqlSafe(sql), v)
                        .fetch_one(&mut **t)
                        .await
                        .and_then(|r| r.try_get::<i64, _>(0))
                }
            }
        }
        .instrument(span)
        .await;
        self.db.observe("insert", start, || self.db.sql_of(stmt));
        Ok(r?)
    }

    /// Applies everything.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::MySql(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Discards everything (dropping the transaction does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.conn {
            TxConn::Sqlite(t) => t.rollback().await?,
            TxConn::MySql(t) => t.rollback().await?,
            TxConn::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}
