//! Look-ups for operators (the console): accounts found by any of their ways in, and an
//! account's login history. Players never reach these: they would tell who plays.

use rsgame_store::{Db, Row, StoreError};
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::identity::IdentityKind;
use crate::model::{self, USER_COLS, User};

/// Accounts matching `q`, at most `limit` (deleted ones never): an id (`42` or `#42`), a
/// username or nickname (exact, or starting with `q` when it ends with `*`), a phone, an
/// email, a device id or a WeChat openid. Closed and banned accounts are found too.
pub async fn search(db: &Db, q: &str, limit: u64) -> Result<Vec<User>, StoreError> {
    let q = q.trim();
    let limit = limit.clamp(1, 100);
    let mut found: Vec<User> = Vec::new();
    let add = |u: User, found: &mut Vec<User>| {
        if !found.iter().any(|f| f.id == u.id) {
            found.push(u);
        }
    };
    if q.is_empty() {
        return Ok(found);
    }
    if let Ok(id) = q.trim_start_matches('#').parse::<i64>() {
        if let Some(u) = model::user_by_id(db, id).await? {
            add(u, &mut found);
        }
    }
    let (prefix, exact) = match q.strip_suffix('*') {
        Some(p) if !p.is_empty() => (Some(p), p),
        _ => (None, q),
    };
    for col in ["username", "nickname"] {
        let mut s = Query::select();
        s.columns(USER_COLS).from("mem_user").and_where(Expr::col("deleted_at").is_null()).limit(limit);
        match prefix {
            // LIKE with the pattern's own wildcards escaped: `*` is the only one an operator
            // types.
            Some(p) => {
                s.and_where(Expr::col(col).like(sea_query::LikeExpr::new(format!("{}%", escape(p))).escape('\\')))
            }
            None => s.and_where(Expr::col(col).eq(exact)),
        };
        s.order_by("id", Order::Asc);
        for r in db.fetch_all(&s).await? {
            add(model::user(&r)?, &mut found);
        }
    }
    // The ways in: a phone or email (as they are stored), a device (by its hash), WeChat.
    let lower = q.to_lowercase();
    let device = crate::logic::sha256_hex(q);
    for (kind, ident) in [
        (IdentityKind::Phone, q),
        (IdentityKind::Email, lower.as_str()),
        (IdentityKind::Device, device.as_str()),
        (IdentityKind::Wechat, q),
        (IdentityKind::WechatUnion, q),
    ] {
        if let Some(u) = crate::identity::account_of(db, kind, ident).await? {
            add(u, &mut found);
        }
    }
    for field in ["mobile", "email"] {
        let v = if field == "email" { lower.as_str() } else { q };
        if let Some(u) = model::user_by_field(db, field, v).await? {
            add(u, &mut found);
        }
    }
    found.truncate(limit as usize);
    Ok(found)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// One line of an account's history: a login, a logout, a ban…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// 1 login, 2 logout or account change, 3 new account.
    pub kind: i64,
    /// What happened.
    pub remark: String,
    /// From where.
    pub ip: String,
    /// Unix ms.
    pub at: i64,
}

/// The account's latest `limit` history lines, newest first.
pub async fn history(db: &Db, user_id: i64, limit: u64) -> Result<Vec<LogLine>, StoreError> {
    let q = Query::select()
        .columns(["type", "remark", "ip", "created_at"])
        .from("mem_logs")
        .and_where(Expr::col("user_id").eq(user_id))
        .order_by("id", Order::Desc)
        .limit(limit.clamp(1, 200))
        .to_owned();
    let line = |r: &Row| -> Result<LogLine, StoreError> {
        Ok(LogLine {
            kind: i64::from(r.i32("type")?),
            remark: r.string("remark")?,
            ip: r.string("ip")?,
            at: r.i64("created_at")?,
        })
    };
    db.fetch_all(&q).await?.iter().map(line).collect()
}
