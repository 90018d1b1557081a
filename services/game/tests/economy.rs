//! The game economy on every configured database (rsgame-testkit): concurrent purchases,
//! battles and their retries, using goods, ranks, the ledger check, and the REST routes'
//! guard on score changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rsgame_game::DataStore;
use rsgame_game::logic::{Game, GameLogic, Grant, RankBy};
use rsgame_kit::Code;
use rsgame_kit::auth::{Auth, Jwt};
use rsgame_store::Db;
use rsgame_testkit::{code, on_every_backend, post_json};
use sea_query::{Expr, ExprTrait as _, Query};
use serde_json::json;

fn data() -> DataStore {
    DataStore::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample")).expect("sample data")
}

async fn ledger_rows(db: &Db, user_id: i64, reference: &str) -> usize {
    let q = Query::select()
        .column("id")
        .from("game_ledger")
        .and_where(Expr::col("user_id").eq(user_id))
        .and_where(Expr::col("reference").eq(reference))
        .to_owned();
    db.fetch_all(&q).await.expect("ledger").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_purchases_with_coins_for_ten() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        // The sample gives a new player 100 coins; listing 1 (a Small Potion) costs 10.
        assert_eq!(game.player(7).await.expect("player").coins, 100);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let game = game.clone();
                tokio::spawn(async move { game.buy(7, 1, 1).await.map(|_| ()).map_err(|e| e.code()) })
            })
            .collect();
        let mut ok = 0;
        let mut poor = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(()) => ok += 1,
                Err(Code::NotEnoughCoins) => poor += 1,
                Err(c) => panic!("{stack:?}: unexpected {c:?}"),
            }
        }
        assert_eq!((ok, poor), (10, 90), "{stack:?}");
        let pack = game.pack(7).await.expect("pack");
        assert_eq!(pack.player.coins, 0, "{stack:?}");
        assert_eq!(pack.items.iter().find(|i| i.goods.id == 1).map(|i| i.count), Some(10));
        assert_eq!(game.check_ledger().await.expect("check"), [], "{stack:?}: the ledger agrees");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn battles_are_deterministic_and_retries_grant_nothing_twice() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        let before = game.player(9).await.expect("player");
        let first = game.battle(9, 1, "req-1").await.expect("battle");
        assert!(first.war_info.win, "{stack:?}: a new player beats the Slime Meadow");
        assert!(first.war_info.hits.len() >= 2 && first.rewards.coins > 0);
        // Retried, sequentially and ten at once: the same record, rewards once.
        assert_eq!(game.battle(9, 1, "req-1").await.expect("retry"), first);
        let retries: Vec<_> = (0..10)
            .map(|_| {
                let game = game.clone();
                tokio::spawn(async move { game.battle(9, 1, "req-1").await.map_err(|e| e.code()) })
            })
            .collect();
        for t in retries {
            assert_eq!(t.await.expect("task").expect("retry"), first, "{stack:?}");
        }
        let after = game.player(9).await.expect("player");
        assert_eq!(after.coins, before.coins + first.rewards.coins, "{stack:?}: granted once");
        assert_eq!(ledger_rows(&db, 9, "battle:req-1").await, 4, "coins, score, exp and the item: once each");

        // Another request id: a new fight, from another seed.
        let second = game.battle(9, 1, "req-2").await.expect("battle");
        assert_ne!(second.war_info.seed, first.war_info.seed);

        // A level above the player's is refused; progress is counted.
        assert_eq!(game.battle(9, 3, "req-3").await.map(|_| ()).map_err(|e| e.code()), Err(Code::LevelTooLow));
        let progress = game.my_battles(9).await.expect("progress");
        let meadow = progress.iter().find(|p| p.level_id == 1).expect("level 1");
        assert_eq!(meadow.wins + meadow.losses, 2, "{stack:?}");
        assert_eq!(game.check_ledger().await.expect("check"), [], "{stack:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reward_granted_again_by_its_reference_is_paid_once() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        let before = game.player(11).await.expect("player");
        let first =
            game.reward(11, Grant { exp: 30, coins: 5, score: 2 }, "kill", "kill:run:1000:1:77").await.expect("reward");
        assert_eq!(first.coins, before.coins + 5, "{stack:?}");
        assert_eq!(first.score, before.score + 2, "{stack:?}: a kill's score counts on the leaderboard");
        // A retry after a lost answer, sequentially and eight at once: nothing twice.
        let retries: Vec<_> = (0..8)
            .map(|_| {
                let game = game.clone();
                tokio::spawn(async move {
                    game.reward(11, Grant { exp: 30, coins: 5, score: 2 }, "kill", "kill:run:1000:1:77").await
                })
            })
            .collect();
        for t in retries {
            assert_eq!(t.await.expect("task").expect("retry").coins, first.coins, "{stack:?}");
        }
        assert_eq!(ledger_rows(&db, 11, "kill:run:1000:1:77").await, 3, "{stack:?}: coins, score and exp once each");
        // Another kill is another reward.
        let second =
            game.reward(11, Grant { exp: 30, coins: 5, score: 2 }, "kill", "kill:run:1000:1:78").await.expect("reward");
        assert_eq!(second.coins, first.coins + 5, "{stack:?}");
        assert_eq!(game.check_ledger().await.expect("check"), [], "{stack:?}");
    })
    .await;
}

#[tokio::test]
async fn goods_heal_teach_buff_and_equip() {
    on_every_backend(|stack, db, _| async move {
        let game = GameLogic::new(db.clone(), data());
        assert_eq!(game.use_goods(11, 1).await.map(|_| ()).map_err(|e| e.code()), Err(Code::NotEnoughItems));
        game.buy(11, 3, 1).await.expect("a scroll of insight (60 coins)");
        game.buy(11, 5, 1).await.expect("a wooden sword (40 coins)");
        assert_eq!(game.buy(11, 1, 1).await.map(|_| ()).map_err(|e| e.code()), Err(Code::NotEnoughCoins));
        let p = game.use_goods(11, 3).await.expect("use the scroll");
        assert_eq!(p.player.exp, 120);
        assert_eq!(p.player.level, 2, "{stack:?}: 100 exp reach level 2");
        assert_eq!(p.player.hp, p.player.max_hp, "{stack:?}: a level-up refills hp, no more");
        assert_eq!(p.player.max_hp, 120);
        assert!(p.player.attack > 10, "a level-up raised attack");
        let p = game.use_goods(11, 10).await.expect("equip the sword");
        assert_eq!(p.player.weapon, 10);
        assert_eq!(p.total_attack, p.player.attack + 6);
        assert!(p.items.iter().any(|i| i.goods.id == 10 && i.equipped && i.count == 1), "equipping keeps it");
        assert_eq!(game.use_goods(11, 20).await.map(|_| ()).map_err(|e| e.code()), Err(Code::Forbidden));
        assert_eq!(game.check_ledger().await.expect("check"), []);

        // A balance changed behind the ledger's back is found.
        let q =
            Query::update().table("game_player").value("coins", 999).and_where(Expr::col("user_id").eq(11)).to_owned();
        db.execute(&q).await.expect("tamper");
        let found = game.check_ledger().await.expect("check");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].asset.as_str(), found[0].balance, found[0].ledger), ("coins", 999, 0));
    })
    .await;
}

#[tokio::test]
async fn amounts_that_would_wrap_or_pass_the_limit_are_refused() {
    use rsgame_game::logic::{MAX_BALANCE, MAX_DELTA};
    on_every_backend(|stack, db, _| async move {
        let game = GameLogic::new(db.clone(), data());
        let refused = |r: rsgame_kit::Result<rsgame_game::logic::Player>| r.map(|_| ()).map_err(|e| e.code());
        // `-i64::MIN` wraps to itself: it once passed the balance guard.
        for coins in [i64::MIN, i64::MIN + 1, -MAX_DELTA - 1, MAX_DELTA + 1, i64::MAX] {
            assert_eq!(refused(game.change_score(41, coins, 0, "gm", "").await), Err(Code::BadParam), "{coins}");
            assert_eq!(refused(game.change_score(41, 0, coins, "gm", "").await), Err(Code::BadParam), "{coins}");
        }
        assert_eq!(refused(game.change_score(41, -MAX_DELTA, 0, "gm", "").await), Err(Code::NotEnoughCoins));
        // Up to the limit and no further.
        let q = Query::update()
            .table("game_player")
            .value("coins", MAX_BALANCE - 10)
            .and_where(Expr::col("user_id").eq(41))
            .to_owned();
        db.execute(&q).await.expect("near the limit");
        assert_eq!(refused(game.change_score(41, 11, 0, "gm", "").await), Err(Code::Forbidden), "{stack:?}");
        assert_eq!(game.change_score(41, 10, 0, "gm", "").await.expect("to the limit").coins, MAX_BALANCE);
        let p = game.player(41).await.expect("player");
        assert_eq!(p.coins, MAX_BALANCE, "{stack:?}: a refused change leaves the balance alone");
    })
    .await;
}

#[tokio::test]
async fn the_ledger_check_flags_a_negative_balance() {
    on_every_backend(|stack, db, _| async move {
        let game = GameLogic::new(db.clone(), data());
        game.change_score(42, 0, 5, "gm", "").await.expect("change");
        assert_eq!(game.check_ledger().await.expect("check"), []);
        // A negative balance whose ledger rows agree with it (as a wrapped sum once did).
        let q =
            Query::update().table("game_player").value("score", -7).and_where(Expr::col("user_id").eq(42)).to_owned();
        db.execute(&q).await.expect("tamper");
        let q = Query::insert()
            .into_table("game_ledger")
            .columns(["user_id", "asset", "delta", "balance", "reason", "reference", "created_at"])
            .values_panic([
                42i64.into(),
                "score".into(),
                (-12i64).into(),
                (-7i64).into(),
                "t".into(),
                "".into(),
                0i64.into(),
            ])
            .to_owned();
        db.insert_id(&q).await.expect("ledger row");
        let found = game.check_ledger().await.expect("check");
        assert_eq!(found.len(), 1, "{stack:?}: {found:?}");
        assert_eq!((found[0].asset.as_str(), found[0].balance, found[0].ledger), ("score", -7, -7));
    })
    .await;
}

#[tokio::test]
async fn ranks_and_the_guard_on_score_changes() {
    on_every_backend(|stack, db, cache| async move {
        // With Redis, the boards are Redis sorted sets; the database answers the same.
        let game: Arc<dyn Game> = Arc::new(GameLogic::new(db.clone(), data()).with_rank_cache(cache.clone()));
        let by_db = GameLogic::new(db.clone(), data());
        for (user, score) in [(21, 50), (22, 80), (23, 80), (24, 10)] {
            game.change_score(user, 0, score, "test", "").await.expect("change");
        }
        let r = game.rank(RankBy::Score, 1, 2, Some(24)).await.expect("rank");
        let top: Vec<(i64, i64)> = r.list.iter().map(|e| (e.rank, e.user_id)).collect();
        assert_eq!(top, [(1, 22), (2, 23)], "{stack:?}: ties by id");
        assert_eq!(r.me.map(|m| m.rank), Some(4));
        let r = game.rank(RankBy::Score, 2, 2, None).await.expect("page 2");
        assert_eq!(r.list.iter().map(|e| e.user_id).collect::<Vec<_>>(), [21, 24]);
        for by in [RankBy::Score, RankBy::Level] {
            let a = game.rank(by, 1, 10, Some(23)).await.expect("rank");
            let b = by_db.rank(by, 1, 10, Some(23)).await.expect("rank");
            assert_eq!((a.list, a.me), (b.list, b.me), "{stack:?} {by:?}: Redis and the database agree");
        }
        if cache.is_shared() {
            // A flushed Redis is rebuilt from the database on the next read.
            cache.delete(&["game:rank:score", "game:rank:level"]).await.expect("flush");
            // One write lands before the next read: the boards are still rebuilt whole.
            game.change_score(24, 0, 1, "test", "").await.expect("change");
            let r = game.rank(RankBy::Score, 1, 2, Some(21)).await.expect("rebuilt");
            assert_eq!(r.me.map(|m| m.rank), Some(3), "{stack:?}: players not written since are back");
            assert_eq!(r.list.iter().map(|e| e.user_id).collect::<Vec<_>>(), [22, 23]);
        }

        // Over HTTP: a player's token cannot change scores; the admin token can.
        let jwt = Arc::new(Jwt::new(b"game-test", Duration::from_secs(600), Duration::from_secs(60)));
        let router =
            rsgame_game::api::router(game.clone(), Auth { jwt: jwt.clone(), revocations: None }, "admin-secret", None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = rsgame_kit::Shutdown::new();
        tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), stop.clone()));
        let token = jwt.issue(21).expect("token").0.access_token;
        let grant = json!({"userId": 21, "coins": 100000, "score": 100000, "reason": "cheat"});
        let r = post_json(port, "/game/v1/game/changeScore", Some(&token), &grant).await;
        assert_eq!(code(&r), 400501, "{stack:?}: a client cannot grant itself coins");
        let h = ["Content-Type: application/json".to_owned(), "X-Admin-Token: wrong".to_owned()];
        let r = rsgame_testkit::call(port, "POST", "/game/v1/game/changeScore", &h, grant.to_string().as_bytes()).await;
        assert_eq!(code(&r), 400501);
        // Fields a client adds to a purchase are ignored: the price comes from the data.
        let r = post_json(port, "/game/v1/game/buyGoods", Some(&token), &json!({"id": 1, "price": 0, "coins": 99999}))
            .await;
        assert_eq!(code(&r), 200);
        assert_eq!(r.json()["data"]["player"]["coins"], 90);
        let h = ["Content-Type: application/json".to_owned(), "X-Admin-Token: admin-secret".to_owned()];
        let r = rsgame_testkit::call(
            port,
            "POST",
            "/game/v1/game/changeScore",
            &h,
            json!({"userId": 21, "score": 5, "reason": "event"}).to_string().as_bytes(),
        )
        .await;
        assert_eq!(code(&r), 200, "{:?}", r.json());
        assert_eq!(r.json()["data"]["score"], 55);
        let r = post_json(port, "/game/v1/game/getRank", Some(&token), &json!({"by": "score"})).await;
        assert_eq!(r.json()["data"]["me"]["rank"], 3);
        for path in ["/game/v1/game/getShop", "/game/v1/game/getNotify", "/game/v1/game/getBattle"] {
            assert_eq!(code(&post_json(port, path, None, &json!({})).await), 200, "{path}");
        }
        let r = post_json(port, "/game/v1/game/getPack", None, &json!({})).await;
        assert_eq!(r.status, 401);
        stop.trigger();
        assert_eq!(game.rank(RankBy::Level, 1, 10, None).await.expect("by level").list.len(), 4);
        let _ = stack;
    })
    .await;
}
