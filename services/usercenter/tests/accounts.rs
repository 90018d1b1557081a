//! Accounts beyond username and password, over HTTP on every backend: phone and email codes,
//! password resets, identities bound to and removed from an account (with the races), profile
//! changes, closing an account and erasing it, bans with an end and a reason.

mod common;

use std::time::Duration;

use common::*;
use rsgame_rpc::pb::basic::VerilyType;
use rsgame_testkit::on_every_backend;
use rsgame_usercenter::config::UsercenterConfig;
use serde_json::{Value, json};

const LOGIN_CODE: &str = "/usercenter/v1/user/loginCode";
const RESET: &str = "/usercenter/v1/user/resetPassword";
const BIND: &str = "/usercenter/v1/user/bind";
const UNBIND: &str = "/usercenter/v1/user/unbind";
const DEVICE: &str = "/usercenter/v1/user/loginDevice";

fn kinds(detail: &Value) -> Vec<String> {
    let mut k: Vec<String> = detail["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| i["kind"].as_str().unwrap_or("?").to_owned())
        .collect();
    k.sort();
    k
}

async fn code_login(site: &Site, target: &str, key: &str, code: &str) -> Value {
    post(site, LOGIN_CODE, None, json!({"target": target, "code": code, "key": key})).await.1
}

#[tokio::test]
async fn a_code_logs_in_its_own_target_for_its_own_purpose_once() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let phone = "13800138001";
        let login = VerilyType::CodeLogin as i32;

        // Wrong code, a code for another phone, a sign-up code: each 400300.
        let (key, right) = send_code(&site, phone, login).await;
        assert_eq!(code(&code_login(&site, phone, &key, wrong(&right)).await), 400300);
        let (other_key, other_code) = send_code(&site, "13800138002", login).await;
        assert_eq!(code(&code_login(&site, phone, &other_key, &other_code).await), 400300, "another target's code");
        let (reg_key, reg_code) = send_code(&site, phone, VerilyType::Register as i32).await;
        assert_eq!(code(&code_login(&site, phone, &reg_key, &reg_code).await), 400300, "a sign-up code");

        // The right one makes the account; it then works no more.
        let v = code_login(&site, phone, &key, &right).await;
        assert_eq!(code(&v), 200, "{v}");
        let (id, detail) = me(&site, &access(&v)).await;
        assert_eq!(detail["userInfo"]["mobile"], phone, "go-game's mobile column is filled");
        assert_eq!(kinds(&detail), ["phone"]);
        assert_eq!(detail["identities"][0]["hint"], "***8001", "masked: {detail}");
        assert_eq!(code(&code_login(&site, phone, &key, &right).await), 400300, "a code works once");

        // The next code logs the same account in; an email works the same, any case.
        let (key, right) = send_code(&site, phone, login).await;
        let v = code_login(&site, phone, &key, &right).await;
        assert_eq!(me(&site, &access(&v)).await.0, id, "the same account");
        let (key, right) = send_code(&site, "Ann@Example.com", login).await;
        let v = code_login(&site, "ann@example.COM", &key, &right).await;
        assert_eq!(code(&v), 200, "{v}");
        let (_, detail) = me(&site, &access(&v)).await;
        assert_eq!(detail["userInfo"]["email"], "ann@example.com");

        // Bad targets are refused before a code is used.
        for bad in ["", "12", "not an email@", "+86 138 0013", "a@b"] {
            let v = code_login(&site, bad, "k", "123456").await;
            assert_eq!(code(&v), 400102, "{bad:?}: {v}");
        }
    })
    .await;
}

#[tokio::test]
async fn without_code_sign_up_a_new_target_opens_nothing() {
    on_every_backend(|_, db, cache| async move {
        let site = start_with(db, cache, UsercenterConfig { code_signup: false, ..UsercenterConfig::default() }).await;
        let (key, right) = send_code(&site, "13800138003", VerilyType::CodeLogin as i32).await;
        let v = code_login(&site, "13800138003", &key, &right).await;
        assert_eq!(code(&v), 400201, "{v}");
        let users = sea_query::Query::select().column("id").from("mem_user").to_owned();
        assert!(site.db.fetch_all(&users).await.expect("users").is_empty(), "no account made");
    })
    .await;
}

/// A reset needs a verilyType 4 code sent to the account's phone; it ends every session of
/// the account (tokens refused, an event for the game nodes); of two resets racing on one
/// code exactly one wins.
#[tokio::test]
async fn a_password_reset_by_code_ends_every_session() {
    use prost::Message as _;
    use rsgame_proto::events::{SESSIONS_ENDED_TOPIC, SessionsEnded, SessionsEndedReason};
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let mut ended = site.bus.subscribe(SESSIONS_ENDED_TOPIC, "node-test").await.expect("subscribe");
        let t = register(&site, "rita").await;
        let token = t["accessToken"].as_str().expect("token").to_owned();
        let phone = "+8613800138004";
        let (key, right) = send_code(&site, phone, VerilyType::Register as i32).await;
        let (_, v) =
            post(&site, BIND, Some(&token), json!({"kind": "phone", "target": phone, "code": right, "key": key})).await;
        assert_eq!(code(&v), 200, "{v}");

        // A login code does not reset; a reset code for a phone nobody has finds nobody.
        let (key, right) = send_code(&site, phone, VerilyType::CodeLogin as i32).await;
        let reset = |key: String, code: String| json!({"target": phone, "code": code, "key": key, "new": "fresh2026"});
        assert_eq!(code(&post(&site, RESET, None, reset(key, right)).await.1), 400300);
        let (key, right) = send_code(&site, "13800138999", VerilyType::ChangePassword as i32).await;
        let body = json!({"target": "13800138999", "code": right, "key": key, "new": "fresh2026"});
        assert_eq!(code(&post(&site, RESET, None, body).await.1), 400201);
        let (key, right) = send_code(&site, phone, VerilyType::ChangePassword as i32).await;
        let weak = json!({"target": phone, "code": right, "key": key, "new": "short"});
        assert_eq!(code(&post(&site, RESET, None, weak).await.1), 400102, "a weak password uses no code");

        // Two resets with the one right code at once: exactly one wins.
        let (a, b) = tokio::join!(post(&site, RESET, None, reset(key.clone(), right.clone())), async {
            post(&site, RESET, None, json!({"target": phone, "code": right, "key": key, "new": "other2026"})).await
        });
        let codes = [code(&a.1), code(&b.1)];
        assert!(codes.contains(&200) && codes.contains(&400300), "{codes:?}");
        let new = if code(&a.1) == 200 { "fresh2026" } else { "other2026" };

        let (status, _) = post(&site, "/usercenter/v1/user/detail", Some(&token), json!({})).await;
        assert_eq!(status, 401, "the old session's token is refused");
        let event = tokio::time::timeout(Duration::from_secs(5), ended.next()).await.expect("event").expect("open");
        let event = SessionsEnded::decode(event.payload.as_slice()).expect("decode");
        assert_eq!(event.reason, SessionsEndedReason::PasswordChanged as i32);
        let login = |p: &str| json!({"username": "rita", "password": p});
        assert_eq!(code(&post(&site, "/usercenter/v1/user/login", None, login("secret99")).await.1), 400507);
        assert_eq!(code(&post(&site, "/usercenter/v1/user/login", None, login(new)).await.1), 200);
    })
    .await;
}

/// Identities bind to one account only (two accounts racing for one email: one wins), the
/// last way into an account cannot be removed (two removals racing: one wins), and a guest
/// can take a username and password and then drop its device.
#[tokio::test]
async fn identities_bind_to_one_account_and_the_last_one_stays() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let guest = access(&post(&site, DEVICE, None, json!({"deviceId": "device-one-0001"})).await.1);
        let other = access(&post(&site, DEVICE, None, json!({"deviceId": "device-two-0002"})).await.1);
        let (_, detail) = me(&site, &guest).await;
        assert_eq!(kinds(&detail), ["device"]);

        // The last way in stays; removing what is not there is 400201.
        assert_eq!(code(&post(&site, UNBIND, Some(&guest), json!({"kind": "device"})).await.1), 400518);
        assert_eq!(code(&post(&site, UNBIND, Some(&guest), json!({"kind": "email"})).await.1), 400201);
        assert_eq!(code(&post(&site, UNBIND, Some(&guest), json!({"kind": "nonsense"})).await.1), 400102);

        // Another account's device cannot be bound; its own again is a no-op.
        let bind_device = |d: &str| json!({"kind": "device", "deviceId": d});
        assert_eq!(code(&post(&site, BIND, Some(&guest), bind_device("device-two-0002")).await.1), 400517);
        assert_eq!(code(&post(&site, BIND, Some(&guest), bind_device("device-one-0001")).await.1), 200);
        assert_eq!(code(&post(&site, BIND, Some(&guest), bind_device("short")).await.1), 400102);

        // Two accounts bind one email at once: exactly one gets it.
        let email = "both@example.com";
        let (k1, c1) = send_code(&site, email, VerilyType::Register as i32).await;
        let (k2, c2) = send_code(&site, email, VerilyType::Register as i32).await;
        let (a, b) = tokio::join!(
            post(&site, BIND, Some(&guest), json!({"kind": "email", "target": email, "code": c1, "key": k1})),
            post(&site, BIND, Some(&other), json!({"kind": "email", "target": email, "code": c2, "key": k2})),
        );
        let mut codes = [code(&a.1), code(&b.1)];
        codes.sort();
        assert_eq!(codes, [200, 400517], "{a:?} {b:?}");
        let (winner, loser) = if code(&a.1) == 200 { (&guest, &other) } else { (&other, &guest) };
        let rows = sea_query::Query::select()
            .column("user_id")
            .from("uc_identity")
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("ident"), email))
            .to_owned();
        assert_eq!(site.db.fetch_all(&rows).await.expect("rows").len(), 1, "one row for the email");
        // A phone code cannot bind an email, nor an email target a phone.
        let (k, c) = send_code(&site, "13800138005", VerilyType::Register as i32).await;
        let v = post(&site, BIND, Some(&guest), json!({"kind": "email", "target": "13800138005", "code": c, "key": k}))
            .await
            .1;
        assert_eq!(code(&v), 400102, "{v}");

        // The winner now has two ways in; removing both at once leaves exactly one.
        let (a, b) = tokio::join!(
            post(&site, UNBIND, Some(winner), json!({"kind": "device"})),
            post(&site, UNBIND, Some(winner), json!({"kind": "email"})),
        );
        let mut codes = [code(&a.1), code(&b.1)];
        codes.sort();
        assert_eq!(codes, [200, 400518], "{a:?} {b:?}");
        let (_, detail) = me(&site, winner).await;
        assert_eq!(detail["identities"].as_array().map(Vec::len), Some(1), "{detail}");

        // A guest keeps its account with a username and password, then may drop the device.
        let pw = json!({"kind": "password", "username": "Keeper_1", "password": "secret99"});
        assert_eq!(code(&post(&site, BIND, Some(loser), pw.clone()).await.1), 200);
        assert_eq!(code(&post(&site, BIND, Some(loser), pw).await.1), 400102, "already has one");
        let (_, detail) = me(&site, loser).await;
        assert!(kinds(&detail).contains(&"password".to_owned()), "{detail}");
        assert_eq!(detail["userInfo"]["username"], "keeper_1");
        let v = post(&site, "/usercenter/v1/user/login", None, json!({"username": "keeper_1", "password": "secret99"}))
            .await
            .1;
        assert_eq!(code(&v), 200, "{v}");
        let v = post(
            &site,
            BIND,
            Some(winner),
            json!({"kind": "password", "username": "keeper_1", "password": "secret99"}),
        )
        .await
        .1;
        assert!(code(&v) == 400506 || code(&v) == 400102, "a taken name: {v}");
        assert_eq!(code(&post(&site, UNBIND, Some(loser), json!({"kind": "device"})).await.1), 200);
        assert_eq!(code(&post(&site, UNBIND, Some(loser), json!({"kind": "password"})).await.1), 400518);
        let (_, detail) = me(&site, loser).await;
        assert_eq!(kinds(&detail), ["password"]);

        // Without a token nothing binds.
        assert_eq!(post(&site, BIND, None, bind_device("device-three-03")).await.0, 401);
    })
    .await;
}

#[tokio::test]
async fn a_profile_takes_checked_names_own_images_and_known_sexes() {
    on_every_backend(|_, db, cache| async move {
        let cfg = UsercenterConfig { unique_nicknames: true, ..UsercenterConfig::default() };
        let site = start_with(db, cache, cfg).await;
        let t = access(&post(&site, DEVICE, None, json!({"deviceId": "profile-device-1"})).await.1);
        let u = access(&post(&site, DEVICE, None, json!({"deviceId": "profile-device-2"})).await.1);
        let (id, _) = me(&site, &t).await;
        let (other_id, _) = me(&site, &u).await;
        let update = "/usercenter/v1/user/update";

        let v = post(&site, update, Some(&t), json!({"nickname": "小明 the Brave", "sex": 1})).await.1;
        assert_eq!(code(&v), 200, "{v}");
        assert_eq!(
            (v["data"]["userInfo"]["nickname"].as_str(), v["data"]["userInfo"]["sex"].as_i64()),
            (Some("小明 the Brave"), Some(1))
        );
        for bad in [
            json!({"nickname": ""}),
            json!({"nickname": "x".repeat(33)}),
            json!({"nickname": " padded"}),
            json!({"nickname": "a\u{202E}b"}),
            json!({"nickname": "line\nbreak"}),
            json!({"sex": 3}),
            json!({"avatar": "../../etc/passwd"}),
        ] {
            let v = post(&site, update, Some(&t), bad.clone()).await.1;
            assert_eq!(code(&v), 400102, "{bad}: {v}");
        }
        let v = post(&site, update, Some(&u), json!({"nickname": "小明 the Brave"})).await.1;
        assert_eq!(code(&v), 400506, "unique nicknames: {v}");

        // An avatar is one of the caller's images: not another's, not a document.
        let file = |user_id: i64, ext: &str| rsgame_basic::NewFile {
            user_id,
            name: format!("a.{ext}"),
            ext: ext.into(),
            path: format!("x/{user_id}.{ext}"),
            size: 10,
            md5: "0123456789abcdef0123456789abcdef".into(),
            sha1: "0123456789abcdef0123456789abcdef01234567".into(),
            driver: 0,
        };
        use rsgame_basic::Basic as _;
        let mine = site.basic.add_file(file(id, "png")).await.expect("file").guid;
        let doc = site.basic.add_file(file(id, "pdf")).await.expect("file").guid;
        let theirs = site.basic.add_file(file(other_id, "png")).await.expect("file").guid;
        assert_eq!(code(&post(&site, update, Some(&t), json!({"avatar": theirs})).await.1), 400102);
        assert_eq!(code(&post(&site, update, Some(&t), json!({"avatar": doc})).await.1), 400102);
        let v = post(&site, update, Some(&t), json!({"avatar": mine})).await.1;
        assert_eq!(v["data"]["userInfo"]["avatar"], mine.as_str(), "{v}");
        assert_eq!(v["data"]["userInfo"]["nickname"], "小明 the Brave", "absent fields stay");
    })
    .await;
}

/// Closing needs a fresh login; a closed account opens by no way in and its tokens die at
/// once; after the grace period its personal data is gone and the device starts afresh.
#[tokio::test]
async fn a_closed_account_opens_no_more_and_is_erased_after_its_grace() {
    on_every_backend(|_, db, cache| async move {
        let stale = UsercenterConfig { fresh_login_secs: 0, ..UsercenterConfig::default() };
        let site = start_with(db.clone(), cache.clone(), stale).await;
        let t = access(&post(&site, DEVICE, None, json!({"deviceId": "closing-device-1"})).await.1);
        assert_eq!(code(&post(&site, "/usercenter/v1/user/delete", Some(&t), json!({})).await.1), 400519);
        drop(site);

        let cfg = UsercenterConfig { delete_grace_days: 0, ..UsercenterConfig::default() };
        let site = start_with(db, cache, cfg).await;
        let v = post(&site, DEVICE, None, json!({"deviceId": "closing-device-1"})).await.1;
        let (t, refresh) = (access(&v), v["data"]["refreshToken"].as_str().expect("refresh").to_owned());
        let (id, _) = me(&site, &t).await;
        let pw = json!({"kind": "password", "username": "closer", "password": "secret99"});
        assert_eq!(code(&post(&site, BIND, Some(&t), pw).await.1), 200);
        assert_eq!(code(&post(&site, "/usercenter/v1/user/delete", Some(&t), json!({})).await.1), 200);

        assert_eq!(post(&site, "/usercenter/v1/user/detail", Some(&t), json!({})).await.0, 401, "tokens die at once");
        let again = post(&site, DEVICE, None, json!({"deviceId": "closing-device-1"})).await.1;
        assert_eq!(code(&again), 400516, "{again}");
        let login =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "closer", "password": "secret99"}))
                .await
                .1;
        assert_eq!(code(&login), 400516, "{login}");
        let r = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": refresh})).await.1;
        assert_ne!(code(&r), 200, "{r}");

        assert_eq!(site.logic.erase_closed().await.expect("erase"), 1);
        assert_eq!(site.logic.erase_closed().await.expect("erase again"), 0, "erased once");
        let q = sea_query::Query::select()
            .columns(["username", "nickname", "login_ip", "password"])
            .from("mem_user")
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("id"), id))
            .to_owned();
        let row = site.db.fetch_optional(&q).await.expect("row").expect("the row stays for the ledger");
        assert_eq!(row.string("username").expect("name"), format!("deleted-{id}"));
        assert_eq!(
            (row.string("nickname").expect("n"), row.string("login_ip").expect("ip")),
            (String::new(), String::new())
        );
        let q = sea_query::Query::select()
            .column("id")
            .from("uc_identity")
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("user_id"), id))
            .to_owned();
        assert!(site.db.fetch_all(&q).await.expect("rows").is_empty(), "its identities are gone");
        // The device is a stranger now: it starts a new account.
        let fresh = post(&site, DEVICE, None, json!({"deviceId": "closing-device-1"})).await.1;
        assert_ne!(me(&site, &access(&fresh)).await.0, id);
    })
    .await;
}

/// A ban with an end and a reason: the player is told both, and the ban lapses by itself.
#[tokio::test]
async fn a_ban_tells_its_reason_and_lapses_at_its_end() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let t = register(&site, "banme").await;
        let (id, _) = me(&site, t["accessToken"].as_str().expect("token")).await;
        let now = rsgame_kit::time::unix_ms();
        let past = rsgame_usercenter::Ban { until_ms: now - 1, reason: "x".into() };
        assert!(site.logic.set_banned(id, Some(past), "t").await.is_err(), "an end in the past");
        let long = rsgame_usercenter::Ban { until_ms: 0, reason: "r".repeat(256) };
        assert!(site.logic.set_banned(id, Some(long), "t").await.is_err(), "a reason too long");

        let ban = rsgame_usercenter::Ban { until_ms: now + 1500, reason: "speed hacking".into() };
        assert!(site.logic.set_banned(id, Some(ban), "t").await.expect("ban"));
        let login =
            || post(&site, "/usercenter/v1/user/login", None, json!({"username": "banme", "password": "secret99"}));
        let v = login().await.1;
        assert_eq!(code(&v), 400515, "{v}");
        assert!(v["msg"].as_str().is_some_and(|m| m.contains("speed hacking")), "the reason is shown: {v}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = login().await.1;
            if code(&v) == 200 {
                break;
            }
            assert_eq!(code(&v), 400515, "{v}");
            assert!(tokio::time::Instant::now() < deadline, "the ban did not lapse");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}
