//! usercenter and basic over HTTP, on the embedded defaults (SQLite, in-process cache) always,
//! and on MariaDB and PostgreSQL with Redis when `RSGAME_TEST_MYSQL_URL`,
//! `RSGAME_TEST_POSTGRES_URL` and `RSGAME_TEST_REDIS_URL` are set: each in a fresh database
//! and key prefix, removed afterwards.

mod common;

use std::time::Duration;

use common::*;
use rsgame_kit::auth::Jwt;
use rsgame_testkit::on_every_backend;
use rsgame_usercenter::config::UsercenterConfig;
use serde_json::json;

#[tokio::test]
async fn profiles_name_several_accounts_at_once_and_leave_out_the_closed() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let a = register(&site, "pia").await;
        let b = register(&site, "quin").await;
        let token = a["accessToken"].as_str().expect("token");
        let id = |t: &serde_json::Value| {
            let t = t.clone();
            let site = &site;
            async move {
                let (_, v) = post(site, "/usercenter/v1/user/detail", t["accessToken"].as_str(), json!({})).await;
                v["data"]["userInfo"]["id"].as_i64().expect("id")
            }
        };
        let (ia, ib) = (id(&a).await, id(&b).await);
        const P: &str = "/usercenter/v1/user/profiles";
        let (_, v) = post(&site, P, None, json!({"userIds": [ia]})).await;
        assert_eq!(code(&v), 400103, "a token is needed: {v}");
        let (_, v) = post(&site, P, Some(token), json!({"userIds": [ia, ib, 999_999]})).await;
        assert_eq!(code(&v), 200, "{v}");
        let mut got: Vec<(i64, String)> = v["data"]
            .as_array()
            .expect("list")
            .iter()
            .map(|p| (p["userId"].as_i64().expect("id"), p["nickname"].as_str().expect("name").to_owned()))
            .collect();
        got.sort();
        assert_eq!(got, [(ia, "pia".to_owned()), (ib, "quin".to_owned())], "unknown ids are left out");
        assert!(!v.to_string().contains("username") && !v.to_string().contains("mobile"), "least data: {v}");
        let (_, v) = post(&site, P, Some(token), json!({"userIds": []})).await;
        assert_eq!(code(&v), 400102);
        let many: Vec<i64> = (1..=101).collect();
        let (_, v) = post(&site, P, Some(token), json!({"userIds": many})).await;
        assert_eq!(code(&v), 400102, "at most 100");
    })
    .await;
}

#[tokio::test]
async fn register_login_detail_and_bad_input() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let t = register(&site, "ann").await;
        assert!(t["accessToken"].as_str().is_some_and(|s| s.split('.').count() == 3), "{t}");
        assert!(t["accessExpire"].as_i64() > t["refreshAfter"].as_i64());
        assert!(t["refreshToken"].as_str().is_some_and(|s| s.len() >= 40));
        assert_eq!(t["servers"], json!(["/ws"]), "the reply names the game node: {t}");

        let (_, v) = post(&site, "/usercenter/v1/user/detail", t["accessToken"].as_str(), json!({})).await;
        assert_eq!(code(&v), 200, "{v}");
        let info = &v["data"]["userInfo"];
        assert_eq!(info["username"], "ann");
        assert_eq!(info["nickname"], "ann");
        assert!(info.get("password").is_none() && !v.to_string().contains("argon2"), "least data: {v}");

        // The same username again; a weak password; malformed and mistyped input.
        let (_, v) =
            post(&site, "/usercenter/v1/user/register", None, json!({"username": "ann", "password": "secret99"})).await;
        assert_eq!(code(&v), 400506, "{v}");
        let (_, v) =
            post(&site, "/usercenter/v1/user/register", None, json!({"username": "ANN", "password": "secret99"})).await;
        assert_eq!(code(&v), 400506, "one account per name whatever its case: {v}");
        let (_, v) =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "Ann", "password": "secret99"})).await;
        assert_eq!(code(&v), 200, "{v}");
        let (_, v) =
            post(&site, "/usercenter/v1/user/register", None, json!({"username": "bob", "password": "short"})).await;
        assert_eq!(code(&v), 400102);
        assert!(v["msg"].as_str().is_some_and(|m| m.starts_with("password")), "{v}");
        let (_, v) = call(site.port, "POST", "/usercenter/v1/user/login", None, "{\"username\": ").await;
        assert_eq!(code(&v), 400102, "{v}");
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, json!({"username": "ann"})).await;
        assert!(v["msg"].as_str().is_some_and(|m| m.contains("password")), "the missing field is named: {v}");
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, json!({"username": 7, "password": "x"})).await;
        assert!(v["msg"].as_str().is_some_and(|m| m.starts_with("username")), "{v}");

        // SQL metacharacters: refused by the username rule, stored verbatim as a nickname,
        // and a plain failed login as a login name.
        let evil = "a'; DROP TABLE mem_user; --";
        let (_, v) =
            post(&site, "/usercenter/v1/user/register", None, json!({"username": evil, "password": "secret99"})).await;
        assert_eq!(code(&v), 400102);
        let (_, v) = post(
            &site,
            "/usercenter/v1/user/register",
            None,
            json!({"username": "carl", "password": "secret99", "nickname": evil}),
        )
        .await;
        assert_eq!(code(&v), 200, "{v}");
        let (_, v) = post(&site, "/usercenter/v1/user/detail", v["data"]["accessToken"].as_str(), json!({})).await;
        assert_eq!(v["data"]["userInfo"]["nickname"], evil);
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, json!({"username": evil, "password": evil})).await;
        assert_eq!(code(&v), 400507);

        let (_, v) =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "ann", "password": "secret99"})).await;
        assert_eq!(code(&v), 200, "{v}");
        let (_, v) = post(&site, "/usercenter/v1/user/tokenVerify", v["data"]["accessToken"].as_str(), json!({})).await;
        assert_eq!(code(&v), 200, "{v}");
        assert!(v["data"]["id"].as_i64().is_some_and(|id| id > 0));

        // Every registration and login is in mem_logs with the IP.
        let q = sea_query::Query::select().columns(["type", "ip"]).from("mem_logs").to_owned();
        let rows = site.db.fetch_all(&q).await.expect("logs");
        let kinds: Vec<i32> = rows.iter().map(|r| r.i32("type").expect("type")).collect();
        assert!(kinds.contains(&3) && kinds.contains(&1), "{kinds:?}");
        assert!(rows.iter().all(|r| r.string("ip").expect("ip") == "127.0.0.1"));
    })
    .await;
}

#[tokio::test]
async fn tokens_tampered_expired_missing_and_revoked_get_401() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let t = register(&site, "dora").await;
        let token = t["accessToken"].as_str().expect("token").to_owned();
        let detail = "/usercenter/v1/user/detail";

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replacen(&parts[1][..2], "ey", 1);
        let mut tampered = parts.join(".");
        if tampered == token {
            tampered.push('x');
        }
        let expired = Jwt::new(SECRET, Duration::ZERO, Duration::ZERO).issue(1).expect("issue").0.access_token;
        let foreign = Jwt::new(b"another", Duration::from_secs(60), Duration::ZERO).issue(1).expect("issue").0;
        for bad in [None, Some("garbage"), Some(tampered.as_str()), Some(expired.as_str()), Some(&foreign.access_token)]
        {
            let (status, v) = post(&site, detail, bad, json!({})).await;
            assert_eq!((status, code(&v)), (401, 400103), "{bad:?}: {v}");
        }

        // Refresh rotates; a replayed refresh token revokes the family.
        let first = t["refreshToken"].as_str().expect("refresh").to_owned();
        let (_, v) = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": first})).await;
        assert_eq!(code(&v), 200, "{v}");
        let second = v["data"]["refreshToken"].as_str().expect("rotated").to_owned();
        assert_ne!(first, second);
        let (_, v) = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": first})).await;
        assert_eq!(code(&v), 400103, "replay refused: {v}");
        let (_, v) = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": second})).await;
        assert_eq!(code(&v), 400103, "the family is revoked after a replay: {v}");

        // Logout: the access token and the refresh token stop working.
        let (_, v) =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "dora", "password": "secret99"})).await;
        let access = v["data"]["accessToken"].as_str().expect("access").to_owned();
        let refresh = v["data"]["refreshToken"].as_str().expect("refresh").to_owned();
        let (_, v) = post(&site, "/usercenter/v1/user/logout", Some(&access), json!({"refreshToken": refresh})).await;
        assert_eq!(code(&v), 200, "{v}");
        let (status, _) = post(&site, detail, Some(&access), json!({})).await;
        assert_eq!(status, 401, "logged-out token refused");
        let (_, v) = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": refresh})).await;
        assert_eq!(code(&v), 400103);

        // A banned account's refresh token stops working.
        let (_, v) =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "dora", "password": "secret99"})).await;
        let refresh = v["data"]["refreshToken"].as_str().expect("refresh").to_owned();
        let ban = sea_query::Query::update()
            .table("mem_user")
            .value("status", 3)
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("username"), "dora"))
            .to_owned();
        site.db.execute(&ban).await.expect("ban");
        let (_, v) = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": refresh})).await;
        assert_eq!(code(&v), 400515, "{v}");
    })
    .await;
}

#[tokio::test]
async fn logout_everywhere_and_a_ban_end_every_token_of_the_account_at_once() {
    use prost::Message as _;
    use rsgame_proto::events::{SESSIONS_ENDED_TOPIC, SessionsEnded, SessionsEndedReason};
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let mut ended = site.bus.subscribe(SESSIONS_ENDED_TOPIC, "node-test").await.expect("subscribe");
        let detail = "/usercenter/v1/user/detail";
        let login = |name: &'static str| {
            let site = &site;
            async move {
                let (_, v) =
                    post(site, "/usercenter/v1/user/login", None, json!({"username": name, "password": "secret99"}))
                        .await;
                let access = v["data"]["accessToken"].as_str().expect("access").to_owned();
                let refresh = v["data"]["refreshToken"].as_str().expect("refresh").to_owned();
                (access, refresh)
            }
        };
        let me = register(&site, "erin").await;
        let other = register(&site, "fred").await;
        let erin = me["accessToken"].as_str().expect("token").to_owned();
        let (erin_phone, erin_phone_refresh) = login("erin").await;
        let fred = other["accessToken"].as_str().expect("token").to_owned();

        let (status, v) = post(&site, "/usercenter/v1/user/logoutAll", Some(&erin), json!({})).await;
        assert_eq!((status, code(&v)), (200, 200), "{v}");
        for token in [&erin, &erin_phone] {
            let (status, v) = post(&site, detail, Some(token), json!({})).await;
            assert_eq!((status, code(&v)), (401, 400103), "every token of erin: {v}");
        }
        let (_, v) =
            post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": erin_phone_refresh})).await;
        assert_eq!(code(&v), 400103, "refresh tokens too: {v}");
        let (status, _) = post(&site, detail, Some(&fred), json!({})).await;
        assert_eq!(status, 200, "another account is untouched");
        let event = tokio::time::timeout(Duration::from_secs(5), ended.next()).await.expect("event").expect("open");
        let first = SessionsEnded::decode(event.payload.as_slice()).expect("decode");
        assert_eq!(first.reason, SessionsEndedReason::LogoutAll as i32);
        // Logging in again afterwards works, at once: the new token is newer than the mark.
        let (fresh, _) = login("erin").await;
        let (status, v) = post(&site, detail, Some(&fresh), json!({})).await;
        assert_eq!(status, 200, "a login after the logout: {v}");

        // A ban: the live token dies, the password no longer logs in; lifting it restores both.
        let id = v["data"]["userInfo"]["id"].as_i64().expect("id");
        assert_eq!(first.user_id, id, "the event names erin");
        assert!(site.logic.set_banned(id, Some(rsgame_usercenter::Ban::default()), "127.0.0.1").await.expect("ban"));
        let (status, _) = post(&site, detail, Some(&fresh), json!({})).await;
        assert_eq!(status, 401, "the banned account's token");
        let event = tokio::time::timeout(Duration::from_secs(5), ended.next()).await.expect("event").expect("open");
        let event = SessionsEnded::decode(event.payload.as_slice()).expect("decode");
        assert_eq!((event.user_id, event.reason), (id, SessionsEndedReason::Banned as i32));
        let (_, v) =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "erin", "password": "secret99"})).await;
        assert_ne!(code(&v), 200, "a banned account cannot log in: {v}");
        assert!(site.logic.set_banned(id, None, "127.0.0.1").await.expect("unban"));
        let (fresh, _) = login("erin").await;
        let (status, _) = post(&site, detail, Some(&fresh), json!({})).await;
        assert_eq!(status, 200, "after the ban is lifted");
        assert!(
            !site
                .logic
                .set_banned(i64::MAX, Some(rsgame_usercenter::Ban::default()), "127.0.0.1")
                .await
                .expect("no account")
        );
        // Without a token, or with another's: refused.
        let (status, _) = post(&site, "/usercenter/v1/user/logoutAll", None, json!({})).await;
        assert_eq!(status, 401);
    })
    .await;
}

#[tokio::test]
async fn register_can_require_a_captcha_and_token_replies_name_the_game_servers() {
    on_every_backend(|_, db, cache| async move {
        let cfg = UsercenterConfig {
            register_captcha: true,
            game_servers: vec!["wss://eu1.example.com/ws".into(), "/ws".into()],
            ..UsercenterConfig::default()
        };
        let site = start_with(db, cache, cfg).await;
        let form = |key: &str, code: &str| {
            json!({"username": "cap", "password": "secret99", "captchaKey": key, "captchaCode": code})
        };
        let (_, v) = post(&site, "/usercenter/v1/user/register", None, form("", "")).await;
        assert_eq!(code(&v), 400508, "no captcha: {v}");
        // A wrong answer uses the captcha up: the right answer afterwards does not pass.
        let (_, c) = post(&site, "/basic/v1/basic/captcha", None, json!({})).await;
        let key = c["data"]["key"].as_str().expect("key").to_owned();
        let answer = site.basic.peek_answer(&key).await.expect("answer");
        let (_, v) = post(&site, "/usercenter/v1/user/register", None, form(&key, "nope")).await;
        assert_eq!(code(&v), 400509, "wrong captcha: {v}");
        let (_, v) = post(&site, "/usercenter/v1/user/register", None, form(&key, &answer)).await;
        assert_eq!(code(&v), 400509, "a captcha works once: {v}");
        // A form refused for its username keeps the captcha for the next try.
        let (_, c) = post(&site, "/basic/v1/basic/captcha", None, json!({})).await;
        let key = c["data"]["key"].as_str().expect("key").to_owned();
        let answer = site.basic.peek_answer(&key).await.expect("answer");
        let bad = json!({"username": "x", "password": "secret99", "captchaKey": key, "captchaCode": answer});
        let (_, v) = post(&site, "/usercenter/v1/user/register", None, bad).await;
        assert_eq!(code(&v), 400102, "bad username: {v}");
        let (_, v) = post(&site, "/usercenter/v1/user/register", None, form(&key, &answer.to_uppercase())).await;
        assert_eq!(code(&v), 200, "the right answer, in any case: {v}");
        assert_eq!(v["data"]["servers"], json!(["wss://eu1.example.com/ws", "/ws"]), "{v}");
        // Logging in needs no captcha (until repeated failures), and names the servers too.
        let (_, v) =
            post(&site, "/usercenter/v1/user/login", None, json!({"username": "cap", "password": "secret99"})).await;
        assert_eq!(code(&v), 200, "{v}");
        assert_eq!(v["data"]["servers"], json!(["wss://eu1.example.com/ws", "/ws"]), "{v}");
    })
    .await;
}

#[tokio::test]
async fn repeated_failures_need_a_captcha_then_lock() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        register(&site, "eve").await;
        let login = |pw: &str, key: &str, code: &str| {
            json!({"username": "eve", "password": pw, "captchaKey": key, "captchaCode": code})
        };
        for _ in 0..3 {
            let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("wrong123", "", "")).await;
            assert_eq!(code(&v), 400507);
        }
        // Now a captcha is needed, even with the right password.
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("secret99", "", "")).await;
        assert_eq!(code(&v), 400508, "{v}");

        let (status, v) = call(site.port, "GET", "/basic/v1/basic/captcha", None, "").await;
        assert_eq!((status, code(&v)), (200, 200), "{v}");
        let img = v["data"]["image"].as_str().expect("image");
        let png = img.strip_prefix("data:image/png;base64,").expect("data URI");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png).expect("base64");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(v["data"]["length"], 5);
        let key = v["data"]["key"].as_str().expect("key").to_owned();
        let answer = site.basic.peek_answer(&key).await.expect("answer");

        let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("secret99", &key, "zzzzz")).await;
        assert_eq!(code(&v), 400509, "wrong captcha: {v}");
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("secret99", &key, &answer)).await;
        assert_eq!(code(&v), 400509, "a captcha works once, even with the right answer: {v}");
        // Made-up captchas are no password failures: however many, they lock nothing.
        for i in 0..20 {
            let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("wrong123", &format!("made-up-{i}"), "x")).await;
            assert_eq!(code(&v), 400509, "{v}");
        }

        let (_, v) = call(site.port, "GET", "/basic/v1/basic/captcha", None, "").await;
        let key = v["data"]["key"].as_str().expect("key").to_owned();
        let answer = site.basic.peek_answer(&key).await.expect("answer").to_uppercase();
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("secret99", &key, &answer)).await;
        assert_eq!(code(&v), 200, "right captcha (any case) and password: {v}");

        // The right password started this address afresh on the account: three more
        // failures, then three with solved captchas reach the limit (6), and this address is
        // locked out of the account.
        let mut locked = false;
        for _ in 0..10 {
            let (_, v) = call(site.port, "GET", "/basic/v1/basic/captcha", None, "").await;
            let key = v["data"]["key"].as_str().expect("key").to_owned();
            let answer = site.basic.peek_answer(&key).await.unwrap_or_default();
            let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("wrong123", &key, &answer)).await;
            if code(&v) == 400510 {
                locked = true;
                break;
            }
            assert_eq!(code(&v), 400507, "{v}");
        }
        assert!(locked, "repeated failures with solved captchas lock the login");
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, login("secret99", "", "")).await;
        assert_eq!(code(&v), 400510, "locked, even with the right password: {v}");
    })
    .await;
}

#[tokio::test]
async fn qr_login_is_confirmed_by_a_logged_in_device_and_works_once() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let phone = register(&site, "fay").await;
        let (_, v) = post(&site, "/usercenter/v1/user/loginScan/create", None, json!({})).await;
        assert_eq!(code(&v), 200, "{v}");
        let value = v["data"]["value"].as_str().expect("value").to_owned();
        assert!(v["data"]["qr"].as_str().is_some_and(|q| q.ends_with(&value)));

        // The waiting page asks while nobody has confirmed: held, then "pending". (Asked
        // concurrently with the confirmation below, so the long poll is seen to end early.)
        let waiting = {
            let port = site.port;
            let value = value.clone();
            tokio::spawn(async move {
                call(port, "POST", "/usercenter/v1/user/loginScan", None, &json!({"value": value}).to_string()).await
            })
        };
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Confirming needs a logged-in device.
        let (status, _) = post(&site, "/usercenter/v1/user/loginScan/confirm", None, json!({"value": value})).await;
        assert_eq!(status, 401);
        let (_, v) = post(
            &site,
            "/usercenter/v1/user/loginScan/confirm",
            phone["accessToken"].as_str(),
            json!({"value": value}),
        )
        .await;
        assert_eq!(code(&v), 200, "{v}");
        let (_, v) = waiting.await.expect("poll");
        assert_eq!(code(&v), 200, "the waiting page got tokens: {v}");
        let (_, detail) = post(&site, "/usercenter/v1/user/detail", v["data"]["accessToken"].as_str(), json!({})).await;
        assert_eq!(detail["data"]["userInfo"]["username"], "fay");

        // Once only, and an unknown key is not found.
        let (_, v) = post(&site, "/usercenter/v1/user/loginScan", None, json!({"value": value})).await;
        assert_eq!(code(&v), 400201);
        let (_, v) = post(
            &site,
            "/usercenter/v1/user/loginScan/confirm",
            phone["accessToken"].as_str(),
            json!({"value": value}),
        )
        .await;
        assert_eq!(code(&v), 400201);
    })
    .await;
}

/// SQL metacharacters, quotes, NUL, a long string and non-ASCII text in every text field of
/// every route: each is refused as bad input or treated as plain text, never a server error,
/// and the tables are intact afterwards.
#[tokio::test]
async fn hostile_text_in_every_field_is_only_text() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let t = register(&site, "ivy").await;
        let token = t["accessToken"].as_str().expect("token").to_owned();
        let evils = [
            "' OR '1'='1",
            "'; DROP TABLE mem_user; --",
            "\\\" OR 1=1 #",
            "%_%",
            "a\u{0}b",
            "名字'); DELETE FROM basic_file; --",
            &"x".repeat(5000),
        ];
        let routes: [(&str, bool, &[&str]); 12] = [
            ("/usercenter/v1/user/register", false, &["username", "password", "nickname"]),
            ("/usercenter/v1/user/login", false, &["username", "password", "captchaKey", "captchaCode"]),
            ("/usercenter/v1/user/loginDevice", false, &["deviceId", "captchaKey", "captchaCode"]),
            ("/usercenter/v1/user/refresh", false, &["refreshToken"]),
            ("/usercenter/v1/user/loginScan", false, &["value"]),
            ("/usercenter/v1/user/loginScan/confirm", true, &["value"]),
            ("/basic/v1/basic/sendCode", false, &["phone", "key", "code"]),
            ("/basic/v1/basic/verifyCode", false, &["key", "code"]),
            ("/basic/v1/basic/fileDetail", true, &["value"]),
            ("/basic/v1/basic/getFileByKey", true, &["value"]),
            ("/basic/v1/basic/myFileList", true, &["key"]),
            ("/basic/v1/basic/delFileList", true, &[]),
        ];
        for evil in evils {
            for (path, auth, fields) in routes {
                let mut body = json!({"sendType": 1, "verilyType": 1, "page": 1, "pageSize": 10, "guids": [evil]});
                for f in fields {
                    body[*f] = json!(evil);
                }
                let (status, v) = post(&site, path, auth.then_some(token.as_str()), body).await;
                let c = code(&v);
                assert!(status < 500 && c != 400200 && c != 400 && c != -1, "{path} with {evil:?}: {status} {v}");
            }
        }
        // Still one account, still readable. (Logging in again is locked out by now: every
        // hostile login above counted against this IP.)
        let (_, v) = post(&site, "/usercenter/v1/user/detail", Some(&token), json!({})).await;
        assert_eq!(v["data"]["userInfo"]["username"], "ivy", "{v}");
        let (_, v) = post(&site, "/usercenter/v1/user/logout", Some(&token), json!({"refreshToken": evils[1]})).await;
        assert_eq!(code(&v), 200, "an unknown refresh token revokes nothing else: {v}");
        let q = sea_query::Query::select().column("username").from("mem_user").to_owned();
        assert_eq!(site.db.fetch_all(&q).await.expect("users").len(), 1);
    })
    .await;
}

/// A device id logs in as one guest account, made by its first call and found by every later
/// one; a bad id is refused before anything is read; eight first calls of one new device at
/// once make exactly one account; the id is kept only as a hash; a ban shuts the device out.
#[tokio::test]
async fn a_device_id_makes_one_guest_account_and_logs_it_in_again() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let path = "/usercenter/v1/user/loginDevice";
        let detail = "/usercenter/v1/user/detail";
        let id_of = |token: String| {
            let site = &site;
            async move {
                let (status, me) = post(site, detail, Some(&token), json!({})).await;
                assert_eq!(status, 200, "{me}");
                (me["data"]["userInfo"]["id"].as_i64().expect("id"), me["data"]["userInfo"].clone())
            }
        };
        let login = |device: String| {
            let site = &site;
            async move {
                let (status, v) = post(site, path, None, json!({ "deviceId": device })).await;
                assert_eq!((status, code(&v)), (200, 200), "{v}");
                v["data"]["accessToken"].as_str().expect("token").to_owned()
            }
        };
        let (id, info) = id_of(login("install-7f3a9c21-aa".into()).await).await;
        assert!(info["nickname"].as_str().is_some_and(|n| n.starts_with("Guest-")), "{info}");
        assert!(info["username"].as_str().is_some_and(|n| n.starts_with("guest-")), "{info}");
        let (again, _) = id_of(login("install-7f3a9c21-aa".into()).await).await;
        assert_eq!(again, id, "the same device, the same account");
        let (other, _) = id_of(login("install-0000000001".into()).await).await;
        assert_ne!(other, id, "another device, another account");

        for bad in ["", "short", &"x".repeat(129), "has a space in it", "tab\there-12345", "ünicode-123456"] {
            let (_, v) = post(&site, path, None, json!({ "deviceId": bad })).await;
            assert_eq!(code(&v), 400102, "{bad:?}: {v}");
        }
        let (_, v) = post(&site, path, None, json!({})).await;
        assert_eq!(code(&v), 400102, "no deviceId: {v}");

        // A new device's first calls, all at once: one account, every call logged into it.
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let port = site.port;
                tokio::spawn(async move {
                    let body = json!({ "deviceId": "racing-device-0001" }).to_string();
                    call(port, "POST", path, None, &body).await
                })
            })
            .collect();
        let mut ids = Vec::new();
        for r in racers {
            let (status, v) = r.await.expect("task");
            assert_eq!((status, code(&v)), (200, 200), "{v}");
            ids.push(id_of(v["data"]["accessToken"].as_str().expect("token").to_owned()).await.0);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one account for one device: {ids:?}");
        let q = sea_query::Query::select()
            .columns(["ident", "user_id"])
            .from("uc_identity")
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("user_id"), ids[0]))
            .to_owned();
        let rows = site.db.fetch_all(&q).await.expect("identities");
        assert_eq!(rows.len(), 1, "one identity row");
        let ident = rows[0].string("ident").expect("ident");
        assert_eq!(ident.len(), 64, "a SHA-256, not the id: {ident}");
        assert!(!ident.contains("racing"));
        let q = sea_query::Query::select()
            .column("id")
            .from("mem_user")
            .and_where(sea_query::ExprTrait::like(sea_query::Expr::col("username"), "guest-%"))
            .to_owned();
        assert_eq!(site.db.fetch_all(&q).await.expect("guests").len(), 3, "no half-made account left by the race");

        // A guest has no password to log in with, and a ban shuts its device out.
        let name = info["username"].as_str().expect("name");
        let (_, v) = post(&site, "/usercenter/v1/user/login", None, json!({"username": name, "password": "!"})).await;
        assert_eq!(code(&v), 400507, "{v}");
        assert!(site.logic.set_banned(id, Some(rsgame_usercenter::Ban::default()), "127.0.0.1").await.expect("ban"));
        let (_, v) = post(&site, path, None, json!({ "deviceId": "install-7f3a9c21-aa" })).await;
        assert_eq!(code(&v), 400515, "a banned guest: {v}");
    })
    .await;
}

/// New devices count as sign-ups: past `register_captcha_after_per_ip` from one address in an
/// hour, a new device needs a captcha; devices that already have an account do not.
#[tokio::test]
async fn new_devices_from_one_address_need_a_captcha_past_the_sign_up_limit() {
    on_every_backend(|_, db, cache| async move {
        let cfg = UsercenterConfig { register_captcha_after_per_ip: 2, ..UsercenterConfig::default() };
        let site = start_with(db, cache, cfg).await;
        let path = "/usercenter/v1/user/loginDevice";
        for n in 0..2 {
            let (_, v) = post(&site, path, None, json!({ "deviceId": format!("first-devices-{n:04}") })).await;
            assert_eq!(code(&v), 200, "{v}");
        }
        let (_, v) = post(&site, path, None, json!({ "deviceId": "third-device-0001" })).await;
        assert_eq!(code(&v), 400508, "a third new device: {v}");
        let (_, v) = post(&site, path, None, json!({ "deviceId": "first-devices-0000" })).await;
        assert_eq!(code(&v), 200, "a known device logs in: {v}");
        let (_, c) = post(&site, "/basic/v1/basic/captcha", None, json!({})).await;
        let key = c["data"]["key"].as_str().expect("key").to_owned();
        let answer = site.basic.peek_answer(&key).await.expect("answer");
        let (_, v) = post(
            &site,
            path,
            None,
            json!({ "deviceId": "third-device-0001", "captchaKey": key, "captchaCode": answer }),
        )
        .await;
        assert_eq!(code(&v), 200, "with a solved captcha: {v}");
    })
    .await;
}

/// A password change needs the password now, ends every session of the account (tokens and
/// refresh tokens, with an event for the game nodes) and hands the caller new tokens; a wrong
/// old password counts like a failed login, a weak new one is refused, a guest has none.
#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    use prost::Message as _;
    use rsgame_proto::events::{SESSIONS_ENDED_TOPIC, SessionsEnded, SessionsEndedReason};
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let mut ended = site.bus.subscribe(SESSIONS_ENDED_TOPIC, "node-test").await.expect("subscribe");
        let path = "/usercenter/v1/user/changePassword";
        let detail = "/usercenter/v1/user/detail";
        let login = |password: &'static str| {
            let site = &site;
            async move {
                post(site, "/usercenter/v1/user/login", None, json!({"username": "gus", "password": password})).await.1
            }
        };
        let me = register(&site, "gus").await;
        let token = me["accessToken"].as_str().expect("token").to_owned();
        let other = login("secret99").await;
        let phone = other["data"]["accessToken"].as_str().expect("token").to_owned();
        let phone_refresh = other["data"]["refreshToken"].as_str().expect("refresh").to_owned();

        let (_, v) = post(&site, path, Some(&token), json!({"old": "wrong999", "new": "better77"})).await;
        assert_eq!(code(&v), 400507, "a wrong old password: {v}");
        let (_, v) = post(&site, path, Some(&token), json!({"old": "secret99", "new": "short"})).await;
        assert_eq!(code(&v), 400102, "a weak new one: {v}");
        let (status, _) = post(&site, path, None, json!({"old": "secret99", "new": "better77"})).await;
        assert_eq!(status, 401, "no token");
        let (status, _) = post(&site, detail, Some(&phone), json!({})).await;
        assert_eq!(status, 200, "nothing ended yet");

        let (status, v) = post(&site, path, Some(&token), json!({"old": "secret99", "new": "better77"})).await;
        assert_eq!((status, code(&v)), (200, 200), "{v}");
        let fresh = v["data"]["accessToken"].as_str().expect("new token").to_owned();
        for old in [&token, &phone] {
            let (status, v) = post(&site, detail, Some(old), json!({})).await;
            assert_eq!((status, code(&v)), (401, 400103), "a token from before: {v}");
        }
        let (status, v) = post(&site, detail, Some(&fresh), json!({})).await;
        assert_eq!(status, 200, "the caller's new token: {v}");
        let id = v["data"]["userInfo"]["id"].as_i64().expect("id");
        let (_, v) = post(&site, "/usercenter/v1/user/refresh", None, json!({"refreshToken": phone_refresh})).await;
        assert_eq!(code(&v), 400103, "refresh tokens from before: {v}");
        let event = tokio::time::timeout(Duration::from_secs(5), ended.next()).await.expect("event").expect("open");
        let event = SessionsEnded::decode(event.payload.as_slice()).expect("decode");
        assert_eq!((event.user_id, event.reason), (id, SessionsEndedReason::PasswordChanged as i32));
        assert_eq!(code(&login("secret99").await), 400507, "the old password is gone");
        assert_eq!(code(&login("better77").await), 200, "the new one logs in");

        // A guest has no password: nothing to prove, nothing to change.
        let (_, v) =
            post(&site, "/usercenter/v1/user/loginDevice", None, json!({"deviceId": "guest-device-0001"})).await;
        let guest = v["data"]["accessToken"].as_str().expect("token").to_owned();
        let (_, v) = post(&site, path, Some(&guest), json!({"old": "!", "new": "better77"})).await;
        assert_eq!(code(&v), 400507, "{v}");
    })
    .await;
}
