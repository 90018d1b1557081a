//! basic over HTTP: captchas, verification codes (a worker over the bus, a test provider and
//! a real SMTP server), and files: upload, dedupe, listing, deletion, downloads, and the
//! attacks on them. On SQLite + in-process cache always, on MariaDB and PostgreSQL with Redis
//! when configured (rsgame-testkit).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsgame_basic::code::{Job, Provider};
use rsgame_basic::config::BasicConfig;
use rsgame_basic::{Basic, BasicLogic};
use rsgame_kit::auth::{Auth, Jwt};
use rsgame_store::{Bus, BusOptions, Cache, Db};
use rsgame_testkit::{HttpReply, call, code, on_every_backend, post_json};
use serde_json::json;

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82";

struct Site {
    port: u16,
    basic: BasicLogic,
    jwt: Arc<Jwt>,
    root: tempfile::TempDir,
    sent: Arc<Mutex<Vec<Job>>>,
    _stop: Stop,
}

struct Stop(rsgame_kit::Shutdown);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Records jobs instead of sending them.
struct Recorder(Arc<Mutex<Vec<Job>>>);

#[async_trait::async_trait]
impl Provider for Recorder {
    async fn send(&self, job: &Job) -> std::io::Result<()> {
        self.0.lock().expect("lock").push(job.clone());
        Ok(())
    }
}

async fn start(db: Db, cache: Cache) -> Site {
    let root = tempfile::tempdir().expect("tempdir");
    let cfg = BasicConfig {
        upload_max_bytes: 64 * 1024,
        storage_root: root.path().join("files").display().to_string(),
        ..BasicConfig::default()
    };
    let jwt = Arc::new(Jwt::new(b"basic-test", Duration::from_secs(3600), Duration::from_secs(60)));
    let bus = Bus::memory(BusOptions::default());
    let basic = BasicLogic::new(db, cache, bus.clone(), cfg, jwt.derive_key("links")).expect("basic");
    let sent = Arc::new(Mutex::new(Vec::new()));
    rsgame_basic::code::run_worker(bus, Arc::new(Recorder(sent.clone()))).await.expect("worker");
    let auth = Auth { jwt: jwt.clone(), revocations: None };
    let router = rsgame_basic::api::router(Arc::new(basic.clone()), basic.clone(), auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let shutdown = rsgame_kit::Shutdown::new();
    tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), shutdown.clone()));
    Site { port, basic, jwt, root, sent, _stop: Stop(shutdown) }
}

fn token(site: &Site, user: i64) -> String {
    site.jwt.issue(user).expect("token").0.access_token
}

async fn upload(site: &Site, user: i64, name: &str, content: &[u8]) -> HttpReply {
    let boundary = "----rsgameboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let h = [
        format!("Content-Type: multipart/form-data; boundary={boundary}"),
        format!("Authorization: Bearer {}", token(site, user)),
    ];
    call(site.port, "POST", "/basic/v1/basic/upload", &h, &body).await
}

async fn post(site: &Site, user: i64, path: &str, body: serde_json::Value) -> HttpReply {
    post_json(site.port, path, Some(&token(site, user)), &body).await
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
        }
    }
    out
}

#[tokio::test]
async fn uploads_listing_deletion_and_downloads() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let r = upload(&site, 1, "avatar.png", PNG).await;
        assert_eq!(code(&r), 200, "{}", String::from_utf8_lossy(&r.body));
        // go-game's FileDetailResp: the file under info, size in KB, path the link.
        let f = r.json()["data"]["info"].clone();
        assert_eq!(f["name"], "avatar.png");
        assert_eq!(f["mediaType"], 1);
        assert_eq!(f["bytes"], PNG.len());
        assert_eq!(f["size"], PNG.len().div_ceil(1024), "KB, as go-game");
        assert_eq!(f["path"], f["url"]);
        assert_eq!(f["md5"].as_str().map(str::len), Some(32));
        assert_eq!(f["sha1"].as_str().map(str::len), Some(40));
        let guid = f["guid"].as_str().expect("guid").to_owned();

        // Detail and md5 lookup for the owner (go-game's `val` and rsgame's `value`); "not
        // found" for anyone else.
        let r = post(&site, 1, "/basic/v1/basic/fileDetail", json!({"value": guid})).await;
        assert_eq!(code(&r), 200);
        let r = post(&site, 1, "/basic/v1/basic/fileDetail", json!({"val": guid})).await;
        assert_eq!(r.json()["data"]["info"]["guid"], guid.as_str());
        let r = post(&site, 1, "/basic/v1/basic/getFileByKey", json!({"val": f["md5"]})).await;
        assert_eq!(r.json()["data"]["info"]["guid"], guid.as_str());
        let r = post(&site, 2, "/basic/v1/basic/fileDetail", json!({"value": guid})).await;
        assert_eq!(code(&r), 400201, "another user's file is not found");
        let r = post(&site, 2, "/basic/v1/basic/getFileByKey", json!({"value": f["md5"]})).await;
        assert_eq!(code(&r), 400201);

        // The same bytes again, from another user under a hostile name: stored once, inside
        // the root, under the server's name.
        let r = upload(&site, 2, "../../../evil.png", PNG).await;
        assert_eq!(code(&r), 200);
        assert_eq!(r.json()["data"]["info"]["name"], "evil.png");
        let r = upload(&site, 2, "/etc/passwd.png", PNG).await;
        assert_eq!(r.json()["data"]["info"]["name"], "passwd.png");
        let stored = files_under(site.root.path());
        assert_eq!(stored.len(), 1, "identical content is stored once: {stored:?}");
        assert!(stored[0].starts_with(site.root.path().join("files")));
        assert!(!stored[0].to_string_lossy().contains("evil"), "no client name reaches the disk");

        // Listing: paged, newest first, own files only, % and _ in the key are literal.
        for i in 0..3 {
            let mut pdf = b"%PDF-1.4\n".to_vec();
            pdf.extend_from_slice(format!("doc {i}").as_bytes());
            assert_eq!(code(&upload(&site, 1, &format!("report_{i}%.pdf"), &pdf).await), 200);
        }
        let r = post(&site, 1, "/basic/v1/basic/myFileList", json!({"page": 1, "pageSize": 2})).await;
        let d = r.json()["data"].clone();
        assert_eq!((d["total"].as_i64(), d["list"].as_array().map(Vec::len)), (Some(4), Some(2)));
        assert_eq!(d["list"][0]["name"], "report_2%.pdf");
        let r = post(&site, 1, "/basic/v1/basic/myFileList", json!({"page": 2, "pageSize": 2})).await;
        assert_eq!(r.json()["data"]["list"][1]["guid"], guid.as_str());
        let r = post(&site, 1, "/basic/v1/basic/myFileList", json!({"key": "1%"})).await;
        assert_eq!(r.json()["data"]["total"], 1, "literal %");
        let r = post(&site, 1, "/basic/v1/basic/myFileList", json!({"key": "_"})).await;
        assert_eq!(r.json()["data"]["total"], 3, "literal _");
        let r = post(&site, 1, "/basic/v1/basic/myFileList", json!({"key": "' OR 1=1 --"})).await;
        assert_eq!(r.json()["data"]["total"], 0);
        let r = post(&site, 1, "/basic/v1/basic/myFileList", json!({"pageSize": 1000})).await;
        assert_eq!(code(&r), 400102);

        // Download by signed link; a forged link is refused.
        let url = f["url"].as_str().expect("url").to_owned();
        let r = call(site.port, "GET", &url, &[], b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, PNG);
        assert!(r.head.to_ascii_lowercase().contains("content-type: image/png"), "{}", r.head);
        let last = if url.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &url[..url.len() - 1]);
        assert_eq!(code(&call(site.port, "GET", &forged, &[], b"").await), 400501);
        let other = url.replacen(&guid, "0123456789abcdef0123456789abcdef", 1);
        assert_eq!(code(&call(site.port, "GET", &other, &[], b"").await), 400501);
        let r = post(&site, 1, "/basic/v1/basic/fileDetail", json!({"value": guid})).await;
        assert_eq!(r.json()["data"]["info"]["downloads"], 1);

        // Deleting: another user's guid touches nothing; the owner's is gone after.
        let r = post(&site, 2, "/basic/v1/basic/delFileList", json!({"guids": [guid]})).await;
        assert_eq!(r.json()["data"]["deleted"], 0);
        // go-game's GuidListReq and OkResp.
        let r = post(&site, 1, "/basic/v1/basic/delFileList", json!({"guidList": [guid]})).await;
        let d = r.json()["data"].clone();
        assert_eq!((d["id"].as_i64(), d["status"].as_i64(), d["deleted"].as_i64()), (Some(0), Some(1), Some(1)));
        let r = post(&site, 1, "/basic/v1/basic/fileDetail", json!({"value": guid})).await;
        assert_eq!(code(&r), 400201);
        assert_eq!(code(&call(site.port, "GET", &url, &[], b"").await), 400201, "a deleted file is not served");
    })
    .await;
}

#[tokio::test]
async fn bad_uploads_are_refused_and_leave_nothing() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let elf = b"\x7FELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00".repeat(8);
        let r = upload(&site, 1, "cute.png", &elf).await;
        assert_eq!(code(&r), 400102);
        assert!(r.json()["msg"].as_str().is_some_and(|m| m.contains("content")), "{:?}", r.json());
        let r = upload(&site, 1, "doc.pdf", PNG).await;
        assert_eq!(code(&r), 400102, "a PNG named .pdf");
        let r = upload(&site, 1, "tool.exe", &elf).await;
        assert_eq!(code(&r), 400102);
        let big = [PNG, &vec![0u8; 70 * 1024]].concat();
        let r = upload(&site, 1, "big.png", &big).await;
        assert_eq!(code(&r), 400102);
        assert!(r.json()["msg"].as_str().is_some_and(|m| m.contains("larger than")), "{:?}", r.json());
        assert_eq!(code(&upload(&site, 1, "empty.png", b"").await), 400102);
        // No token, a foreign token.
        let r = call(site.port, "POST", "/basic/v1/basic/upload", &[], PNG).await;
        assert_eq!((r.status, code(&r)), (401, 400103));
        let foreign = Jwt::new(b"x", Duration::from_secs(60), Duration::ZERO).issue(1).expect("t").0.access_token;
        let r = post_json(site.port, "/basic/v1/basic/fileDetail", Some(&foreign), &json!({"value": "x"})).await;
        assert_eq!(r.status, 401);
        // Nothing was kept, not even temporary files.
        assert!(files_under(site.root.path()).is_empty(), "{:?}", files_under(site.root.path()));
    })
    .await;
}

#[tokio::test]
async fn verification_codes_need_a_captcha_go_over_the_bus_and_work_once() {
    on_every_backend(|_, db, cache| async move {
        let site = start(db, cache).await;
        let captcha = async || {
            let r = call(site.port, "GET", "/basic/v1/basic/captcha", &[], b"").await;
            let key = r.json()["data"]["key"].as_str().expect("key").to_owned();
            let answer = site.basic.peek_answer(&key).await.expect("answer");
            (key, answer)
        };
        let send = |key: &str, answer: &str, to: &str| {
            json!({"sendType": 2, "phone": to, "verilyType": 1, "key": key, "code": answer})
        };
        let r = post_json(site.port, "/basic/v1/basic/sendCode", None, &send("nokey", "x", "ann@example.com")).await;
        assert_eq!(code(&r), 400509, "no valid captcha");
        let (key, answer) = captcha().await;
        let r = post_json(site.port, "/basic/v1/basic/sendCode", None, &send(&key, &answer, "not-an-email")).await;
        assert_eq!(code(&r), 400102);

        let (key, answer) = captcha().await;
        let r = post_json(site.port, "/basic/v1/basic/sendCode", None, &send(&key, &answer, "ann@example.com")).await;
        assert_eq!(code(&r), 200, "{:?}", r.json());
        let ticket = r.json()["data"]["key"].as_str().expect("ticket").to_owned();
        // The worker got the job over the bus.
        let mut job = None;
        for _ in 0..100 {
            job = site.sent.lock().expect("lock").first().cloned();
            if job.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let job = job.expect("the sending job reached the worker");
        assert_eq!((job.send_type, job.target.as_str()), (2, "ann@example.com"));
        assert_eq!(site.basic.peek_code(&ticket).await.as_deref(), Some(job.code.as_str()));

        // Again to the same address at once: rate limited.
        let (key, answer) = captcha().await;
        let r = post_json(site.port, "/basic/v1/basic/sendCode", None, &send(&key, &answer, "ann@example.com")).await;
        assert_eq!(code(&r), 400502);

        let verify = |c: &str| json!({"key": ticket, "code": c});
        let wrong = if job.code == "000000" { "111111" } else { "000000" };
        let r = post_json(site.port, "/basic/v1/basic/verifyCode", None, &verify(wrong)).await;
        assert_eq!(code(&r), 400300);
        let r = post_json(site.port, "/basic/v1/basic/verifyCode", None, &verify(&job.code)).await;
        assert_eq!(code(&r), 200, "{:?}", r.json());
        let r = post_json(site.port, "/basic/v1/basic/verifyCode", None, &verify(&job.code)).await;
        assert_eq!(code(&r), 400300, "a code works once");

        // The GET form go-game's clients use.
        let (key, answer) = captcha().await;
        let path = format!("/basic/v1/basic/sendCode?sendType=1&phone=13800138000&verilyType=2&key={key}&code={answer}");
        assert_eq!(code(&call(site.port, "GET", &path, &[], b"").await), 200);
    })
    .await;
}

#[tokio::test]
async fn five_wrong_codes_end_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&rsgame_store::config::DatabaseConfig {
        url: format!("sqlite://{}/t.db", dir.path().display()),
        ..Default::default()
    })
    .await
    .expect("db");
    let cache = Cache::memory(100, "t:");
    let site = start(db, cache).await;
    let (key, answer) = {
        let c = site.basic.captcha("127.0.0.1").await.expect("captcha");
        let a = site.basic.peek_answer(&c.key).await.expect("answer");
        (c.key, a)
    };
    let req =
        rsgame_basic::SendCodeReq { send_type: 1, phone: "13800138000".into(), verily_type: 1, key, code: answer };
    let t = site.basic.send_code(req, "10.0.0.1").await.expect("sent");
    let right = site.basic.peek_code(&t.key).await.expect("code");
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert!(!site.basic.verify_code(&t.key, wrong).await.expect("verify"));
    }
    assert!(!site.basic.verify_code(&t.key, &right).await.expect("verify"), "ended after five wrong tries");
}

#[tokio::test]
async fn codes_are_emailed_over_smtp() {
    // Python's standard library has an SMTP server that prints what it receives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let child = std::process::Command::new("python3")
        .args(["-u", "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        rsgame_testkit::skip("python3 is not available for an SMTP server");
        return;
    };
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        let _ = child.kill();
        rsgame_testkit::skip("python3's smtpd module did not start (Python 3.12 removed it)");
        return;
    }
    let cfg = BasicConfig {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        smtp_from: "game@rsgame.test".into(),
        ..BasicConfig::default()
    };
    let smtp = rsgame_basic::code::SmtpProvider::from_config(&cfg);
    let job = Job { send_type: 2, target: "ann@example.com".into(), code: "493817".into(), verily_type: 1 };
    smtp.send(&job).await.expect("sent over SMTP");
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("493817") && text.contains("ann@example.com"), "the server got the mail: {text}");
}

/// Files in an S3-compatible bucket (`RSGAME_TEST_S3_ENDPOINT`: `.ci/run` starts moto's S3
/// server): upload, dedupe, signed download streamed back from the bucket.
#[tokio::test]
async fn files_in_an_s3_bucket() {
    let Some(endpoint) = rsgame_testkit::service("RSGAME_TEST_S3_ENDPOINT") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&rsgame_store::config::DatabaseConfig {
        url: format!("sqlite://{}/t.db", dir.path().display()),
        ..Default::default()
    })
    .await
    .expect("db");
    rsgame_store::migrate::migrate(&db).await.expect("migrate");
    let bucket = rsgame_testkit::unique("rsgame-test").replace('_', "-");
    let cfg = BasicConfig {
        storage: rsgame_basic::config::FileStorage::S3,
        s3_endpoint: endpoint.clone(),
        s3_bucket: bucket.clone(),
        s3_access_key: "test".into(),
        s3_secret_key: rsgame_kit::config::Secret::new("test"),
        storage_root: dir.path().join("files").display().to_string(),
        ..BasicConfig::default()
    };
    let s3 = rsgame_basic::s3::S3::new(rsgame_basic::s3::S3Config {
        endpoint,
        bucket,
        region: "us-east-1".into(),
        access_key: "test".into(),
        secret_key: "test".into(),
    })
    .expect("s3");
    s3.create_bucket().await.expect("bucket");

    let jwt = Arc::new(Jwt::new(b"s3-test", Duration::from_secs(3600), Duration::from_secs(60)));
    let basic =
        BasicLogic::new(db, Cache::memory(100, "t:"), Bus::memory(BusOptions::default()), cfg, jwt.derive_key("l"))
            .expect("basic");
    let router =
        rsgame_basic::api::router(Arc::new(basic.clone()), basic, Auth { jwt: jwt.clone(), revocations: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let shutdown = rsgame_kit::Shutdown::new();
    let _stop = Stop(shutdown.clone());
    tokio::spawn(rsgame_kit::http::serve(listener, None, rsgame_kit::http::finish(router), shutdown));

    let token = jwt.issue(1).expect("token").0.access_token;
    let upload = async |name: &str| {
        let boundary = "b0undary";
        let mut body =
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n")
                .into_bytes();
        body.extend_from_slice(PNG);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let h = [
            format!("Content-Type: multipart/form-data; boundary={boundary}"),
            format!("Authorization: Bearer {token}"),
        ];
        call(port, "POST", "/basic/v1/basic/upload", &h, &body).await.json()
    };
    let first = upload("a.png").await;
    assert_eq!(first["code"], 200, "{first}");
    let second = upload("b.png").await;
    assert_eq!(second["code"], 200, "{second}");
    assert!(
        files_under(dir.path()).iter().all(|p| p.ends_with("t.db") || p.to_string_lossy().contains("t.db")),
        "nothing kept on local disk: {:?}",
        files_under(dir.path())
    );

    let url = first["data"]["info"]["url"].as_str().expect("url");
    let r = call(port, "GET", url, &[], b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, PNG), "streamed back from the bucket");

    // Clean up: the one object (stored once for both uploads) and the bucket.
    let q = sea_query::Query::select().distinct().column("path").from("basic_file").to_owned();
    let db2 = Db::connect(&rsgame_store::config::DatabaseConfig {
        url: format!("sqlite://{}/t.db", dir.path().display()),
        ..Default::default()
    })
    .await
    .expect("db");
    let paths = db2.fetch_all(&q).await.expect("paths");
    assert_eq!(paths.len(), 1, "identical content is one object");
    for p in paths {
        let key = p.string("path").expect("path");
        assert!(s3.exists(&key).await.expect("head"));
        s3.delete(&key).await.expect("delete");
    }
    s3.delete_bucket().await.expect("delete bucket");
}
