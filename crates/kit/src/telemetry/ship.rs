//! Log shipping: JSON log lines sent in batches to sinks (Kafka, Elasticsearch) by background
//! senders that never slow the code that logs.
//!
//! A line's path: a `tracing` event → the JSON layer from [`Shipper::layer`] → [`Shipper`] (its
//! `MakeWriter`) → one bounded queue per sink, offered with `try_send` → the sink's sender,
//! which batches, sends, and retries with exponential backoff. A sink that is down costs the
//! server at most `queue` lines of memory per sink; lines beyond that are dropped and counted
//! (`rsgame_log_ship_dropped_total{sink}`), never waited for.
//!
//! The senders run on a thread and runtime of their own ([`ShipWorkers::start_thread`]), so
//! they keep delivering while the server's runtime winds down, and a synchronous
//! [`ShipGuard::shutdown`] can wait for the last flush without blocking that runtime. Whatever
//! is logged on that thread (the senders' warnings, the HTTP or Kafka client's own logs) is
//! never shipped, and neither is anything under this module's target or a sink's
//! [`LogSink::log_targets`]: a failing sink must not feed its failures back into itself.

pub mod elasticsearch;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogShipConfig;

/// Lines delivered to a sink, by `sink`.
pub const SENT: &str = "rsgame_log_ship_sent_total";
/// Lines lost: the queue was full, the sink refused them for good, or shutdown ran out of
/// time; by `sink`.
pub const DROPPED: &str = "rsgame_log_ship_dropped_total";
/// Sends that failed in whole or in part, by `sink`.
pub const ERRORS: &str = "rsgame_log_ship_errors_total";

/// This module's log target: never shipped.
const OWN_TARGET: &str = "rsgame_kit::telemetry::ship";

thread_local! {
    /// Set on the senders' thread: nothing logged there is shipped.
    static ON_SHIP_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// One formatted log line (a JSON object, no trailing newline), shared by every sink's queue.
pub type Line = Arc<str>;

/// What [`LogSink::send`] returns: a boxed future, so sinks can be trait objects.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// Where shipped lines go: Kafka, Elasticsearch, or a test's fake.
pub trait LogSink: Send + Sync + 'static {
    /// Short name, the `sink` label of the metrics: `kafka`, `elasticsearch`.
    fn name(&self) -> &str;

    /// Delivers `lines`, in order when the sink keeps one. Called by one sender at a time,
    /// never concurrently; the sender adds its own timeout around it.
    fn send<'a>(&'a self, lines: &'a [Line]) -> SendFuture<'a>;

    /// Log targets the sink's own code logs under (its client's warnings): excluded from
    /// shipping, as this module is, so a failing sink does not ship its own failures.
    fn log_targets(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Why a send did not deliver everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Nothing is known to be stored: the whole batch is retried.
    Failed(String),
    /// Some lines were stored. The lines at `retry` (indexes into the batch) failed in a way
    /// worth retrying (overload, a server error); `rejected` more were refused for good (a
    /// mapping error, too large) and are dropped. The rest were stored.
    Partial {
        /// The first failure, for the log.
        reason: String,
        /// Indexes of the lines to send again.
        retry: Vec<usize>,
        /// How many lines were refused for good.
        rejected: usize,
    },
}

impl From<String> for SinkError {
    fn from(reason: String) -> Self {
        SinkError::Failed(reason)
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Failed(r) => f.write_str(r),
            SinkError::Partial { reason, retry, rejected } => {
                write!(f, "{reason} ({} lines to retry, {rejected} refused)", retry.len())
            }
        }
    }
}

/// How the senders batch, retry and give up.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// Most lines held per sink, queued or in the sender's hands.
    pub queue: usize,
    /// Most lines per send.
    pub batch: usize,
    /// Longest the first line of a batch waits for the batch to fill.
    pub flush: Duration,
    /// First wait after a failed send; doubles on each failure in a row.
    pub backoff_min: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
    /// Longest one send may take before it counts as failed.
    pub send_timeout: Duration,
    /// Time each sender gets at shutdown to deliver what it holds.
    pub shutdown_deadline: Duration,
    /// Shortest interval between two warnings about the same failing sink.
    pub warn_every: Duration,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            queue: 10_000,
            batch: 500,
            flush: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            // Above the Kafka sink's message timeout plus its topic check, so the sink
            // reports its own error rather than being cut off.
            send_timeout: Duration::from_secs(15),
            shutdown_deadline: Duration::from_secs(5),
            warn_every: Duration::from_secs(30),
        }
    }
}

impl ShipOptions {
    /// The options from `log.ship.*`; an error names the key.
    pub fn from_config(cfg: &LogShipConfig) -> Result<ShipOptions, String> {
        if cfg.queue == 0 {
            return Err("log.ship.queue: must be at least 1".into());
        }
        if cfg.batch == 0 {
            return Err("log.ship.batch: must be at least 1".into());
        }
        Ok(ShipOptions {
            queue: cfg.queue,
            // A batch can never hold more than the queue allows in memory.
            batch: cfg.batch.min(cfg.queue),
            flush: Duration::from_millis(cfg.flush_ms),
            ..ShipOptions::default()
        })
    }
}

/// One sink's counters, as [`Shipper::stats`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's name.
    pub sink: String,
    /// Lines delivered.
    pub sent: u64,
    /// Lines lost (full queue, refused, out of time at shutdown).
    pub dropped: u64,
    /// Failed sends.
    pub errors: u64,
    /// Lines in memory now, queued or being sent.
    pub held: usize,
}

/// One sink's queue and counters, shared by the logging side and the sender.
struct Queue {
    name: String,
    tx: mpsc::Sender<Line>,
    cap: usize,
    /// Lines in the channel plus lines in the sender's hands. The bound on memory is on this
    /// count, not on the channel alone, so a sender retrying a batch does not get `batch`
    /// lines on top of a full channel.
    held: AtomicUsize,
    sent: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

impl Queue {
    /// Queues `line` unless the sink already holds `cap` lines. Never waits, never allocates.
    fn offer(&self, line: Line) {
        let reserved =
            self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| (h < self.cap).then_some(h + 1)).is_ok();
        if !reserved {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Full cannot happen (the channel holds `cap` and `held` counts it); closed means the
        // sender has stopped at shutdown.
        if self.tx.try_send(line).is_err() {
            self.held.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` lines left memory: delivered, refused or given up.
    fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    fn stats(&self) -> SinkStats {
        SinkStats {
            sink: self.name.clone(),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Acquire),
        }
    }

    /// Copies the counters to the metrics recorder. The logging path only touches atomics;
    /// the sender publishes them, so the recorder's lookups never run where lines are logged.
    fn publish(&self) {
        let s = self.stats();
        metrics::counter!(SENT, "sink" => s.sink.clone()).absolute(s.sent);
        metrics::counter!(DROPPED, "sink" => s.sink.clone()).absolute(s.dropped);
        metrics::counter!(ERRORS, "sink" => s.sink).absolute(s.errors);
    }
}

/// The logging side of shipping: a `MakeWriter` for a JSON fmt layer that offers each line
/// to every sink's queue. Cheap to clone.
#[derive(Clone)]
pub struct Shipper {
    queues: Arc<[Arc<Queue>]>,
    /// Targets never shipped: this module and the sinks' own.
    excluded: Arc<[String]>,
}

impl Shipper {
    /// A shipper for `sinks` and their senders, which do nothing until started
    /// ([`ShipWorkers::start_thread`] or [`ShipWorkers::run`]); lines offered before that
    /// wait in the queues.
    pub fn new(sinks: Vec<Arc<dyn LogSink>>, opts: ShipOptions) -> (Shipper, ShipWorkers) {
        let cap = opts.queue.max(1);
        let mut queues = Vec::with_capacity(sinks.len());
        let mut workers = Vec::with_capacity(sinks.len());
        let mut excluded = vec![OWN_TARGET.to_owned()];
        for sink in sinks {
            // The channel allocates in blocks as it fills, so an idle sink's queue costs
            // little whatever `cap` is.
            let (tx, rx) = mpsc::channel(cap);
            let queue = Arc::new(Queue {
                name: sink.name().to_owned(),
                tx,
                cap,
                held: AtomicUsize::new(0),
                sent: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            });
            excluded.extend(sink.log_targets());
            queues.push(queue.clone());
            workers.push(Sender { sink, queue, rx, opts: opts.clone(), health: Health::default() });
        }
        (Shipper { queues: queues.into(), excluded: excluded.into() }, ShipWorkers { senders: workers, opts })
    }

    /// Offers one formatted line to every sink. Never blocks: a sink whose queue is full
    /// drops it and counts it.
    pub fn push(&self, line: &str) {
        if self.queues.is_empty() || ON_SHIP_THREAD.get() {
            return;
        }
        let line: Line = Arc::from(line);
        for q in self.queues.iter() {
            q.offer(line.clone());
        }
    }

    fn push_bytes(&self, bytes: &[u8]) {
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.push(&String::from_utf8_lossy(line));
        }
    }

    /// Each sink's counters.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.queues.iter().map(|q| q.stats()).collect()
    }

    /// The layer that formats events as JSON lines (as the log files' JSON: the current
    /// span's fields on every line) for this shipper. `level` is its own filter (see
    /// [`crate::telemetry::filter_directives`]); events must also pass the subscriber's
    /// global filter. This module's target and the sinks' own are left out.
    pub fn layer<S>(&self, level: EnvFilter) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let excluded = self.excluded.clone();
        // A pure function of the callsite, so tracing caches its answer per callsite.
        let not_own = tracing_subscriber::filter::filter_fn(move |meta| {
            !excluded.iter().any(|t| within_target(meta.target(), t))
        });
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_ansi(false)
            .with_writer(self.clone())
            .with_filter(level.and(not_own))
    }
}

/// Whether `target` is `prefix` or a module under it.
fn within_target(target: &str, prefix: &str) -> bool {
    target.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Shipper {
    type Writer = ShipWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        ShipWriter { shipper: self, partial: Vec::new() }
    }
}

/// Writes one formatted event to a [`Shipper`]; made per event by the fmt layer.
pub struct ShipWriter<'a> {
    shipper: &'a Shipper,
    /// Bytes of a line written in pieces. The fmt layer writes each event whole, so this
    /// stays empty (and unallocated) on the usual path.
    partial: Vec<u8>,
}

impl io::Write for ShipWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.partial.is_empty() && buf.ends_with(b"\n") {
            self.shipper.push_bytes(buf);
        } else {
            self.partial.extend_from_slice(buf);
            if let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') {
                let rest = self.partial.split_off(end + 1);
                self.shipper.push_bytes(&self.partial);
                self.partial = rest;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ShipWriter<'_> {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.shipper.push_bytes(&self.partial);
        }
    }
}

/// The senders of a [`Shipper`], one per sink, not yet running.
pub struct ShipWorkers {
    senders: Vec<Sender>,
    opts: ShipOptions,
}

impl ShipWorkers {
    /// Runs every sender until `stop` is cancelled, then lets each deliver what it holds
    /// within the shutdown deadline. For tests and for callers with their own runtime; a
    /// server uses [`ShipWorkers::start_thread`].
    pub async fn run(self, stop: CancellationToken) {
        futures_util::future::join_all(self.senders.into_iter().map(|s| s.run(stop.clone()))).await;
    }

    /// Starts the senders on a thread of their own (`log-ship`, with a single-threaded
    /// runtime); the guard stops them and waits for their last flush.
    pub fn start_thread(self) -> io::Result<ShipGuard> {
        let stop = CancellationToken::new();
        // A little over the senders' own deadline: they stop themselves at it.
        let wait = self.opts.shutdown_deadline + Duration::from_secs(1);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (done_tx, done) = std::sync::mpsc::channel();
        let s = stop.clone();
        std::thread::Builder::new().name("log-ship".into()).spawn(move || {
            ON_SHIP_THREAD.set(true);
            rt.block_on(self.run(s));
            let _ = done_tx.send(());
        })?;
        Ok(ShipGuard { stop, done, wait })
    }
}

/// Keeps the senders' thread running; [`ShipGuard::shutdown`] (or dropping the guard) stops
/// them and waits, at most the shutdown deadline and a second, for their last flush.
pub struct ShipGuard {
    stop: CancellationToken,
    done: std::sync::mpsc::Receiver<()>,
    wait: Duration,
}

impl ShipGuard {
    /// Stops the senders after they deliver what they hold (or their deadline passes).
    /// Blocks the calling thread until then.
    pub fn shutdown(self) {
        // Drop does the work, so a guard dropped without this call flushes too.
    }
}

impl Drop for ShipGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        // The thread is not joined: should a sink ignore every timeout, exit anyway.
        let _ = self.done.recv_timeout(self.wait);
    }
}

/// How far a delivery may go on retrying.
#[derive(Clone, Copy)]
enum Until<'a> {
    /// Until the server shuts down (then the shutdown flush takes over).
    Stopped(&'a CancellationToken),
    /// Until this instant (the shutdown flush).
    Deadline(Instant),
}

/// A sender's view of its sink's health, so warnings are few.
#[derive(Default)]
struct Health {
    /// Since when sends have failed, while they do.
    failing_since: Option<Instant>,
    last_warn: Option<Instant>,
    /// Failures not yet reported in a warning.
    unreported: u64,
}

/// One sink's sender: drains its queue in batches, sends, retries.
struct Sender {
    sink: Arc<dyn LogSink>,
    queue: Arc<Queue>,
    rx: mpsc::Receiver<Line>,
    opts: ShipOptions,
    health: Health,
}

impl Sender {
    async fn run(mut self, stop: CancellationToken) {
        let mut batch: Vec<Line> = Vec::new();
        loop {
            if batch.is_empty() {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    line = self.rx.recv() => match line {
                        Some(l) => batch.push(l),
                        None => break,
                    },
                }
            }
            self.fill(&mut batch, &stop).await;
            if !self.deliver(&mut batch, Until::Stopped(&stop)).await {
                break;
            }
        }
        self.finish(batch).await;
    }

    /// Adds lines to `batch` until it is full or the flush interval since now has passed.
    async fn fill(&mut self, batch: &mut Vec<Line>, stop: &CancellationToken) {
        let flush_at = Instant::now() + self.opts.flush;
        while batch.len() < self.opts.batch {
            match self.rx.try_recv() {
                Ok(l) => {
                    batch.push(l);
                    continue;
                }
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {}
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(flush_at) => return,
                line = self.rx.recv() => match line {
                    Some(l) => batch.push(l),
                    None => return,
                },
            }
        }
    }

    /// Sends `batch` until all of it is delivered or refused (true), retrying with backoff;
    /// false when `until` comes first, with what is left still in `batch`.
    async fn deliver(&mut self, batch: &mut Vec<Line>, until: Until<'_>) -> bool {
        let mut backoff = self.opts.backoff_min;
        loop {
            let timeout = match until {
                Until::Stopped(_) => self.opts.send_timeout,
                Until::Deadline(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.opts.send_timeout.min(left)
                }
            };
            let result = match tokio::time::timeout(timeout, self.sink.send(batch)).await {
                Ok(r) => r,
                Err(_) => Err(SinkError::Failed(format!("no answer within {} ms", timeout.as_millis()))),
            };
            match result {
                Ok(()) => {
                    self.settle(batch.len(), 0, batch.len());
                    batch.clear();
                    self.recovered();
                    self.queue.publish();
                    return true;
                }
                Err(SinkError::Failed(reason)) => self.failed(&reason, true),
                Err(SinkError::Partial { reason, mut retry, rejected }) => {
                    retry.retain(|&i| i < batch.len());
                    retry.sort_unstable();
                    retry.dedup();
                    let done = batch.len() - retry.len();
                    self.settle(done.saturating_sub(rejected), rejected.min(done), done);
                    *batch = retry.iter().map(|&i| batch[i].clone()).collect();
                    self.failed(&reason, !batch.is_empty());
                    if batch.is_empty() {
                        self.queue.publish();
                        return true;
                    }
                }
            }
            self.queue.publish();
            let wake = Instant::now() + backoff;
            match until {
                Until::Stopped(stop) => {
                    if !self.pause(wake, Some(stop)).await {
                        return false;
                    }
                }
                Until::Deadline(d) => {
                    if wake >= d {
                        return false;
                    }
                    self.pause(wake, None).await;
                }
            }
            backoff = (backoff * 2).min(self.opts.backoff_max);
        }
    }

    /// Counts `sent` delivered and `dropped` refused lines, `released` of them leaving memory.
    fn settle(&self, sent: usize, dropped: usize, released: usize) {
        self.queue.sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.queue.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        self.queue.release(released);
    }

    /// Waits until `wake`, publishing the counters every second meanwhile (lines dropped
    /// while the sink is down should show before it is back). False if `stop` came first.
    async fn pause(&self, wake: Instant, stop: Option<&CancellationToken>) -> bool {
        loop {
            let now = Instant::now();
            if now >= wake {
                return true;
            }
            let slice = (wake - now).min(Duration::from_secs(1));
            match stop {
                Some(stop) => {
                    tokio::select! {
                        _ = stop.cancelled() => return false,
                        _ = tokio::time::sleep(slice) => {}
                    }
                }
                None => tokio::time::sleep(slice).await,
            }
            self.queue.publish();
        }
    }

    /// Counts a failed send and warns, at most once per `warn_every`. `down`: nothing or part
    /// of the batch got through and it is being retried (rather than refused lines only).
    fn failed(&mut self, reason: &str, down: bool) {
        self.queue.errors.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if down {
            self.health.failing_since.get_or_insert(now);
        }
        self.health.unreported += 1;
        if self.health.last_warn.is_some_and(|t| now.duration_since(t) < self.opts.warn_every) {
            return;
        }
        let s = self.queue.stats();
        tracing::warn!(
            sink = %s.sink,
            error = %reason,
            failures = self.health.unreported,
            held = s.held,
            dropped_total = s.dropped,
            "log shipping failed; retrying with backoff (next warning in {} s at the earliest)",
            self.opts.warn_every.as_secs()
        );
        self.health.last_warn = Some(now);
        self.health.unreported = 0;
    }

    fn recovered(&mut self) {
        if let Some(since) = self.health.failing_since.take() {
            let s = self.queue.stats();
            tracing::info!(
                sink = %s.sink,
                down_ms = since.elapsed().as_millis() as u64,
                dropped_total = s.dropped,
                "log shipping recovered"
            );
        }
    }

    /// At shutdown: no new lines; deliver what is held within the deadline, count the rest.
    async fn finish(&mut self, mut batch: Vec<Line>) {
        let deadline = Instant::now() + self.opts.shutdown_deadline;
        self.rx.close();
        loop {
            while batch.len() < self.opts.batch {
                match self.rx.try_recv() {
                    Ok(l) => batch.push(l),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            if !self.deliver(&mut batch, Until::Deadline(deadline)).await {
                let mut lost = batch.len();
                while self.rx.try_recv().is_ok() {
                    lost += 1;
                }
                self.settle(0, lost, lost);
                tracing::warn!(sink = %self.queue.name, lost, "log shipping stopped with lines undelivered");
                break;
            }
        }
        self.queue.publish();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// A sink that records every call and answers from a script (then succeeds).
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<(Instant, Vec<String>)>>,
        script: Mutex<VecDeque<Result<(), SinkError>>>,
        /// When set, every call fails (a sink that stays down).
        down: std::sync::atomic::AtomicBool,
    }

    impl Fake {
        fn scripted(script: Vec<Result<(), SinkError>>) -> Arc<Fake> {
            Arc::new(Fake { script: Mutex::new(script.into()), ..Fake::default() })
        }
        fn calls(&self) -> Vec<(Instant, Vec<String>)> {
            self.calls.lock().expect("lock").clone()
        }
        fn batches(&self) -> Vec<Vec<String>> {
            self.calls().into_iter().map(|(_, b)| b).collect()
        }
    }

    impl LogSink for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn send<'a>(&'a self, lines: &'a [Line]) -> SendFuture<'a> {
            Box::pin(async move {
                self.calls.lock().expect("lock").push((Instant::now(), lines.iter().map(|l| l.to_string()).collect()));
                if self.down.load(Ordering::Relaxed) {
                    return Err(SinkError::Failed("down".into()));
                }
                self.script.lock().expect("lock").pop_front().unwrap_or(Ok(()))
            })
        }
    }

    fn opts(queue: usize, batch: usize, flush_ms: u64) -> ShipOptions {
        ShipOptions { queue, batch, flush: Duration::from_millis(flush_ms), ..ShipOptions::default() }
    }

    fn start(sink: Arc<Fake>, opts: ShipOptions) -> (Shipper, CancellationToken, tokio::task::JoinHandle<()>) {
        let (shipper, workers) = Shipper::new(vec![sink], opts);
        let stop = CancellationToken::new();
        let task = tokio::spawn(workers.run(stop.clone()));
        (shipper, stop, task)
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    /// Lets the sender run (the clock is paused: time moves only when every task waits).
    async fn settle_for(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn batches_by_size_then_by_time() {
        let sink = Fake::scripted(vec![]);
        let (shipper, stop, task) = start(sink.clone(), opts(100, 3, 1000));
        for l in lines(7) {
            shipper.push(&l);
        }
        settle_for(10).await;
        assert_eq!(sink.batches(), vec![lines(7)[0..3].to_vec(), lines(7)[3..6].to_vec()], "two full batches at once");
        settle_for(500).await;
        assert_eq!(sink.batches().len(), 2, "the seventh line waits for its batch to fill");
        settle_for(600).await;
        assert_eq!(sink.batches().last(), Some(&vec![lines(7)[6].clone()]), "sent once flush_ms passed");
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.errors, s.held), (7, 0, 0, 0));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_new_lines_and_counts_them() {
        let sink = Fake::scripted(vec![]);
        sink.down.store(true, Ordering::Relaxed);
        let (shipper, stop, task) = start(sink.clone(), opts(5, 2, 10));
        for l in lines(20) {
            shipper.push(&l);
        }
        settle_for(1000).await;
        let s = &shipper.stats()[0];
        assert_eq!(s.held, 5, "the queue bound counts the batch being retried too");
        assert_eq!(s.dropped, 15);
        assert!(s.errors >= 2, "{s:?}");
        // The oldest lines are the ones kept and retried.
        assert_eq!(sink.batches().last(), Some(&lines(2)));
        // The sink comes back (the sender is between retries): what was held goes out, in order.
        let failed_calls = sink.calls().len();
        sink.down.store(false, Ordering::Relaxed);
        settle_for(60_000).await;
        let delivered: Vec<String> = sink.batches().into_iter().skip(failed_calls).flatten().collect();
        assert_eq!(delivered, lines(5));
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.held), (5, 15, 0));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_then_delivers_the_held_lines() {
        let fail = || Err(SinkError::Failed("connection refused".into()));
        let sink = Fake::scripted(vec![fail(), fail(), fail(), fail()]);
        let (shipper, stop, task) = start(sink.clone(), opts(100, 10, 0));
        for l in lines(3) {
            shipper.push(&l);
        }
        settle_for(5000).await;
        let calls = sink.calls();
        assert_eq!(calls.len(), 5, "four failures, then success");
        let gaps: Vec<u128> = calls.windows(2).map(|w| (w[1].0 - w[0].0).as_millis()).collect();
        assert_eq!(gaps, vec![100, 200, 400, 800]);
        assert!(calls.iter().all(|(_, b)| b == &lines(3)), "the same lines each time");
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.errors, s.held), (3, 0, 4, 0));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped() {
        let sink = Fake::scripted(vec![]);
        sink.down.store(true, Ordering::Relaxed);
        let (shipper, stop, task) = start(sink.clone(), opts(10, 10, 0));
        shipper.push("x");
        settle_for(300_000).await;
        let calls = sink.calls();
        let gaps: Vec<u128> = calls.windows(2).map(|w| (w[1].0 - w[0].0).as_millis()).collect();
        assert_eq!(gaps.iter().max(), Some(&30_000), "{gaps:?}");
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn partial_failures_retry_only_what_is_worth_it() {
        let partial = SinkError::Partial { reason: "item errors".into(), retry: vec![2], rejected: 1 };
        let sink = Fake::scripted(vec![Err(partial)]);
        let (shipper, stop, task) = start(sink.clone(), opts(100, 4, 0));
        for l in lines(4) {
            shipper.push(&l);
        }
        settle_for(1000).await;
        assert_eq!(sink.batches(), vec![lines(4), vec![lines(4)[2].clone()]]);
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.errors, s.held), (3, 1, 1, 0));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_flushes_what_is_held() {
        let sink = Fake::scripted(vec![]);
        // A batch would wait an hour to fill: only the shutdown sends it.
        let (shipper, stop, task) = start(sink.clone(), opts(100, 50, 3_600_000));
        for l in lines(70) {
            shipper.push(&l);
        }
        settle_for(10).await;
        assert_eq!(sink.batches().len(), 1, "one full batch; 20 lines wait");
        stop.cancel();
        task.await.expect("sender");
        assert_eq!(sink.batches().concat(), lines(70));
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.held), (70, 0, 0));
        // After shutdown new lines are dropped, not held.
        shipper.push("late");
        assert_eq!(shipper.stats()[0].dropped, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_up_at_its_deadline_and_counts_the_rest() {
        let sink = Fake::scripted(vec![]);
        sink.down.store(true, Ordering::Relaxed);
        let (shipper, stop, task) = start(sink.clone(), opts(100, 10, 0));
        for l in lines(25) {
            shipper.push(&l);
        }
        settle_for(10).await;
        let t0 = Instant::now();
        stop.cancel();
        task.await.expect("sender");
        assert!(t0.elapsed() <= ShipOptions::default().shutdown_deadline, "{:?}", t0.elapsed());
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.dropped, s.held), (0, 25, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_sink_times_out_and_is_retried() {
        struct Slow(AtomicUsize);
        impl LogSink for Slow {
            fn name(&self) -> &str {
                "slow"
            }
            fn send<'a>(&'a self, _: &'a [Line]) -> SendFuture<'a> {
                Box::pin(async move {
                    if self.0.fetch_add(1, Ordering::Relaxed) == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok(())
                })
            }
        }
        let sink = Arc::new(Slow(AtomicUsize::new(0)));
        let (shipper, workers) = Shipper::new(vec![sink.clone()], opts(10, 10, 0));
        let stop = CancellationToken::new();
        let task = tokio::spawn(workers.run(stop.clone()));
        shipper.push("x");
        settle_for(20_000).await;
        let s = &shipper.stats()[0];
        assert_eq!((s.sent, s.errors), (1, 1));
        stop.cancel();
        task.await.expect("sender");
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_ships_json_lines_but_not_its_own_logs() {
        let sink = Fake::scripted(vec![]);
        let (shipper, stop, task) = start(sink.clone(), opts(100, 100, 10));
        let level = EnvFilter::try_new("info").expect("filter");
        // Boxed in a Vec under a global filter, as telemetry::init builds its subscriber.
        let layers: Vec<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> =
            vec![Box::new(shipper.layer(level))];
        let subscriber = tracing_subscriber::registry().with(layers).with(EnvFilter::new("debug"));
        tracing::subscriber::with_default(subscriber, || {
            // Outside this module's target, which the layer leaves out.
            let span = tracing::info_span!(target: "game", "request", request_id = "r-1");
            let _e = span.enter();
            tracing::info!(target: "game", user = 7, "hello\nworld");
            tracing::debug!(target: "game", "below the shipped level (the console would take it)");
            tracing::trace!(target: "game", "below every level");
            tracing::warn!(target: "rsgame_kit::telemetry::ship", "the shipper's own warning");
            tracing::warn!(target: "rsgame_kit::telemetry::ship::elasticsearch", "its sink's warning");
            tracing::warn!(target: "rsgame_kit::telemetry::shipping_news", "a neighbour, shipped");
        });
        settle_for(100).await;
        let shipped: Vec<String> = sink.batches().concat();
        assert_eq!(shipped.len(), 2, "{shipped:?}");
        let v: serde_json::Value = serde_json::from_str(&shipped[0]).expect("json line");
        assert_eq!(v["fields"]["message"], "hello\nworld", "one event, one line: {v}");
        assert_eq!(v["fields"]["user"], 7);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "game");
        assert_eq!(v["span"]["request_id"], "r-1");
        assert!(shipped[1].contains("a neighbour"), "{shipped:?}");
        stop.cancel();
        task.await.expect("sender");
    }

    #[test]
    fn writer_splits_lines_written_in_pieces() {
        use std::io::Write as _;
        use tracing_subscriber::fmt::MakeWriter as _;
        let (shipper, workers) = Shipper::new(vec![Fake::scripted(vec![])], opts(10, 10, 0));
        {
            let mut w = shipper.make_writer();
            w.write_all(b"{\"a\":").expect("write");
            w.write_all(b"1}\n{\"b\"").expect("write");
            w.write_all(b":2}").expect("write");
        }
        let mut rx = workers.senders.into_iter().next().expect("one sender").rx;
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok()).map(|l| l.to_string()).collect();
        assert_eq!(got, vec!["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn the_senders_thread_ships_and_flushes_on_shutdown() {
        let sink = Fake::scripted(vec![]);
        let (shipper, workers) = Shipper::new(vec![sink.clone()], opts(100, 10, 3_600_000));
        let guard = workers.start_thread().expect("thread");
        for l in lines(15) {
            shipper.push(&l);
        }
        guard.shutdown();
        assert_eq!(sink.batches().concat(), lines(15));
    }

    #[test]
    fn options_from_config_name_the_key() {
        let mut cfg = LogShipConfig::default();
        let o = ShipOptions::from_config(&cfg).expect("defaults");
        assert_eq!((o.queue, o.batch, o.flush), (10_000, 500, Duration::from_secs(1)));
        cfg.batch = 50_000;
        assert_eq!(ShipOptions::from_config(&cfg).expect("clamped").batch, 10_000);
        cfg.queue = 0;
        assert!(ShipOptions::from_config(&cfg).expect_err("zero").starts_with("log.ship.queue"));
    }

    #[test]
    fn targets_match_by_module() {
        assert!(within_target("rsgame_kit::telemetry::ship", OWN_TARGET));
        assert!(within_target("rsgame_kit::telemetry::ship::elasticsearch", OWN_TARGET));
        assert!(!within_target("rsgame_kit::telemetry::shipping", OWN_TARGET));
        assert!(!within_target("rsgame_kit", OWN_TARGET));
    }
}
