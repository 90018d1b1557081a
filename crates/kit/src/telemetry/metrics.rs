//! Prometheus metrics: the recorder behind the `metrics` facade, HTTP request metrics, and
//! process metrics read from `/proc` at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by method, route and HTTP status.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Request latency in seconds, by method, route and HTTP status.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
/// Open HTTP connections.
pub const HTTP_CONNECTIONS_OPEN: &str = "http_connections_open";
/// HTTP connections refused, by reason.
pub const HTTP_CONNECTIONS_REFUSED: &str = "http_connections_refused_total";
/// Game data reloads that failed validation.
pub const DATA_RELOAD_FAILURES: &str = "data_reload_failures_total";
/// Requests cancelled at their deadline, by face (REST or rpc).
pub const GOVERNANCE_TIMEOUTS: &str = "governance_timeouts_total";
/// Requests refused by a rate limit, by face.
pub const GOVERNANCE_RATE_LIMITED: &str = "governance_rate_limited_total";
/// Requests shed under load, by face.
pub const GOVERNANCE_SHED: &str = "governance_shed_total";
/// Heap bytes in use (glibc).
pub const HEAP_IN_USE: &str = "process_heap_in_use_bytes";
/// Free heap bytes the allocator holds (glibc).
pub const HEAP_FREE: &str = "process_heap_free_bytes";
/// Times free heap memory was handed back to the system.
pub const MEMORY_RELEASED: &str = "process_memory_released_total";

/// What kind of series a metric is, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

impl Kind {
    /// `counter`, `gauge` or `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric a crate records. Each crate lists its own in a `METRICS` table next to their
/// names; the binary describes every table to the recorder at start (the HELP lines) and
/// prints them with `rsgame config metrics`, which is what the deployment's dashboards and
/// alerts are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Def {
    /// The series name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// What it measures, and by which labels.
    pub help: &'static str,
}

impl Def {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str) -> Def {
        Def { name, kind: Kind::Counter, help }
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, help: &'static str) -> Def {
        Def { name, kind: Kind::Gauge, help }
    }

    /// A histogram.
    pub const fn histogram(name: &'static str, help: &'static str) -> Def {
        Def { name, kind: Kind::Histogram, help }
    }
}

/// Describes metrics to the installed recorder, for their HELP lines. Without a recorder it
/// does nothing.
pub fn describe(defs: &[Def]) {
    for d in defs {
        match d.kind {
            Kind::Counter => metrics::describe_counter!(d.name, d.help),
            Kind::Gauge => metrics::describe_gauge!(d.name, d.help),
            Kind::Histogram => metrics::describe_histogram!(d.name, d.help),
        }
    }
}

const PROCESS_CPU: Def = Def::counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
const PROCESS_RSS: Def = Def::gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
const PROCESS_VSIZE: Def = Def::gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
const PROCESS_START: Def =
    Def::gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
const PROCESS_THREADS: Def = Def::gauge("process_threads", "Number of OS threads in the process.");
const PROCESS_OPEN_FDS: Def = Def::gauge("process_open_fds", "Number of open file descriptors.");
const PROCESS_MAX_FDS: Def = Def::gauge("process_max_fds", "Maximum number of open file descriptors.");

/// The metrics kit records: HTTP, governance, game data, memory, log shipping and the
/// standard `process_*` series.
pub const METRICS: &[Def] = &[
    Def::counter(HTTP_REQUESTS, "HTTP requests served, by method, route and status."),
    Def::histogram(HTTP_DURATION, "HTTP request latency, by method, route and status."),
    Def::gauge(HTTP_CONNECTIONS_OPEN, "Open HTTP connections."),
    Def::counter(HTTP_CONNECTIONS_REFUSED, "HTTP connections refused, by reason."),
    Def::counter(DATA_RELOAD_FAILURES, "Game data reloads refused because the new files did not validate."),
    Def::counter(GOVERNANCE_TIMEOUTS, "Requests cancelled at their deadline, by face (REST unless rpc)."),
    Def::counter(GOVERNANCE_RATE_LIMITED, "Requests refused by a per-client rate limit, by face."),
    Def::counter(GOVERNANCE_SHED, "Requests shed because the process was saturated, by face."),
    Def::gauge(HEAP_IN_USE, "Heap bytes in use."),
    Def::gauge(HEAP_FREE, "Free heap bytes the allocator holds."),
    Def::counter(MEMORY_RELEASED, "Times free heap memory was handed back to the system."),
    Def::counter(super::ship::SENT, "Log lines delivered to a log sink, by sink."),
    Def::counter(super::ship::DROPPED, "Log lines lost on the way to a log sink (queue full, refused), by sink."),
    Def::counter(super::ship::ERRORS, "Failed sends to a log sink, by sink."),
    PROCESS_CPU,
    PROCESS_RSS,
    PROCESS_VSIZE,
    PROCESS_START,
    PROCESS_THREADS,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
];

/// Latency buckets (seconds), from a fast cache hit to a slow database call.
const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// [`LATENCY_BUCKETS`] in nanoseconds (a test keeps the two equal).
const LATENCY_BUCKETS_NS: [u64; 12] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// Renders the process's metrics in the Prometheus text format.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// A recorder for the calling thread only, for tests: what code on this thread records
    /// (a current-thread runtime's tasks included) renders from the returned `Metrics`,
    /// apart from the process-wide recorder and from tests running on other threads. It
    /// lasts as long as the guard.
    pub fn for_this_thread() -> (Metrics, metrics::LocalRecorderGuard<'static>) {
        let recorder: &'static _ = Box::leak(Box::new(PrometheusBuilder::new().build_recorder()));
        let metrics = Metrics { handle: recorder.handle() };
        (metrics, metrics::set_default_local_recorder(recorder))
    }

    /// Installs the process-wide recorder. Only the first call in a process can succeed.
    pub fn install() -> Result<Metrics, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .map_err(|e| e.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        describe(METRICS);
        // The recorder keeps histograms as summaries of a window; upkeep trims it. Without
        // this the exporter relies on scrapes alone to drain old samples.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Metrics { handle })
    }

    /// The text a scrape receives: the recorder's metrics, the fast histograms, then process
    /// metrics.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        render_fast_histograms(&mut out);
        process_metrics(&mut out);
        out
    }
}

/// A Prometheus histogram with fixed latency buckets, recorded with three relaxed atomic adds
/// and no clock of its own — for per-message paths where the `metrics` recorder's
/// histogram (a lock-free bucket with epoch reclamation, plus an upkeep thread) showed in
/// profiles. Rendered with the other metrics at scrape time.
pub struct FastHistogram {
    labels: String,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

struct Family {
    name: &'static str,
    help: &'static str,
    series: Vec<Arc<FastHistogram>>,
}

fn families() -> &'static Mutex<Vec<Family>> {
    static F: OnceLock<Mutex<Vec<Family>>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(Vec::new()))
}

impl FastHistogram {
    /// Registers (or finds) the series `name{labels}`; `labels` as `("id", "1000")` pairs.
    pub fn register(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Arc<FastHistogram> {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "'"))).collect();
        let labels = labels.join(",");
        let Ok(mut fams) = families().lock() else {
            return Arc::new(FastHistogram::new(labels));
        };
        let fam = match fams.iter().position(|f| f.name == name) {
            Some(i) => &mut fams[i],
            None => {
                fams.push(Family { name, help, series: Vec::new() });
                let last = fams.len() - 1;
                &mut fams[last]
            }
        };
        if let Some(h) = fam.series.iter().find(|h| h.labels == labels) {
            return h.clone();
        }
        let h = Arc::new(FastHistogram::new(labels));
        fam.series.push(h.clone());
        h
    }

    fn new(labels: String) -> Self {
        FastHistogram {
            labels,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn record(&self, d: Duration) {
        self.record_ns(crate::time::nanos(d));
    }

    /// Records one observation in nanoseconds: integer comparisons against the bounds, no
    /// float conversion (this runs for every message a client sends).
    pub fn record_ns(&self, ns: u64) {
        if let Some(i) = LATENCY_BUCKETS_NS.iter().position(|b| ns <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let sep = if self.labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{}{sep}le=\"{le}\"}} {cumulative}", self.labels);
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{}{sep}le=\"+Inf\"}} {count}", self.labels);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if self.labels.is_empty() { String::new() } else { format!("{{{}}}", self.labels) };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

fn render_fast_histograms(out: &mut String) {
    let Ok(fams) = families().lock() else { return };
    for f in fams.iter() {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} histogram", f.name, f.help, f.name);
        for h in &f.series {
            h.render(f.name, out);
        }
    }
}

/// Appends the standard `process_*` metrics (as the Prometheus client libraries name them).
/// Read from `/proc/self`; elsewhere nothing is added.
fn process_metrics(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Field numbers from proc(5), minus 3 for pid, comm and the split.
    let ticks = clock_ticks();
    let cpu = (field(11) + field(12)) / ticks;
    let threads = field(17);
    let start_ticks = field(19);
    let vsize = field(20);
    let rss_pages = field(21);
    let page = 4096.0;
    let boot = boot_time().unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count().saturating_sub(1)).unwrap_or(0);
    let max_fds = max_open_files().unwrap_or(0.0);

    let mut emit = |d: Def, v: f64| {
        let (name, kind, help) = (d.name, d.kind.as_str(), d.help);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    emit(PROCESS_CPU, cpu);
    emit(PROCESS_RSS, rss_pages * page);
    emit(PROCESS_VSIZE, vsize);
    emit(PROCESS_START, boot + start_ticks / ticks);
    emit(PROCESS_THREADS, threads);
    emit(PROCESS_OPEN_FDS, open_fds as f64);
    emit(PROCESS_MAX_FDS, max_fds);
}

/// USER_HZ: 100 on every Linux platform rsgame targets (x86-64, arm64); reading it properly
/// needs libc's sysconf, which this crate avoids for one constant.
fn clock_ticks() -> f64 {
    100.0
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nanosecond_bounds_are_the_bucket_bounds() {
        for (secs, ns) in LATENCY_BUCKETS.iter().zip(LATENCY_BUCKETS_NS) {
            assert_eq!((secs * 1e9).round() as u64, ns);
        }
    }

    #[test]
    fn fast_histogram_renders_cumulative_buckets() {
        let h = FastHistogram::register("test_fast_seconds", "A test.", &[("id", "7")]);
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(10));
        assert!(Arc::ptr_eq(&h, &FastHistogram::register("test_fast_seconds", "A test.", &[("id", "7")])));
        let mut out = String::new();
        render_fast_histograms(&mut out);
        assert!(out.contains("# TYPE test_fast_seconds histogram"), "{out}");
        assert!(out.contains("test_fast_seconds_bucket{id=\"7\",le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("test_fast_seconds_bucket{id=\"7\",le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("test_fast_seconds_bucket{id=\"7\",le=\"2.5\"} 2"), "{out}");
        assert!(out.contains("test_fast_seconds_bucket{id=\"7\",le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("test_fast_seconds_count{id=\"7\"} 3"), "{out}");
    }

    #[test]
    fn process_metrics_are_well_formed() {
        let mut out = String::new();
        process_metrics(&mut out);
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("skipped: no /proc on this system");
            return;
        }
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
            let v: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("number");
            assert!(v >= 0.0, "{line}");
        }
        let rss: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("rss");
        assert!(rss > 1_000_000.0, "a test process holds more than 1 MB: {rss}");
        let start: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse().ok())
            .expect("start");
        assert!(start > 1.6e9, "start time is a recent unix time: {start}");
    }
}
