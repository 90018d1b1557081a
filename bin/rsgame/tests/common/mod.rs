//! The harness the binary's end-to-end tests share: a served process on free ports, its
//! configuration, and plain HTTP calls.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn rsgame() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rsgame"));
    // The test's own environment must not leak configuration into the process under test.
    for (k, _) in std::env::vars() {
        if k.starts_with("RSGAME_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("run rsgame")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A port that is free now, chosen below the kernel's ephemeral range (32768–60999 here):
/// a port the kernel handed out for `:0` is soon handed out again, to another test's
/// outgoing connection or listener, before the server under test binds it. Outside that
/// range only another test's own pick can collide, and `Server::start` retries that.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = (std::process::id() as u64) << 32;
    for _ in 0..200 {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // splitmix64 over the process, a counter and the clock: different per test process.
        let mut x = seed ^ nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let port = 20_000 + (x % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A plain HTTP/1.1 GET; returns status and body.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub gate_port: u16,
}

impl Server {
    pub fn start(cfg: &Path, extra_env: &[(&str, &str)]) -> Server {
        Server::start_roles(cfg, "all", extra_env)
    }

    pub fn start_roles(cfg: &Path, roles: &str, extra_env: &[(&str, &str)]) -> Server {
        Server::launch(cfg, roles, None, extra_env)
    }

    /// `roles` served with HTTP on `port` (chosen beforehand, for URLs in the configuration).
    pub fn start_at(cfg: &Path, roles: &str, port: u16, extra_env: &[(&str, &str)]) -> Server {
        Server::launch(cfg, roles, Some(port), extra_env)
    }

    /// Starts the process; when a port the harness chose was taken in the meantime (by
    /// another test binary running beside this one), starts again on fresh ones.
    fn launch(cfg: &Path, roles: &str, port: Option<u16>, extra_env: &[(&str, &str)]) -> Server {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Server::try_start(cfg, roles, port.unwrap_or_else(free_port), extra_env) {
                Ok(srv) => return srv,
                Err(e) if attempt < 5 && e.contains("Address already in use") => eprintln!("retrying the start: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn try_start(cfg: &Path, roles: &str, port: u16, extra_env: &[(&str, &str)]) -> Result<Server, String> {
        let gate_port = free_port();
        let mut c = rsgame();
        c.arg("--config").arg(cfg).args(["serve", "--role", roles]);
        c.env("RSGAME_HTTP__PORT", port.to_string()).env("RSGAME_HTTP__HOST", "127.0.0.1");
        // The gate's own listeners on free ports, so tests can run side by side.
        c.env("RSGAME_DATABASE__URL", format!("sqlite://{}/data/rsgame.db", cfg.parent().unwrap_or(cfg).display()));
        c.env("RSGAME_GATE__TCP_PORT", gate_port.to_string())
            .env("RSGAME_GATE__KCP_PORT", "0")
            .env("RSGAME_GATE__HOST", "127.0.0.1");
        // Game data (and the installation's rpc.token) beside the test's database rather
        // than in the working directory.
        c.env("RSGAME_APP__DATA_DIR", cfg.parent().unwrap_or(cfg).join("data"));
        c.env("RSGAME_GAME__DATA_DIR", cfg.parent().unwrap_or(cfg).join("data/game"));
        // The gRPC roles on ephemeral ports unless a test chooses.
        c.env("RSGAME_RPC__HOST", "127.0.0.1")
            .env("RSGAME_RPC__USERCENTER_PORT", "0")
            .env("RSGAME_RPC__BASIC_PORT", "0")
            .env("RSGAME_RPC__GAME_PORT", "0")
            .env("RSGAME_CONSOLE__PORT", "0");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        // RSGAME_TEST_SHOW_LOGS=1 shows the server's logs beside the test's output.
        if std::env::var_os("RSGAME_TEST_SHOW_LOGS").is_some() {
            c.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        } else {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let child = c.spawn().expect("spawn");
        let mut srv = Server { child, port, gate_port };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some((200, _)) = get(port, "/healthz") {
                return Ok(srv);
            }
            if let Ok(Some(st)) = srv.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = srv.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("server exited early with {st}: {err}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = srv.child.kill();
        panic!("server did not answer /healthz within 20 s");
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("rsgame.yaml");
    std::fs::write(&p, text).expect("write config");
    p
}

pub fn post(port: u16, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// The game's sample data files copied to `dir/data/game`, where `Server::start` points the
/// process; returns that folder.
pub fn sample_game_data(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data/game");
    std::fs::create_dir_all(&data).expect("data dir");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services/game/sample");
    for f in std::fs::read_dir(&sample).expect("sample") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, data.join(f.file_name().expect("name"))).expect("copy");
    }
    data
}

/// A world file for the tests: a harmless dummy beside the spawn point, and a PvP arena.
pub const WORLD: &str = r#"
scenes:
  - id: 1000
    name: Meadow
    bounds: { min_x: 85, min_z: 75, max_x: 410, max_z: 400 }
    cell: 32.5
    go_game_grid: { cols: 10, rows: 20 }
    respawn: { x: 185, z: 159 }
    monsters:
      - { name: Dummy, x: 190, z: 165, hp: 25, attack: 0, defence: 0, speed: 0, aggro: 0, leash: 1, respawn_secs: 60, exp: 30, coins: 7 }
  - id: 1001
    name: Forest
    bounds: { min_x: 85, min_z: 75, max_x: 410, max_z: 400 }
    cell: 32.5
    respawn: { x: 185, z: 159 }
  - id: 1002
    name: Arena
    bounds: { min_x: 85, min_z: 75, max_x: 410, max_z: 400 }
    cell: 32.5
    respawn: { x: 185, z: 159 }
    pvp: true
match_modes:
  - { name: duel, room: lockstep, min_count: 2, max_count: 2, timeout_secs: 60 }
  - { name: pair, room: scene, scene: 1002, min_count: 2, max_count: 2, timeout_secs: 60 }
"#;

/// A data folder with the game's sample files and the test world.
pub fn world_data(dir: &Path) {
    let data = sample_game_data(dir);
    std::fs::write(data.join("world.yaml"), WORLD).expect("world.yaml");
}
