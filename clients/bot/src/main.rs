//! `rsgame-bench`: the gate's load generator. It sends zinx frames carrying a Ping message
//! (padded to `--payload` bytes with a field the server skips) and counts the replies.
//!
//! Modes:
//! - `pingpong`: C connections, one frame in flight each; round trips/s and latency
//!   percentiles.
//! - `flood`: C connections, W frames in flight each; frames/s.
//! - `idle`: open C connections (one ping each, so they are real sessions), hold them, and
//!   report the server's resident memory per connection.
//!
//! With `--server-pid` it also reports the server's CPU time per message. Every run prints
//! one JSON line. Traffic goes only to the address given (loopback in the bench script), and
//! every run stops by itself after `--warmup` + `--duration` seconds.

use std::net::SocketAddr;

use rsgame_bot::stats::{percentile, proc_stats};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Mode {
    Pingpong,
    Flood,
    Idle,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Transport {
    Tcp,
    Ws,
}

#[derive(Parser, Debug)]
#[command(about = "Load generator for rsgame's gate (and the baseline server)")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Transport.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: Transport,
    /// Server address (host:port); WebSocket connects to ws://ADDR/ws.
    #[arg(long)]
    addr: SocketAddr,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 100)]
    conns: usize,
    /// Frames in flight per connection (flood).
    #[arg(long, short = 'w', default_value_t = 16)]
    inflight: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// The server's pid, to read its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label for the JSON line (e.g. rsgame or baseline).
    #[arg(long, default_value = "")]
    label: String,
}

/// Ping{sn} plus an unknown length-delimited field 15 that pads the body to `size` bytes.
fn ping_body(sn: u64, size: usize) -> Vec<u8> {
    let mut b = vec![0x08];
    let mut v = sn;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            b.push(byte);
            break;
        }
        b.push(byte | 0x80);
    }
    if size > b.len() + 2 {
        let pad = (size - b.len() - 2).min(127);
        b.push(0x7a); // field 15, wire type 2
        b.push(pad as u8);
        b.extend(std::iter::repeat_n(b'x', pad));
    }
    b
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.put_u32(1000);
    f.put_u32(body.len() as u32);
    f.extend_from_slice(body);
    f
}

/// Counts whole frames in `buf`, consuming them.
fn take_frames(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while buf.len() >= 8 {
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            break;
        }
        buf.advance(8 + len);
        n += 1;
    }
    n
}

struct ConnResult {
    replies: u64,
    latencies_us: Vec<u32>,
    error: Option<String>,
}

/// When measuring starts and ends.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn measuring(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

enum Conn {
    Tcp(TcpStream),
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>>),
}

async fn connect(args: &Args) -> Result<Conn, String> {
    match args.transport {
        Transport::Tcp => {
            let s = TcpStream::connect(args.addr).await.map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            Ok(Conn::Tcp(s))
        }
        Transport::Ws => {
            let (ws, _) =
                tokio_tungstenite::connect_async(format!("ws://{}/ws", args.addr)).await.map_err(|e| e.to_string())?;
            Ok(Conn::Ws(Box::new(ws)))
        }
    }
}

impl Conn {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        match self {
            Conn::Tcp(s) => s.write_all(&bytes).await.map_err(|e| e.to_string()),
            Conn::Ws(ws) => ws.send(Message::Binary(bytes.into())).await.map_err(|e| e.to_string()),
        }
    }

    /// Reads more bytes into `buf`.
    async fn recv(&mut self, buf: &mut BytesMut) -> Result<(), String> {
        match self {
            Conn::Tcp(s) => match s.read_buf(buf).await {
                Ok(0) => Err("closed by server".into()),
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Conn::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        buf.extend_from_slice(&b);
                        return Ok(());
                    }
                    Some(Ok(Message::Close(_))) | None => return Err("closed by server".into()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                }
            },
        }
    }
}

async fn pingpong(args: &Args, mut c: Conn, w: Window) -> ConnResult {
    let mut r = ConnResult { replies: 0, latencies_us: Vec::new(), error: None };
    let mut buf = BytesMut::with_capacity(4096);
    let mut sn = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= w.end {
            break;
        }
        sn += 1;
        if let Err(e) = c.send(frame(&ping_body(sn, args.payload))).await {
            r.error = Some(e);
            break;
        }
        let mut got = 0;
        while got == 0 {
            if let Err(e) = c.recv(&mut buf).await {
                r.error = Some(e);
                return r;
            }
            got = take_frames(&mut buf);
        }
        let t1 = Instant::now();
        if w.measuring(t0) {
            r.replies += got as u64;
            r.latencies_us.push((t1 - t0).as_micros().min(u32::MAX as u128) as u32);
        }
    }
    r
}

async fn flood(args: &Args, mut c: Conn, w: Window) -> ConnResult {
    let mut r = ConnResult { replies: 0, latencies_us: Vec::new(), error: None };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let one = frame(&ping_body(1, args.payload));
    let batch = |n: usize| -> Vec<u8> { one.iter().copied().cycle().take(one.len() * n).collect() };
    if args.transport == Transport::Ws {
        for _ in 0..args.inflight {
            if let Err(e) = c.send(one.clone()).await {
                r.error = Some(e);
                return r;
            }
        }
    } else if let Err(e) = c.send(batch(args.inflight)).await {
        r.error = Some(e);
        return r;
    }
    loop {
        let now = Instant::now();
        if now >= w.end {
            break;
        }
        if let Err(e) = c.recv(&mut buf).await {
            r.error = Some(e);
            break;
        }
        let n = take_frames(&mut buf);
        if n == 0 {
            continue;
        }
        if w.measuring(Instant::now()) {
            r.replies += n as u64;
        }
        // Keep W in flight: one new frame per reply.
        let res = if args.transport == Transport::Ws {
            let mut res = Ok(());
            for _ in 0..n {
                res = c.send(one.clone()).await;
                if res.is_err() {
                    break;
                }
            }
            res
        } else {
            c.send(batch(n)).await
        };
        if let Err(e) = res {
            r.error = Some(e);
            break;
        }
    }
    r
}

async fn run(args: Args) -> serde_json::Value {
    let mut conns = Vec::with_capacity(args.conns);
    let mut connect_errors = 0usize;
    let before = args.server_pid.and_then(proc_stats);
    for _ in 0..args.conns {
        match connect(&args).await {
            Ok(c) => conns.push(c),
            Err(_) => connect_errors += 1,
        }
    }
    if args.mode == Mode::Idle {
        let mut held = Vec::new();
        let mut buf = BytesMut::new();
        for mut c in conns {
            if c.send(frame(&ping_body(1, args.payload))).await.is_ok() && c.recv(&mut buf).await.is_ok() {
                buf.clear();
                held.push(c);
            }
        }
        tokio::time::sleep(Duration::from_secs(args.warmup.max(2))).await;
        let after = args.server_pid.and_then(proc_stats);
        let per_conn_kib = match (before, after) {
            (Some((_, b)), Some((_, a))) if !held.is_empty() => Some((a as f64 - b as f64) / held.len() as f64),
            _ => None,
        };
        return serde_json::json!({
            "label": args.label, "mode": "idle", "transport": format!("{:?}", args.transport).to_lowercase(),
            "conns": held.len(), "connect_errors": connect_errors,
            "rss_before_kib": before.map(|b| b.1), "rss_after_kib": after.map(|a| a.1),
            "rss_per_conn_kib": per_conn_kib,
        });
    }

    let start = Instant::now() + Duration::from_secs(args.warmup);
    let w = Window { start, end: start + Duration::from_secs(args.duration) };
    let args = std::sync::Arc::new(args);
    let mut tasks = Vec::new();
    for c in conns {
        let a = args.clone();
        tasks.push(tokio::spawn(async move {
            match a.mode {
                Mode::Pingpong => pingpong(&a, c, w).await,
                _ => flood(&a, c, w).await,
            }
        }));
    }
    tokio::time::sleep_until(start.into()).await;
    let cpu0 = args.server_pid.and_then(proc_stats);
    tokio::time::sleep_until(w.end.into()).await;
    let cpu1 = args.server_pid.and_then(proc_stats);
    let mut replies = 0u64;
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            replies += r.replies;
            lat.extend(r.latencies_us);
            if let Some(e) = r.error {
                errors.push(e);
            }
        }
    }
    lat.sort_unstable();
    let secs = args.duration as f64;
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.0 - a.0),
        _ => None,
    };
    errors.sort();
    errors.dedup();
    serde_json::json!({
        "label": args.label,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "transport": format!("{:?}", args.transport).to_lowercase(),
        "conns": args.conns, "inflight": if args.mode == Mode::Flood { args.inflight } else { 1 },
        "payload": args.payload, "duration_s": secs,
        "replies": replies, "per_sec": (replies as f64 / secs).round(),
        "p50_us": percentile(&lat, 0.50), "p99_us": percentile(&lat, 0.99), "p999_us": percentile(&lat, 0.999),
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_msg": server_cpu.map(|c| if replies > 0 { c * 1e6 / replies as f64 } else { 0.0 }),
        "connect_errors": connect_errors, "errors": errors,
    })
}

fn main() {
    let args = Args::parse();
    // One thread: the generator is pinned to one core, the server to the other.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let line = rt.block_on(run(args));
    println!("{line}");
}
