//! The game service over gRPC, through the remote implementation of the trait: the economy
//! and the inbox.

use std::path::PathBuf;
use std::sync::Arc;

use rsgame_game::DataStore;
use rsgame_game::data::ItemCount;
use rsgame_game::inbox::NewMail;
use rsgame_game::logic::{Game, GameLogic, RankBy};
use rsgame_game::rpc::{GameRpc, RemoteGame};
use rsgame_kit::Code;
use rsgame_testkit::on_every_backend;

/// The game service over `db`, served over gRPC with the token `game-token`: the local one,
/// the server's URL, and what stops it.
async fn serve(db: rsgame_store::Db) -> (Arc<dyn Game>, String, rsgame_kit::Shutdown) {
    let data = DataStore::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample")).expect("data");
    let local: Arc<dyn Game> = Arc::new(GameLogic::new(db, data));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = rsgame_kit::Shutdown::new();
    let router = rsgame_rpc::server("game-token", &Default::default(), None)
        .expect("server")
        .add_service(GameRpc::service(local.clone()));
    tokio::spawn(rsgame_rpc::serve(listener, router, stop.clone()));
    (local, url, stop)
}

#[tokio::test]
async fn the_economy_over_grpc() {
    on_every_backend(|stack, db, _| async move {
        let (local, url, stop) = serve(db).await;
        let remote = RemoteGame::over(rsgame_rpc::channel(&url, "game-token").expect("channel"));
        let intruder = RemoteGame::over(rsgame_rpc::channel(&url, "guess").expect("channel"));
        let refused = intruder.change_score(31, 1_000_000, 0, "cheat", "").await.map(|_| ()).map_err(|e| e.code());
        assert_eq!(refused, Err(Code::Unauthorized), "no score changes without the service token");

        assert_eq!(remote.shop().await.expect("shop"), local.shop().await.expect("shop"), "{stack:?}");
        assert_eq!(remote.levels().await.expect("levels"), local.levels().await.expect("levels"));
        assert_eq!(remote.notices().await.expect("notices"), local.notices().await.expect("notices"));
        let pack = remote.buy(31, 1, 3).await.expect("buy");
        assert_eq!(pack.player.coins, 70);
        assert_eq!(remote.buy(31, 8, 1).await.map(|_| ()).map_err(|e| e.code()), Err(Code::NotEnoughCoins));
        let b = remote.battle(31, 1, "grpc-1").await.expect("battle");
        assert_eq!(remote.battle(31, 1, "grpc-1").await.expect("retry"), b);
        assert_eq!(local.battle(31, 1, "grpc-1").await.expect("same"), b, "remote and local see one record");
        let p = remote.use_goods(31, 1).await.expect("potion");
        assert_eq!(p.items.iter().find(|i| i.goods.id == 1).map(|i| i.count), Some(2));
        let r = remote.rank(RankBy::Score, 1, 10, Some(31)).await.expect("rank");
        assert_eq!(r.me.map(|m| m.user_id), Some(31));
        assert_eq!(remote.my_battles(31).await.expect("progress"), local.my_battles(31).await.expect("progress"));
        let p = remote.change_score(31, 5, 7, "event", "grpc").await.expect("change");
        assert_eq!(p, local.player(31).await.expect("player"));
        stop.trigger();
    })
    .await;
}

#[tokio::test]
async fn the_inbox_over_grpc() {
    on_every_backend(|stack, db, _| async move {
        let (local, url, stop) = serve(db).await;
        let remote = RemoteGame::over(rsgame_rpc::channel(&url, "game-token").expect("channel"));
        let id = remote
            .send_mail(NewMail {
                user_id: 61,
                kind: "gm".into(),
                title: "A gift".into(),
                coins: 20,
                goods: vec![ItemCount { goods_id: 1, count: 3 }],
                ..NewMail::default()
            })
            .await
            .expect("send");
        let page = remote.inbox(61, 0, 10).await.expect("inbox");
        assert_eq!(page, local.inbox(61, 0, 10).await.expect("inbox"), "{stack:?}");
        assert_eq!(page.mails[0].goods, [ItemCount { goods_id: 1, count: 3 }]);
        remote.read_mail(61, &[id]).await.expect("read");
        let before = local.player(61).await.expect("player").coins;
        assert_eq!(remote.claim_mail(61, id).await.expect("claim").coins, before + 20);
        let again = remote.claim_mail(61, id).await.map(|_| ()).map_err(|e| e.code());
        assert_eq!(again, Err(Code::AlreadyClaimed), "{stack:?}: the code crosses gRPC");
        remote.delete_mail(61, &[id]).await.expect("delete");
        assert!(local.inbox(61, 0, 10).await.expect("inbox").mails.is_empty());
        stop.trigger();
    })
    .await;
}
