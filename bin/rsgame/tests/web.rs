//! The browser client: served by the monolith at `/`, and played end to end in headless
//! Chromium (`RSGAME_TEST_CHROMIUM`) by two users — register with the captcha, see each other
//! move, chat privately, kill a monster, buy, drop and reconnect, a lockstep room, reload.
//! And the operator console, on its own port, used in Chromium on a player who is online.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A raw GET with extra headers: the status line and headers (lower-cased), and the body.
fn fetch(port: u16, path: &str, extra: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{extra}\r\n").expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_lowercase(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn the_monolith_serves_the_client_at_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&write_config(dir.path(), ""), &[]);
    let (head, body) = fetch(server.port, "/", "");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"));
    assert!(body.contains(r#"<canvas id="view">"#) && body.contains(r#"<script src="app.js">"#), "{body}");
    let csp = header(&head, "content-security-policy").expect("a content security policy");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    // The bundle is the committed build, protobuf classes included.
    let (head, body) = fetch(server.port, "/app.js", "");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(header(&head, "content-type").is_some_and(|t| t.starts_with("text/javascript")), "{head}");
    assert!(body.contains("GameLogin") && body.len() > 50_000, "{} bytes", body.len());
    // Revalidation: the same ETag gets 304 and no body.
    let etag = header(&head, "etag").expect("etag").to_owned();
    let (head, body) = fetch(server.port, "/app.js", &format!("if-none-match: {etag}\r\n"));
    assert!(head.starts_with("http/1.1 304"), "{head}");
    assert!(body.is_empty());
    let (head, _) = fetch(server.port, "/style.css", "");
    assert!(head.starts_with("http/1.1 200") && head.contains("text/css"), "{head}");
    // Other paths are still the API's envelope 404.
    let (head, body) = fetch(server.port, "/nope.js", "");
    assert!(head.starts_with("http/1.1 404") || body.contains("\"code\""), "{head}{body}");
}

/// `fetch`, with the body's bytes as they came (compressed, perhaps chunked).
fn fetch_raw(port: u16, path: &str, extra: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n{extra}\r\n").expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    (String::from_utf8_lossy(&out[..at]).to_lowercase(), out[at + 4..].to_vec())
}

#[test]
fn the_page_and_the_openapi_document_are_compressed_for_clients_that_ask() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&write_config(dir.path(), ""), &[]);
    let (head, plain) = fetch_raw(server.port, "/app.js", "");
    assert!(header(&head, "content-encoding").is_none(), "{head}");
    assert!(plain.len() > 100_000, "{} bytes", plain.len());
    for (asked, got) in [("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br")] {
        let (head, body) = fetch_raw(server.port, "/app.js", &format!("accept-encoding: {asked}\r\n"));
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(header(&head, "content-encoding"), Some(got), "{asked}: {head}");
        assert!(header(&head, "vary").is_some_and(|v| v.contains("accept-encoding")), "{head}");
        assert!(body.len() * 3 < plain.len(), "{asked}: {} of {} bytes", body.len(), plain.len());
    }
    // Replies made per request are gzipped (cheaper than brotli for as much).
    let (head, _) = fetch_raw(server.port, "/openapi.json", "accept-encoding: gzip, br\r\n");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    // A reply too small to gain from it is sent as it is.
    let (head, _) = fetch_raw(server.port, "/healthz", "accept-encoding: gzip\r\n");
    assert!(header(&head, "content-encoding").is_none(), "{head}");
}

#[test]
fn the_client_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&write_config(dir.path(), "http:\n  web_client: false\n"), &[]);
    let (_, body) = fetch(server.port, "/", "");
    assert!(!body.contains("<canvas"), "{body}");
}

#[test]
fn two_players_in_headless_chromium() {
    let Some([chromium, redis]) = rsgame_testkit::services(["RSGAME_TEST_CHROMIUM", "RSGAME_TEST_REDIS_URL"]) else {
        return;
    };
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "clients/web/node_modules is missing: run `npm ci` in clients/web (.ci/run does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    sample_game_data(dir.path());
    // Captcha answers in Redis under a prefix of this run, where the test reads them as the
    // human would read the picture.
    let prefix = format!("rsgame-web-{}:", std::process::id());
    let cfg = write_config(
        dir.path(),
        &format!(
            "cache:\n  backend: redis\n  url: {redis}\n  prefix: \"{prefix}\"\nusercenter:\n  register_captcha: true\n"
        ),
    );
    // The operators' token the test uses to send B a gift through the inbox.
    let admin = format!("web-e2e-admin-{}", std::process::id());
    let server = Server::start(&cfg, &[("RSGAME_GAME__ADMIN_TOKEN", &admin)]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-e2e");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .current_dir(&web)
        .arg("e2e/e2e.mjs")
        .arg(format!("http://127.0.0.1:{}", server.port))
        .env("CHROMIUM", &chromium)
        .env("REDIS_URL", &redis)
        .env("CACHE_PREFIX", &prefix)
        .env("ADMIN_TOKEN", &admin)
        .env("E2E_SHOTS", &shots)
        .output()
        .expect("node runs");
    let text = text(&out);
    println!("{text}");
    assert!(out.status.success(), "the browser test failed:\n{text}");
    let taken = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert!(taken >= 10, "screenshots of every step in {}: {taken}", shots.display());
}

#[test]
fn an_operator_compensates_and_bans_a_player_in_the_console() {
    let Some([chromium]) = rsgame_testkit::services(["RSGAME_TEST_CHROMIUM"]) else {
        return;
    };
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/console");
    assert!(
        console.join("node_modules/playwright-core").is_dir(),
        "clients/console/node_modules is missing: run `npm ci` in clients/console (.ci/run does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    sample_game_data(dir.path());
    let cfg = write_config(dir.path(), "");
    let console_port = free_port();
    let server = Server::start(&cfg, &[("RSGAME_CONSOLE__PORT", &console_port.to_string())]);
    // The first operator, from the command line, into the server's database.
    let password = format!("console-e2e-{}", std::process::id());
    let made = rsgame()
        .arg("--config")
        .arg(&cfg)
        .args(["admin", "create-operator", "e2e_admin", "--role", "admin"])
        .env("RSGAME_DATABASE__URL", format!("sqlite://{}/data/rsgame.db", dir.path().display()))
        .env("OPERATOR_PASSWORD", &password)
        .output()
        .expect("create-operator runs");
    assert!(made.status.success(), "{}", text(&made));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-e2e");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .current_dir(&console)
        .arg("e2e/e2e.mjs")
        .arg(format!("http://127.0.0.1:{}", server.port))
        .arg(format!("http://127.0.0.1:{console_port}"))
        .env("CHROMIUM", &chromium)
        .env("OPERATOR", "e2e_admin")
        .env("OPERATOR_PASSWORD", &password)
        .env("E2E_SHOTS", &shots)
        .output()
        .expect("node runs");
    let text = text(&out);
    println!("{text}");
    assert!(out.status.success(), "the console's browser test failed:\n{text}");
    let taken = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert!(taken >= 6, "screenshots of every page in {}: {taken}", shots.display());
}
