//! Game data files: a YAML or JSON file loaded into your type, checked, and hot-reloaded.
//!
//! Designers edit tables (monsters, drops, prices, quests) while the server runs. A
//! [`DataFile`] loads the file into `T`, runs your check on the whole value, and serves it as
//! an `Arc<T>` snapshot: a request holds one snapshot from start to end, so a reload never
//! changes a table under it. A reload swaps in the new value only when it parses and passes
//! the check; a bad edit is logged and counted, and the last good value stays.
//!
//! ```
//! use std::sync::Arc;
//! use rsgame_kit::data::DataFile;
//!
//! #[derive(serde::Deserialize)]
//! struct Monsters {
//!     monsters: Vec<Monster>,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Monster {
//!     name: String,
//!     hp: i64,
//! }
//!
//! fn check(m: &Monsters) -> Result<(), String> {
//!     match m.monsters.iter().find(|m| m.hp <= 0) {
//!         Some(bad) => Err(format!("{}: hp must be positive", bad.name)),
//!         None => Ok(()),
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("monsters.yaml");
//! std::fs::write(&path, "monsters:\n  - { name: Slime, hp: 60 }\n")?;
//! let data: Arc<DataFile<Monsters>> = DataFile::load(&path, check)?;
//! assert_eq!(data.get().monsters[0].hp, 60);
//!
//! std::fs::write(&path, "monsters:\n  - { name: Slime, hp: 0 }\n")?; // a bad edit
//! assert!(data.reload().is_err());
//! assert_eq!(data.get().monsters[0].hp, 60, "the last good table stays");
//! // In a server: data.watch(Duration::from_secs(2), shutdown.clone());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::shutdown::Shutdown;

/// Why a data file was not (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML or JSON for the type (the message names the field).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// The file parsed, and the check refused it.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The check's reason.
        message: String,
    },
}

/// A check of a whole loaded value: `Err(reason)` refuses it.
pub type Check<T> = fn(&T) -> Result<(), String>;

/// One data file, loaded into `T` and reloadable; see the [module docs](self).
pub struct DataFile<T> {
    path: PathBuf,
    check: Check<T>,
    current: RwLock<Arc<T>>,
    /// The bytes the current value came from, so an unchanged file is not parsed again.
    loaded_from: Mutex<Vec<u8>>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> DataFile<T> {
    /// Loads `path` (`.json` as JSON, anything else as YAML) and checks it; start-up should
    /// fail on an error, which names the file and what is wrong.
    pub fn load(path: impl AsRef<Path>, check: Check<T>) -> Result<Arc<DataFile<T>>, DataError> {
        let path = path.as_ref().to_path_buf();
        let bytes = read(&path)?;
        let value = parse(&path, &bytes, check)?;
        Ok(Arc::new(DataFile { path, check, current: RwLock::new(Arc::new(value)), loaded_from: Mutex::new(bytes) }))
    }

    /// The current value. Hold the `Arc` for a whole request: one request, one version.
    pub fn get(&self) -> Arc<T> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The file this value comes from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again: `Ok(true)` when it changed and the new value is now current,
    /// `Ok(false)` when it has not changed, an error (the current value kept) when the new
    /// content does not parse or fails the check.
    pub fn reload(&self) -> Result<bool, DataError> {
        let bytes = read(&self.path)?;
        let mut loaded_from = self.loaded_from.lock().unwrap_or_else(|p| p.into_inner());
        if *loaded_from == bytes {
            return Ok(false);
        }
        let value = parse(&self.path, &bytes, self.check)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
        *loaded_from = bytes;
        Ok(true)
    }

    /// Checks the file every `every` and reloads it when it changed, until `stop` fires. A
    /// bad edit is logged and counted in `data_reload_failures_total` (once per distinct
    /// error); the last good value stays.
    pub fn watch(self: &Arc<Self>, every: Duration, stop: Shutdown) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error = String::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.triggered() => return,
                }
                let file = me.path.display().to_string();
                match me.reload() {
                    Ok(true) => {
                        last_error.clear();
                        tracing::info!(file, "data file reloaded");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_error {
                            tracing::warn!(file, error = %text, "data file not reloaded: the last good version stays");
                            metrics::counter!(crate::telemetry::metrics::DATA_RELOAD_FAILURES).increment(1);
                            last_error = text;
                        }
                    }
                }
            }
        });
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Read { path: path.to_path_buf(), source })
}

fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8], check: Check<T>) -> Result<T, DataError> {
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let value: T = if json {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        serde_norway::from_slice(bytes).map_err(|e| e.to_string())
    }
    .map_err(|message| DataError::Parse { path: path.to_path_buf(), message })?;
    check(&value).map_err(|message| DataError::Invalid { path: path.to_path_buf(), message })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Prices {
        potion: i64,
    }

    fn positive(p: &Prices) -> Result<(), String> {
        if p.potion > 0 { Ok(()) } else { Err("potion: must be positive".into()) }
    }

    #[test]
    fn load_refuses_bad_files_naming_them() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("prices.yaml");
        assert!(matches!(DataFile::<Prices>::load(&path, positive), Err(DataError::Read { .. })));
        std::fs::write(&path, "potion: [1").expect("write");
        let e = DataFile::<Prices>::load(&path, positive).err().expect("syntax");
        assert!(matches!(e, DataError::Parse { .. }) && e.to_string().contains("prices.yaml"), "{e}");
        std::fs::write(&path, "potoin: 5\n").expect("write");
        assert!(matches!(DataFile::<Prices>::load(&path, positive), Err(DataError::Parse { .. })), "unknown key");
        std::fs::write(&path, "potion: -1\n").expect("write");
        let e = DataFile::<Prices>::load(&path, positive).err().expect("check");
        assert!(e.to_string().contains("must be positive"), "{e}");
        let json = dir.path().join("prices.json");
        std::fs::write(&json, r#"{"potion": 12}"#).expect("write");
        assert_eq!(DataFile::<Prices>::load(&json, positive).expect("json").get().potion, 12);
    }

    #[test]
    fn reload_swaps_good_edits_and_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("prices.yaml");
        std::fs::write(&path, "potion: 10\n").expect("write");
        let data = DataFile::<Prices>::load(&path, positive).expect("load");
        let held = data.get();
        assert!(!data.reload().expect("unchanged"));
        std::fs::write(&path, "potion: 15\n").expect("write");
        assert!(data.reload().expect("changed"));
        assert_eq!((held.potion, data.get().potion), (10, 15), "a held snapshot never changes");
        std::fs::write(&path, "potion: 0\n").expect("write");
        assert!(matches!(data.reload(), Err(DataError::Invalid { .. })));
        std::fs::remove_file(&path).expect("rm");
        assert!(matches!(data.reload(), Err(DataError::Read { .. })));
        assert_eq!(data.get().potion, 15);
    }

    #[tokio::test]
    async fn watch_picks_up_an_edit_and_stops_with_the_server() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("prices.yaml");
        std::fs::write(&path, "potion: 10\n").expect("write");
        let data = DataFile::<Prices>::load(&path, positive).expect("load");
        let stop = Shutdown::new();
        data.watch(Duration::from_millis(20), stop.clone());
        std::fs::write(&path, "potion: 11\n").expect("write");
        for _ in 0..100 {
            if data.get().potion == 11 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(data.get().potion, 11);
        stop.trigger();
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&path, "potion: 12\n").expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(data.get().potion, 11, "no reloads after shutdown");
    }
}
