//! usercenter and basic over gRPC: go-game's methods through the generated clients, and the
//! remote implementations of the service traits, on every configured backend.

use std::sync::Arc;
use std::time::Duration;

use rsgame_basic::config::BasicConfig;
use rsgame_basic::rpc::{BasicRpc, RemoteBasic};
use rsgame_basic::{Basic, BasicLogic};
use rsgame_kit::Code;
use rsgame_kit::auth::Jwt;
use rsgame_rpc::pb::basic as bpb;
use rsgame_rpc::pb::usercenter as pb;
use rsgame_store::{Bus, BusOptions, Cache, Db};
use rsgame_testkit::on_every_backend;
use rsgame_usercenter::config::UsercenterConfig;
use rsgame_usercenter::rpc::{RemoteUserCenter, UsercenterRpc};
use rsgame_usercenter::{RegisterReq, UserCenter, UserCenterLogic};

/// The service token the test's servers require.
const TOKEN: &str = "grpc-test-token";

struct Servers {
    uc_url: String,
    basic_url: String,
    basic: BasicLogic,
    jwt: Arc<Jwt>,
    _stop: Stop,
}

struct Stop(rsgame_kit::Shutdown);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

async fn start(db: Db, cache: Cache) -> Servers {
    let jwt = Arc::new(Jwt::new(b"grpc-test", Duration::from_secs(3600), Duration::from_secs(1800)));
    let basic = BasicLogic::new(
        db.clone(),
        cache.clone(),
        Bus::memory(BusOptions::default()),
        BasicConfig::default(),
        jwt.derive_key("links"),
    )
    .expect("basic");
    let shutdown = rsgame_kit::Shutdown::new();
    let basic_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let basic_url = format!("http://{}", basic_l.local_addr().expect("addr"));
    let router = rsgame_rpc::server(TOKEN, &Default::default(), None)
        .expect("server")
        .add_service(BasicRpc::service(Arc::new(basic.clone())));
    tokio::spawn(rsgame_rpc::serve(basic_l, router, shutdown.clone()));
    // usercenter checks captchas through the remote basic, as in a split deployment.
    let remote_basic: Arc<dyn Basic> =
        Arc::new(RemoteBasic::over(rsgame_rpc::channel(&basic_url, TOKEN).expect("channel")));
    let logic = UserCenterLogic::new(
        db,
        cache,
        rsgame_store::Bus::memory(Default::default()),
        jwt.clone(),
        remote_basic,
        UsercenterConfig::default(),
    );
    let uc_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let uc_url = format!("http://{}", uc_l.local_addr().expect("addr"));
    let router = rsgame_rpc::server(TOKEN, &Default::default(), None)
        .expect("server")
        .add_service(UsercenterRpc::service(Arc::new(logic)));
    tokio::spawn(rsgame_rpc::serve(uc_l, router, shutdown.clone()));
    Servers { uc_url, basic_url, basic, jwt, _stop: Stop(shutdown) }
}

fn rsgame_code(st: &tonic::Status) -> Option<String> {
    st.metadata().get(rsgame_rpc::CODE_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[tokio::test]
async fn go_games_usercenter_methods() {
    on_every_backend(|_, db, cache| async move {
        let s = start(db, cache).await;
        // Without the service token nothing is answered, generateToken least of all.
        let mut bare = pb::usercenter_client::UsercenterClient::connect(s.uc_url.clone()).await.expect("connect");
        let st = bare.generate_token(pb::GenerateTokenReq { user_id: 1 }).await.expect_err("no token");
        assert_eq!(st.code(), tonic::Code::Unauthenticated);
        let wrong = rsgame_rpc::channel(&s.uc_url, "wrong").expect("channel");
        let st = pb::usercenter_client::UsercenterClient::new(wrong)
            .get_user_info(pb::GetUserInfoReq { id: 1 })
            .await
            .expect_err("wrong token");
        assert_eq!(st.code(), tonic::Code::Unauthenticated);
        let mut c =
            pb::usercenter_client::UsercenterClient::new(rsgame_rpc::channel(&s.uc_url, TOKEN).expect("channel"));
        let reg = pb::RegisterReq {
            username: "hal".into(),
            password: "secret99".into(),
            nickname: "Hal".into(),
            ip: "10.1.1.1".into(),
            ..Default::default()
        };
        let t = c.register(reg.clone()).await.expect("register").into_inner();
        let claims = s.jwt.verify(&t.access_token).expect("a valid token");
        let st = c.register(reg).await.expect_err("duplicate");
        assert_eq!(st.code(), tonic::Code::AlreadyExists);
        assert_eq!(rsgame_code(&st).as_deref(), Some("400506"));

        let login = pb::LoginReq { username: "hal".into(), password: "secret99".into(), ..Default::default() };
        assert!(c.login(login).await.expect("login").into_inner().access_token.contains('.'));
        let bad = pb::LoginReq { username: "hal".into(), password: "wrong999".into(), ..Default::default() };
        let st = c.login(bad).await.expect_err("wrong password");
        assert_eq!((st.code(), rsgame_code(&st).as_deref()), (tonic::Code::Unauthenticated, Some("400507")));

        let u = c.get_user_info(pb::GetUserInfoReq { id: claims.user_id }).await.expect("info").into_inner();
        assert_eq!(u.user.map(|u| u.nickname).as_deref(), Some("Hal"));
        let st = c.get_user_info(pb::GetUserInfoReq { id: 999_999 }).await.expect_err("missing");
        assert_eq!(st.code(), tonic::Code::NotFound);

        let by_key = pb::GetUserAuthByAuthKeyReq { auth_key: "hal".into(), auth_type: "username".into() };
        let u = c.get_user_auth_by_auth_key(by_key).await.expect("by key").into_inner();
        assert_eq!(u.user.map(|u| u.id), Some(claims.user_id));
        let by_id = pb::GetUserAuthByUserIdReq { user_id: claims.user_id, auth_type: "username".into() };
        let a = c.get_user_auth_by_user_id(by_id).await.expect("by id").into_inner().user_auth.expect("auth");
        assert_eq!(a.auth_key, "hal");
        let by_id = pb::GetUserAuthByUserIdReq { user_id: claims.user_id, auth_type: "mobile".into() };
        assert_eq!(c.get_user_auth_by_user_id(by_id).await.expect_err("no mobile").code(), tonic::Code::NotFound);

        let g =
            c.generate_token(pb::GenerateTokenReq { user_id: claims.user_id }).await.expect("generate").into_inner();
        assert_eq!(s.jwt.verify(&g.access_token).expect("valid").user_id, claims.user_id);
        assert!(c.generate_token(pb::GenerateTokenReq { user_id: 999_999 }).await.is_err(), "only for an account");

        // The same through the remote trait implementation the API layer uses.
        let remote = RemoteUserCenter::over(rsgame_rpc::channel(&s.uc_url, TOKEN).expect("channel"));
        let e = remote
            .register(RegisterReq { username: "hal".into(), password: "secret99".into(), ..Default::default() }, "")
            .await
            .expect_err("duplicate");
        assert_eq!(e.code(), Code::UsernameTaken);
        assert_eq!(remote.user_info(claims.user_id).await.expect("info").username, "hal");
    })
    .await;
}

#[tokio::test]
async fn go_games_basic_methods() {
    on_every_backend(|_, db, cache| async move {
        let s = start(db, cache).await;
        let mut c = bpb::basic_client::BasicClient::new(rsgame_rpc::channel(&s.basic_url, TOKEN).expect("channel"));
        let cap = c.captcha(bpb::CaptchaReq { ip: "127.0.0.1".into() }).await.expect("captcha").into_inner();
        assert!(cap.image.starts_with("data:image/png;base64,"));
        let answer = s.basic.peek_answer(&cap.key).await.expect("answer");
        let ok = c.verify_captcha(bpb::VerifyReq { key: cap.key.clone(), code: answer.clone() }).await.expect("verify");
        assert!(ok.into_inner().status);
        let again = c.verify_captcha(bpb::VerifyReq { key: cap.key, code: answer }).await.expect("verify");
        assert!(!again.into_inner().status, "once only");

        let cap = c.captcha(bpb::CaptchaReq { ip: "127.0.0.1".into() }).await.expect("captcha").into_inner();
        let answer = s.basic.peek_answer(&cap.key).await.expect("answer");
        let send = bpb::SendCodeReq {
            send_type: 1,
            phone: "13800138000".into(),
            verily_type: 1,
            key: cap.key,
            code: answer,
            ip: "10.0.0.2".into(),
        };
        let t = c.send_code(send).await.expect("send").into_inner();
        let code = s.basic.peek_code(&t.key).await.expect("code");
        let v = c.verify_code(bpb::VerifyReq { key: t.key, code }).await.expect("verify").into_inner();
        assert!(v.status);

        let add = bpb::AddFileReq {
            user_id: 5,
            name: "a.png".into(),
            ext: "png".into(),
            path: "202611/x.png".into(),
            size: 3,
            md5: "0".repeat(32),
            sha1: "0".repeat(40),
            driver: 0,
        };
        let f = c.add_file(add).await.expect("add").into_inner();
        let d = c.file_detail(bpb::FileReq { user_id: 5, value: f.guid.clone() }).await.expect("detail").into_inner();
        assert_eq!(d.name, "a.png");
        let st = c.file_detail(bpb::FileReq { user_id: 6, value: f.guid.clone() }).await.expect_err("not theirs");
        assert_eq!(st.code(), tonic::Code::NotFound);
        let l = c.file_list(bpb::FileListReq { user_id: 5, page: 1, page_size: 10, key: String::new() }).await;
        assert_eq!(l.expect("list").into_inner().total, 1);
        let del = c.delete_files(bpb::DeleteFilesReq { user_id: 5, guids: vec![f.guid] }).await.expect("delete");
        assert_eq!(del.into_inner().deleted, 1);
    })
    .await;
}

/// The account flows over gRPC, with usercenter checking codes through the remote basic
/// (`UseCode`): a code login makes the account, `Detail` lists the phone, a sign-up code does
/// not reset the password, `Bind` refuses what another account holds, and `DeleteAccount`
/// closes the account.
#[tokio::test]
async fn account_flows_over_grpc_check_codes_through_the_remote_basic() {
    on_every_backend(|_, db, cache| async move {
        let s = start(db, cache.clone()).await;
        let mut c =
            pb::usercenter_client::UsercenterClient::new(rsgame_rpc::channel(&s.uc_url, TOKEN).expect("channel"));
        let code_for = |phone: &'static str, purpose: rsgame_rpc::pb::basic::VerilyType| {
            let (basic, cache) = (s.basic.clone(), cache.clone());
            async move {
                // basic's pause between two codes to one number is for people, not this test.
                let _ = cache.delete(&[&format!("basic:code:to:{phone}")]).await;
                let cap = basic.captcha("127.0.0.1").await.expect("captcha");
                let answer = basic.peek_answer(&cap.key).await.expect("answer");
                let req = rsgame_basic::SendCodeReq {
                    send_type: 1,
                    phone: phone.into(),
                    verily_type: purpose as i32,
                    key: cap.key,
                    code: answer,
                };
                let t = basic.send_code(req, &format!("10.0.{}.1", purpose as i32)).await.expect("sent");
                let code = basic.peek_code(&t.key).await.expect("code");
                (t.key, code)
            }
        };
        use rsgame_rpc::pb::basic::VerilyType;
        let (key, code) = code_for("13900139000", VerilyType::CodeLogin).await;
        let req = pb::LoginCodeReq { target: "13900139000".into(), code, key, ip: "10.1.1.1".into() };
        let t = c.login_code(req.clone()).await.expect("code login").into_inner();
        let user_id = s.jwt.verify(&t.access_token).expect("valid").user_id;
        let st = c.login_code(req).await.expect_err("the code is used up");
        assert_eq!(rsgame_code(&st).as_deref(), Some("400300"));
        let d = c.detail(pb::DetailReq { user_id }).await.expect("detail").into_inner();
        assert_eq!(d.user.map(|u| u.mobile).as_deref(), Some("13900139000"));
        assert_eq!(d.identities.iter().map(|i| i.kind.as_str()).collect::<Vec<_>>(), ["phone"]);

        let (key, code) = code_for("13900139001", VerilyType::Register).await;
        let reset = pb::ResetPasswordReq {
            target: "13900139001".into(),
            code,
            key,
            new_password: "fresh2026".into(),
            ip: String::new(),
        };
        let st = c.reset_password(reset).await.expect_err("a sign-up code resets nothing");
        assert_eq!(rsgame_code(&st).as_deref(), Some("400300"));

        let other = c
            .register(pb::RegisterReq { username: "ivy".into(), password: "secret99".into(), ..Default::default() })
            .await
            .expect("register")
            .into_inner();
        let other_id = s.jwt.verify(&other.access_token).expect("valid").user_id;
        let (key, code) = code_for("13900139000", VerilyType::Register).await;
        let bind = pb::BindReq {
            user_id: other_id,
            kind: "phone".into(),
            target: "13900139000".into(),
            code,
            key,
            ..Default::default()
        };
        let st = c.bind(bind).await.expect_err("another account's phone");
        assert_eq!((st.code(), rsgame_code(&st).as_deref()), (tonic::Code::AlreadyExists, Some("400517")));

        let now = rsgame_kit::time::unix_ms();
        c.delete_account(pb::DeleteAccountReq { user_id, issued_ms: now, ip: String::new() }).await.expect("delete");
        let (key, code) = code_for("13900139000", VerilyType::CodeLogin).await;
        let req = pb::LoginCodeReq { target: "13900139000".into(), code, key, ip: String::new() };
        let st = c.login_code(req).await.expect_err("closed");
        assert_eq!((st.code(), rsgame_code(&st).as_deref()), (tonic::Code::PermissionDenied, Some("400516")));
    })
    .await;
}
