//! The test site the usercenter's HTTP tests share: usercenter and basic's routes on a local
//! port, over the backend `on_every_backend` hands in, and helpers to call them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rsgame_basic::{Basic, BasicLogic};
use rsgame_kit::auth::{Auth, Jwt};
use rsgame_store::{Cache, Db};
use rsgame_usercenter::UserCenterLogic;
use rsgame_usercenter::config::UsercenterConfig;
use serde_json::{Value, json};

pub const SECRET: &[u8] = b"usercenter-test-secret";

pub struct Site {
    pub port: u16,
    pub basic: BasicLogic,
    pub db: Db,
    pub cache: Cache,
    pub bus: rsgame_store::Bus,
    pub logic: Arc<UserCenterLogic>,
    _shutdown: Stop,
}

/// Stops the test's server when the check ends.
pub struct Stop(rsgame_kit::Shutdown);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// One request; returns the status and the JSON body.
pub async fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut h = vec!["Content-Type: application/json".to_owned()];
    if let Some(t) = token {
        h.push(format!("Authorization: Bearer {t}"));
    }
    let r = rsgame_testkit::call(port, method, path, &h, body.as_bytes()).await;
    (r.status, r.json())
}

pub async fn post(site: &Site, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    call(site.port, "POST", path, token, &body.to_string()).await
}

pub fn code(v: &Value) -> i64 {
    v["code"].as_i64().unwrap_or(-1)
}

pub async fn start(db: Db, cache: Cache) -> Site {
    let cfg = UsercenterConfig { captcha_after_failures: 3, lock_after_failures: 6, ..UsercenterConfig::default() };
    start_with(db, cache, cfg).await
}

pub async fn start_with(db: Db, cache: Cache, cfg: UsercenterConfig) -> Site {
    let servers = cfg.game_servers.clone();
    let jwt = Arc::new(Jwt::new(SECRET, Duration::from_secs(3600), Duration::from_secs(1800)));
    let basic = BasicLogic::new(
        db.clone(),
        cache.clone(),
        rsgame_store::Bus::memory(rsgame_store::BusOptions::default()),
        rsgame_basic::config::BasicConfig::default(),
        b"links".to_vec(),
    )
    .expect("basic");
    let basic_dyn: Arc<dyn Basic> = Arc::new(basic.clone());
    let bus = rsgame_store::Bus::memory(rsgame_store::BusOptions::default());
    let logic =
        Arc::new(UserCenterLogic::new(db.clone(), cache.clone(), bus.clone(), jwt.clone(), basic_dyn.clone(), cfg));
    let auth = Auth { jwt, revocations: Some(logic.revocations()) };
    let router = rsgame_usercenter::api::router(logic.clone(), auth.clone(), servers).merge(rsgame_basic::api::router(
        basic_dyn,
        basic.clone(),
        auth,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let shutdown = rsgame_kit::Shutdown::new();
    tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), shutdown.clone()));
    Site { port, basic, db, cache, bus, logic, _shutdown: Stop(shutdown) }
}

pub async fn register(site: &Site, username: &str) -> Value {
    let (status, v) =
        post(site, "/usercenter/v1/user/register", None, json!({"username": username, "password": "secret99"})).await;
    assert_eq!((status, code(&v)), (200, 200), "{v}");
    v["data"].clone()
}

/// A captcha and its answer, as a client that solved it would send them.
pub async fn captcha(site: &Site, ip: &str) -> (String, String) {
    let c = site.basic.captcha(ip).await.expect("captcha");
    let answer = site.basic.peek_answer(&c.key).await.expect("answer");
    (c.key, answer)
}

/// Has basic send a code to `target` (a phone or an email) for `purpose` (verilyType);
/// returns the key and the code the player would read.
pub async fn send_code(site: &Site, target: &str, purpose: i32) -> (String, String) {
    let (key, code) = captcha(site, "10.9.9.9").await;
    let send_type = if target.contains('@') { 2 } else { 1 };
    let req = rsgame_basic::SendCodeReq { send_type, phone: target.into(), verily_type: purpose, key, code };
    // Basic's pause between two codes to one target is for real players; a test that needs a
    // second code at once lifts it. The per-address limit is counted against a fresh address.
    let _ = site.cache.delete(&[&format!("basic:code:to:{}", target.to_lowercase())]).await;
    let ip = format!("10.{}.{}.{}", rand_octet(), rand_octet(), rand_octet());
    let t = site.basic.send_code(req, &ip).await.expect("code sent");
    let sent = site.basic.peek_code(&t.key).await.expect("code");
    (t.key, sent)
}

fn rand_octet() -> u8 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    (N.fetch_add(7, Ordering::Relaxed) % 250) as u8
}

/// A code that is not `right`.
pub fn wrong(right: &str) -> &'static str {
    if right == "000000" { "111111" } else { "000000" }
}

/// The id and info of the account a token belongs to.
pub async fn me(site: &Site, token: &str) -> (i64, Value) {
    let (status, v) = post(site, "/usercenter/v1/user/detail", Some(token), json!({})).await;
    assert_eq!((status, code(&v)), (200, 200), "{v}");
    (v["data"]["userInfo"]["id"].as_i64().expect("id"), v["data"].clone())
}

/// The access token of a token reply.
pub fn access(v: &Value) -> String {
    v["data"]["accessToken"].as_str().unwrap_or_else(|| panic!("no token in {v}")).to_owned()
}
