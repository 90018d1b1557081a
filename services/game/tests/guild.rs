//! Guilds on every configured database (rsgame-testkit): founding through the ledger, one
//! guild per player under concurrency, names unique without case, requests and invitations,
//! roles and their limits, a guild closed with its last member, chat history, and the REST
//! routes' refusals.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rsgame_game::DataStore;
use rsgame_game::guild::{GuildChat, Role};
use rsgame_game::logic::{Game, GameLogic};
use rsgame_kit::Code;
use rsgame_kit::auth::{Auth, Jwt};
use rsgame_testkit::{code, on_every_backend, post_json};
use serde_json::json;

fn data() -> DataStore {
    DataStore::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample")).expect("sample data")
}

async fn coins(game: &GameLogic, user: i64) -> i64 {
    game.pack(user).await.expect("pack").player.coins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn founding_costs_coins_once_and_a_name_is_one_guilds() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        let cost = game.data().guild.create_cost;
        // Enough coins for one guild, not two.
        game.change_score(61, cost + 20 - coins(&game, 61).await, 0, "test", "seed-61").await.expect("coins");
        let before = coins(&game, 61).await;
        // Five founding attempts at once by one player: one guild, paid once.
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let game = game.clone();
                tokio::spawn(async move {
                    game.guild_create(61, &format!("Wolves {i}"), "", true).await.map(|d| d.guild.id)
                })
            })
            .collect();
        let mut made = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(id) => made.push(id),
                Err(e) => assert!(matches!(e.code(), Code::Failed | Code::NotEnoughCoins), "{stack:?}: {e:?}"),
            }
        }
        assert_eq!(made.len(), 1, "{stack:?}: one guild per player");
        assert_eq!(coins(&game, 61).await, before - cost, "{stack:?}: paid once");
        assert_eq!(game.check_ledger().await.expect("ledger"), [], "{stack:?}");
        // The name is taken without regard to case; a poor player founds nothing and pays nothing.
        game.change_score(62, cost - coins(&game, 62).await, 0, "test", "seed-62").await.expect("coins");
        let name = game.guild_detail(61, 0).await.expect("mine").guild.name;
        let taken = game.guild_create(62, &name.to_uppercase(), "", true).await.expect_err("taken");
        assert_eq!(taken.code(), Code::NameTaken, "{stack:?}");
        assert_eq!(coins(&game, 62).await, cost, "{stack:?}: a refused founding costs nothing");
        game.change_score(63, -coins(&game, 63).await, 0, "test", "seed-63").await.expect("broke");
        assert_eq!(game.guild_create(63, "Paupers", "", true).await.expect_err("poor").code(), Code::NotEnoughCoins);
        assert!(game.guild_search("paupers", 10).await.expect("search").is_empty(), "{stack:?}: nothing half-made");
        for bad in ["x", "a\u{7}bc", "twenty-one characters"] {
            assert_eq!(game.guild_create(62, bad, "", true).await.expect_err(bad).code(), Code::BadParam);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_by_request_and_invitation_roles_bound_what_they_may_do() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        let cost = game.data().guild.create_cost;
        for u in [71, 81] {
            game.change_score(u, cost, 0, "test", &format!("seed-{u}")).await.expect("coins");
        }
        let g = game.guild_create(71, "Dragons", "Be kind.", false).await.expect("founded").guild.id;
        let other = game.guild_create(81, "Ravens", "", true).await.expect("founded").guild.id;
        // A closed guild: a request waits for an officer.
        assert!(!game.guild_join(72, g).await.expect("asked"), "{stack:?}");
        assert!(!game.guild_join(72, g).await.expect("asked again"), "asking twice changes nothing");
        assert_eq!(game.guild_requests(72).await.expect_err("not a member").code(), Code::Forbidden);
        let waiting = game.guild_requests(71).await.expect("requests");
        assert_eq!(waiting.iter().map(|r| r.user_id).collect::<Vec<_>>(), [72]);
        game.guild_answer(71, 72, true).await.expect("accepted");
        assert_eq!(game.guild_answer(71, 72, true).await.expect_err("answered").code(), Code::NotFound);
        // An invitation opens the closed guild to 73; it also lands in 73's inbox.
        game.guild_invite(71, 73).await.expect("invited");
        let inbox = game.inbox(73, 0, 10).await.expect("inbox");
        assert_eq!(inbox.mails[0].kind, "guild", "{stack:?}");
        assert!(game.guild_join(73, g).await.expect("joins by invitation"));
        // An open guild takes anyone at once; one guild per player.
        assert!(game.guild_join(82, other).await.expect("open"));
        assert_eq!(game.guild_join(82, g).await.expect_err("in a guild").code(), Code::Failed);
        // Roles: a member cannot kick; an officer kicks members but not the leader; another
        // guild's leader kicks nobody here.
        assert_eq!(game.guild_kick(72, 73).await.expect_err("a member").code(), Code::Forbidden);
        game.guild_set_role(71, 72, Role::Officer).await.expect("officer");
        assert_eq!(game.guild_kick(72, 71).await.expect_err("the leader").code(), Code::Forbidden);
        assert_eq!(game.guild_kick(81, 73).await.expect_err("another guild").code(), Code::Forbidden, "{stack:?}");
        game.guild_set_notice(72, "Raid at nine.").await.expect("an officer edits the notice");
        game.guild_kick(72, 73).await.expect("kicked");
        let d = game.guild_detail(71, 0).await.expect("detail");
        assert_eq!((d.guild.members, d.guild.notice.as_str()), (2, "Raid at nine."), "{stack:?}");
        assert_eq!(
            d.members.iter().map(|m| (m.user_id, m.role)).collect::<Vec<_>>(),
            [(71, Role::Leader), (72, Role::Officer)]
        );
        // An outsider sees the guild, not its members.
        let outside = game.guild_detail(82, g).await.expect("public");
        assert!(outside.members.is_empty() && outside.my_role.is_none());
        // The leader hands it on before leaving; the last to leave closes it.
        assert_eq!(game.guild_leave(71).await.expect_err("hand it on").code(), Code::Failed);
        game.guild_set_role(71, 72, Role::Leader).await.expect("handed on");
        game.guild_leave(71).await.expect("left");
        let chat = GuildChat { user_id: 72, msg_type: 1, msg: "bye".into(), url: String::new(), sent_at: 5 };
        assert_eq!(game.guild_chat(chat).await.expect("chat"), [72]);
        game.guild_leave(72).await.expect("closed");
        assert!(game.guild_search("dragons", 10).await.expect("search").is_empty(), "{stack:?}: closed");
        assert_eq!(game.guild_chat_history(72, 0, 10).await.expect_err("no guild").code(), Code::NotFound);
        // Its name is free again.
        game.change_score(74, cost, 0, "test", "seed-74").await.expect("coins");
        game.guild_create(74, "dragons", "", true).await.expect("the name is free");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guild_chat_is_kept_for_its_members() {
    on_every_backend(|stack, db, _| async move {
        let game = GameLogic::new(db.clone(), data());
        let cost = game.data().guild.create_cost;
        game.change_score(91, cost, 0, "test", "seed-91").await.expect("coins");
        let g = game.guild_create(91, "Owls", "", true).await.expect("founded").guild.id;
        game.guild_join(92, g).await.expect("joined");
        for (i, who) in [91, 92, 91].into_iter().enumerate() {
            let m = GuildChat {
                user_id: who,
                msg_type: 1,
                msg: format!("m{i}"),
                url: String::new(),
                sent_at: 1000 + i as i64,
            };
            let mut to = game.guild_chat(m).await.expect("kept");
            to.sort_unstable();
            assert_eq!(to, [91, 92], "{stack:?}");
        }
        let h = game.guild_chat_history(92, 0, 2).await.expect("history");
        assert_eq!(h.iter().map(|m| m.msg.as_str()).collect::<Vec<_>>(), ["m1", "m2"], "{stack:?}: newest last");
        let older = game.guild_chat_history(92, 1001, 10).await.expect("older");
        assert_eq!(older.iter().map(|m| m.msg.as_str()).collect::<Vec<_>>(), ["m0"]);
        let outsider = GuildChat { user_id: 99, msg_type: 1, msg: "hi".into(), url: String::new(), sent_at: 1 };
        assert_eq!(game.guild_chat(outsider).await.expect_err("not in a guild").code(), Code::NotFound);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_routes_check_tokens_and_name_their_refusals() {
    on_every_backend(|stack, db, _| async move {
        let game = Arc::new(GameLogic::new(db.clone(), data()));
        game.change_score(95, 1000, 0, "test", "seed-95").await.expect("coins");
        let jwt = Arc::new(Jwt::new(b"guild-test", Duration::from_secs(600), Duration::from_secs(60)));
        let router = rsgame_game::guild_api::router(game.clone(), Auth { jwt: jwt.clone(), revocations: None }, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = rsgame_kit::Shutdown::new();
        tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), stop.clone()));
        let token = |u: i64| jwt.issue(u).expect("token").0.access_token;
        let r = post_json(port, "/game/v1/guild/create", None, &json!({"name": "Foxes"})).await;
        assert_eq!(code(&r), 400103, "{stack:?}: a token is needed");
        let r = post_json(port, "/game/v1/guild/create", Some(&token(95)), &json!({"name": "Fo\u{0}xes"})).await;
        assert_eq!(code(&r), 400102, "{stack:?}");
        let r =
            post_json(port, "/game/v1/guild/create", Some(&token(95)), &json!({"name": "Foxes", "open": true})).await;
        assert_eq!(code(&r), 200, "{stack:?}: {:?}", r.json());
        let id = r.json()["data"]["guild"]["id"].as_i64().expect("id");
        assert_eq!(r.json()["data"]["myRole"], "leader");
        let r = post_json(port, "/game/v1/guild/join", Some(&token(96)), &json!({"guildId": id})).await;
        assert_eq!(r.json()["data"]["joined"], true, "{stack:?}");
        let r = post_json(port, "/game/v1/guild/search", Some(&token(97)), &json!({"name": "fox"})).await;
        assert_eq!(r.json()["data"][0]["members"], 2, "{stack:?}");
        let r =
            post_json(port, "/game/v1/guild/role", Some(&token(96)), &json!({"userId": 95, "role": "member"})).await;
        assert_eq!(code(&r), 400501, "{stack:?}: a member sets no roles");
        let r = post_json(port, "/game/v1/guild/role", Some(&token(95)), &json!({"userId": 96, "role": "king"})).await;
        assert_ne!(code(&r), 200, "{stack:?}: no such role");
        let r = post_json(port, "/game/v1/guild/detail", Some(&token(97)), &json!({})).await;
        assert_eq!(code(&r), 400201, "{stack:?}: not in a guild");
        stop.trigger();
    })
    .await;
}
