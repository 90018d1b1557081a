//! The console's API on every database backend: operators log in with a cookie and act with
//! the session's CSRF token; each role may do what the permission table says and no more;
//! every change lands in the audit log; grants go through the ledger once per request id;
//! a ban ends the player's sessions; bad input changes nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rsgame_console::Console;
use rsgame_console::ConsoleConfig;
use rsgame_console::roles::Role;
use rsgame_console::sessions::LoginReq;
use rsgame_game::{DataStore, GameLogic};
use rsgame_kit::Code;
use rsgame_kit::auth::Jwt;
use rsgame_store::{Bus, BusOptions, Cache, Db};
use rsgame_testkit::{HttpReply, on_every_backend};
use rsgame_usercenter::logic::{LoginReq as PlayerLogin, RegisterReq};
use rsgame_usercenter::{UserCenter as _, UserCenterLogic};
use serde_json::{Value, json};

struct Site {
    port: u16,
    console: Console,
    usercenter: Arc<UserCenterLogic>,
    bus: Bus,
    game: Arc<GameLogic>,
    _stop: Stop,
    _data: tempfile::TempDir,
}

struct Stop(rsgame_kit::Shutdown);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

async fn start(db: Db, cache: Cache) -> Site {
    let jwt = Arc::new(Jwt::new(b"console-test-secret", Duration::from_secs(3600), Duration::from_secs(1800)));
    let bus = Bus::memory(BusOptions::default());
    let basic = rsgame_basic::BasicLogic::new(
        db.clone(),
        cache.clone(),
        bus.clone(),
        rsgame_basic::config::BasicConfig::default(),
        b"links".to_vec(),
    )
    .expect("basic");
    let usercenter = Arc::new(UserCenterLogic::new(
        db.clone(),
        cache.clone(),
        bus.clone(),
        jwt,
        Arc::new(basic),
        rsgame_usercenter::config::UsercenterConfig::default(),
    ));
    // A copy of the sample data: the console replaces files in it.
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../game/sample");
    for f in rsgame_game::data::FILES {
        std::fs::copy(sample.join(f), dir.path().join(f)).expect("copy sample");
    }
    let data = DataStore::open(dir.path()).expect("game data");
    let game = Arc::new(GameLogic::new(db.clone(), data).with_events(bus.clone()));
    let cfg = ConsoleConfig { lock_after_failures: 3, ip_lock_after_failures: 10, ..ConsoleConfig::default() };
    let console = Console::new(db, cache, cfg, usercenter.clone(), game.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let shutdown = rsgame_kit::Shutdown::new();
    let router = rsgame_kit::http::finish(rsgame_console::api::router(console.clone()));
    tokio::spawn(rsgame_kit::http::serve(listener, None, router, shutdown.clone()));
    Site { port, console, usercenter, bus, game, _stop: Stop(shutdown), _data: dir }
}

/// An operator's browser: its cookie and CSRF token.
struct Browser {
    port: u16,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn send(&self, method: &str, path: &str, body: Option<Value>, csrf: bool) -> HttpReply {
        let mut h = vec!["Content-Type: application/json".to_owned(), format!("Cookie: {}", self.cookie)];
        if csrf {
            h.push(format!("X-CSRF-Token: {}", self.csrf));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        rsgame_testkit::call(self.port, method, path, &h, body.as_bytes()).await
    }

    async fn get(&self, path: &str) -> Value {
        self.send("GET", path, None, false).await.json()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send("POST", path, Some(body), true).await.json()
    }
}

fn code(v: &Value) -> i64 {
    v["code"].as_i64().unwrap_or(-1)
}

async fn operator(site: &Site, name: &str, role: Role) -> Browser {
    rsgame_console::operators::create(site.console.db(), name, "a-long-pass-phrase", role).await.expect("operator");
    login(site, name, "a-long-pass-phrase").await.expect("logged in")
}

async fn login(site: &Site, name: &str, password: &str) -> Result<Browser, Value> {
    let r = rsgame_testkit::post_json(
        site.port,
        "/console/v1/auth/login",
        None,
        &json!({"username": name, "password": password}),
    )
    .await;
    let v = r.json();
    if code(&v) != 200 {
        return Err(v);
    }
    let set = r.head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie").to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split_once(':').map(|(_, v)| v.trim()).unwrap_or("").split(';').next().unwrap_or("").to_owned();
    Ok(Browser { port: site.port, cookie, csrf: v["data"]["csrf"].as_str().expect("csrf").to_owned() })
}

async fn player(site: &Site, name: &str) -> i64 {
    let req = RegisterReq {
        username: name.into(),
        password: "secret99".into(),
        nickname: format!("Nick {name}"),
        captcha_key: String::new(),
        captcha_code: String::new(),
    };
    site.usercenter.register(req, "10.1.1.1").await.expect("registered");
    rsgame_usercenter::model::user_by_name(site.console.db(), name).await.expect("read").expect("there").id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_log_in_with_a_cookie_and_change_nothing_without_the_csrf_token() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let admin = operator(&site, "root_admin", Role::Admin).await;
        let me = admin.get("/console/v1/auth/me").await;
        assert_eq!((code(&me), me["data"]["operator"]["role"].as_str()), (200, Some("admin")), "{stack:?} {me}");
        // No cookie, a made-up cookie, a player's bearer token: nothing opens.
        let none = rsgame_testkit::call(site.port, "GET", "/console/v1/auth/me", &[], b"").await;
        assert_eq!(code(&none.json()), 400500, "{stack:?}");
        let fake =
            Browser { port: site.port, cookie: format!("rsgame_console={}", "ab".repeat(32)), csrf: String::new() };
        assert_eq!(code(&fake.get("/console/v1/auth/me").await), 400500, "{stack:?}");
        // A change without the CSRF token is refused and changes nothing.
        let no_csrf = admin
            .send(
                "POST",
                "/console/v1/operators",
                Some(json!({"username": "gm_one", "password": "another-long-pass", "role": "gm", "reason": "hire"})),
                false,
            )
            .await;
        assert_eq!(code(&no_csrf.json()), 400501, "{stack:?}");
        assert_eq!(rsgame_console::operators::list(site.console.db()).await.expect("list").len(), 1);
        // Logged out, the cookie opens nothing.
        let out = admin.post("/console/v1/auth/logout", json!({})).await;
        assert_eq!(code(&out), 200, "{stack:?}");
        assert_eq!(code(&admin.get("/console/v1/auth/me").await), 400500, "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_lock_out_the_address_not_the_operator() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        operator(&site, "gm_lock", Role::Gm).await;
        let try_from = |ip: &'static str, password: &'static str| {
            let c = site.console.clone();
            async move {
                let r = LoginReq { username: "gm_lock".into(), password: password.into(), totp: String::new() };
                c.login(&r, ip).await.map(|_| ()).map_err(|e| e.code())
            }
        };
        for _ in 0..3 {
            assert_eq!(try_from("10.9.9.9", "wrong-guess-123").await, Err(Code::LoginFailed), "{stack:?}");
        }
        assert_eq!(
            try_from("10.9.9.9", "a-long-pass-phrase").await,
            Err(Code::AccountLocked),
            "{stack:?}: the stranger's address is locked"
        );
        assert_eq!(
            try_from("10.0.0.7", "a-long-pass-phrase").await,
            Ok(()),
            "{stack:?}: the operator's own address is not"
        );
        // An unknown operator fails the same way as a wrong password.
        let r = LoginReq { username: "nobody_here".into(), password: "whatever-it-is".into(), totp: String::new() };
        assert_eq!(site.console.login(&r, "10.0.0.8").await.map(|_| ()).map_err(|e| e.code()), Err(Code::LoginFailed));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_role_may_do_what_the_table_says_and_every_change_is_audited() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let admin = operator(&site, "the_admin", Role::Admin).await;
        let gm = operator(&site, "the_gm", Role::Gm).await;
        let viewer = operator(&site, "the_viewer", Role::Viewer).await;
        let uid = player(&site, "pl_roles").await;

        // Everyone may look.
        for b in [&admin, &gm, &viewer] {
            let found = b.get("/console/v1/players?q=pl_roles").await;
            assert_eq!(found["data"][0]["id"].as_i64(), Some(uid), "{stack:?} {found}");
            let page = b.get(&format!("/console/v1/players/{uid}")).await;
            assert_eq!(page["data"]["player"]["nickname"].as_str(), Some("Nick pl_roles"), "{stack:?} {page}");
        }
        // The dashboard counts the new account (no metrics in this test: no samples).
        let dash = viewer.get("/console/v1/dashboard").await;
        let minutes = dash["data"]["minutes"].as_array().expect("minutes");
        let new_accounts: i64 = minutes.iter().filter_map(|m| m["registrations"].as_i64()).sum();
        assert_eq!((minutes.len(), new_accounts), (60, 1), "{stack:?} {dash}");
        assert_eq!(dash["data"]["samples"].as_array().map(Vec::len), Some(0));
        // By prefix, by nickname, by id.
        assert_eq!(viewer.get("/console/v1/players?q=pl_ro*").await["data"][0]["id"].as_i64(), Some(uid));
        assert_eq!(viewer.get("/console/v1/players?q=Nick%20pl_roles").await["data"][0]["id"].as_i64(), Some(uid));
        assert_eq!(viewer.get(&format!("/console/v1/players?q=%23{uid}")).await["data"][0]["id"].as_i64(), Some(uid));
        assert_eq!(code(&viewer.get("/console/v1/players/999999").await), 400201, "{stack:?}");

        // A viewer changes nothing; a gm acts on players but not on operators.
        let grant = json!({"coins": 50, "requestId": "r-1", "reason": "outage compensation"});
        assert_eq!(code(&viewer.post(&format!("/console/v1/players/{uid}/grant"), grant.clone()).await), 400501);
        assert_eq!(
            code(&viewer.post(&format!("/console/v1/players/{uid}/kick"), json!({"reason": "x"})).await),
            400501
        );
        for (path, body) in [
            (format!("/console/v1/players/{uid}/mute"), json!({"until": 0, "reason": "x"})),
            (format!("/console/v1/players/{uid}/reset-password"), json!({"reason": "x"})),
            ("/console/v1/chat/remove".to_owned(), json!({"channel": "world", "id": 1, "reason": "x"})),
            ("/console/v1/servers/close-room".to_owned(), json!({"node": "n", "room": 1, "reason": "x"})),
            ("/console/v1/mail".to_owned(), json!({"everyone": true, "title": "t", "requestId": "m", "reason": "x"})),
        ] {
            assert_eq!(code(&viewer.post(&path, body).await), 400501, "{stack:?} {path}");
        }
        // Draining a node is for admins.
        let drain = json!({"node": "n", "drain": true, "reason": "x"});
        assert_eq!(code(&gm.post("/console/v1/servers/drain", drain.clone()).await), 400501, "{stack:?}");
        assert_eq!(code(&admin.post("/console/v1/servers/drain", drain).await), 400201, "{stack:?}: no such node");
        assert_eq!(viewer.get("/console/v1/servers").await["data"].as_array().map(Vec::len), Some(0), "{stack:?}");
        let hire = json!({"username": "new_gm", "password": "another-long-pass", "role": "gm", "reason": "hire"});
        assert_eq!(code(&gm.post("/console/v1/operators", hire.clone()).await), 400501, "{stack:?}");
        assert_eq!(code(&viewer.get("/console/v1/operators").await), 400501, "{stack:?}");
        let granted = gm.post(&format!("/console/v1/players/{uid}/grant"), grant.clone()).await;
        assert_eq!(code(&granted), 200, "{stack:?} {granted}");
        let made = admin.post("/console/v1/operators", hire).await;
        assert_eq!(made["data"]["role"].as_str(), Some("gm"), "{stack:?} {made}");
        // A reason is required.
        let bare = gm.post(&format!("/console/v1/players/{uid}/kick"), json!({"reason": "  "})).await;
        assert_eq!(code(&bare), 400102, "{stack:?}");
        // An admin cannot lock itself out.
        let me = admin.get("/console/v1/auth/me").await["data"]["operator"]["id"].as_i64().expect("id");
        let demote =
            admin.post(&format!("/console/v1/operators/{me}"), json!({"role": "viewer", "reason": "oops"})).await;
        assert_eq!(code(&demote), 400501, "{stack:?}");

        // The audit log holds each change, with who, what, before, after and why.
        let log = viewer.get("/console/v1/audit").await;
        let lines = log["data"].as_array().expect("lines");
        let actions: Vec<&str> = lines.iter().filter_map(|l| l["action"].as_str()).collect();
        assert_eq!(actions, ["operator.create", "player.grant"], "{stack:?} {log}");
        let g = &lines[1];
        assert_eq!(
            (g["operator"].as_str(), g["target"].as_str()),
            (Some("the_gm"), Some(format!("user:{uid}").as_str()))
        );
        assert_eq!(g["reason"].as_str(), Some("outage compensation"));
        assert!(g["after"].as_str().unwrap_or("").contains("\"coins\":150"), "{stack:?}: 100 at the start + 50: {g}");
        let mine = viewer.get(&format!("/console/v1/audit?target=user:{uid}")).await;
        assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grants_go_through_the_ledger_once_per_request_and_bad_ones_change_nothing() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let gm = operator(&site, "gm_grant", Role::Gm).await;
        let uid = player(&site, "pl_grant").await;
        let path = format!("/console/v1/players/{uid}/grant");
        let give = json!({"coins": 40, "goods": [{"goods_id": 1, "count": 2}], "requestId": "comp-7", "reason": "compensation"});
        let first = gm.post(&path, give.clone()).await;
        assert_eq!(first["data"]["player"]["coins"].as_i64(), Some(140), "{stack:?} {first}");
        // The same request again (a double click, a retry): nothing more.
        let again = gm.post(&path, give).await;
        assert_eq!(again["data"]["player"]["coins"].as_i64(), Some(140), "{stack:?} {again}");
        // Taking more than there is, unknown goods, an overflow, nothing at all: refused.
        for (bad, want) in [
            (json!({"coins": -1000, "requestId": "t-1", "reason": "x"}), 400512),
            (json!({"goods": [{"goods_id": 99999, "count": 1}], "requestId": "t-2", "reason": "x"}), 400201),
            (json!({"coins": i64::MAX, "requestId": "t-3", "reason": "x"}), 400102),
            (json!({"coins": 0, "requestId": "t-4", "reason": "x"}), 400102),
            (json!({"coins": 5, "requestId": "", "reason": "x"}), 400102),
        ] {
            let r = gm.post(&path, bad.clone()).await;
            assert_eq!(code(&r), want, "{stack:?} {bad} → {r}");
        }
        let page = gm.get(&format!("/console/v1/players/{uid}")).await;
        assert_eq!(page["data"]["pack"]["player"]["coins"].as_i64(), Some(140), "{stack:?}: unchanged by the refusals");
        let ledger = page["data"]["ledger"].as_array().expect("ledger");
        let ours: Vec<&Value> = ledger.iter().filter(|l| l["reference"] == "console:comp-7").collect();
        assert_eq!(ours.len(), 2, "{stack:?}: coins and the potion, once each: {ledger:?}");
        assert!(ours.iter().all(|l| l["reason"] == "operator"));
        // A take within the balance works.
        let take = gm.post(&path, json!({"coins": -40, "requestId": "take-1", "reason": "duplicated by a bug"})).await;
        assert_eq!(take["data"]["player"]["coins"].as_i64(), Some(100), "{stack:?} {take}");
        // Mail with an attachment, once per request id.
        let mail = json!({"userIds": [uid], "title": "Sorry", "body": "for the outage", "coins": 10, "requestId": "m-1", "reason": "outage"});
        let sent = gm.post("/console/v1/mail", mail.clone()).await;
        let again = gm.post("/console/v1/mail", mail).await;
        assert_eq!(sent["data"], again["data"], "{stack:?}: the same message, not two");
        let unknown = gm.post("/console/v1/mail", json!({"userIds": [999999], "title": "x", "requestId": "m-2", "reason": "x"})).await;
        assert_eq!(code(&unknown), 400201, "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ban_ends_the_players_sessions_and_an_unban_lets_it_back() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let gm = operator(&site, "gm_ban", Role::Gm).await;
        let uid = player(&site, "pl_ban").await;
        let mut ended =
            site.bus.subscribe(rsgame_proto::events::SESSIONS_ENDED_TOPIC, "test").await.expect("subscribe");
        let until = rsgame_kit::time::unix_ms() + 3_600_000;
        let banned =
            gm.post(&format!("/console/v1/players/{uid}/ban"), json!({"until": until, "reason": "speed hack"})).await;
        assert_eq!(banned["data"]["banned"].as_bool(), Some(true), "{stack:?} {banned}");
        // The game nodes are told to close its connections.
        let told =
            tokio::time::timeout(Duration::from_secs(5), ended.next()).await.expect("in time").expect("a message");
        let e: rsgame_proto::events::SessionsEnded = prost::Message::decode(&told.payload[..]).expect("decode");
        assert_eq!(e.user_id, uid, "{stack:?}");
        let login = PlayerLogin {
            username: "pl_ban".into(),
            password: "secret99".into(),
            captcha_key: String::new(),
            captcha_code: String::new(),
        };
        let refused = site.usercenter.login(login.clone(), "10.1.1.1").await.map(|_| ()).map_err(|e| e.code());
        assert_eq!(refused, Err(Code::AccountBanned), "{stack:?}");
        let page = gm.get(&format!("/console/v1/players/{uid}")).await;
        assert_eq!(page["data"]["ban"]["reason"].as_str(), Some("speed hack"), "{stack:?} {page}");
        assert_eq!(page["data"]["relations"].as_array().map(Vec::len), Some(0), "{stack:?}: no friends yet");
        assert!(page["data"]["place"].is_null(), "{stack:?}: never in the world");
        let lifted = gm.post(&format!("/console/v1/players/{uid}/unban"), json!({"reason": "appeal accepted"})).await;
        assert_eq!(lifted["data"]["banned"].as_bool(), Some(false), "{stack:?} {lifted}");
        assert!(site.usercenter.login(login, "10.1.1.1").await.is_ok(), "{stack:?}: back in");
        // A ban in the past is refused and changes nothing.
        let past = gm.post(&format!("/console/v1/players/{uid}/ban"), json!({"until": 1, "reason": "x"})).await;
        assert_eq!(code(&past), 400102, "{stack:?}");
        let actions: Vec<String> = gm.get(&format!("/console/v1/audit?target=user:{uid}")).await["data"]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(|l| l["action"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(actions, ["player.unban", "player.ban"], "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn game_data_is_checked_before_it_applies_and_a_version_rolls_back() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let admin = operator(&site, "data_admin", Role::Admin).await;
        let gm = operator(&site, "data_gm", Role::Gm).await;
        // The world's scenes and monsters are shown as tables too.
        let tables = gm.get("/console/v1/data").await;
        assert_eq!(tables["data"]["scenes"][0]["id"], 1000, "{stack:?}");
        assert!(tables["data"]["scenes"][0]["monsters"].as_array().is_some_and(|m| !m.is_empty()), "{stack:?}");
        assert!(tables["data"]["worldError"].is_null(), "{stack:?} {}", tables["data"]["worldError"]);
        let shop = admin.get("/console/v1/data/file?name=shop.yaml").await["data"]["content"].as_str().expect("text").to_owned();
        let price = |g: &GameLogic| g.data().shop.iter().find(|l| l.goods_id == 2).map(|l| l.price);
        assert_eq!(price(&site.game), Some(35));

        // A file naming goods that do not exist: the error names the file and entry; nothing
        // changes and no version is kept.
        let bad = shop.replace("goods_id: 2, price: 35", "goods_id: 99, price: 35");
        let checked = admin.post("/console/v1/data/check", json!({"file": "shop.yaml", "content": bad})).await;
        assert_eq!(code(&checked), 400102, "{stack:?} {checked}");
        assert!(checked["msg"].as_str().unwrap_or("").contains("shop.yaml"), "{checked}");
        let applied = admin.post("/console/v1/data/apply", json!({"file": "shop.yaml", "content": bad, "reason": "x"})).await;
        assert_eq!(code(&applied), 400102, "{stack:?}");
        let other = admin.post("/console/v1/data/apply", json!({"file": "../rsgame.yaml", "content": "x", "reason": "x"})).await;
        assert_eq!(code(&other), 400102, "{stack:?}: only the game data files");
        assert_eq!(price(&site.game), Some(35));
        assert_eq!(admin.get("/console/v1/data/versions").await["data"].as_array().map(Vec::len), Some(0));
        // A gm may look, not change.
        let cheaper = shop.replace("goods_id: 2, price: 35", "goods_id: 2, price: 30");
        let by_gm = gm.post("/console/v1/data/apply", json!({"file": "shop.yaml", "content": cheaper, "reason": "sale"})).await;
        assert_eq!(code(&by_gm), 400501, "{stack:?}");

        // A good file applies at once, kept as a version beside the original.
        let v = admin.post("/console/v1/data/apply", json!({"file": "shop.yaml", "content": cheaper, "reason": "winter sale"})).await;
        assert_eq!(code(&v), 200, "{stack:?} {v}");
        assert_eq!(price(&site.game), Some(30), "{stack:?}: reloaded");
        let versions = admin.get("/console/v1/data/versions?file=shop.yaml").await;
        let list = versions["data"].as_array().expect("versions");
        assert_eq!(list.len(), 2, "{stack:?} {versions}");
        assert_eq!((list[0]["operator"].as_str(), list[1]["operator"].as_str()), (Some("data_admin"), Some("-")));
        let original = list[1]["id"].as_i64().expect("id");
        let back = admin.post("/console/v1/data/rollback", json!({"id": original, "reason": "sale over"})).await;
        assert_eq!(code(&back), 200, "{stack:?} {back}");
        assert_eq!(price(&site.game), Some(35), "{stack:?}: rolled back");

        // Notices: replaced as a list; getNotify shows the one whose time it is.
        let notices = json!({"reason": "maintenance", "notices": [
            {"id": 7, "title": "Maintenance tonight", "content": "From 2 to 3 am.", "start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
            {"id": 8, "title": "Old", "content": "gone", "start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"}
        ]});
        let set = admin.post("/console/v1/notices", notices).await;
        assert_eq!(code(&set), 200, "{stack:?} {set}");
        assert_eq!(admin.get("/console/v1/notices").await["data"].as_array().map(Vec::len), Some(2));
        let showing = rsgame_game::Game::notices(site.game.as_ref()).await.expect("getNotify");
        assert_eq!(showing.iter().map(|n| n.id).collect::<Vec<_>>(), [7], "{stack:?}");
        let twice = admin.post("/console/v1/notices", json!({"reason": "x", "notices": [
            {"id": 1, "title": "a", "content": "", "start": "2020-01-01T00:00:00Z"},
            {"id": 1, "title": "b", "content": "", "start": "2020-01-01T00:00:00Z"}
        ]})).await;
        assert_eq!(code(&twice), 400102, "{stack:?}: duplicate ids are refused like in the file: {twice}");

        let actions: Vec<String> = admin.get("/console/v1/audit?target=data:shop.yaml").await["data"]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(|l| l["action"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(actions, ["data.apply", "data.apply"], "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_lines_are_found_removed_everywhere_and_their_sender_muted() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let (gm, viewer) =
            (operator(&site, "gm_chat", Role::Gm).await, operator(&site, "viewer_chat", Role::Viewer).await);
        let (loud, calm) = (player(&site, "pl_loud").await, player(&site, "pl_calm").await);
        // What game nodes log: world lines from two players, and one in a room.
        let line = |user_id, channel, place, msg: &str, sent_at| rsgame_game::moderation::ChatLine {
            id: 0,
            channel,
            place,
            user_id,
            msg_type: 1,
            msg: msg.into(),
            url: String::new(),
            sent_at,
        };
        use rsgame_game::moderation::Channel::{Room, World};
        let t = rsgame_kit::time::unix_ms();
        let lines = [
            line(calm, World, 0, "good morning", t),
            line(loud, World, 0, "BUY GOLD 100%_off", t + 1),
            line(loud, Room, 10_001, "in a room", t + 2),
        ];
        site.game.moderation().log(&lines).await.expect("logged");

        // Filters: channel, sender, text (LIKE's wildcards are plain characters).
        let world = viewer.get("/console/v1/chat?channel=world").await;
        let got: Vec<&str> =
            world["data"].as_array().expect("lines").iter().filter_map(|l| l["msg"].as_str()).collect();
        assert_eq!(got, ["BUY GOLD 100%_off", "good morning"], "{stack:?} {world}");
        assert_eq!(world["data"][0]["nickname"].as_str(), Some("Nick pl_loud"), "{stack:?}");
        let by = viewer.get(&format!("/console/v1/chat?channel=room&userId={loud}")).await;
        assert_eq!(by["data"][0]["place"].as_i64(), Some(10_001), "{stack:?} {by}");
        for (text, n) in [("%25_off", 1), ("_", 1), ("%25", 1), ("gold", 1), ("GOLD", 1), ("morning", 1)] {
            let v = viewer.get(&format!("/console/v1/chat?text={text}")).await;
            assert_eq!(v["data"].as_array().map(Vec::len), Some(n), "{stack:?} {text}: {v}");
        }
        assert_eq!(code(&viewer.get("/console/v1/chat?limit=0").await), 400102, "{stack:?}");

        // Removing: a viewer may not; a gm may, the nodes are told, the line is gone.
        let id = world["data"][0]["id"].as_i64().expect("id");
        let body = json!({"channel": "world", "id": id, "reason": "spam"});
        assert_eq!(code(&viewer.post("/console/v1/chat/remove", body.clone()).await), 400501, "{stack:?}");
        let mut removed = site.bus.subscribe(rsgame_proto::events::CHAT_LINE_REMOVED_TOPIC, "test").await.expect("sub");
        let r = gm.post("/console/v1/chat/remove", body.clone()).await;
        assert_eq!(r["data"]["msg"].as_str(), Some("BUY GOLD 100%_off"), "{stack:?} {r}");
        let told =
            tokio::time::timeout(Duration::from_secs(5), removed.next()).await.expect("in time").expect("a message");
        let e: rsgame_proto::events::ChatLineRemoved = prost::Message::decode(&told.payload[..]).expect("decode");
        assert_eq!((e.user_id, e.send_time, e.chat_type), (loud, t + 1, 1), "{stack:?}");
        assert_eq!(code(&gm.post("/console/v1/chat/remove", body).await), 400201, "{stack:?}: once");
        assert_eq!(viewer.get("/console/v1/chat").await["data"].as_array().map(Vec::len), Some(1), "{stack:?}");

        // Muting: bad times are refused; a mute shows on the page, and is lifted.
        let path = format!("/console/v1/players/{loud}/mute");
        for until in [1, t + 20 * 366 * 86_400_000] {
            assert_eq!(code(&gm.post(&path, json!({"until": until, "reason": "x"})).await), 400102, "{stack:?}");
        }
        assert_eq!(code(&gm.post("/console/v1/players/999999/mute", json!({"until": 0, "reason": "x"})).await), 400201);
        let m = gm.post(&path, json!({"until": t + 3_600_000, "reason": "spam"})).await;
        assert_eq!(m["data"]["by"].as_str(), Some("gm_chat"), "{stack:?} {m}");
        let page = viewer.get(&format!("/console/v1/players/{loud}")).await;
        assert_eq!(page["data"]["mute"]["reason"].as_str(), Some("spam"), "{stack:?} {page}");
        assert!(site.game.moderation().mute(loud, rsgame_kit::time::unix_ms()).await.expect("read").is_some());
        let lifted = gm.post(&path, json!({"until": 0, "reason": "appeal"})).await;
        assert!(lifted["data"].is_null(), "{stack:?} {lifted}");
        let actions: Vec<String> = gm.get(&format!("/console/v1/audit?target=user:{loud}")).await["data"]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(|l| l["action"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(actions, ["player.unmute", "player.mute", "chat.remove"], "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_code_goes_to_the_bound_email_and_sets_a_new_password_once() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let gm = operator(&site, "gm_reset", Role::Gm).await;
        let (uid, bare) = (player(&site, "pl_forgot").await, player(&site, "pl_bare").await);
        let email = [(rsgame_usercenter::identity::IdentityKind::Email, "forgot@example.com")];
        rsgame_usercenter::identity::bind(site.console.db(), uid, &email).await.expect("bound");
        let mut jobs = site.bus.subscribe(rsgame_basic::code::TOPIC, "test").await.expect("subscribe");

        // No phone or email: nothing to send to.
        let none = gm.post(&format!("/console/v1/players/{bare}/reset-password"), json!({"reason": "ticket 7"})).await;
        assert_eq!(code(&none), 400, "{stack:?} {none}");
        let sent = gm.post(&format!("/console/v1/players/{uid}/reset-password"), json!({"reason": "ticket 8"})).await;
        assert_eq!(sent["data"]["target"].as_str(), Some("forgot@example.com"), "{stack:?} {sent}");
        let job = tokio::time::timeout(Duration::from_secs(5), jobs.next()).await.expect("in time").expect("a job");
        let job: rsgame_basic::code::Job = serde_json::from_slice(&job.payload).expect("a job");
        assert_eq!((job.target.as_str(), job.send_type, job.verily_type), ("forgot@example.com", 2, 4), "{stack:?}");

        // The player resets with target and code, no key; a wrong code first counts as a try.
        let reset = |code: &str| rsgame_usercenter::logic::ResetPasswordReq {
            target: "Forgot@Example.com".into(),
            code: code.into(),
            key: String::new(),
            new: "brand-new-99".into(),
        };
        let wrong = if job.code == "000000" { "111111" } else { "000000" };
        let e = site.usercenter.reset_password(reset(wrong), "10.1.1.2").await.map(|_| ()).map_err(|e| e.code());
        assert_eq!(e, Err(Code::VerifyCode), "{stack:?}");
        site.usercenter.reset_password(reset(&job.code), "10.1.1.2").await.expect("reset");
        let again =
            site.usercenter.reset_password(reset(&job.code), "10.1.1.2").await.map(|_| ()).map_err(|e| e.code());
        assert_eq!(again, Err(Code::VerifyCode), "{stack:?}: a code works once");
        let login = PlayerLogin {
            username: "pl_forgot".into(),
            password: "brand-new-99".into(),
            captcha_key: String::new(),
            captcha_code: String::new(),
        };
        assert!(site.usercenter.login(login, "10.1.1.2").await.is_ok(), "{stack:?}: the new password opens it");
        let audit = gm.get(&format!("/console/v1/audit?target=user:{uid}")).await;
        assert_eq!(audit["data"][0]["action"].as_str(), Some("player.reset_password"), "{stack:?} {audit}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mail_to_everyone_is_one_send_each_player_finds_once() {
    on_every_backend(|stack, db, cache| async move {
        let site = start(db, cache).await;
        let gm = operator(&site, "gm_all", Role::Gm).await;
        let (a, b) = (player(&site, "pl_all_a").await, player(&site, "pl_all_b").await);
        for u in [a, b] {
            rsgame_game::Game::pack(site.game.as_ref(), u).await.expect("played");
        }
        rsgame_testkit::next_ms().await;
        let body =
            json!({"everyone": true, "title": "Server moved", "coins": 5, "requestId": "all-1", "reason": "move"});
        let mixed = json!({"everyone": true, "userIds": [a], "title": "x", "requestId": "all-2", "reason": "x"});
        assert_eq!(code(&gm.post("/console/v1/mail", mixed).await), 400102, "{stack:?}");
        let sent = gm.post("/console/v1/mail", body.clone()).await;
        assert_eq!(code(&sent), 200, "{stack:?} {sent}");
        assert_eq!(gm.post("/console/v1/mail", body).await["data"], sent["data"], "{stack:?}: once");
        for u in [a, b] {
            let page = rsgame_game::Game::inbox(site.game.as_ref(), u, 0, 10).await.expect("inbox");
            assert_eq!(page.mails.iter().filter(|m| m.title == "Server moved").count(), 1, "{stack:?} {u}");
        }
        let audit = gm.get("/console/v1/audit?target=mail:everyone").await;
        assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{stack:?} {audit}");
    })
    .await;
}
