//! The `rsgame` binary end to end: commands, configuration errors, and a served process that
//! answers health and metrics and stops cleanly on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
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
        &["admin", "ban", "--help"],
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
        "http:\n  port: 9100\ndatabase:\n  url: mysql://game:dbpass123@10.0.0.5:3306/game\nauth:\n  jwt_secret: jwtsecret456-0123456789abcdef0123\n",
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
fn config_check_reads_only_what_it_is_given_and_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "http:\n  port: 9100\n");
    let env = dir.path().join("node.env");
    std::fs::write(&env, "# a node\nexport RSGAME_GATE__TCP_PORT=7001\nRSGAME_LOG__LEVEL=\"debug\"\n\n")
        .expect("env file");
    let check = |args: &[&str]| {
        let mut c = rsgame();
        c.args(["config", "check"]).args(args);
        // The checking shell's own environment is not part of what is checked.
        c.env("RSGAME_HTTP__PORT", "notanumber");
        run(c)
    };
    let path = |p: &std::path::Path| p.display().to_string();
    let (cfg_s, env_s) = (path(&cfg), path(&env));
    let o = check(&[
        &cfg_s,
        "--env-file",
        &env_s,
        "--env",
        "RSGAME_RPC__TIMEOUT_MS=3000",
        "--role",
        "game-node",
        "--print",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in ["port: 9100", "tcp_port: 7001", "level: debug", "timeout_ms: 3000"] {
        assert!(out.contains(want), "{want} in {out}");
    }
    // A bad key, a bad value, a weak secret on an open address, an unknown role: exit 1,
    // the key and where it was set named.
    let bad = write_config(dir.path(), "gate:\n  tcp_prot: 1\n");
    let o = check(&[&path(&bad)]);
    assert!(!o.status.success() && text(&o).contains("`gate.tcp_prot`"), "{}", text(&o));
    let o = check(&["--env", "RSGAME_HTTP__PORT=x"]);
    assert!(!o.status.success() && text(&o).contains("RSGAME_HTTP__PORT"), "{}", text(&o));
    let o = check(&["--env", "RSGAME_HTTP__HOST=0.0.0.0", "--env", "RSGAME_AUTH__JWT_SECRET=short"]);
    assert!(!o.status.success() && text(&o).contains("auth.jwt_secret"), "{}", text(&o));
    let o = check(&["--role", "game-node,lobby"]);
    assert!(!o.status.success() && text(&o).contains("\"lobby\""), "{}", text(&o));
    let o = check(&["--env", "NOEQUALS"]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = run({
        let mut c = rsgame();
        c.args(["config", "roles"]);
        c
    });
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 7, "{}", text(&o));
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
        // Request lines are at DEBUG (a stranger's traffic must not write one each at INFO).
        &format!(
            "log:\n  modules:\n    rsgame_kit::http: debug\n  file:\n    enabled: true\n    path: {}\n    rotation: size\n",
            logs.display()
        ),
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
    // Every series a scrape shows is in `rsgame config metrics`, which the deployment's
    // dashboards and alerts are checked against: nothing is recorded that the list misses.
    let listed = run({
        let mut c = rsgame();
        c.args(["config", "metrics"]);
        c
    });
    assert!(listed.status.success(), "{}", text(&listed));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let names: Vec<&str> = listed.lines().filter_map(|l| l.split('\t').next()).collect();
    let scraped: Vec<&str> = metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    assert!(scraped.len() >= 10, "{metrics}");
    for name in scraped {
        assert!(names.contains(&name), "`{name}` is scraped but not in `rsgame config metrics`:\n{listed}");
    }

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
    assert!(text(&first).contains("applied migrations [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]"), "{}", text(&first));
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

/// The SDKs generate their REST layer and error codes from `docs/openapi.json`: it must be what
/// this code documents, or a client would be built against routes that are not served.
#[test]
fn the_committed_openapi_document_is_the_one_the_code_makes() {
    let out = run({
        let mut c = rsgame();
        c.arg("openapi");
        c
    });
    assert!(out.status.success(), "{}", text(&out));
    let made = String::from_utf8_lossy(&out.stdout);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&file).expect("docs/openapi.json");
    assert!(
        made.trim_end() == committed.trim_end(),
        "docs/openapi.json differs from `rsgame openapi`: run `cargo run -p rsgame -- openapi > docs/openapi.json`, \
         then `npm run build` in clients/sdk-ts and the C# generator, and commit"
    );
    let doc: serde_json::Value = serde_json::from_str(&made).expect("json");
    assert!(doc["paths"].get("/usercenter/v1/user/login").is_some());
    assert!(doc["paths"].get("/console/v1/auth/login").is_none(), "operators' routes are not a player's");
    let codes = &doc["components"]["schemas"]["ErrorCode"];
    assert_eq!(codes["enum"].as_array().map(Vec::len), codes["x-enum-varnames"].as_array().map(Vec::len));
    assert!(codes["x-enum-varnames"].as_array().is_some_and(|n| n.iter().any(|v| v == "Muted")), "{codes}");
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
    let (_, body) = post(api.port, "/usercenter/v1/user/login", None, r#"{"username":"gus","password":"secret99"}"#);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = v["data"]["accessToken"].as_str().expect("token").to_owned();
    let (_, body) = post(api.port, "/usercenter/v1/user/logoutAll", Some(&token), "{}");
    assert!(body.contains("\"code\":200"), "{body}");
    let (status, _) = post(api.port, "/usercenter/v1/user/detail", Some(&token), "");
    assert_eq!(status, 401, "logoutAll over gRPC ends the token the API process checks");
    drop((api, rpc));
    // Leave nothing behind in the shared Redis.
    let clean = format!("redis-cli -u {redis} --scan --pattern '{prefix}*' | xargs -r redis-cli -u {redis} del");
    let out = Command::new("sh").args(["-c", &clean]).output().expect("redis-cli");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn admin_ban_ends_the_sessions_on_a_running_server() {
    // Redis as the cache and the bus: everything the test leaves goes with one key pattern.
    let Some(redis) = rsgame_testkit::service("RSGAME_TEST_REDIS_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "app:\n  name: bans\n");
    let cache_prefix = format!("rsgame-ban-{}-{}:", std::process::id(), free_port());
    let bus_prefix = format!("{cache_prefix}bus:");
    let db_url = format!("sqlite://{}/data/rsgame.db", dir.path().display());
    let shared = [
        ("RSGAME_CACHE__BACKEND", "redis"),
        ("RSGAME_CACHE__URL", redis.as_str()),
        ("RSGAME_CACHE__PREFIX", cache_prefix.as_str()),
        ("RSGAME_BUS__URL", redis.as_str()),
        ("RSGAME_BUS__PREFIX", bus_prefix.as_str()),
        ("RSGAME_AUTH__JWT_SECRET", "ban-test-signing-key-0123456789abcdef"),
    ];
    let srv = Server::start(&cfg, &shared);
    let (_, body) = post(srv.port, "/usercenter/v1/user/register", None, r#"{"username":"hal","password":"secret99"}"#);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = v["data"]["accessToken"].as_str().expect("token").to_owned();
    let (_, body) = post(srv.port, "/usercenter/v1/user/detail", Some(&token), "");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["data"]["userInfo"]["id"].as_i64().expect("id").to_string();

    let admin = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = rsgame();
        c.arg("--config").arg(&cfg).arg("admin").args(args).env("RSGAME_DATABASE__URL", &db_url);
        c.env("RSGAME_LOG__LEVEL", "warn").envs(env.iter().copied());
        run(c)
    };
    // On the embedded defaults a ban could not reach the server: refused, nothing changed.
    let out = admin(&["ban", &id], &[]);
    assert!(!out.status.success() && text(&out).contains("shared cache and bus"), "{}", text(&out));
    let (status, _) = post(srv.port, "/usercenter/v1/user/detail", Some(&token), "");
    assert_eq!(status, 200);

    assert!(!admin(&["ban", &id, "--for", "7x"], &shared).status.success(), "a bad length");
    let out = admin(&["ban", &id, "--for", "7d", "--reason", "selling accounts"], &shared);
    assert!(out.status.success(), "{}", text(&out));
    let (status, body) = post(srv.port, "/usercenter/v1/user/detail", Some(&token), "");
    assert_eq!(status, 401, "the running server refuses the banned account's token at once: {body}");
    let (_, body) = post(srv.port, "/usercenter/v1/user/login", None, r#"{"username":"hal","password":"secret99"}"#);
    assert!(
        body.contains("\"code\":400515") && body.contains("selling accounts"),
        "no login while banned, and why: {body}"
    );
    let out = admin(&["unban", &id], &shared);
    assert!(out.status.success(), "{}", text(&out));
    let (_, body) = post(srv.port, "/usercenter/v1/user/login", None, r#"{"username":"hal","password":"secret99"}"#);
    assert!(body.contains("\"code\":200"), "after the ban is lifted: {body}");
    assert!(!admin(&["ban", "999999"], &shared).status.success(), "no such account");
    drop(srv);
    let clean = format!("redis-cli -u {redis} --scan --pattern '{cache_prefix}*' | xargs -r redis-cli -u {redis} del");
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
