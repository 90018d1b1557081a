//! The client channel and the server layer against real tonic servers on loopback: balancing,
//! retries when a server dies, deadlines handed on, the breaker, and (with
//! `RSGAME_TEST_ETCD_ENDPOINTS`) registration and discovery through a real etcd.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rsgame_kit::governance::deadline;
use rsgame_kit::{Code, Shutdown};
use rsgame_rpc::pb::usercenter as pb;
use rsgame_rpc::pb::usercenter::usercenter_client::UsercenterClient;
use rsgame_rpc::pb::usercenter::usercenter_server::{Usercenter, UsercenterServer};
use rsgame_rpc::{ClientOptions, Connector, RpcChannel};
use tonic::{Request, Response, Status};

const IDEMPOTENT: &[&str] = &["GetUserInfo"];

/// A fake usercenter: GetUserInfo answers with its name (and the deadline it was given, in
/// ms, as the id); Login counts calls; `mode` makes it fail or stall.
struct Fake {
    name: String,
    logins: Arc<AtomicU32>,
    mode: Mode,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Unavailable,
    Slow,
}

fn nope<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake"))
}

#[tonic::async_trait]
impl Usercenter for Fake {
    async fn login(&self, _: Request<pb::LoginReq>) -> Result<Response<pb::TokenResp>, Status> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(pb::TokenResp { access_token: self.name.clone(), ..Default::default() }))
    }
    async fn register(&self, _: Request<pb::RegisterReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn get_user_info(&self, r: Request<pb::GetUserInfoReq>) -> Result<Response<pb::UserInfoResp>, Status> {
        match self.mode {
            Mode::Unavailable => return Err(Status::unavailable("down for the test")),
            Mode::Slow => tokio::time::sleep(Duration::from_secs(5)).await,
            Mode::Ok => {}
        }
        let left = deadline::remaining().map_or(-1, |d| d.as_millis() as i64);
        let user = pb::UserInfo {
            id: left,
            username: self.name.clone(),
            nickname: r.into_inner().id.to_string(),
            ..Default::default()
        };
        Ok(Response::new(pb::UserInfoResp { user: Some(user) }))
    }
    async fn get_user_auth_by_auth_key(
        &self,
        _: Request<pb::GetUserAuthByAuthKeyReq>,
    ) -> Result<Response<pb::UserInfoResp>, Status> {
        nope()
    }
    async fn get_user_auth_by_user_id(
        &self,
        _: Request<pb::GetUserAuthByUserIdReq>,
    ) -> Result<Response<pb::UserAuthResp>, Status> {
        nope()
    }
    async fn generate_token(&self, _: Request<pb::GenerateTokenReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn refresh(&self, _: Request<pb::RefreshReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn logout(&self, _: Request<pb::LogoutReq>) -> Result<Response<pb::Empty>, Status> {
        nope()
    }
    async fn logout_all(&self, _: Request<pb::LogoutAllReq>) -> Result<Response<pb::Empty>, Status> {
        nope()
    }
    async fn login_device(&self, _: Request<pb::LoginDeviceReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn login_code(&self, _: Request<pb::LoginCodeReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn login_wechat(&self, _: Request<pb::LoginWechatReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn reset_password(&self, _: Request<pb::ResetPasswordReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn bind(&self, _: Request<pb::BindReq>) -> Result<Response<pb::Empty>, Status> {
        nope()
    }
    async fn unbind(&self, _: Request<pb::UnbindReq>) -> Result<Response<pb::Empty>, Status> {
        nope()
    }
    async fn detail(&self, _: Request<pb::DetailReq>) -> Result<Response<pb::DetailResp>, Status> {
        nope()
    }
    async fn profiles(&self, _: Request<pb::ProfilesReq>) -> Result<Response<pb::ProfilesResp>, Status> {
        nope()
    }
    async fn update_profile(&self, _: Request<pb::UpdateProfileReq>) -> Result<Response<pb::UserInfoResp>, Status> {
        nope()
    }
    async fn delete_account(&self, _: Request<pb::DeleteAccountReq>) -> Result<Response<pb::Empty>, Status> {
        nope()
    }
    async fn change_password(&self, _: Request<pb::ChangePasswordReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
    async fn scan_create(&self, _: Request<pb::ScanCreateReq>) -> Result<Response<pb::ScanTicket>, Status> {
        nope()
    }
    async fn scan_confirm(&self, _: Request<pb::ScanConfirmReq>) -> Result<Response<pb::Empty>, Status> {
        nope()
    }
    async fn login_scan(&self, _: Request<pb::LoginScanReq>) -> Result<Response<pb::TokenResp>, Status> {
        nope()
    }
}

struct Running {
    url: String,
    stop: Shutdown,
    logins: Arc<AtomicU32>,
}

async fn start(name: &str, mode: Mode) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Shutdown::new();
    let logins = Arc::new(AtomicU32::new(0));
    let fake = Fake { name: name.into(), logins: logins.clone(), mode };
    let router =
        rsgame_rpc::server("tok", &Default::default(), None).expect("server").add_service(UsercenterServer::new(fake));
    tokio::spawn(rsgame_rpc::serve(listener, router, stop.clone()));
    Running { url, stop, logins }
}

fn connector(timeout: Duration) -> Connector {
    let opts = ClientOptions { token: "tok".into(), timeout, retries: 2, breaker: true, tls: None };
    Connector::new(opts, None, Shutdown::new())
}

async fn who(c: &RpcChannel) -> Result<pb::UserInfo, rsgame_kit::Error> {
    let r = UsercenterClient::new(c.clone()).get_user_info(pb::GetUserInfoReq { id: 7 }).await;
    r.map(|r| r.into_inner().user.unwrap()).map_err(rsgame_rpc::error)
}

async fn login(c: &RpcChannel) -> Result<String, rsgame_kit::Error> {
    let r = UsercenterClient::new(c.clone()).login(pb::LoginReq::default()).await;
    r.map(|r| r.into_inner().access_token).map_err(rsgame_rpc::error)
}

#[tokio::test]
async fn calls_spread_over_servers_and_survive_one_dying() {
    let (a, b) = (start("a", Mode::Ok).await, start("b", Mode::Ok).await);
    let ch =
        connector(Duration::from_secs(3)).channel("usercenter", &format!("{},{}", a.url, b.url), IDEMPOTENT).unwrap();
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..200 {
        *seen.entry(who(&ch).await.unwrap().username).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "both servers get calls: {seen:?}");

    // One server goes away: every call still lands, reads and (never delivered) logins alike.
    a.stop.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..50 {
        assert_eq!(who(&ch).await.unwrap().username, "b", "read {i}");
        assert_eq!(login(&ch).await.unwrap(), "b", "login {i}");
    }
    assert_eq!(a.logins.load(Ordering::SeqCst), 0);
    assert_eq!(b.logins.load(Ordering::SeqCst), 50, "each login ran exactly once");

    // None left: a clear 400503, quickly.
    b.stop.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    assert_eq!(login(&ch).await.unwrap_err().code(), Code::Unavailable);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn deadlines_travel_to_the_server_and_end_calls() {
    let ok = start("ok", Mode::Ok).await;
    let ch = connector(Duration::from_secs(3)).channel("usercenter", &ok.url, IDEMPOTENT).unwrap();
    let left = who(&ch).await.unwrap().id;
    assert!((2000..=3000).contains(&left), "the server serves under the client's 3 s: {left} ms");
    // Inside a request with 800 ms left, the call gets those, not its own 3 s.
    let until = tokio::time::Instant::now() + Duration::from_millis(800);
    let left = deadline::scope(until, who(&ch)).await.unwrap().id;
    assert!((300..=800).contains(&left), "the inherited deadline wins: {left} ms");

    let slow = start("slow", Mode::Slow).await;
    let ch = connector(Duration::from_millis(300)).channel("usercenter", &slow.url, IDEMPOTENT).unwrap();
    let t = Instant::now();
    assert_eq!(who(&ch).await.unwrap_err().code(), Code::Timeout);
    assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
    let spent = deadline::scope(tokio::time::Instant::now(), who(&ch)).await.unwrap_err();
    assert_eq!(spent.code(), Code::Timeout, "a spent deadline fails before sending");
}

#[tokio::test]
async fn failing_servers_trip_the_breaker() {
    let bad = start("bad", Mode::Unavailable).await;
    let ch = connector(Duration::from_secs(3)).channel("usercenter", &bad.url, IDEMPOTENT).unwrap();
    let mut refused = 0;
    for _ in 0..200 {
        let e = who(&ch).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        refused += u32::from(format!("{e:?}").contains("breaker"));
    }
    assert!(refused > 100, "most calls are refused locally once the server keeps failing: {refused}");
}

#[tokio::test]
async fn servers_register_in_etcd_and_clients_follow() {
    let Some(endpoints) = rsgame_testkit::service("RSGAME_TEST_ETCD_ENDPOINTS") else {
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(String::from).collect();
    let etcd = rsgame_rpc::etcd::Etcd::connect(&endpoints).unwrap();
    let root = format!("/rsgame-test/{}/", rsgame_testkit::unique("disc"));
    let (a, b) = (start("a", Mode::Ok).await, start("b", Mode::Ok).await);
    let prefix = rsgame_rpc::discovery::service_prefix(&root, "usercenter");
    let ttl = Duration::from_secs(3);
    for s in [&a, &b] {
        let key = format!("{prefix}{}", s.url.trim_start_matches("http://"));
        rsgame_rpc::discovery::register(etcd.clone(), key, s.url.clone(), ttl, s.stop.clone());
    }
    let client_stop = Shutdown::new();
    let opts = ClientOptions { token: "tok".into(), ..ClientOptions::default() };
    let conn = Connector::new(opts, Some((etcd.clone(), root.clone())), client_stop.clone());
    let ch = conn.channel("usercenter", "etcd", IDEMPOTENT).unwrap();
    let wait = |n: usize| {
        let ch = ch.clone();
        async move {
            for _ in 0..100 {
                if ch.endpoints().len() == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("expected {n} endpoints, have {:?}", ch.endpoints());
        }
    };
    wait(2).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        seen.insert(who(&ch).await.unwrap().username);
    }
    assert_eq!(seen.len(), 2);
    // A graceful stop revokes the lease: the directory forgets it at once, not after the TTL.
    a.stop.trigger();
    wait(1).await;
    assert_eq!(ch.endpoints(), vec![b.url.clone()]);
    // Keys live under a lease: nothing outlives the servers.
    b.stop.trigger();
    let t = Instant::now();
    loop {
        let (left, _) = etcd.list(&root).await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(2), "still registered: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("deregistered {:?} after shutdown", t.elapsed());
    // With the directory empty the client keeps the last server it knew.
    assert_eq!(ch.endpoints(), vec![b.url.clone()]);
    client_stop.trigger();
}

#[tokio::test]
async fn registrations_update_and_leave_on_shutdown() {
    let Some(endpoints) = rsgame_testkit::service("RSGAME_TEST_ETCD_ENDPOINTS") else {
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(String::from).collect();
    let etcd = rsgame_rpc::etcd::Etcd::connect(&endpoints).unwrap();
    let key = format!("/rsgame-test/{}/x", rsgame_testkit::unique("lease"));
    let stop = Shutdown::new();
    let reg =
        rsgame_rpc::discovery::register(etcd.clone(), key.clone(), "one".into(), Duration::from_secs(3), stop.clone());
    let read = |want: Option<&'static str>| {
        let (etcd, key) = (etcd.clone(), key.clone());
        async move {
            for _ in 0..100 {
                let v = etcd.get(&key).await.unwrap().map(|v| String::from_utf8(v).unwrap());
                if v.as_deref() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{key} never became {want:?}");
        }
    };
    read(Some("one")).await;
    reg.update("two".into());
    read(Some("two")).await;
    stop.trigger();
    read(None).await;
}

/// A CA and a certificate it signed for `name`, as PEM: (ca, cert, key).
fn pki(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Mutual TLS (`rpc.tls_*`): a client with a certificate from the deployment's CA is served;
/// one without a certificate, with one from another CA, or speaking plain HTTP/2 is not.
#[tokio::test]
async fn mutual_tls_serves_only_clients_with_the_cas_certificates() {
    use rsgame_rpc::tls::RpcTls;
    let (ca, cert, key) = pki("rsgame-rpc");
    let tls = RpcTls::from_pem(cert.as_bytes(), key.as_bytes(), ca.as_bytes(), "rsgame-rpc");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Shutdown::new();
    let fake = Fake { name: "tls".into(), logins: Arc::default(), mode: Mode::Ok };
    let router =
        rsgame_rpc::server("tok", &Default::default(), Some(&tls)).unwrap().add_service(UsercenterServer::new(fake));
    tokio::spawn(rsgame_rpc::serve(listener, router, stop.clone()));

    let with = |tls: Option<RpcTls>| {
        let opts =
            ClientOptions { token: "tok".into(), timeout: Duration::from_secs(2), retries: 0, breaker: false, tls };
        Connector::new(opts, None, Shutdown::new()).channel("usercenter", &url, IDEMPOTENT).unwrap()
    };
    let start = Instant::now();
    loop {
        match who(&with(Some(tls.clone()))).await {
            Ok(u) => {
                assert_eq!(u.username, "tls");
                break;
            }
            Err(e) => assert!(start.elapsed() < Duration::from_secs(5), "never served over mutual TLS: {e}"),
        }
    }
    assert!(who(&with(None)).await.is_err(), "plain HTTP/2 to a TLS server");
    let (other_ca, other_cert, other_key) = pki("rsgame-rpc");
    let stranger = RpcTls::from_pem(other_cert.as_bytes(), other_key.as_bytes(), ca.as_bytes(), "rsgame-rpc");
    assert!(who(&with(Some(stranger))).await.is_err(), "a client certificate from another CA");
    let unsure = RpcTls::from_pem(cert.as_bytes(), key.as_bytes(), other_ca.as_bytes(), "rsgame-rpc");
    assert!(who(&with(Some(unsure))).await.is_err(), "a client that does not trust the server's CA");
    let wrong_name = RpcTls::from_pem(cert.as_bytes(), key.as_bytes(), ca.as_bytes(), "elsewhere");
    assert!(who(&with(Some(wrong_name))).await.is_err(), "a server certificate for another name");
    stop.trigger();
}
