//! The `rsgame` binary end to end: commands, configuration errors, and a served process that
//! answers health and metrics and stops cleanly on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn help_works_on_every_command() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["config", "--help"],
        &["bot", "--help"],
        &["version", "--help"],
    ] {
        let o = run({
            let mut c = rsgame();
            c.args(args);
            c
        });
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("Usage"), "{args:?}: {}", text(&o));
    }
}

#[test]
fn version_prints_the_crate_version() {
    let o = run({
        let mut c = rsgame();
        c.arg("version");
        c
    });
    assert!(o.status.success());
    assert!(text(&o).contains(env!("CARGO_PKG_VERSION")), "{}", text(&o));
}

#[test]
fn config_shows_file_and_env_values_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        "http:\n  port: 9100\ndatabase:\n  url: mysql://game:dbpass123@10.0.0.5:3306/game\nauth:\n  jwt_secret: jwtsecret456\n",
    );
    let o = run({
        let mut c = rsgame();
        c.arg("--config")
            .arg(&cfg)
            .arg("config")
            .env("RSGAME_LOG__LEVEL", "debug")
            .env("RSGAME_SHUTDOWN__GRACE_SECS", "3");
        c
    });
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("port: 9100"), "file value shown: {out}");
    assert!(out.contains("level: debug"), "env value shown: {out}");
    assert!(out.contains("grace_secs: 3"), "env value shown: {out}");
    assert!(!out.contains("dbpass123") && !out.contains("jwtsecret456"), "secrets leaked: {out}");
    assert!(out.contains("mysql://game:******@10.0.0.5:3306/game"), "{out}");
}

#[test]
fn config_file_from_env_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "gate:\n  tcp_port: 7000\n");
    let o = run({
        let mut c = rsgame();
        c.arg("config").env("RSGAME_CONFIG", &cfg);
        c
    });
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("tcp_port: 7000"), "{}", text(&o));
}

#[test]
fn unknown_key_in_file_stops_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "http:\n  port: 8888\nlog:\n  levle: debug\n");
    for cmd in ["serve", "config"] {
        let o = run({
            let mut c = rsgame();
            c.arg("--config").arg(&cfg).arg(cmd);
            c
        });
        assert!(!o.status.success(), "{cmd} must fail");
        assert!(text(&o).contains("`log.levle`"), "{cmd}: {}", text(&o));
    }
}

#[test]
fn invalid_env_value_stops_start_up() {
    let o = run({
        let mut c = rsgame();
        c.arg("serve").env("RSGAME_HTTP__PORT", "notanumber");
        c
    });
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("`http.port`") && out.contains("RSGAME_HTTP__PORT"), "{out}");
}

#[test]
fn unknown_role_is_rejected() {
    let o = run({
        let mut c = rsgame();
        c.args(["serve", "--role", "game-node,lobby"]);
        c
    });
    assert!(!o.status.success());
    assert!(text(&o).contains("\"lobby\""), "{}", text(&o));
}

#[test]
fn serve_answers_health_and_metrics_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    let cfg = write_config(
        dir.path(),
        &format!("log:\n  file:\n    enabled: true\n    path: {}\n    rotation: size\n", logs.display()),
    );
    let srv = Server::start(&cfg, &[]);

    assert_eq!(get(srv.port, "/healthz").map(|r| r.0), Some(200));
    let (status, body) = get(srv.port, "/readyz").expect("readyz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(srv.port, "/no/such/route").expect("404");
    assert_eq!(status, 404);
    assert!(body.contains("400505"), "{body}");

    let (status, metrics) = get(srv.port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    let counter = metrics
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{") && l.contains("route=\"/healthz\"") && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for /healthz:\n{metrics}"));
    let n: f64 = counter.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("value");
    assert!(n >= 2.0, "{counter}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_request_duration_seconds_bucket{") && l.contains("route=\"/healthz\"")),
        "no latency histogram:\n{metrics}"
    );
    assert!(metrics.contains("route=\"unmatched\""), "unknown paths share one series");
    assert!(metrics.contains("process_resident_memory_bytes"), "process metrics");

    srv.sigterm();
    let mut srv = srv;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = srv.child.try_wait().expect("wait") {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "did not exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");

    // Logs were flushed: the file holds JSON lines, the request lines carry a request id.
    let log = std::fs::read_to_string(logs.join("rsgame.log")).expect("log file");
    assert!(log.contains("rsgame stopped"), "last line flushed:\n{log}");
    let request_line = log
        .lines()
        .find(|l| l.contains("\"route\":\"/no/such/route\"") || l.contains("\"route\":\"unmatched\""))
        .unwrap_or_else(|| panic!("no request line:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(request_line).expect("json line");
    assert_eq!(v["span"]["request_id"].as_str().map(str::len), Some(32), "{request_line}");
}

#[test]
fn served_requests_are_traced_to_the_collector() {
    let Some([endpoint, collector_log]) =
        rsgame_testkit::services(["RSGAME_TEST_OTLP_ENDPOINT", "RSGAME_TEST_OTLP_LOG"])
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "");
    let srv = Server::start(&cfg, &[("RSGAME_TRACE__OTLP_ENDPOINT", &endpoint)]);
    // A caller's trace: the server's request span must join it.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let trace_id = format!("{:032x}", nanos ^ 0x5eed_0000_0000_0000_0000_0000_0000_0001);
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).expect("connect");
    write!(
        s,
        "GET /no/such/route HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntraceparent: 00-{trace_id}-00f067aa0ba902b7-01\r\n\r\n"
    )
    .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");

    // Spans still queued are exported during graceful shutdown.
    srv.sigterm();
    let mut srv = srv;
    let status = srv.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&collector_log).unwrap_or_default();
        if text.contains(&trace_id) {
            break;
        }
        // The collector is shared with the other tests running now: give it time.
        assert!(start.elapsed() < Duration::from_secs(30), "trace {trace_id} not in collector log {collector_log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn game_node_answers_ping_over_tcp_and_counts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "");
    let srv = Server::start(&cfg, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", srv.gate_port)).expect("gate connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    // zinx frame: id 1000 (Ping), length 2, body: field 1 varint 7 (sn = 7).
    s.write_all(&[0, 0, 0x03, 0xe8, 0, 0, 0, 2, 0x08, 0x07]).expect("write");
    let mut header = [0u8; 8];
    s.read_exact(&mut header).expect("reply header");
    assert_eq!(u32::from_be_bytes([header[0], header[1], header[2], header[3]]), 2000, "PingResp");
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("reply body");
    assert_eq!(&body[..2], &[0x08, 0x07], "sn echoed first");

    // Per-connection counts reach the shared counters in batches (at the latest when the
    // session has been quiet for 2 s), so poll.
    let needles = [
        "gate_connections{transport=\"tcp\"} 1",
        "gate_frames_in_total{transport=\"tcp\"} 1",
        "gate_frames_out_total{transport=\"tcp\"} 1",
        "gate_handler_duration_seconds_count{id=\"1000\"} 1",
    ];
    let start = Instant::now();
    loop {
        let (_, metrics) = get(srv.port, "/metrics").expect("metrics");
        let missing: Vec<&str> = needles.iter().copied().filter(|n| !metrics.contains(n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{missing:?} missing:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(s);
    srv.sigterm();
}

#[test]
fn migrate_applies_pending_migrations_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/db/rsgame.db", dir.path().display());
    let run_migrate = || {
        run({
            let mut c = rsgame();
            c.arg("migrate").env("RSGAME_DATABASE__URL", &url).env("RSGAME_LOG__LEVEL", "warn");
            c
        })
    };
    let first = run_migrate();
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("applied migrations [1, 2, 3, 4]"), "{}", text(&first));
    let second = run_migrate();
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("up to date"), "{}", text(&second));
    assert!(dir.path().join("db/rsgame.db").exists());
}

#[test]
fn unreachable_database_stops_start_up() {
    let port = free_port();
    let o = run({
        let mut c = rsgame();
        c.arg("migrate").env("RSGAME_DATABASE__URL", format!("postgres://postgres@127.0.0.1:{port}/x"));
        c
    });
    assert!(!o.status.success());
    assert!(text(&o).contains("database"), "{}", text(&o));
}

/// A plain HTTP/1.1 JSON POST; returns status and body.
#[test]
fn the_monolith_serves_accounts_and_captchas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "app:\n  name: accounts\n");
    let files = dir.path().join("files").display().to_string();
    let srv = Server::start(&cfg, &[("RSGAME_BASIC__STORAGE_ROOT", &files)]);
    let (_, body) = post(srv.port, "/usercenter/v1/user/register", None, r#"{"username":"ann","password":"secret99"}"#);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["code"], 200, "{body}");
    let token = v["data"]["accessToken"].as_str().expect("token").to_owned();
    let (_, body) = post(srv.port, "/usercenter/v1/user/detail", Some(&token), "");
    assert!(body.contains("\"username\":\"ann\""), "{body}");
    let (status, body) = post(srv.port, "/usercenter/v1/user/detail", Some("forged"), "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(srv.port, "/basic/v1/basic/captcha").expect("captcha");
    assert_eq!(status, 200);
    assert!(body.contains("data:image/png;base64,"), "{body}");
    let (status, _) = get(srv.port, "/readyz").expect("readyz");
    assert_eq!(status, 200);

    // The OpenAPI document lists the routes served, and /docs renders it without the internet.
    let (status, body) = get(srv.port, "/openapi.json").expect("openapi");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("openapi json");
    for path in ["/usercenter/v1/user/register", "/usercenter/v1/user/loginScan", "/basic/v1/basic/upload"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(doc["components"]["schemas"].get("Tokens").is_some(), "schemas generated from the code");
    let (status, page) = get(srv.port, "/docs").expect("docs");
    assert_eq!(status, 200);
    assert!(page.contains("openapi.json") && !page.contains("https://"), "a self-contained page");
}

#[test]
fn api_roles_call_usercenter_and_basic_over_grpc() {
    // Split roles share the cache through Redis.
    let Some(redis) = rsgame_testkit::service("RSGAME_TEST_REDIS_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "app:\n  name: split\n");
    let (uc, basic) = (free_port(), free_port());
    let prefix = format!("rsgame-cli-{}-{}:", std::process::id(), free_port());
    let files = dir.path().join("files").display().to_string();
    let shared = [
        ("RSGAME_CACHE__BACKEND", "redis"),
        ("RSGAME_CACHE__URL", redis.as_str()),
        ("RSGAME_CACHE__PREFIX", prefix.as_str()),
        ("RSGAME_AUTH__JWT_SECRET", "split-secret"),
        ("RSGAME_RPC__TOKEN", "split-rpc-token"),
        ("RSGAME_BASIC__STORAGE_ROOT", files.as_str()),
    ];
    let (ucp, bp) = (uc.to_string(), basic.to_string());
    let mut rpc_env = shared.to_vec();
    rpc_env.extend([("RSGAME_RPC__USERCENTER_PORT", ucp.as_str()), ("RSGAME_RPC__BASIC_PORT", bp.as_str())]);
    // Started first: it applies the migrations the API process then finds done.
    let rpc = Server::start_roles(&cfg, "usercenter-rpc,basic-rpc", &rpc_env);
    let (uc_url, basic_url) = (format!("http://127.0.0.1:{uc}"), format!("http://127.0.0.1:{basic}"));
    let mut api_env = shared.to_vec();
    api_env.extend([("RSGAME_RPC__USERCENTER_URL", uc_url.as_str()), ("RSGAME_RPC__BASIC_URL", basic_url.as_str())]);
    let api = Server::start_roles(&cfg, "usercenter-api,basic-api", &api_env);

    let (_, body) = post(api.port, "/usercenter/v1/user/register", None, r#"{"username":"gus","password":"secret99"}"#);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["code"], 200, "{body}");
    let (_, body) = post(api.port, "/usercenter/v1/user/register", None, r#"{"username":"gus","password":"secret99"}"#);
    assert!(body.contains("400506"), "the remote error keeps its code: {body}");
    let token = v["data"]["accessToken"].as_str().expect("token").to_owned();
    let (_, body) = post(api.port, "/usercenter/v1/user/detail", Some(&token), "");
    assert!(body.contains("\"username\":\"gus\""), "{body}");
    let (status, body) = get(api.port, "/basic/v1/basic/captcha").expect("captcha");
    assert_eq!(status, 200, "{body}");
    let (_, body) = post(api.port, "/usercenter/v1/user/logout", Some(&token), "{}");
    assert!(body.contains("\"code\":200"), "{body}");
    let (status, _) = post(api.port, "/usercenter/v1/user/detail", Some(&token), "");
    assert_eq!(status, 401, "the logout done over gRPC is seen by the API process");
    drop((api, rpc));
    // Leave nothing behind in the shared Redis.
    let clean = format!("redis-cli -u {redis} --scan --pattern '{prefix}*' | xargs -r redis-cli -u {redis} del");
    let out = Command::new("sh").args(["-c", &clean]).output().expect("redis-cli");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_ledger_reports_a_consistent_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/data/rsgame.db", dir.path().display());
    let data = dir.path().join("game").display().to_string();
    let cmd = |args: &[&str]| {
        let mut c = rsgame();
        c.args(args)
            .env("RSGAME_DATABASE__URL", &url)
            .env("RSGAME_GAME__DATA_DIR", &data)
            .env("RSGAME_LOG__LEVEL", "warn");
        run(c)
    };
    assert!(cmd(&["migrate"]).status.success());
    let out = cmd(&["check", "ledger"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ledger ok"), "{}", text(&out));
    assert!(!cmd(&["check", "nothing"]).status.success(), "unknown checks are refused");
}

#[test]
fn the_rest_api_is_rate_limited_but_health_checks_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "governance:\n  rate_per_sec: 1\n  rate_burst: 3\n");
    let server = Server::start(&cfg, &[]);
    let codes: Vec<String> =
        (0..6).map(|_| post(server.port, "/game/v1/game/getShop", None, "{}").1).map(|b| b.replace(' ', "")).collect();
    let limited = codes.iter().filter(|b| b.contains("\"code\":400502")).count();
    assert!((2..=3).contains(&limited), "a burst of 3, then refused: {codes:?}");
    assert!(codes[0].contains("\"code\":200"), "{codes:?}");
    // Health checks and metrics are outside governance.
    assert!((0..10).all(|_| get(server.port, "/healthz").map(|r| r.0) == Some(200)));
}

#[test]
fn grpc_is_never_open_without_the_service_token() {
    use rsgame_rpc::pb::usercenter::{GenerateTokenReq, usercenter_client::UsercenterClient};
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "");
    let grpc = free_port();
    // A default monolith: no rpc.token configured, gRPC on loopback.
    let srv = Server::start_at(&cfg, "all", free_port(), &[("RSGAME_RPC__USERCENTER_PORT", &grpc.to_string())]);
    let (_, body) =
        post(srv.port, "/usercenter/v1/user/register", None, r#"{"username":"mint","password":"secret99"}"#);
    assert!(body.contains("\"code\":200"), "{body}");
    let token_file = dir.path().join("data").join("rpc.token");
    let install_token = std::fs::read_to_string(&token_file).expect("the installation's token").trim().to_owned();
    assert_eq!(install_token.len(), 64);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mint = |token: String| async move {
            let ch = rsgame_rpc::channel(&format!("http://127.0.0.1:{grpc}"), &token).expect("channel");
            UsercenterClient::new(ch).generate_token(GenerateTokenReq { user_id: 1 }).await.map(|r| r.into_inner())
        };
        // Any local process could once mint a token for any player.
        for wrong in [String::new(), "guess".to_owned(), install_token[..63].to_owned()] {
            let st = mint(wrong).await.expect_err("refused");
            assert_eq!(st.code(), tonic::Code::Unauthenticated, "{st:?}");
        }
        let ok = mint(install_token.clone()).await.expect("the installation's own token works");
        assert!(!ok.access_token.is_empty());
    });
    drop(srv);
}

/// getShop from `forwarded_for` (an X-Forwarded-For header), answered with its code.
fn shop_as(port: u16, forwarded_for: &str) -> i64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(
        s,
        "POST /game/v1/game/getShop HTTP/1.1\r\nhost: x\r\nx-forwarded-for: {forwarded_for}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    v["code"].as_i64().unwrap_or(-1)
}

#[test]
fn behind_a_trusted_proxy_each_client_has_its_own_limit_and_nobody_else_chooses_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = "governance:\n  rate_per_sec: 1\n  rate_burst: 2\n";
    let cfg = write_config(dir.path(), &format!("{limits}http:\n  trusted_proxies: [127.0.0.1/32]\n"));
    let proxied = Server::start(&cfg, &[]);
    // Two players behind the proxy: one spending its burst does not limit the other.
    let first: Vec<i64> = (0..4).map(|_| shop_as(proxied.port, "198.51.100.1")).collect();
    assert_eq!(first[..2], [200, 200], "{first:?}");
    assert!(first[2..].contains(&400502), "the first player's burst runs out: {first:?}");
    assert_eq!(shop_as(proxied.port, "198.51.100.2"), 200, "the second player has its own");
    // A client cannot pick its address by writing the header itself: the proxy's entry wins.
    assert_eq!(shop_as(proxied.port, "198.51.100.2, 198.51.100.1"), 400502);
    drop(proxied);

    // Without trusted proxies the header is ignored: every request is the peer's.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), limits);
    let direct = Server::start(&cfg, &[]);
    let codes: Vec<i64> = (0..4).map(|i| shop_as(direct.port, &format!("198.51.100.{i}"))).collect();
    assert!(codes.contains(&400502), "forged headers buy no fresh limits: {codes:?}");
}

/// Whether the server closes `s` within `within` (a read returns end of file or an error).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or the like may come first; what matters is the close after it.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_silent_and_idle_http_connections_are_closed_and_capped_per_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "http:\n  header_timeout_secs: 2\n  max_connections_per_ip: 6\n");
    let srv = Server::start(&cfg, &[]);
    let connect = || TcpStream::connect(("127.0.0.1", srv.port)).expect("connect");

    // Slowloris: a header line a second never completes a request.
    let mut slow = connect();
    let start = Instant::now();
    let mut cut = false;
    for i in 0..8 {
        if write!(slow, "{}x-slow-{i}: 1\r\n", if i == 0 { "GET /healthz HTTP/1.1\r\n" } else { "" }).is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_secs(1)) {
            cut = true;
            break;
        }
    }
    assert!(cut && start.elapsed() < Duration::from_secs(6), "cut after {:?}", start.elapsed());
    // A connection that sends nothing, and one kept alive after its request, go too.
    let mut silent = connect();
    assert!(closed_within(&mut silent, Duration::from_secs(5)), "a silent connection is closed");
    let mut kept = connect();
    write!(kept, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").expect("request");
    assert!(closed_within(&mut kept, Duration::from_secs(5)), "an idle kept-alive connection is closed");

    // One address holds at most 6 connections; the 7th is closed at once, and places come
    // back when connections close.
    let held: Vec<TcpStream> = (0..6).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = connect();
    assert!(closed_within(&mut extra, Duration::from_millis(1500)), "the 7th connection is refused");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(srv.port, "/healthz").map(|r| r.0), Some(200), "places came back");

    // An upgraded WebSocket is the gate's: it outlives the header timeout.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut ws =
            rsgame_bot::client::Client::ws(&format!("ws://127.0.0.1:{}/ws", srv.port), false).await.expect("ws");
        tokio::time::sleep(Duration::from_secs(3)).await;
        ws.send(rsgame_proto::ids::PING, &rsgame_proto::pb::Ping { sn: 7 }).await.expect("ping");
        let pong: rsgame_proto::pb::PingResp =
            ws.wait(rsgame_proto::ids::PING_RESP, Duration::from_secs(5)).await.expect("pong after 3 s idle");
        assert_eq!(pong.sn, 7);
    });
}
