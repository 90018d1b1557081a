//! Game data as operators see and change it: the tables in force, a file checked before it
//! applies (the errors name the file and entry, and nothing changes), applied and hot-
//! reloaded, every applied version kept whole for history and rollback; and the notices
//! `getNotify` serves, edited as a list (they live in `notices.yaml`).

use rsgame_game::data::{DataError, Notice};
use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_store::Row;
use sea_query::{Expr, ExprTrait as _, Order, Query};
use serde::{Deserialize, Serialize};

use crate::Console;
use crate::audit::{self, Change, json};
use crate::sessions::Session;

/// One applied version of a data file (its text only in [`Console::data_version`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// Id.
    pub id: i64,
    /// The file.
    pub file: String,
    /// Who applied it (`-` for the file as it was before the console's first change).
    pub operator: String,
    /// Why.
    pub reason: String,
    /// Unix ms.
    pub at: i64,
    /// Bytes.
    pub size: i64,
    /// The text (only when one version is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A file to check or apply.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileReq {
    /// `goods.yaml`, `shop.yaml`, `levels.yaml`, `exp.yaml`, `notices.yaml` or `guild.yaml`.
    pub file: String,
    /// Its new text.
    pub content: String,
    /// Why (to apply; not needed to check).
    #[serde(default)]
    pub reason: String,
}

fn refused(e: DataError) -> Error {
    Error::bad_param(format!("{}: {}", e.file, e.msg))
}

fn version(r: &Row, with_content: bool) -> Result<Version> {
    let content = r.string("content")?;
    Ok(Version {
        id: r.i64("id")?,
        file: r.string("file")?,
        operator: r.string("operator")?,
        reason: r.string("reason")?,
        at: r.i64("at")?,
        size: content.len() as i64,
        content: with_content.then_some(content),
    })
}

impl Console {
    /// The data in force, as tables.
    pub fn data_tables(&self) -> serde_json::Value {
        let d = self.game.data();
        let mut goods: Vec<_> = d.goods.values().cloned().collect();
        goods.sort_by_key(|g| g.id);
        let (scenes, modes, world_error) = self.world_tables();
        serde_json::json!({
            "scenes": scenes,
            "matchModes": modes,
            "worldError": world_error,
            "files": rsgame_game::data::FILES,
            "goods": goods,
            "shop": d.shop,
            "levels": d.levels,
            "exp": d.exp,
            "notices": d.notices,
            "guild": d.guild,
        })
    }

    /// The scenes (with their monsters) and match modes of `world.yaml` as the game nodes
    /// read it at start (the built-in sample when the folder has none), and its error if the
    /// file is bad. Shown, not edited here: game nodes read it at start only.
    fn world_tables(&self) -> (serde_json::Value, serde_json::Value, Option<String>) {
        let path = self.game.data_store().dir().join("world.yaml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => rsgame_world::data::SAMPLE.to_owned(),
            Err(e) => return (serde_json::Value::Null, serde_json::Value::Null, Some(format!("world.yaml: {e}"))),
        };
        let error = rsgame_world::data::parse_all(&text, &rsgame_world::config::WorldConfig::default()).err();
        let raw: serde_json::Value = serde_norway::from_str(&text).unwrap_or(serde_json::Value::Null);
        (raw["scenes"].clone(), raw["match_modes"].clone(), error.map(|e| format!("world.yaml: {e}")))
    }

    /// A data file's text as it is now.
    pub fn data_file(&self, file: &str) -> Result<String> {
        self.game.data_store().read_file(file).map_err(refused)
    }

    /// Checks a file against the others as they are now; changes nothing.
    pub fn check_data(&self, r: &FileReq) -> Result<()> {
        self.game.data_store().check_file(&r.file, &r.content).map(|_| ()).map_err(refused)
    }

    async fn store_version(&self, s: Option<&Session>, file: &str, content: &str, why: &str) -> Result<i64> {
        let (id, name) = s.map_or((0, "-"), |s| (s.operator.id, s.operator.username.as_str()));
        let q = Query::insert()
            .into_table("console_data_version")
            .columns(["file", "content", "operator_id", "operator", "reason", "at"])
            .values_panic([file.into(), content.into(), id.into(), name.into(), why.into(), unix_ms().into()])
            .to_owned();
        Ok(self.db().insert_id(&q).await?)
    }

    /// Applies a file: checked with the others, written, reloaded, kept as a version, and
    /// audited. The first change to a file keeps the file as it was first, so there is
    /// always a version to go back to.
    pub async fn apply_data(&self, s: &Session, ip: &str, r: &FileReq) -> Result<Version> {
        let why = crate::players::reason(&r.reason)?;
        let store = self.game.data_store();
        store.check_file(&r.file, &r.content).map_err(refused)?;
        let before = store.read_file(&r.file).map_err(refused)?;
        if self.data_versions(Some(&r.file)).await?.is_empty() {
            self.store_version(None, &r.file, &before, "as it was before the console's first change").await?;
        }
        store.replace_file(&r.file, &r.content).map_err(refused)?;
        let id = self.store_version(Some(s), &r.file, &r.content, why).await?;
        let change = Change::by(s, ip, "data.apply", format!("data:{}", r.file));
        let after = json(&serde_json::json!({"version": id, "bytes": r.content.len()}));
        let before = json(&serde_json::json!({"bytes": before.len()}));
        audit::record(self.db(), Change { before, after, reason: why, ..change }).await?;
        self.data_version(id).await
    }

    /// The applied versions, newest first (of one file when given).
    pub async fn data_versions(&self, file: Option<&str>) -> Result<Vec<Version>> {
        let mut q = Query::select();
        q.columns(["id", "file", "content", "operator", "reason", "at"])
            .from("console_data_version")
            .order_by("id", Order::Desc)
            .limit(200);
        if let Some(f) = file {
            q.and_where(Expr::col("file").eq(f));
        }
        let rows = self.db().fetch_all(&q).await?;
        rows.iter().map(|r| version(r, false)).collect()
    }

    /// One version, with its text.
    pub async fn data_version(&self, id: i64) -> Result<Version> {
        let q = Query::select()
            .columns(["id", "file", "content", "operator", "reason", "at"])
            .from("console_data_version")
            .and_where(Expr::col("id").eq(id))
            .to_owned();
        let row = self.db().fetch_optional(&q).await?.ok_or_else(|| Error::msg(Code::NotFound, "no such version"))?;
        version(&row, true)
    }

    /// Applies an earlier version again (checked like any file: the others may have changed).
    pub async fn rollback_data(&self, s: &Session, ip: &str, id: i64, why: &str) -> Result<Version> {
        let v = self.data_version(id).await?;
        let why = format!("rollback to version {id}: {}", crate::players::reason(why)?);
        let r = FileReq { file: v.file, content: v.content.unwrap_or_default(), reason: why };
        self.apply_data(s, ip, &r).await
    }

    /// Every notice in the data, whatever its time.
    pub fn data_notices(&self) -> Vec<Notice> {
        self.game.data().notices.clone()
    }

    /// Replaces the notices (as `notices.yaml`).
    pub async fn set_notices(&self, s: &Session, ip: &str, notices: &[Notice], why: &str) -> Result<Version> {
        let content = serde_norway::to_string(notices).map_err(|e| Error::internal(Code::Failed, e))?;
        let header = "# Notices getNotify serves, edited in the operator console.\n";
        let r = FileReq { file: "notices.yaml".into(), content: format!("{header}{content}"), reason: why.to_owned() };
        self.apply_data(s, ip, &r).await
    }
}
