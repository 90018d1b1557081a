//! A log file that rotates by time (daily, hourly) or by size and keeps the newest N files.
//!
//! tracing-appender rotates by time only and names the live file by date; operators (and
//! go-game's file mode) expect a stable `rsgame.log` to tail, with rotated files beside it,
//! so rotation is ours. The writer is wrapped in tracing-appender's non-blocking worker, so
//! this file's I/O never runs on a request or game thread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Rotation;
use crate::time::civil_from_days;

/// A rotating log file: `<dir>/<prefix>.log`, rotated to `<prefix>.log.<period>` (time) or
/// `<prefix>.log.<n>` (size, 1 newest).
pub struct RollingFile {
    dir: PathBuf,
    prefix: String,
    rotation: Rotation,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
    /// The period (`2026-11-26` or `2026-11-26-13`) the live file belongs to.
    period: String,
    now: fn() -> SystemTime,
}

impl RollingFile {
    /// Opens (creating the folder and file) the live log file.
    pub fn open(dir: &Path, prefix: &str, rotation: Rotation, max_bytes: u64, keep: usize) -> io::Result<Self> {
        Self::open_with_clock(dir, prefix, rotation, max_bytes, keep, SystemTime::now)
    }

    fn open_with_clock(
        dir: &Path,
        prefix: &str,
        rotation: Rotation,
        max_bytes: u64,
        keep: usize,
        now: fn() -> SystemTime,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let live = dir.join(format!("{prefix}.log"));
        let (written, modified) = match fs::metadata(&live) {
            Ok(m) => (m.len(), m.modified().unwrap_or_else(|_| now())),
            Err(_) => (0, now()),
        };
        let file = OpenOptions::new().create(true).append(true).open(&live)?;
        let mut me = RollingFile {
            dir: dir.to_path_buf(),
            prefix: prefix.to_owned(),
            rotation,
            max_bytes: max_bytes.max(1),
            keep: keep.max(1),
            file,
            written,
            // A file left by an earlier run belongs to the period it was last written in.
            period: period_of(rotation, modified),
            now,
        };
        if me.period != period_of(rotation, now()) || me.due_by_size(0) {
            me.rotate()?;
        }
        Ok(me)
    }

    fn live_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.prefix))
    }

    fn due_by_size(&self, incoming: usize) -> bool {
        self.rotation == Rotation::Size && self.written > 0 && self.written + incoming as u64 > self.max_bytes
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let live = self.live_path();
        let base = format!("{}.log", self.prefix);
        match self.rotation {
            Rotation::Never => return Ok(()),
            Rotation::Size => {
                // Shift .1 → .2 … so .1 is always the newest; the oldest beyond `keep` goes.
                let _ = fs::remove_file(self.dir.join(format!("{base}.{}", self.keep)));
                for n in (1..self.keep).rev() {
                    let from = self.dir.join(format!("{base}.{n}"));
                    if from.exists() {
                        fs::rename(&from, self.dir.join(format!("{base}.{}", n + 1)))?;
                    }
                }
                if live.exists() {
                    fs::rename(&live, self.dir.join(format!("{base}.1")))?;
                }
            }
            Rotation::Daily | Rotation::Hourly => {
                if live.exists() && self.written > 0 {
                    fs::rename(&live, self.dir.join(format!("{base}.{}", self.period)))?;
                }
                self.prune_dated(&base)?;
            }
        }
        self.file = OpenOptions::new().create(true).append(true).open(&live)?;
        self.written = 0;
        self.period = period_of(self.rotation, (self.now)());
        Ok(())
    }

    /// Deletes the oldest dated files beyond `keep`. Dates sort as text.
    fn prune_dated(&self, base: &str) -> io::Result<()> {
        let prefix = format!("{base}.");
        let mut dated: Vec<String> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()) && rest.contains('-'))
            })
            .collect();
        dated.sort();
        while dated.len() > self.keep {
            let oldest = dated.remove(0);
            fs::remove_file(self.dir.join(oldest))?;
        }
        Ok(())
    }
}

impl Write for RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let due_by_time = matches!(self.rotation, Rotation::Daily | Rotation::Hourly)
            && period_of(self.rotation, (self.now)()) != self.period;
        if due_by_time || self.due_by_size(buf.len()) {
            self.rotate()?;
        }
        // The non-blocking worker hands over one whole event per call: writing it whole
        // keeps every line in one file.
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The period label a time falls in: `YYYY-MM-DD` (daily), `YYYY-MM-DD-HH` (hourly), or
/// empty (size, never). UTC, like the log timestamps.
fn period_of(rotation: Rotation, t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    match rotation {
        Rotation::Daily => format!("{y:04}-{m:02}-{d:02}"),
        Rotation::Hourly => format!("{y:04}-{m:02}-{d:02}-{:02}", (secs % 86_400) / 3600),
        Rotation::Size | Rotation::Never => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).expect("dir").filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        v.sort();
        v
    }

    #[test]
    fn periods() {
        let t = UNIX_EPOCH + Duration::from_secs(20_418 * 86_400 + 13 * 3600 + 5);
        assert_eq!(period_of(Rotation::Hourly, t), "2025-11-26-13");
    }

    #[test]
    fn size_rotation_keeps_n_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = RollingFile::open(dir.path(), "app", Rotation::Size, 100, 2).expect("open");
        for i in 0..10 {
            f.write_all(format!("line {i:02} {}\n", "x".repeat(40)).as_bytes()).expect("write");
        }
        f.flush().expect("flush");
        assert_eq!(names(dir.path()), ["app.log", "app.log.1", "app.log.2"]);
        let live = fs::read_to_string(dir.path().join("app.log")).expect("read");
        assert!(live.contains("line 09"), "newest line is in the live file: {live}");
        let newest_rotated = fs::read_to_string(dir.path().join("app.log.1")).expect("read");
        assert!(newest_rotated.contains("line 07"), "{newest_rotated}");
        for name in names(dir.path()) {
            let len = fs::metadata(dir.path().join(&name)).expect("meta").len();
            assert!(len <= 100, "{name} is {len} bytes");
        }
    }

    static CLOCK: AtomicU64 = AtomicU64::new(0);
    fn fake_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(CLOCK.load(Ordering::SeqCst))
    }

    #[test]
    fn daily_rotation_names_files_by_date_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day = 86_400;
        CLOCK.store(20_418 * day, Ordering::SeqCst);
        let mut f =
            RollingFile::open_with_clock(dir.path(), "app", Rotation::Daily, 1 << 20, 2, fake_now).expect("open");
        for d in 0..4 {
            CLOCK.store((20_418 + d) * day + 10, Ordering::SeqCst);
            f.write_all(format!("day {d}\n").as_bytes()).expect("write");
        }
        f.flush().expect("flush");
        assert_eq!(names(dir.path()), ["app.log", "app.log.2025-11-27", "app.log.2025-11-28"]);
        assert_eq!(fs::read_to_string(dir.path().join("app.log")).expect("read"), "day 3\n");
        assert_eq!(fs::read_to_string(dir.path().join("app.log.2025-11-28")).expect("read"), "day 2\n");
    }
}
