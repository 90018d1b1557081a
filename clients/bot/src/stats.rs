//! Figures the load tools report: percentiles, a latency histogram many tasks fill at once,
//! and a server process's CPU time and memory.

use std::sync::atomic::{AtomicU64, Ordering};

/// The `p` quantile (0..=1) of sorted samples; 0 when there are none.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Latencies in fixed 20 µs buckets up to 10 s (slower ones land in the last bucket), with
/// the exact maximum beside: millions of samples a second from many tasks, each a relaxed
/// atomic add, in a fixed 4 MB whatever the run's length (a vector of every sample would
/// grow by hundreds of megabytes in a crowd).
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..Histogram::SPAN_US / Histogram::STEP_US).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// A bucket's width, µs.
    pub const STEP_US: u64 = 20;
    /// The range the buckets cover, µs.
    pub const SPAN_US: u64 = 10_000_000;

    /// Adds one sample of `us` microseconds.
    pub fn record(&self, us: u64) {
        let i = ((us / Self::STEP_US) as usize).min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// How many samples.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest sample, µs.
    pub fn max_us(&self) -> u64 {
        self.max_us.load(Ordering::Relaxed)
    }

    /// The `p` quantile (0..=1), µs, picked as [`percentile`] picks it: the upper edge of the
    /// bucket that holds it (at most [`Histogram::STEP_US`] over), never above the maximum (the
    /// maximum itself past the buckets' range); 0 when there are no samples.
    pub fn percentile_us(&self, p: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((n as f64 - 1.0) * p).round() as u64;
        let mut below = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            below += b.load(Ordering::Relaxed);
            if below > rank {
                // The last bucket holds everything slower than the range: its edge says nothing.
                if i + 1 == self.buckets.len() {
                    break;
                }
                return ((i as u64 + 1) * Self::STEP_US).min(self.max_us());
            }
        }
        self.max_us()
    }
}

/// utime + stime in seconds, and VmRSS in KiB, of `pid` (Linux `/proc`).
pub fn proc_stats(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some((cpu, rss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[], 0.5), 0);
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert!(proc_stats(std::process::id()).is_some_and(|(_, rss)| rss > 0));
    }

    #[test]
    fn histogram_quantiles_within_a_bucket() {
        let h = Histogram::default();
        assert_eq!((h.count(), h.percentile_us(0.5), h.max_us()), (0, 0, 0));
        // 1 ms … 100 ms, one sample each.
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.max_us(), 100_000);
        let p50 = h.percentile_us(0.5);
        assert!((51_000..=51_000 + Histogram::STEP_US).contains(&p50), "{p50}");
        let p99 = h.percentile_us(0.99);
        assert!((99_000..=99_000 + Histogram::STEP_US).contains(&p99), "{p99}");
        assert_eq!(h.percentile_us(1.0), 100_000);
        // Past the range: the last bucket, and the exact maximum.
        h.record(60_000_000);
        assert_eq!((h.max_us(), h.percentile_us(1.0)), (60_000_000, 60_000_000));
    }
}
