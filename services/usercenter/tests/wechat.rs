//! WeChat mini-game login against a local fake of WeChat's `jscode2session` that answers as
//! WeChat does: an openid (and unionid) for a good code, errcode 40029 for a bad one, and a
//! server that is slow or answers garbage. On every backend.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use common::*;
use rsgame_kit::config::Secret;
use rsgame_testkit::on_every_backend;
use rsgame_usercenter::config::UsercenterConfig;
use serde_json::json;

const WX: &str = "/usercenter/v1/user/loginWechat";

/// What the fake saw: every query, to check the app's credentials went out.
type Seen = Arc<Mutex<Vec<std::collections::HashMap<String, String>>>>;

/// The fake: codes `good-<openid>` answer that openid; `union-<openid>-<unionid>` add a
/// unionid; `slow…` never answers in time; `junk…` answers HTML; anything else is 40029.
async fn fake_wechat() -> (String, Seen, rsgame_kit::Shutdown) {
    async fn answer(
        State(seen): State<Seen>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        seen.lock().expect("lock").push(q.clone());
        let code = q.get("js_code").cloned().unwrap_or_default();
        if let Some(openid) = code.strip_prefix("good-") {
            return axum::Json(json!({"openid": openid, "session_key": "SECRET-SESSION-KEY=="})).into_response();
        }
        if let Some((openid, unionid)) = code.strip_prefix("union-").and_then(|r| r.split_once('-')) {
            return axum::Json(json!({"openid": openid, "unionid": unionid, "session_key": "SECRET-SESSION-KEY=="}))
                .into_response();
        }
        if code.starts_with("slow") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        if code.starts_with("junk") {
            return "<html>busy</html>".into_response();
        }
        axum::Json(json!({"errcode": 40029, "errmsg": "invalid code, rid: 6530d0f3"})).into_response()
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route("/sns/jscode2session", get(answer)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = rsgame_kit::Shutdown::new();
    tokio::spawn(rsgame_kit::http::serve(listener, None, app, shutdown.clone()));
    (url, seen, shutdown)
}

fn config(url: &str) -> UsercenterConfig {
    UsercenterConfig {
        wechat_appid: "wx0123456789abcdef".into(),
        wechat_secret: Secret::new("app-secret-from-the-environment"),
        wechat_url: url.into(),
        wechat_timeout_ms: 500,
        ..UsercenterConfig::default()
    }
}

#[tokio::test]
async fn a_wechat_code_logs_in_its_player_and_refusals_are_told_apart() {
    let (url, seen, stop) = fake_wechat().await;
    on_every_backend(|_, db, cache| {
        let (url, seen) = (url.clone(), seen.clone());
        async move {
            let site = start_with(db, cache, config(&url)).await;
            let login = |code: &str| post(&site, WX, None, json!({ "code": code }));

            let (_, v) = login("good-oPlayerOne000000000000001").await;
            assert_eq!(code(&v), 200, "{v}");
            assert!(!v.to_string().contains("SECRET-SESSION-KEY"), "the session_key never goes out");
            let (id, detail) = me(&site, &access(&v)).await;
            assert_eq!(detail["identities"][0]["kind"], "wechat", "{detail}");
            let (_, v) = login("good-oPlayerOne000000000000001").await;
            assert_eq!(me(&site, &access(&v)).await.0, id, "the same player, the same account");
            let q = seen.lock().expect("lock").last().cloned().expect("a call");
            assert_eq!(q.get("appid").map(String::as_str), Some("wx0123456789abcdef"));
            assert_eq!(q.get("secret").map(String::as_str), Some("app-secret-from-the-environment"));
            assert_eq!(q.get("grant_type").map(String::as_str), Some("authorization_code"));

            // A unionid finds the studio's player from another mini-game.
            let (_, v) = login("union-oMiniGameA00000000000002-uStudioPlayer0000000000002").await;
            let first = me(&site, &access(&v)).await.0;
            let (_, v) = login("union-oMiniGameB00000000000002-uStudioPlayer0000000000002").await;
            assert_eq!(me(&site, &access(&v)).await.0, first, "one account across the studio's apps");

            // Refused, slow, garbage, malformed.
            assert_eq!(code(&login("bad-code-from-an-old-session").await.1), 400520);
            assert_eq!(code(&login("slow-code-0000000000").await.1), 400503);
            assert_eq!(code(&login("junk-code-0000000000").await.1), 400503);
            assert_eq!(code(&login("a&secret=x&b=y").await.1), 400102, "not sent to WeChat");
            assert_eq!(code(&login("").await.1), 400102);

            // Binding: a WeChat user on another account is refused; a fresh one binds.
            let guest = access(&post(&site, DEVICE_PATH, None, json!({"deviceId": "wechat-binder-01"})).await.1);
            let taken = json!({"kind": "wechat", "code": "good-oPlayerOne000000000000001"});
            assert_eq!(code(&post(&site, "/usercenter/v1/user/bind", Some(&guest), taken).await.1), 400517);
            let fresh = json!({"kind": "wechat", "code": "good-oPlayerTwo000000000000003"});
            assert_eq!(code(&post(&site, "/usercenter/v1/user/bind", Some(&guest), fresh).await.1), 200);
            let (_, v) = login("good-oPlayerTwo000000000000003").await;
            assert_eq!(me(&site, &access(&v)).await.0, me(&site, &guest).await.0);
        }
    })
    .await;
    stop.trigger();
}

const DEVICE_PATH: &str = "/usercenter/v1/user/loginDevice";

#[tokio::test]
async fn wechat_login_is_off_without_an_appid_and_a_dead_endpoint_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = rsgame_store::Db::connect(&rsgame_store::config::DatabaseConfig {
        url: format!("sqlite://{}/t.db", dir.path().display()),
        ..Default::default()
    })
    .await
    .expect("db");
    rsgame_store::migrate::migrate(&db).await.expect("migrate");
    let cache = rsgame_store::Cache::memory(1000, "t:");
    let site = start(db.clone(), cache.clone()).await;
    let (_, v) = post(&site, WX, None, json!({"code": "good-oAnyone00000000000000004"})).await;
    assert_eq!(code(&v), 400501, "{v}");
    drop(site);

    // Nothing listens on this port (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let site = start_with(db, cache, config(&format!("http://127.0.0.1:{port}"))).await;
    let (_, v) = post(&site, WX, None, json!({"code": "good-oAnyone00000000000000004"})).await;
    assert_eq!(code(&v), 400503, "{v}");
}
