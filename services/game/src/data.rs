//! Game data: goods, shop listings, levels, the experience table, notices and guild rules, loaded from
//! YAML files in one folder and checked as a whole (a dangling id, a negative price or an
//! unknown effect is an error naming the file and the entry). [`DataStore::watch`] reloads
//! the folder when a file changes: a good set replaces the old one atomically; a bad one is
//! logged and the previous set stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a consumable does. In the files: `{ heal: 50 }`, `{ exp: 120 }` or
/// `{ buff: { attack: 15, secs: 60 } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", try_from = "EffectSpec")]
pub enum Effect {
    /// Restores this much hp (up to max).
    Heal(i64),
    /// Grants this much experience.
    Exp(i64),
    /// Adds attack for a while.
    Buff {
        /// Attack added.
        attack: i64,
        /// For how long, seconds.
        secs: i64,
    },
}

/// An effect as written in a file: exactly one key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EffectSpec {
    heal: Option<i64>,
    exp: Option<i64>,
    buff: Option<BuffSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuffSpec {
    attack: i64,
    secs: i64,
}

impl TryFrom<EffectSpec> for Effect {
    type Error = String;

    fn try_from(e: EffectSpec) -> Result<Effect, String> {
        match (e.heal, e.exp, e.buff) {
            (Some(n), None, None) => Ok(Effect::Heal(n)),
            (None, Some(n), None) => Ok(Effect::Exp(n)),
            (None, None, Some(b)) => Ok(Effect::Buff { attack: b.attack, secs: b.secs }),
            _ => Err("an effect is exactly one of heal, exp or buff".into()),
        }
    }
}

/// Where equipment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// Adds attack.
    Weapon,
    /// Adds defence.
    Armor,
}

/// Kinds of goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Used up by `useGoods`.
    Consumable,
    /// Equipped by `useGoods`.
    Equipment,
    /// Kept.
    Material,
}

/// One entry of the goods catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Goods {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// A consumable's effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// Equipment's slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    /// Attack an equipped item adds.
    #[serde(default)]
    pub attack: i64,
    /// Defence an equipped item adds.
    #[serde(default)]
    pub defence: i64,
}

/// A shop listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Listing id (what `buyGoods` names).
    pub id: i64,
    /// The goods sold.
    pub goods_id: i64,
    /// Price in coins.
    pub price: i64,
}

/// An enemy in a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enemy {
    /// Name.
    pub name: String,
    /// Hit points.
    pub hp: i64,
    /// Attack.
    pub attack: i64,
    /// Defence.
    pub defence: i64,
}

/// Goods and a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemCount {
    /// The goods.
    pub goods_id: i64,
    /// How many.
    pub count: i64,
}

/// What winning a level grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Rewards {
    /// Coins.
    pub coins: i64,
    /// Experience.
    pub exp: i64,
    /// Score.
    pub score: i64,
    /// Items.
    pub items: Vec<ItemCount>,
}

/// A level (stage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// The player level needed to enter.
    #[serde(default = "one")]
    pub min_level: i64,
    /// Enemies, fought in order.
    pub enemies: Vec<Enemy>,
    /// What winning grants.
    #[serde(default)]
    pub rewards: Rewards,
}

fn one() -> i64 {
    1
}

/// Stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Stats {
    /// Maximum hp.
    pub max_hp: i64,
    /// Attack.
    pub attack: i64,
    /// Defence.
    pub defence: i64,
    /// Coins (the starting purse only).
    pub coins: i64,
}

/// The experience table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpTable {
    /// Experience from each level to the next; its length + 1 is the top level.
    pub next: Vec<i64>,
    /// What each level-up adds.
    pub per_level: Stats,
    /// A new player's stats and coins.
    pub start: Stats,
}

/// An announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Text.
    pub content: String,
    /// Shown from (RFC 3339).
    pub start: String,
    /// Shown until (RFC 3339); none: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// One consistent set of game data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameData {
    /// Goods by id.
    pub goods: HashMap<i64, Goods>,
    /// Shop listings, in file order.
    pub shop: Vec<Listing>,
    /// Levels, in file order.
    pub levels: Vec<Level>,
    /// The experience table.
    pub exp: ExpTable,
    /// Notices, in file order.
    pub notices: Vec<Notice>,
    /// Guild rules (`guild.yaml`; these defaults when the file is missing).
    pub guild: GuildRules,
}

/// Guild rules, from `guild.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuildRules {
    /// Coins a player pays to found a guild (through the ledger).
    pub create_cost: i64,
    /// The most members a guild holds.
    pub max_members: i64,
}

impl Default for GuildRules {
    fn default() -> Self {
        GuildRules { create_cost: 100, max_members: 30 }
    }
}

/// A data file that is missing, unreadable or wrong; the message names the file and entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {msg}")]
pub struct DataError {
    /// The file.
    pub file: String,
    /// What is wrong, naming the entry.
    pub msg: String,
}

/// The game data files, each replaceable on its own (`guild.yaml` may be missing).
pub const FILES: [&str; 6] = ["goods.yaml", "shop.yaml", "levels.yaml", "exp.yaml", "notices.yaml", "guild.yaml"];

/// The most one data file may hold: far above any real catalogue.
pub const MAX_FILE: usize = 1 << 20;

fn read<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> Result<T, DataError> {
    let err = |msg: String| DataError { file: file.to_owned(), msg };
    let text = std::fs::read_to_string(dir.join(file)).map_err(|e| err(e.to_string()))?;
    serde_norway::from_str(&text).map_err(|e| err(e.to_string()))
}

fn is_rfc3339(s: &str) -> bool {
    // yyyy-mm-ddThh:mm:ss with a zone: enough to refuse typos; parsing is the reader's job.
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s.ends_with('z') || s[19..].contains(['+', '-']))
}

impl GameData {
    /// Loads and checks the files in `dir` (`guild.yaml` may be missing: defaults).
    pub fn load(dir: &Path) -> Result<GameData, DataError> {
        let goods_list: Vec<Goods> = read(dir, "goods.yaml")?;
        let shop: Vec<Listing> = read(dir, "shop.yaml")?;
        let levels: Vec<Level> = read(dir, "levels.yaml")?;
        let exp: ExpTable = read(dir, "exp.yaml")?;
        let notices: Vec<Notice> = read(dir, "notices.yaml")?;
        // Added after the first releases: a data folder from before has none.
        let guild: GuildRules =
            if dir.join("guild.yaml").exists() { read(dir, "guild.yaml")? } else { GuildRules::default() };
        if guild.create_cost < 0 || !(2..=500).contains(&guild.max_members) {
            return Err(DataError {
                file: "guild.yaml".into(),
                msg: "create_cost: 0 or more; max_members: 2 to 500".into(),
            });
        }
        let mut goods = HashMap::new();
        for (i, g) in goods_list.into_iter().enumerate() {
            let at =
                |msg: &str| DataError { file: "goods.yaml".into(), msg: format!("entry {i} (id {}): {msg}", g.id) };
            match (g.kind, &g.effect, g.slot) {
                (Kind::Consumable, None, _) => return Err(at("a consumable needs an effect")),
                (Kind::Consumable, Some(Effect::Heal(n) | Effect::Exp(n)), _) if *n <= 0 => {
                    return Err(at("an effect's amount must be positive"));
                }
                (Kind::Consumable, Some(Effect::Buff { attack, secs }), _) if *attack <= 0 || *secs <= 0 => {
                    return Err(at("a buff needs positive attack and secs"));
                }
                (Kind::Equipment, _, None) => return Err(at("equipment needs a slot")),
                (Kind::Equipment | Kind::Material, Some(_), _) => return Err(at("only consumables have an effect")),
                _ => {}
            }
            if g.attack < 0 || g.defence < 0 {
                return Err(at("attack and defence must not be negative"));
            }
            if g.name.trim().is_empty() {
                return Err(at("a name is needed"));
            }
            let id = g.id;
            if goods.insert(id, g).is_some() {
                return Err(DataError { file: "goods.yaml".into(), msg: format!("entry {i}: id {id} is used twice") });
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, l) in shop.iter().enumerate() {
            let at =
                |msg: String| DataError { file: "shop.yaml".into(), msg: format!("entry {i} (id {}): {msg}", l.id) };
            if !goods.contains_key(&l.goods_id) {
                return Err(at(format!("goods {} does not exist", l.goods_id)));
            }
            if l.price <= 0 {
                return Err(at(format!("price {} must be positive", l.price)));
            }
            if !seen.insert(l.id) {
                return Err(at("the id is used twice".into()));
            }
        }
        seen.clear();
        for (i, l) in levels.iter().enumerate() {
            let at =
                |msg: String| DataError { file: "levels.yaml".into(), msg: format!("entry {i} (id {}): {msg}", l.id) };
            if l.enemies.is_empty() {
                return Err(at("a level needs enemies".into()));
            }
            if let Some(e) = l.enemies.iter().find(|e| e.hp <= 0 || e.attack < 0 || e.defence < 0) {
                return Err(at(format!("enemy {}: hp must be positive, attack and defence not negative", e.name)));
            }
            let r = &l.rewards;
            if r.coins < 0 || r.exp < 0 || r.score < 0 {
                return Err(at("rewards must not be negative".into()));
            }
            if let Some(it) = r.items.iter().find(|it| !goods.contains_key(&it.goods_id) || it.count <= 0) {
                return Err(at(format!("reward goods {} does not exist or its count is not positive", it.goods_id)));
            }
            if !seen.insert(l.id) {
                return Err(at("the id is used twice".into()));
            }
        }
        if exp.next.is_empty() || exp.next.iter().any(|n| *n <= 0) {
            return Err(DataError { file: "exp.yaml".into(), msg: "next: a list of positive amounts".into() });
        }
        if exp.start.max_hp <= 0 || exp.start.coins < 0 {
            return Err(DataError {
                file: "exp.yaml".into(),
                msg: "start: max_hp positive, coins not negative".into(),
            });
        }
        seen.clear();
        for (i, n) in notices.iter().enumerate() {
            if !seen.insert(n.id) {
                return Err(DataError {
                    file: "notices.yaml".into(),
                    msg: format!("entry {i}: id {} is used twice", n.id),
                });
            }
            let bad = |s: &str| !is_rfc3339(s) || rsgame_kit::time::parse_rfc3339(s).is_none();
            if bad(&n.start) || n.end.as_deref().is_some_and(bad) {
                return Err(DataError {
                    file: "notices.yaml".into(),
                    msg: format!("entry {i} (id {}): start and end are RFC 3339 times", n.id),
                });
            }
        }
        Ok(GameData { goods, shop, levels, exp, notices, guild })
    }

    /// The player level reached with `exp` total experience.
    pub fn level_for(&self, exp: i64) -> i64 {
        let mut level = 1;
        let mut need = 0;
        for n in &self.exp.next {
            need += n;
            if exp < need {
                break;
            }
            level += 1;
        }
        level
    }

    /// The total experience at which `level` begins, and at which the next one does (0 when
    /// `level` is the top).
    pub fn level_span(&self, level: i64) -> (i64, i64) {
        let steps = usize::try_from(level.saturating_sub(1)).unwrap_or(0);
        let from: i64 = self.exp.next.iter().take(steps).sum();
        let to = self.exp.next.get(steps).map_or(0, |n| from + n);
        (from, to)
    }

    /// A level by id.
    pub fn level(&self, id: i64) -> Option<&Level> {
        self.levels.iter().find(|l| l.id == id)
    }
}

/// The current game data, swapped whole on reload.
#[derive(Clone)]
pub struct DataStore {
    current: Arc<RwLock<Arc<GameData>>>,
    dir: PathBuf,
}

/// What the files hold now, hashed: an edit is seen even when it keeps the size and lands in
/// the same timestamp tick. (The files are small; reading them every few seconds is nothing.)
fn stamp(dir: &Path) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in FILES {
        std::fs::read(dir.join(f)).ok().hash(&mut h);
    }
    h.finish()
}

/// The sample data shipped in `services/game/sample`, built into the binary so a fresh
/// machine has a playable world without copying files.
const SAMPLE: [(&str, &str); 6] = [
    ("goods.yaml", include_str!("../sample/goods.yaml")),
    ("shop.yaml", include_str!("../sample/shop.yaml")),
    ("levels.yaml", include_str!("../sample/levels.yaml")),
    ("exp.yaml", include_str!("../sample/exp.yaml")),
    ("notices.yaml", include_str!("../sample/notices.yaml")),
    ("guild.yaml", include_str!("../sample/guild.yaml")),
];

impl DataStore {
    /// The folder the files are in (world.yaml, the world's data, is there too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `dir`; when it does not exist yet, first writes the built-in sample data there
    /// (a fresh machine gets the demo's data, editable in place). Start-up fails when the
    /// data is bad.
    pub fn open_or_seed(dir: impl Into<PathBuf>) -> Result<DataStore, DataError> {
        let dir = dir.into();
        if !dir.exists() {
            Self::seed(&dir)?;
        }
        DataStore::open(dir)
    }

    /// Writes the sample into a private folder beside `dir`, then renames it into place, so
    /// several processes starting at once on one machine never read a half-written folder:
    /// the first rename wins and the others find the folder whole.
    fn seed(dir: &std::path::Path) -> Result<(), DataError> {
        let err = |e: std::io::Error| DataError { file: dir.display().to_string(), msg: e.to_string() };
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "game".into());
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = dir.with_file_name(format!(".{name}.seeding-{}-{seq}", std::process::id()));
        if let Some(parent) = staging.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::create_dir_all(&staging).map_err(err)?;
        for (file, text) in SAMPLE {
            std::fs::write(staging.join(file), text).map_err(err)?;
        }
        match std::fs::rename(&staging, dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "game data folder created with the sample data");
                Ok(())
            }
            // Another process put its copy there first.
            Err(_) if dir.exists() => {
                let _ = std::fs::remove_dir_all(&staging);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                Err(err(e))
            }
        }
    }

    /// Loads `dir`; start-up fails when the data is bad.
    pub fn open(dir: impl Into<PathBuf>) -> Result<DataStore, DataError> {
        let dir = dir.into();
        let data = GameData::load(&dir)?;
        Ok(DataStore { current: Arc::new(RwLock::new(Arc::new(data))), dir })
    }

    /// The data now. Hold the `Arc` for a whole request, so one request sees one version.
    pub fn get(&self) -> Arc<GameData> {
        self.current.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Loads the folder again: a good set replaces the current one; a bad one is returned as
    /// an error and changes nothing.
    pub fn reload(&self) -> Result<(), DataError> {
        let data = GameData::load(&self.dir)?;
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(data),
            Err(p) => *p.into_inner() = Arc::new(data),
        }
        Ok(())
    }

    /// The text of one data file as the folder holds it now (empty for a missing
    /// `guild.yaml`).
    pub fn read_file(&self, file: &str) -> Result<String, DataError> {
        let file = Self::known(file)?;
        match std::fs::read_to_string(self.dir.join(file)) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == "guild.yaml" => Ok(String::new()),
            Err(e) => Err(DataError { file: file.to_owned(), msg: e.to_string() }),
        }
    }

    fn known(file: &str) -> Result<&'static str, DataError> {
        FILES.iter().copied().find(|f| *f == file).ok_or_else(|| DataError {
            file: file.to_owned(),
            msg: format!("not a game data file: one of {}", FILES.join(", ")),
        })
    }

    /// Checks `text` as the new `file` together with the other files as they are now; the
    /// data it would make, or the error naming the file and entry. Changes nothing.
    pub fn check_file(&self, file: &str, text: &str) -> Result<GameData, DataError> {
        let file = Self::known(file)?;
        if text.len() > MAX_FILE {
            return Err(DataError { file: file.to_owned(), msg: format!("larger than {MAX_FILE} bytes") });
        }
        let err = |e: std::io::Error| DataError { file: file.to_owned(), msg: e.to_string() };
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "game".into());
        let staging = self.dir.with_file_name(format!(".{name}.checking-{}-{seq}", std::process::id()));
        let checked = (|| {
            std::fs::create_dir_all(&staging).map_err(err)?;
            for f in FILES.iter().filter(|f| **f != file) {
                if self.dir.join(f).exists() {
                    std::fs::copy(self.dir.join(f), staging.join(f)).map_err(err)?;
                }
            }
            std::fs::write(staging.join(file), text).map_err(err)?;
            GameData::load(&staging)
        })();
        let _ = std::fs::remove_dir_all(&staging);
        checked
    }

    /// Replaces `file` with `text` when the whole set with it is valid, and reloads: this
    /// process serves it at once, others watching the same folder within `reload_secs`. The
    /// file is written beside and renamed into place, so no reader sees half of it.
    pub fn replace_file(&self, file: &str, text: &str) -> Result<(), DataError> {
        let file = Self::known(file)?;
        self.check_file(file, text)?;
        let err = |e: std::io::Error| DataError { file: file.to_owned(), msg: e.to_string() };
        let tmp = self.dir.join(format!(".{file}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, self.dir.join(file)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
        self.reload()
    }

    /// Checks the files every `every` and reloads when one changed, until `stop` fires.
    pub fn watch(&self, every: Duration, stop: rsgame_kit::Shutdown) {
        let me = self.clone();
        // Taken now, not when the task first runs: a change made right after this call counts.
        let mut last = stamp(&me.dir);
        tokio::spawn(async move {
            let stopped = stop.triggered();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = stamp(&me.dir);
                if now == last {
                    continue;
                }
                last = now;
                match me.reload() {
                    Ok(()) => {
                        tracing::info!(dir = %me.dir.display(), "game data reloaded");
                        metrics::counter!(crate::metrics::DATA_RELOADS, "result" => "ok").increment(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "game data not reloaded; the previous data stays");
                        metrics::counter!(crate::metrics::DATA_RELOADS, "result" => "refused").increment(1);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample")
    }

    fn copy(dir: &Path) {
        for f in FILES {
            std::fs::copy(sample().join(f), dir.join(f)).expect("copy");
        }
    }

    #[test]
    fn processes_seeding_one_folder_at_once_all_read_it_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data").join("game");
        // Threads stand in for processes: each writes its own staging folder and races to
        // rename it into place.
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || DataStore::open_or_seed(&dir).map(|d| d.get().goods.len()))
            })
            .collect();
        for h in handles {
            let goods = h.join().expect("thread").expect("seeded or found whole");
            assert!(goods > 0);
        }
        let left: Vec<_> =
            std::fs::read_dir(tmp.path().join("data")).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, ["game"], "no staging folder is left behind");
    }

    #[test]
    fn the_shipped_data_loads() {
        let d = GameData::load(&sample()).expect("the sample data is valid");
        assert!(d.goods.len() >= 8 && !d.shop.is_empty() && d.levels.len() >= 3);
        assert_eq!(d.level_for(0), 1);
        assert_eq!(d.level_for(100), 2);
        assert_eq!(d.level_for(279), 2);
        assert_eq!(d.level_for(280), 3);
        assert_eq!(d.level_for(i64::MAX / 2), d.exp.next.len() as i64 + 1, "capped at the top level");
        assert_eq!(d.level_span(1), (0, 100));
        assert_eq!(d.level_span(3), (280, 580));
        let top = d.exp.next.len() as i64 + 1;
        assert_eq!(d.level_span(top), (d.exp.next.iter().sum(), 0), "no next level at the top");
    }

    #[test]
    fn a_file_is_replaced_only_when_the_whole_set_with_it_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy(dir.path());
        let store = DataStore::open(dir.path()).expect("open");
        let shop = store.read_file("shop.yaml").expect("read");
        let bad = shop.replace("goods_id: 2, price: 35", "goods_id: 99, price: 35");
        let e = store.replace_file("shop.yaml", &bad).expect_err("dangling goods");
        assert!(e.file == "shop.yaml" && e.msg.contains("goods 99"), "{e}");
        assert_eq!(store.read_file("shop.yaml").expect("read"), shop, "the file is unchanged");
        assert!(store.check_file("rsgame.yaml", "x").is_err(), "only the game data files");
        assert!(store.check_file("../x.yaml", "x").is_err());
        let cheaper = shop.replace("goods_id: 2, price: 35", "goods_id: 2, price: 30");
        store.replace_file("shop.yaml", &cheaper).expect("a good file");
        assert_eq!(store.get().shop.iter().find(|l| l.goods_id == 2).map(|l| l.price), Some(30), "reloaded");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), FILES.len(), "no staging or temporary file left: {left:?}");
    }

    #[test]
    fn errors_name_the_file_and_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy(dir.path());
        let shop = std::fs::read_to_string(dir.path().join("shop.yaml")).expect("read");
        std::fs::write(dir.path().join("shop.yaml"), shop.replace("goods_id: 2, price: 35", "goods_id: 99, price: 35"))
            .expect("write");
        let e = GameData::load(dir.path()).expect_err("dangling goods");
        assert_eq!(e.file, "shop.yaml");
        assert!(e.msg.contains("entry 1 (id 2)") && e.msg.contains("goods 99"), "{e}");

        copy(dir.path());
        std::fs::write(dir.path().join("shop.yaml"), shop.replace("price: 10", "price: -10")).expect("write");
        assert!(GameData::load(dir.path()).expect_err("negative").msg.contains("price -10"));

        copy(dir.path());
        let goods = std::fs::read_to_string(dir.path().join("goods.yaml")).expect("read");
        std::fs::write(dir.path().join("goods.yaml"), goods.replace("heal: 50", "teleport: 50")).expect("write");
        let e = GameData::load(dir.path()).expect_err("unknown effect");
        assert_eq!(e.file, "goods.yaml");
        assert!(e.msg.contains("teleport"), "{e}");
    }

    #[tokio::test]
    async fn hot_reload_takes_good_files_and_keeps_the_data_on_bad_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy(dir.path());
        let store = DataStore::open(dir.path()).expect("open");
        let stop = rsgame_kit::Shutdown::new();
        store.watch(Duration::from_millis(50), stop.clone());
        let shop = std::fs::read_to_string(dir.path().join("shop.yaml")).expect("read");

        std::fs::write(dir.path().join("shop.yaml"), shop.replace("price: 10", "price: 12")).expect("write");
        let mut seen = false;
        for _ in 0..100 {
            if store.get().shop[0].price == 12 {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen, "a good change is picked up without a restart");

        std::fs::write(dir.path().join("shop.yaml"), "- { id: 1, goods_id: 404, price: 1 }\n").expect("write");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(store.get().shop[0].price, 12, "a bad file keeps the previous data");
        assert!(store.reload().is_err());
        stop.trigger();
    }
}
