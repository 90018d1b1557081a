//! The dashboard, drawn from rsgame's own numbers (no Grafana needed): this process's
//! metrics sampled every 10 s for the last hour — players online and per scene, connections,
//! rooms, REST and game-message rates and server errors, tick times, the database pool — and
//! logins and new accounts per minute from the account log, which every process writes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsgame_kit::Result;
use rsgame_kit::time::unix_ms;
use sea_query::{Expr, ExprTrait as _, Query};
use serde::{Deserialize, Serialize};

use crate::Console;

/// Where the process's metrics come from: the Prometheus text a scrape would get.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// How often a sample is taken, and how many are kept (an hour).
const EVERY: Duration = Duration::from_secs(10);
const KEEP: usize = 360;

/// One sample of this process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Unix ms.
    pub at: i64,
    /// Players logged in to this game node.
    pub online: f64,
    /// Game connections open (TCP, WebSocket, KCP).
    pub connections: f64,
    /// Rooms open (scenes, rooms, lockstep rooms).
    pub rooms: f64,
    /// REST requests per second since the sample before.
    pub http_per_sec: f64,
    /// REST answers with a 5xx status per second.
    pub http_errors_per_sec: f64,
    /// Game messages received per second.
    pub frames_in_per_sec: f64,
    /// The slowest scene's 99th percentile tick, milliseconds.
    pub tick_p99_ms: f64,
    /// REST requests' 99th percentile latency since the sample before, milliseconds (the
    /// upper bound of its histogram bucket).
    pub http_p99_ms: f64,
    /// Game messages' 99th percentile handling time since the sample before, milliseconds.
    pub handler_p99_ms: f64,
    /// Database connections in use.
    pub db_in_use: f64,
}

/// Logins and new accounts in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Minute {
    /// The minute's start, unix ms.
    pub at: i64,
    /// Logins.
    pub logins: i64,
    /// New accounts.
    pub registrations: i64,
}

/// What the dashboard page shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardView {
    /// Samples, oldest first (empty when this process exports no metrics).
    pub samples: Vec<Sample>,
    /// Players per scene now (scene id → players).
    pub scenes: BTreeMap<String, f64>,
    /// The last 60 minutes of the account log, oldest first.
    pub minutes: Vec<Minute>,
    /// Every live game node now, with its players per scene and room (the cluster's view;
    /// `samples` and `scenes` are this process's).
    pub nodes: Vec<rsgame_world::node::servers::NodeStatus>,
    /// The database, the cache and the bus, as this process reaches them now.
    pub health: Vec<Health>,
}

/// Whether a service answers.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `database`, `cache` or `bus`.
    pub name: String,
    /// Which kind (`sqlite`, `postgres`, `redis`, `nats`…).
    pub backend: String,
    /// It answered.
    pub ok: bool,
    /// How long the answer took, milliseconds.
    pub ms: f64,
    /// Why not, when it did not.
    pub error: String,
}

/// The longest a health probe waits.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Times one probe.
async fn probe<E: std::fmt::Display>(
    name: &str,
    backend: &str,
    f: impl std::future::Future<Output = std::result::Result<(), E>>,
) -> Health {
    let start = std::time::Instant::now();
    let (ok, error) = match tokio::time::timeout(PROBE_WAIT, f).await {
        Ok(Ok(())) => (true, String::new()),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, format!("no answer within {} s", PROBE_WAIT.as_secs())),
    };
    Health { name: name.into(), backend: backend.into(), ok, ms: start.elapsed().as_secs_f64() * 1000.0, error }
}

/// A series' total over its label sets, and the label sets' values by one label.
struct Series {
    total: f64,
    max: f64,
    by: BTreeMap<String, f64>,
}

/// Reads `name`'s lines of the Prometheus text: the sum, the largest, and the values by
/// `label` (when given). Counters and gauges only (`name` exactly, not `_bucket` lines).
fn series(text: &str, name: &str, label: Option<&str>, only: impl Fn(&str) -> bool) -> Series {
    let mut s = Series { total: 0.0, max: 0.0, by: BTreeMap::new() };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue, // another series with this prefix (`_bucket`, `_sum`…)
            },
        };
        if !only(labels) {
            continue;
        }
        let Ok(v) = value.trim().split(' ').next().unwrap_or("").parse::<f64>() else { continue };
        s.total += v;
        s.max = s.max.max(v);
        if let Some(key) = label.and_then(|k| label_value(labels, k)) {
            *s.by.entry(key).or_default() += v;
        }
    }
    s
}

fn label_value(labels: &str, key: &str) -> Option<String> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The counters a rate is computed from.
#[derive(Clone, Default)]
struct Totals {
    at: i64,
    http: f64,
    http_errors: f64,
    frames_in: f64,
    /// REST and game-message latency histograms: cumulative counts by upper bound (`le`).
    http_buckets: BTreeMap<String, f64>,
    handler_buckets: BTreeMap<String, f64>,
}

/// The 99th percentile, in milliseconds, of what a histogram counted between two readings
/// of its cumulative buckets (`le` → count): the upper bound of the bucket it falls in (the
/// largest finite one past the last). 0 when nothing was counted.
fn p99_ms(now: &BTreeMap<String, f64>, before: Option<&BTreeMap<String, f64>>) -> f64 {
    let mut counts: Vec<(f64, f64)> = now
        .iter()
        .filter_map(|(le, n)| {
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, n - before.and_then(|b| b.get(le)).copied().unwrap_or(0.0)))
        })
        .collect();
    counts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = counts.last().map_or(0.0, |c| c.1);
    if total <= 0.0 {
        return 0.0;
    }
    let largest = counts.iter().filter(|c| c.0.is_finite()).map(|c| c.0).fold(0.0, f64::max);
    counts.iter().find(|c| c.1 >= total * 0.99).map_or(0.0, |c| if c.0.is_finite() { c.0 } else { largest }) * 1000.0
}

/// The samples of one process.
#[derive(Default)]
pub struct Samples {
    ring: Mutex<(VecDeque<Sample>, Option<Totals>)>,
}

fn any(_: &str) -> bool {
    true
}

impl Samples {
    /// Takes one sample of `text` at `at` (unix ms), kept for the hour.
    pub fn take(&self, text: &str, at: i64) {
        let Ok(mut ring) = self.ring.lock() else { return };
        let (s, t) = Self::compute(text, at, ring.1.take());
        ring.0.push_back(s);
        while ring.0.len() > KEEP {
            ring.0.pop_front();
        }
        ring.1 = Some(t);
    }

    /// The kept samples and one of `text` now (rates since the last kept one), not kept: the
    /// page's latest numbers are current, not up to 10 s old.
    fn with_now(&self, text: &str, at: i64) -> Vec<Sample> {
        let Ok(ring) = self.ring.lock() else { return Vec::new() };
        let mut all: Vec<Sample> = ring.0.iter().cloned().collect();
        all.push(Self::compute(text, at, ring.1.clone()).0);
        all
    }

    fn compute(text: &str, at: i64, before: Option<Totals>) -> (Sample, Totals) {
        let t = Totals {
            at,
            http: series(text, "http_requests_total", None, any).total,
            http_errors: series(text, "http_requests_total", None, |l| {
                label_value(l, "status").is_some_and(|s| s.starts_with('5'))
            })
            .total,
            frames_in: series(text, "gate_frames_in_total", None, any).total,
            http_buckets: series(text, "http_request_duration_seconds_bucket", Some("le"), any).by,
            handler_buckets: series(text, "gate_handler_duration_seconds_bucket", Some("le"), any).by,
        };
        let rate = |now: f64, before: f64, secs: f64| if secs > 0.0 { ((now - before) / secs).max(0.0) } else { 0.0 };
        let http_p99_ms = p99_ms(&t.http_buckets, before.as_ref().map(|b| &b.http_buckets));
        let handler_p99_ms = p99_ms(&t.handler_buckets, before.as_ref().map(|b| &b.handler_buckets));
        let (http, errors, frames) = match before {
            Some(b) => {
                let secs = (t.at - b.at) as f64 / 1000.0;
                (
                    rate(t.http, b.http, secs),
                    rate(t.http_errors, b.http_errors, secs),
                    rate(t.frames_in, b.frames_in, secs),
                )
            }
            None => (0.0, 0.0, 0.0),
        };
        let s = Sample {
            at,
            online: series(text, "world_online_players", None, any).total,
            connections: series(text, "gate_connections", None, any).total,
            rooms: series(text, "world_rooms", None, any).total,
            http_per_sec: http,
            http_errors_per_sec: errors,
            frames_in_per_sec: frames,
            tick_p99_ms: series(text, "world_tick_p99_seconds", None, any).max * 1000.0,
            http_p99_ms,
            handler_p99_ms,
            db_in_use: series(text, "db_pool_connections_in_use", None, any).total,
        };
        (s, t)
    }
}

impl Console {
    /// Samples `source` (this process's metrics) every 10 s until `stop`, for the dashboard.
    pub fn with_metrics(mut self, source: Source, stop: rsgame_kit::Shutdown) -> Console {
        let samples = Arc::new(Samples::default());
        self.metrics = Some((source.clone(), samples.clone()));
        tokio::spawn(async move {
            let stopped = stop.triggered();
            tokio::pin!(stopped);
            loop {
                let text = {
                    let source = source.clone();
                    // Rendering walks every series: off the runtime's threads.
                    tokio::task::spawn_blocking(move || source()).await.unwrap_or_default()
                };
                samples.take(&text, unix_ms());
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(EVERY) => {}
                }
            }
        });
        self
    }

    /// The dashboard now.
    pub async fn dashboard(&self) -> Result<DashboardView> {
        let mut view = DashboardView::default();
        if let Some((source, samples)) = &self.metrics {
            let source = source.clone();
            let text = tokio::task::spawn_blocking(move || source()).await.unwrap_or_default();
            view.samples = samples.with_now(&text, unix_ms());
            view.scenes = series(&text, "world_players", Some("scene"), any).by;
        }
        view.minutes = self.minutes().await?;
        view.nodes = self.nodes().await.unwrap_or_default();
        view.health.push(probe("database", self.db().backend().as_str(), self.db().ping()).await);
        view.health.push(probe("cache", self.cache.backend_name(), self.cache.ping()).await);
        if let Some(bus) = self.game.events() {
            view.health.push(probe("bus", bus.backend_name(), bus.ping()).await);
        }
        Ok(view)
    }

    /// Logins and new accounts per minute over the last hour, from `mem_logs`.
    async fn minutes(&self) -> Result<Vec<Minute>> {
        let now = unix_ms();
        let first = (now / 60_000 - 59) * 60_000;
        let q = Query::select()
            .columns(["type", "created_at"])
            .from("mem_logs")
            .and_where(Expr::col("created_at").gte(first))
            .and_where(Expr::col("type").is_in([1, 3]))
            .limit(100_000)
            .to_owned();
        let mut minutes: Vec<Minute> =
            (0..60).map(|i| Minute { at: first + i * 60_000, ..Minute::default() }).collect();
        for r in self.db().fetch_all(&q).await? {
            let i = ((r.i64("created_at")? - first) / 60_000).clamp(0, 59) as usize;
            match r.i32("type")? {
                1 => minutes[i].logins += 1,
                _ => minutes[i].registrations += 1,
            }
        }
        Ok(minutes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE world_online_players gauge
world_online_players 12
world_players{scene=\"1000\"} 9
world_players{scene=\"1002\"} 3
gate_connections{transport=\"tcp\"} 5
gate_connections{transport=\"ws\"} 8
world_tick_p99_seconds{scene=\"1000\"} 0.004
world_tick_p99_seconds{scene=\"1002\"} 0.012
http_requests_total{method=\"POST\",route=\"/a\",status=\"200\"} 100
http_requests_total{method=\"POST\",route=\"/a\",status=\"503\"} 4
http_request_duration_seconds_bucket{le=\"0.1\"} 99
gate_frames_in_total 1000
";

    #[test]
    fn samples_read_totals_maxima_labels_and_rates() {
        let s = Samples::default();
        s.take(TEXT, 10_000);
        let later = TEXT
            .replace("status=\"200\"} 100", "status=\"200\"} 150")
            .replace("gate_frames_in_total 1000", "gate_frames_in_total 3000")
            .replace("status=\"503\"} 4", "status=\"503\"} 14");
        let now = s.with_now(&later, 20_000);
        assert_eq!(now.len(), 2, "the kept sample and one now");
        s.take(&later, 20_000);
        let all = s.with_now(&later, 30_000);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].http_per_sec, 0.0, "nothing more since the last kept one");
        let b = &all[1];
        assert_eq!((b.online, b.connections), (12.0, 13.0));
        assert!((b.tick_p99_ms - 12.0).abs() < 1e-9, "the slowest scene: {}", b.tick_p99_ms);
        assert!((b.http_per_sec - 6.0).abs() < 1e-9, "60 more in 10 s: {}", b.http_per_sec);
        assert!((b.http_errors_per_sec - 1.0).abs() < 1e-9, "{}", b.http_errors_per_sec);
        assert!((b.frames_in_per_sec - 200.0).abs() < 1e-9);
        let scenes = series(TEXT, "world_players", Some("scene"), any).by;
        assert_eq!(scenes.get("1000"), Some(&9.0));
        assert_eq!(series(TEXT, "http_request_duration_seconds", None, any).total, 0.0, "buckets are not the series");
    }

    #[test]
    fn the_p99_is_the_bucket_where_the_window_s_99th_percentile_falls() {
        let read = |pairs: &[(&str, f64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<BTreeMap<_, _>>();
        let before = read(&[("0.005", 100.0), ("0.05", 100.0), ("0.5", 100.0), ("+Inf", 100.0)]);
        // 1000 more: 980 under 5 ms, 15 under 50 ms, 5 under 500 ms: the 990th is under 50 ms.
        let now = read(&[("0.005", 1080.0), ("0.05", 1095.0), ("0.5", 1100.0), ("+Inf", 1100.0)]);
        assert!((p99_ms(&now, Some(&before)) - 50.0).abs() < 1e-9, "{}", p99_ms(&now, Some(&before)));
        assert_eq!(p99_ms(&before, Some(&before)), 0.0, "nothing in the window");
        let slow = read(&[("0.005", 0.0), ("0.5", 0.0), ("+Inf", 10.0)]);
        assert!((p99_ms(&slow, None) - 500.0).abs() < 1e-9, "past the last bound: the largest finite one");
    }
}
