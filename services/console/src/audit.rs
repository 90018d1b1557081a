//! The audit log (`console_audit`): every change made through the console — who, when, what,
//! on whom, before → after, and the reason the operator gave. Written in the same request as
//! the change, read back page by page; the console has no way to edit or delete a line.

use rsgame_kit::Result;
use rsgame_kit::time::unix_ms;
use rsgame_store::{Db, Row, StoreError};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Id (pages go backwards from it).
    pub id: i64,
    /// Who.
    pub operator_id: i64,
    /// Its name then (kept if the operator is renamed or disabled).
    pub operator: String,
    /// What: `player.ban`, `player.grant`, `operator.create`…
    pub action: String,
    /// On what: `user:42`, `operator:3`, `mail:all`.
    pub target: String,
    /// The state before (JSON text; empty when there was none).
    pub before: String,
    /// The state after (JSON text).
    pub after: String,
    /// The reason the operator gave.
    pub reason: String,
    /// The operator's address.
    pub ip: String,
    /// Unix ms.
    pub at: i64,
}

/// What is being recorded (the id and time are the log's).
pub struct Change<'a> {
    /// Who.
    pub operator_id: i64,
    /// Its name.
    pub operator: &'a str,
    /// What.
    pub action: &'a str,
    /// On what.
    pub target: String,
    /// Before (JSON).
    pub before: String,
    /// After (JSON).
    pub after: String,
    /// Why.
    pub reason: &'a str,
    /// From where.
    pub ip: &'a str,
}

impl<'a> Change<'a> {
    /// A change by the operator of `s`, from `ip`, to be completed with its states and
    /// reason.
    pub fn by(s: &'a crate::sessions::Session, ip: &'a str, action: &'a str, target: String) -> Change<'a> {
        Change {
            operator_id: s.operator.id,
            operator: &s.operator.username,
            action,
            target,
            before: String::new(),
            after: String::new(),
            reason: "",
            ip,
        }
    }
}

/// JSON text of a state, for `before` and `after`.
pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Appends a line. A failure is the request's failure: an unrecorded change must be seen.
pub async fn record(db: &Db, c: Change<'_>) -> Result<()> {
    let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let q = Query::insert()
        .into_table("console_audit")
        .columns(["operator_id", "operator", "action", "target", "before_value", "after_value", "reason", "ip", "at"])
        .values_panic([
            c.operator_id.into(),
            clip(c.operator, 64).into(),
            clip(c.action, 64).into(),
            clip(&c.target, 191).into(),
            // TEXT holds 64 KiB on MySQL: 15,000 characters of up to 4 bytes fit.
            clip(&c.before, 15_000).into(),
            clip(&c.after, 15_000).into(),
            clip(c.reason, 500).into(),
            clip(c.ip, 64).into(),
            unix_ms().into(),
        ])
        .to_owned();
    db.insert_id(&q).await?;
    Ok(())
}

fn entry(r: &Row) -> Result<Entry, StoreError> {
    Ok(Entry {
        id: r.i64("id")?,
        operator_id: r.i64("operator_id")?,
        operator: r.string("operator")?,
        action: r.string("action")?,
        target: r.string("target")?,
        before: r.string("before_value")?,
        after: r.string("after_value")?,
        reason: r.string("reason")?,
        ip: r.string("ip")?,
        at: r.i64("at")?,
    })
}

/// A page, newest first, from before line `before` (0: the newest); only lines on `target`
/// and by `operator_id` when given.
pub async fn page(
    db: &Db,
    target: Option<&str>,
    operator_id: Option<i64>,
    before: i64,
    limit: u64,
) -> Result<Vec<Entry>> {
    let mut q = Query::select();
    q.columns([
        "id",
        "operator_id",
        "operator",
        "action",
        "target",
        "before_value",
        "after_value",
        "reason",
        "ip",
        "at",
    ])
    .from("console_audit")
    .order_by("id", Order::Desc)
    .limit(limit.clamp(1, 200));
    if let Some(t) = target {
        q.and_where(Expr::col("target").eq(t));
    }
    if let Some(o) = operator_id {
        q.and_where(Expr::col("operator_id").eq(o));
    }
    if before > 0 {
        q.and_where(Expr::col("id").lt(before));
    }
    let rows = db.fetch_all(&q).await?;
    Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
}
