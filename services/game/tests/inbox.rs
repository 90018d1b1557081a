//! The inbox on every configured database (rsgame-testkit): attachments claimed once under
//! concurrency, the REST routes with their guard and their refusals, paging, deletion, expiry,
//! idempotent sends and the purge (over gRPC: tests/grpc.rs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rsgame_game::DataStore;
use rsgame_game::data::ItemCount;
use rsgame_game::inbox::NewMail;
use rsgame_game::logic::{Game, GameLogic};
use rsgame_kit::Code;
use rsgame_kit::auth::{Auth, Jwt};
use rsgame_testkit::{HttpReply, code, on_every_backend, post_json};
use serde_json::{Value, json};

fn data() -> DataStore {
    DataStore::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample")).expect("sample data")
}

fn gift(user_id: i64, coins: i64, goods: &[(i64, i64)]) -> NewMail {
    NewMail {
        user_id,
        kind: "gm".into(),
        title: "Sorry for the outage".into(),
        body: "A gift from the team.\nSee you in game.".into(),
        coins,
        goods: goods.iter().map(|&(goods_id, count)| ItemCount { goods_id, count }).collect(),
        ..NewMail::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attachment_claimed_twenty_times_at_once_is_paid_once() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        let start = game.pack(41).await.expect("pack");
        let id = game.send_mail(gift(41, 50, &[(1, 2)])).await.expect("send");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let game = game.clone();
                tokio::spawn(async move { game.claim_mail(41, id).await.map(|_| ()).map_err(|e| e.code()) })
            })
            .collect();
        let (mut ok, mut again) = (0, 0);
        for t in tasks {
            match t.await.expect("task") {
                Ok(()) => ok += 1,
                Err(Code::AlreadyClaimed) => again += 1,
                Err(c) => panic!("{stack:?}: unexpected {c:?}"),
            }
        }
        assert_eq!((ok, again), (1, 19), "{stack:?}");
        let pack = game.pack(41).await.expect("pack");
        assert_eq!(pack.player.coins, start.player.coins + 50, "{stack:?}");
        let potions = |p: &rsgame_game::logic::Pack| p.items.iter().find(|i| i.goods.id == 1).map_or(0, |i| i.count);
        assert_eq!(potions(&pack), potions(&start) + 2, "{stack:?}");
        assert_eq!(game.check_ledger().await.expect("check"), [], "{stack:?}: the ledger agrees");
        let page = game.inbox(41, 0, 10).await.expect("inbox");
        assert!(page.mails[0].claimed && page.mails[0].read, "{stack:?}: claimed is read");
        assert_eq!(page.unread, 0);
    })
    .await;
}

struct Api {
    port: u16,
    jwt: Arc<Jwt>,
    stop: rsgame_kit::Shutdown,
}

impl Api {
    async fn start(game: Arc<dyn Game>) -> Api {
        let jwt = Arc::new(Jwt::new(b"inbox-test", Duration::from_secs(600), Duration::from_secs(60)));
        let auth = Auth { jwt: jwt.clone(), revocations: None };
        let router = rsgame_game::api::router(game, auth, "admin-secret", None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = rsgame_kit::Shutdown::new();
        tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), stop.clone()));
        Api { port, jwt, stop }
    }

    fn token(&self, user: i64) -> String {
        self.jwt.issue(user).expect("token").0.access_token
    }

    async fn as_player(&self, user: i64, path: &str, body: Value) -> HttpReply {
        post_json(self.port, path, Some(&self.token(user)), &body).await
    }

    async fn send(&self, admin_token: &str, body: Value) -> HttpReply {
        let h = ["Content-Type: application/json".to_owned(), format!("X-Admin-Token: {admin_token}")];
        rsgame_testkit::call(self.port, "POST", "/game/v1/inbox/send", &h, body.to_string().as_bytes()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_list_read_claim_and_delete_their_own_messages_over_rest() {
    on_every_backend(|stack, db, _| async move {
        let logic = Arc::new(GameLogic::new(db.clone(), data()));
        let game: Arc<dyn Game> = logic.clone();
        let api = Api::start(game.clone()).await;
        let letter = json!({"userIds": [51, 52], "title": "Welcome", "body": "Glad you came."});
        // Only server-side tools send: a player's token or a wrong admin token is refused.
        let r = post_json(api.port, "/game/v1/inbox/send", Some(&api.token(51)), &letter).await;
        assert_eq!(code(&r), 400501, "{stack:?}");
        assert_eq!(code(&api.send("guess", letter.clone()).await), 400501);
        let r = api.send("admin-secret", letter).await;
        assert_eq!(code(&r), 200, "{stack:?}: {:?}", r.json());
        let gift = json!({"userIds": [51], "kind": "gm", "title": "Gift", "coins": 30,
                          "goods": [{"goods_id": 1, "count": 1}], "reference": "outage-2026-12"});
        let r = api.send("admin-secret", gift.clone()).await;
        let gift_id = r.json()["data"][0].as_i64().expect("id");
        // The same reference again is the same message: a sender may retry.
        assert_eq!(api.send("admin-secret", gift).await.json()["data"][0].as_i64(), Some(gift_id), "{stack:?}");

        // Newest first, a page at a time.
        let r = api.as_player(51, "/game/v1/inbox/list", json!({"limit": 1})).await;
        let page = &r.json()["data"];
        assert_eq!(page["unread"], 2, "{stack:?}: {page}");
        assert_eq!(page["mails"][0]["id"].as_i64(), Some(gift_id));
        assert_eq!(page["mails"][0]["goods"][0]["goods_id"], 1);
        let next = page["next"].as_i64().expect("next");
        let r = api.as_player(51, "/game/v1/inbox/list", json!({"before": next, "limit": 1})).await;
        let welcome = &r.json()["data"]["mails"][0];
        assert_eq!(welcome["title"], "Welcome");
        assert_eq!(r.json()["data"]["next"], 0, "the last page");
        let welcome_id = welcome["id"].as_i64().expect("id");

        // Another player's message is not found, and reading it changes nothing.
        let r = api.as_player(52, "/game/v1/inbox/claim", json!({"id": gift_id})).await;
        assert_eq!(code(&r), 400201, "{stack:?}");
        assert_eq!(code(&api.as_player(52, "/game/v1/inbox/read", json!({"ids": [gift_id]})).await), 200);
        assert_eq!(game.inbox(51, 0, 10).await.expect("inbox").unread, 2, "{stack:?}");

        // A message with its attachment unclaimed is not deleted, nor is any beside it.
        let r = api.as_player(51, "/game/v1/inbox/delete", json!({"ids": [welcome_id, gift_id]})).await;
        assert_eq!(code(&r), 400523, "{stack:?}");
        assert_eq!(game.inbox(51, 0, 10).await.expect("inbox").mails.len(), 2);
        let coins = game.player(51).await.expect("player").coins;
        let r = api.as_player(51, "/game/v1/inbox/claim", json!({"id": gift_id})).await;
        assert_eq!(code(&r), 200, "{stack:?}: {:?}", r.json());
        assert_eq!(r.json()["data"]["coins"], coins + 30);
        assert_eq!(code(&api.as_player(51, "/game/v1/inbox/claim", json!({"id": gift_id})).await), 400521);
        assert_eq!(code(&api.as_player(51, "/game/v1/inbox/claim", json!({"id": welcome_id})).await), 400102);
        assert_eq!(code(&api.as_player(51, "/game/v1/inbox/read", json!({"ids": [welcome_id]})).await), 200);
        assert_eq!(game.inbox(51, 0, 10).await.expect("inbox").unread, 0);
        let r = api.as_player(51, "/game/v1/inbox/delete", json!({"ids": [welcome_id, gift_id]})).await;
        assert_eq!(code(&r), 200, "{stack:?}");
        assert!(game.inbox(51, 0, 10).await.expect("inbox").mails.is_empty());
        assert_eq!(game.inbox(52, 0, 10).await.expect("inbox").mails.len(), 1, "52's own is untouched");

        // Bad input gets its code and stores nothing.
        for bad in [
            json!({"userIds": [51], "title": "bell\u{7}"}),
            json!({"userIds": [51], "title": ""}),
            json!({"userIds": [51], "title": "x".repeat(101)}),
            json!({"userIds": [51], "title": "t", "kind": "GM!"}),
            json!({"userIds": [51], "title": "t", "goods": [{"goods_id": 999_999, "count": 1}]}),
            json!({"userIds": [51], "title": "t", "goods": [{"goods_id": 1, "count": 0}]}),
            json!({"userIds": [51], "title": "t", "coins": -5}),
            json!({"userIds": [51], "title": "t", "expiresAt": 1000}),
            json!({"userIds": [51, 0], "title": "t"}),
            json!({"userIds": [], "title": "t"}),
        ] {
            let r = api.send("admin-secret", bad.clone()).await;
            assert_eq!(code(&r), 400102, "{stack:?}: {bad}");
        }
        assert!(game.inbox(51, 0, 10).await.expect("inbox").mails.is_empty(), "{stack:?}: nothing half-written");
        let r = api.as_player(51, "/game/v1/inbox/list", json!({"limit": 0})).await;
        assert_eq!(code(&r), 400102);
        let r = api.as_player(51, "/game/v1/inbox/read", json!({"ids": (1..=101).collect::<Vec<i64>>()})).await;
        assert_eq!(code(&r), 400102);
        let r = post_json(api.port, "/game/v1/inbox/list", None, &json!({})).await;
        assert_eq!(r.status, 401, "a token is needed");

        // An expired message is no longer listed and its attachment can no longer be claimed.
        let mut expiring = gift_mail(51, 10);
        expiring.expires_at = rsgame_kit::time::unix_ms() + 300;
        let id = game.send_mail(expiring).await.expect("send");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while game.inbox(51, 0, 10).await.expect("inbox").mails.iter().any(|m| m.id == id) {
            assert!(tokio::time::Instant::now() < deadline, "{stack:?}: still listed after expiry");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(game.claim_mail(51, id).await.map(|_| ()).map_err(|e| e.code()), Err(Code::MailExpired));
        assert_eq!(logic.check_ledger().await.expect("check"), [], "{stack:?}");
        api.stop.trigger();
    })
    .await;
}

#[tokio::test]
async fn old_deleted_and_expired_messages_are_purged_and_the_rest_stay() {
    on_every_backend(|stack, db, _| async move {
        let game = GameLogic::new(db.clone(), data());
        let kept = game.send_mail(gift_mail(71, 0)).await.expect("send");
        let deleted = game.send_mail(gift_mail(71, 0)).await.expect("send");
        game.delete_mail(71, &[deleted]).await.expect("delete");
        let claimed = game.send_mail(gift_mail(71, 5)).await.expect("send");
        game.claim_mail(71, claimed).await.expect("claim");
        let start = rsgame_kit::time::unix_ms();
        // Deleted before a cutoff in the past: not yet old enough.
        assert_eq!(game.purge_mail(start - 60_000).await.expect("purge"), 0, "{stack:?}");
        assert_eq!(game.purge_mail(rsgame_kit::time::unix_ms() + 1).await.expect("purge"), 1, "{stack:?}");
        let q = sea_query::Query::select()
            .column("id")
            .from("game_mail")
            .and_where(sea_query::ExprTrait::eq(sea_query::Expr::col("user_id"), 71))
            .to_owned();
        let left: Vec<i64> = db.fetch_all(&q).await.expect("rows").iter().map(|r| r.i64("id").expect("id")).collect();
        assert_eq!(left.len(), 2, "{stack:?}: {left:?}");
        assert!(left.contains(&kept) && left.contains(&claimed) && !left.contains(&deleted));
        assert_eq!(game.check_ledger().await.expect("check"), [], "{stack:?}: the claim's ledger rows stay");
    })
    .await;
}

fn gift_mail(user_id: i64, coins: i64) -> NewMail {
    gift(user_id, coins, &[])
}

#[tokio::test]
async fn mail_to_everyone_lands_once_in_each_players_inbox_that_played_before_it() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        for u in [61, 62] {
            game.pack(u).await.expect("played");
        }
        rsgame_testkit::next_ms().await;
        let all =
            |reference: &str| NewMail { body: "For everyone.".into(), reference: reference.into(), ..gift(0, 30, &[]) };
        let (id, new) = game.broadcast(&all("outage-1")).await.expect("sent");
        assert!(new, "{stack:?}");
        assert_eq!(
            game.broadcast(&all("outage-1")).await.expect("again"),
            (id, false),
            "{stack:?}: once per reference"
        );
        let bad = NewMail { coins: -1, ..all("outage-2") };
        assert_eq!(game.broadcast(&bad).await.map_err(|e| e.code()), Err(Code::BadParam), "{stack:?}");
        // A player who began after it is not meant.
        rsgame_testkit::next_ms().await;
        game.pack(63).await.expect("played later");

        for u in [61, 62] {
            let page = game.inbox(u, 0, 10).await.expect("inbox");
            assert_eq!(page.mails.len(), 1, "{stack:?} {u}");
            assert_eq!((page.mails[0].title.as_str(), page.mails[0].coins), ("Sorry for the outage", 30));
            assert_eq!(game.inbox(u, 0, 10).await.expect("again").mails.len(), 1, "{stack:?}: one copy");
        }
        assert!(game.inbox(63, 0, 10).await.expect("inbox").mails.is_empty(), "{stack:?}");
        // Claimed, deleted and purged: not made again.
        let copy = game.inbox(61, 0, 10).await.expect("inbox").mails[0].id;
        game.claim_mail(61, copy).await.expect("claimed");
        game.delete_mail(61, &[copy]).await.expect("deleted");
        game.purge_mail(rsgame_kit::time::unix_ms() + 1).await.expect("purged");
        assert!(game.inbox(61, 0, 10).await.expect("inbox").mails.is_empty(), "{stack:?}: not again");
    })
    .await;
}
