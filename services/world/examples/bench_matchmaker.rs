//! Matchmaker benchmark (not a test): 1v1 by rating within 100, on the in-process queue and,
//! when `RSGAME_TEST_REDIS_URL` is set, on the Redis queue every game node shares. The same
//! pass the game node runs (`matchmaker::run_pass`: read the queue, match, take the matches
//! out and keep their records in one step), on a real clock, a pass every interval.
//!
//! Two scenarios per queue, the tickets queued by a thread of their own (so a pass's CPU is
//! its own) and stamped with the moment they were queued:
//! - burst: `N` tickets queued as fast as the queue takes them while passes run;
//! - steady: `N` tickets arriving evenly over `ARRIVAL` seconds.
//!
//! Ratings are normal (mean 1500, sd 300, a fixed seed), so a few tickets at the tails find
//! nobody within 100: they are counted as unmatched. Prints one JSON line per run: time to
//! match (queued → taken in a pass) p50/p99, and the pass's time (wall, and this process's
//! CPU) p50/p99/max, with the number of tickets the largest pass read.
//!
//! `cargo run --release -p rsgame-world --example bench_matchmaker -- [N] [INTERVAL_MS] [ARRIVAL]`
//! (defaults 10000, 500, 10)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rsgame_world::matchmaker::queue::{LocalQueue, Queue, RedisQueue};
use rsgame_world::matchmaker::{Member, Mode, RoomKind, Ticket, run_pass, window};

/// CPU time of this thread so far (the passes' runtime runs on this one thread).
fn cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given, which lives for the call.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if ok { Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32) } else { Duration::ZERO }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

/// A fixed-seed normal rating (xorshift and Box-Muller).
struct Ratings(u64);

impl Ratings {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
        1500.0 + 300.0 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn duel() -> HashMap<String, Mode> {
    let m = Mode {
        name: "duel".into(),
        room: RoomKind::Lockstep,
        scene: None,
        min_count: 2,
        max_count: 2,
        count_multiple: 1,
        max_party: 1,
        timeout_secs: 3600,
        fill_secs: 0,
        seat_secs: 30,
        widen: None,
    };
    [(m.name.clone(), m)].into()
}

fn ticket(modes: &HashMap<String, Mode>, user: i64, rating: f64, now: i64) -> Ticket {
    let req = window("duel", "rating", rating, 100.0);
    Ticket::new(format!("t{user}"), &req, modes, vec![Member { user, nickname: format!("p{user}") }], now)
        .expect("ticket")
}

struct Run {
    waits: Vec<f64>,
    wall: Vec<f64>,
    cpu: Vec<f64>,
    largest: usize,
    matched: usize,
}

/// Which queue, as each thread opens its own handle to it.
#[derive(Clone)]
enum Which {
    Local(Arc<LocalQueue>),
    Redis { url: String, prefix: String },
}

impl Which {
    async fn open(&self) -> Arc<dyn Queue> {
        match self {
            Which::Local(q) => q.clone(),
            Which::Redis { url, prefix } => {
                let cache = rsgame_store::Cache::redis(url, prefix).await.expect("redis");
                Arc::new(RedisQueue::new(&cache).expect("redis queue"))
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Which::Local(_) => "local",
            Which::Redis { .. } => "redis",
        }
    }
}

/// Queues `n` tickets on a thread of its own (so the passes' CPU is theirs alone): all at
/// once, or evenly over `arrival`, each stamped with the moment it was queued.
fn arrivals(which: Which, n: usize, arrival: Duration, added: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let q = which.open().await;
            let modes = duel();
            let mut ratings = Ratings(0x9E37_79B9_7F4A_7C15);
            let start = Instant::now();
            let mut queued = 0;
            while queued < n {
                let due = if arrival.is_zero() {
                    n
                } else {
                    ((start.elapsed().as_secs_f64() / arrival.as_secs_f64()) * n as f64).min(n as f64) as usize
                };
                while queued < due {
                    let t = ticket(&modes, queued as i64 + 1, ratings.next(), rsgame_kit::time::unix_ms());
                    q.add(&t).await.expect("queued");
                    queued += 1;
                    added.store(queued, Ordering::Release);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    })
}

async fn passes(which: &Which, n: usize, interval: Duration, arrival: Duration) -> Run {
    let q = which.open().await;
    let modes = duel();
    let added = Arc::new(AtomicUsize::new(0));
    let adder = arrivals(which.clone(), n, arrival, added.clone());
    let place = || ("bench".to_owned(), String::new());
    let mut idle = 0;
    let mut run = Run { waits: Vec::new(), wall: Vec::new(), cpu: Vec::new(), largest: 0, matched: 0 };
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let all_in = added.load(Ordering::Acquire) == n;
        let (w0, c0) = (Instant::now(), cpu());
        let out = run_pass(q.as_ref(), &modes, rsgame_kit::time::unix_ms(), &place).await.expect("pass");
        run.wall.push(w0.elapsed().as_secs_f64() * 1000.0);
        run.cpu.push((cpu() - c0).as_secs_f64() * 1000.0);
        run.largest = run.largest.max(out.queued);
        run.matched += out.formed.iter().map(|m| m.players().count()).sum::<usize>();
        run.waits.extend(out.waits.iter().map(|(_, w)| w * 1000.0));
        idle = if out.formed.is_empty() && all_in { idle + 1 } else { 0 };
        if idle >= 2 {
            adder.join().expect("arrivals");
            return run;
        }
    }
}

async fn bench(which: &Which, n: usize, interval: Duration, arrival: Duration) {
    let scenario = if arrival.is_zero() { "burst" } else { "steady" };
    let mut r = passes(which, n, interval, arrival).await;
    let q = which.open().await;
    let rest = q.all().await.unwrap_or_default();
    // Leave the queue empty for the next run.
    for t in &rest {
        let _ = q.remove(&t.id, t.players[0].user).await;
    }
    println!(
        "{{\"queue\":\"{}\",\"scenario\":\"{scenario}\",\"tickets\":{n},\"interval_ms\":{},\"matched\":{},\"unmatched\":{},\"passes\":{},\"wait_p50_ms\":{:.0},\"wait_p99_ms\":{:.0},\"pass_wall_p50_ms\":{:.2},\"pass_wall_p99_ms\":{:.2},\"pass_wall_max_ms\":{:.2},\"pass_cpu_p50_ms\":{:.2},\"pass_cpu_max_ms\":{:.2},\"largest_pass_tickets\":{}}}",
        which.label(),
        interval.as_millis(),
        r.matched,
        rest.len(),
        r.wall.len(),
        pct(&mut r.waits, 0.5),
        pct(&mut r.waits, 0.99),
        pct(&mut r.wall, 0.5),
        pct(&mut r.wall, 0.99),
        pct(&mut r.wall, 1.0),
        pct(&mut r.cpu, 0.5),
        pct(&mut r.cpu, 1.0),
        r.largest,
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(10_000) as usize;
    let interval = Duration::from_millis(args.get(1).copied().unwrap_or(500));
    let arrival = Duration::from_secs(args.get(2).copied().unwrap_or(10));
    let local = Which::Local(Arc::new(LocalQueue::default()));
    bench(&local, n, interval, Duration::ZERO).await;
    bench(&local, n, interval, arrival).await;
    if let Ok(url) = std::env::var("RSGAME_TEST_REDIS_URL") {
        let prefix = format!("mmbench{}:", std::process::id());
        let redis = Which::Redis { url: url.clone(), prefix: prefix.clone() };
        bench(&redis, n, interval, Duration::ZERO).await;
        bench(&redis, n, interval, arrival).await;
        if let Ok(cache) = rsgame_store::Cache::redis(&url, &prefix).await {
            let _ = cache.delete_prefix("").await;
        }
    }
}
