//! usercenter's logic, behind the [`UserCenter`] trait that the REST API (and later the gRPC
//! server) call; [`UserCenterLogic`] is the in-process implementation.

use std::sync::Arc;
use std::time::Duration;

use crate::config::UsercenterConfig;
use rsgame_basic::Basic;
use rsgame_kit::auth::{AccessToken, Claims, Jwt, Revocations};
use rsgame_kit::{Code, Error, Result};
use rsgame_proto::events::SessionsEndedReason;
use rsgame_store::{Bus, Cache, Db, StoreError};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use rsgame_rpc::pb::basic::VerilyType;

use crate::guard::{LoginGuard, Verdict};
use crate::identity::{self, Change, IdentityKind};
use crate::model::{self, LogKind, LoginRecord, User};
use crate::sessions::Sessions;
use crate::wechat::{self, Wechat};

/// Tokens as login, register and refresh return them: go-game's three fields plus the
/// refresh token.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// The access token and its times.
    #[serde(flatten)]
    pub access: AccessToken,
    /// Opaque; exchange it at `refresh` for new tokens. Works once.
    pub refresh_token: String,
}

/// What `detail` shows of an account: never the password hash or login history.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Mobile number.
    pub mobile: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub nickname: String,
    /// Real name.
    pub realname: String,
    /// 0 unknown, 1 male, 2 female.
    pub sex: i32,
    /// Avatar URL.
    pub avatar: String,
    /// go-game's account status.
    pub status: i32,
}

impl From<User> for UserInfo {
    fn from(u: User) -> Self {
        UserInfo {
            id: u.id,
            username: u.username,
            mobile: u.mobile,
            email: u.email,
            nickname: u.nickname,
            realname: u.realname,
            sex: u.sex,
            avatar: u.avatar,
            status: u.status,
        }
    }
}

/// What anyone may see of an account: its display name and avatar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicProfile {
    /// The account.
    pub user_id: i64,
    /// Display name.
    pub nickname: String,
    /// Avatar (the guid of an upload; empty for none).
    pub avatar: String,
}

/// The most accounts one profile look-up names.
pub const MAX_PROFILES: usize = 100;

/// A login attempt.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginReq {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
    /// After repeated failures: a captcha key from basic.
    #[serde(default)]
    pub captcha_key: String,
    /// After repeated failures: the captcha's answer.
    #[serde(default)]
    pub captcha_code: String,
}

/// A guest or device login.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLoginReq {
    /// The install's own id: 10 to 128 printable ASCII characters, random per install (the
    /// client makes it and keeps it; whoever knows it logs in as its account).
    pub device_id: String,
    /// Past `register_captcha_after_per_ip` sign-ups from one address in an hour, a new
    /// device needs a captcha: a key from basic.
    #[serde(default)]
    pub captcha_key: String,
    /// The captcha's answer.
    #[serde(default)]
    pub captcha_code: String,
}

/// A login by a code sent to a phone or an email address (basic's `sendCode`, verilyType 3).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeLoginReq {
    /// The phone number or email address the code was sent to.
    pub target: String,
    /// The 6-digit code.
    pub code: String,
    /// The key `sendCode` returned.
    pub key: String,
}

/// A WeChat mini-game login.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WechatLoginReq {
    /// The code from `wx.login()`.
    pub code: String,
}

/// A password reset by a code sent to the account's phone or email (verilyType 4).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordReq {
    /// The phone number or email address bound to the account.
    pub target: String,
    /// The 6-digit code.
    pub code: String,
    /// The key `sendCode` returned; empty for a code an operator sent.
    #[serde(default)]
    pub key: String,
    /// The new password: `password_min_len` to 128 characters, with a letter and a digit.
    pub new: String,
}

/// A way in to add to the caller's account.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindReq {
    /// `device`, `phone`, `email`, `wechat` or `password`.
    pub kind: String,
    /// device: the install's device id.
    #[serde(default)]
    pub device_id: String,
    /// phone, email: the number or address (a code of verilyType 1 was sent there).
    #[serde(default)]
    pub target: String,
    /// phone, email: the 6-digit code; wechat: the code from `wx.login()`.
    #[serde(default)]
    pub code: String,
    /// phone, email: the key `sendCode` returned.
    #[serde(default)]
    pub key: String,
    /// password: the login name to take (3 to 32 letters, digits or `_`).
    #[serde(default)]
    pub username: String,
    /// password: the password.
    #[serde(default)]
    pub password: String,
}

/// A way in to remove from the caller's account.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnbindReq {
    /// `device`, `phone`, `email`, `wechat` or `password`.
    pub kind: String,
    /// device: only this device (otherwise every device of the account).
    #[serde(default)]
    pub device_id: String,
}

/// One way into an account, as `detail` lists it: enough for its owner to recognise it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityInfo {
    /// `password`, `device`, `phone`, `email` or `wechat`.
    pub kind: String,
    /// password: the username; phone and email: masked (`***8000`, `a***@example.com`);
    /// others: empty.
    pub hint: String,
    /// When it was bound, unix ms (0 for the password).
    pub created_at: i64,
}

/// A profile change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileReq {
    /// Display name: 1 to 32 characters, no control characters; unchanged when absent.
    #[serde(default)]
    pub nickname: Option<String>,
    /// The guid of one of the caller's uploaded images, or `""` for none; unchanged when
    /// absent.
    #[serde(default)]
    pub avatar: Option<String>,
    /// 0 unknown, 1 male, 2 female; unchanged when absent.
    #[serde(default)]
    pub sex: Option<i32>,
}

/// A ban as the operator sets it.
#[derive(Debug, Clone, Default)]
pub struct Ban {
    /// When it ends, unix ms; 0: never.
    pub until_ms: i64,
    /// Why (shown to the player), at most 255 bytes.
    pub reason: String,
}

/// A registration.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterReq {
    /// Login name: 3 to 32 letters, digits or `_`.
    pub username: String,
    /// Password: `password_min_len` to 128 characters, with a letter and a digit.
    pub password: String,
    /// Display name; the username when empty.
    #[serde(default)]
    pub nickname: String,
    /// When `usercenter.register_captcha` is on: a captcha key from basic.
    #[serde(default)]
    pub captcha_key: String,
    /// When `usercenter.register_captcha` is on: the captcha's answer.
    #[serde(default)]
    pub captcha_code: String,
}

/// A QR login waiting to be confirmed: the waiting page shows `qr` (a QR code of it) and asks
/// `loginScan` with `value` until tokens come back.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanTicket {
    /// The scan key.
    pub value: String,
    /// What the QR code encodes: `rsgame://login?value=<key>`.
    pub qr: String,
    /// When it stops working, unix seconds.
    pub expire_time: i64,
}

/// A scan key's state in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scan {
    /// The account that confirmed it, once confirmed.
    user_id: Option<i64>,
}

/// How long a QR login waits for its confirmation.
const SCAN_TTL: Duration = Duration::from_secs(120);

fn scan_key(v: &str) -> String {
    format!("uc:scan:{v}")
}

fn confirmed_key(v: &str) -> String {
    format!("uc:scan-ok:{v}")
}

/// What the usercenter service does; the API layer does not know whether it runs in this
/// process or behind gRPC.
#[async_trait::async_trait]
pub trait UserCenter: Send + Sync {
    /// Creates an account and logs it in.
    async fn register(&self, req: RegisterReq, ip: &str) -> Result<Tokens>;
    /// Checks a password (and a captcha after repeated failures) and issues tokens.
    async fn login(&self, req: LoginReq, ip: &str) -> Result<Tokens>;
    /// Logs in by device id; the first call from a device creates its account (a guest: no
    /// password, no username to type).
    async fn login_device(&self, req: DeviceLoginReq, ip: &str) -> Result<Tokens>;
    /// Changes the password of `user_id`, proven by the old one; ends every session of the
    /// account and returns new tokens for the caller.
    async fn change_password(&self, user_id: i64, old: String, new: String, ip: &str) -> Result<Tokens>;
    /// Logs in by a code sent to a phone or email (verilyType 3); the first login of a
    /// target makes its account when `usercenter.code_signup` is on.
    async fn login_code(&self, req: CodeLoginReq, ip: &str) -> Result<Tokens>;
    /// Logs in by a WeChat mini-game code; the first login of a WeChat user makes its account.
    async fn login_wechat(&self, req: WechatLoginReq, ip: &str) -> Result<Tokens>;
    /// Sets a new password proven by a code sent to the account's phone or email (verilyType
    /// 4); ends every session of the account and returns new tokens.
    async fn reset_password(&self, req: ResetPasswordReq, ip: &str) -> Result<Tokens>;
    /// Adds a way in to the account.
    async fn bind(&self, user_id: i64, req: BindReq, ip: &str) -> Result<()>;
    /// Removes a way in from the account (never the last one).
    async fn unbind(&self, user_id: i64, req: UnbindReq, ip: &str) -> Result<()>;
    /// The account's details and its ways in (`detail`).
    async fn detail(&self, user_id: i64) -> Result<(UserInfo, Vec<IdentityInfo>)>;
    /// The public profiles of the live accounts among `ids` (1 to [`MAX_PROFILES`]); closed
    /// and unknown ones are left out.
    async fn profiles(&self, ids: &[i64]) -> Result<Vec<PublicProfile>>;
    /// Changes the account's nickname, avatar or sex; returns the account as it is now.
    async fn update_profile(&self, user_id: i64, req: ProfileReq) -> Result<UserInfo>;
    /// Closes the account at once (every session ends); its personal data is erased after
    /// `usercenter.delete_grace_days`. `issued_ms`: when the caller's access token was issued,
    /// which must be within `usercenter.fresh_login_secs`.
    async fn delete_account(&self, user_id: i64, issued_ms: i64, ip: &str) -> Result<()>;
    /// The account's public details.
    async fn user_info(&self, user_id: i64) -> Result<UserInfo>;
    /// Exchanges a refresh token for new tokens; a reused one revokes its family.
    async fn refresh(&self, refresh_token: &str, ip: &str) -> Result<Tokens>;
    /// Revokes the access token and the refresh token's family (all the user's refresh
    /// tokens when none is given).
    async fn logout(&self, claims: &Claims, refresh_token: Option<&str>, ip: &str) -> Result<()>;
    /// Logs `user_id` out everywhere: every access and refresh token issued until now stops
    /// working and its game connections close.
    async fn logout_all(&self, user_id: i64, ip: &str) -> Result<()>;
    /// Starts a QR login (the waiting page).
    async fn scan_create(&self, ip: &str) -> Result<ScanTicket>;
    /// Confirms a QR login from a device where `user_id` is logged in.
    async fn scan_confirm(&self, user_id: i64, value: &str, ip: &str) -> Result<()>;
    /// The waiting page asks: tokens once confirmed (once only), [`Code::ScanPending`] before.
    async fn login_scan(&self, value: &str, ip: &str) -> Result<Tokens>;
    /// Tokens for an account, without a password (server-side callers only: gRPC
    /// `generateToken`).
    async fn generate_token(&self, user_id: i64) -> Result<Tokens>;
    /// The account behind an auth key: `username`, `mobile` or `email` (go-game's
    /// `getUserAuthByAuthKey`).
    async fn user_by_auth_key(&self, auth_key: &str, auth_type: &str) -> Result<UserInfo>;
}

/// argon2id with OWASP's minimum (19 MiB, 2 passes, 1 lane): about 20 ms per hash on the
/// benchmark machine (docs/benchmarks.md).
pub fn hasher() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// At most one argon2id hash per core at a time: more would not finish sooner.
async fn hashing_permit() -> Option<tokio::sync::SemaphorePermit<'static>> {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(cores)).acquire().await.ok()
}

/// Runs `f` with argon2id work memory taken from a pool (one 19 MiB set per concurrent hash,
/// allocated once). Allocating it per hash made glibc keep a 19 MiB block resident in each
/// of its arenas: a burst of 200 logins left the server at 700 MiB.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    static POOL: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
    let take = || POOL.lock().ok().and_then(|mut p| p.pop());
    let mut mem = take().unwrap_or_default();
    if mem.len() < blocks {
        mem.resize(blocks, argon2::Block::default());
    }
    let out = f(&mut mem[..blocks]);
    if let Ok(mut p) = POOL.lock() {
        p.push(mem);
    }
    out
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) for `password`.
fn hash_sync(password: &[u8]) -> std::result::Result<String, String> {
    use argon2::password_hash::phc::{Output, ParamsString, Salt};
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let h = hasher();
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    with_memory(h.params().block_count(), |m| h.hash_password_into_with_memory(password, &salt, &mut out, m))
        .map_err(|x| e(&x))?;
    let phc = argon2::PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(h.params()).map_err(|x| e(&x))?,
        salt: Some(Salt::new(&salt).map_err(|x| e(&x))?),
        hash: Some(Output::new(&out).map_err(|x| e(&x))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches a PHC string (any argon2 variant and parameters it names).
fn verify_sync(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = argon2::PasswordHash::new(phc) else { return false };
    let (Ok(params), Some(salt), Some(expected)) = (argon2::Params::try_from(&parsed), &parsed.salt, &parsed.hash)
    else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = parsed.version.and_then(|v| argon2::Version::try_from(v).ok()).unwrap_or_default();
    let h = argon2::Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let ok = with_memory(h.params().block_count(), |m| h.hash_password_into_with_memory(password, salt, &mut out, m));
    ok.is_ok() && rsgame_kit::auth::constant_time_eq(&out, expected.as_bytes())
}

/// An argon2id PHC string for `password` (one hash per core at a time, off the runtime's
/// threads): for any secret a person chooses (players' and operators' passwords).
pub async fn hash_password(password: String) -> Result<String> {
    let _permit = hashing_permit().await;
    tokio::task::spawn_blocking(move || hash_sync(password.as_bytes()))
        .await
        .map_err(|e| Error::internal(Code::Failed, e))?
        .map_err(|e| Error::internal(Code::Failed, std::io::Error::other(e)))
}

/// Checks `password` against a PHC string; a missing account is checked against a fixed hash
/// so that both cases take the same time.
pub async fn verify_password(password: String, phc: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let _permit = hashing_permit().await;
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let phc =
            phc.unwrap_or_else(|| DUMMY.get_or_init(|| hash_sync(b"no such account").unwrap_or_default()).clone());
        // Verified whether or not the account exists, so both answers cost the same.
        let matches = verify_sync(password.as_bytes(), &phc);
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// SHA-256 of `s` as lower-case hex (device ids, token hashes).
pub fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `bytes` random bytes as lower-case hex (tokens, keys).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

/// The cache key counting an address's sign-ups this hour.
fn sign_ups_key(ip: &str) -> String {
    format!("uc:reg:ip:{ip}")
}

fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A refresh token about to be handed out: the token, its family and its stored form.
struct NewRefresh {
    token: String,
    family: String,
    hash: String,
    expires_at: i64,
}

impl NewRefresh {
    fn new(lifetime_secs: u64) -> NewRefresh {
        let token = random_token(32);
        let hash = sha256_hex(&token);
        let expires_at = model::now_ms() + lifetime_secs as i64 * 1000;
        NewRefresh { token, family: random_token(16), hash, expires_at }
    }

    fn record<'a>(&'a self, ip: &'a str, kind: LogKind, remark: &'a str) -> LoginRecord<'a> {
        LoginRecord { ip, kind, remark, family: &self.family, refresh_hash: &self.hash, expires_at: self.expires_at }
    }
}

/// The identities a WeChat user has: the openid, and the unionid when WeChat gave one.
fn wechat_identities(who: &wechat::WechatUser) -> Vec<(IdentityKind, &str)> {
    let mut ids = vec![(IdentityKind::Wechat, who.openid.as_str())];
    if let Some(union) = &who.unionid {
        ids.push((IdentityKind::WechatUnion, union.as_str()));
    }
    ids
}

/// Checks a device id: 10 to 128 printable ASCII characters, no spaces.
pub fn check_device_id(d: &str) -> Result<()> {
    if !(10..=128).contains(&d.len()) || !d.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_param("deviceId: 10 to 128 printable ASCII characters"));
    }
    Ok(())
}

/// The identity a code target names: an email address (kept in lower case) or a phone
/// number (as written).
pub fn target_identity(target: &str) -> Result<(IdentityKind, String)> {
    let t = target.trim();
    if t.contains('@') {
        if !rsgame_basic::code::is_email(t) {
            return Err(Error::bad_param("target: not an email address"));
        }
        return Ok((IdentityKind::Email, t.to_ascii_lowercase()));
    }
    if !rsgame_basic::code::is_phone(t) {
        return Err(Error::bad_param(
            "target: a phone number (6 to 20 digits, optionally after +) or an email address",
        ));
    }
    Ok((IdentityKind::Phone, t.to_owned()))
}

/// Checks a nickname: 1 to 32 characters, no control or invisible formatting characters,
/// no spaces at either end.
pub fn check_nickname(n: &str) -> Result<()> {
    let count = n.chars().count();
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    if !(1..=32).contains(&count) || n.chars().any(invisible) || n.trim() != n {
        return Err(Error::bad_param("nickname: 1 to 32 characters, no control characters, no spaces at the ends"));
    }
    Ok(())
}

/// Checks a username: 3 to 32 ASCII letters, digits or `_`.
pub fn check_username(u: &str) -> Result<()> {
    if !(3..=32).contains(&u.len()) || !u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::bad_param("username: 3 to 32 letters, digits or _"));
    }
    Ok(())
}

/// Checks a password against the rules.
pub fn check_password(p: &str, min_len: usize) -> Result<()> {
    let n = p.chars().count();
    if n < min_len || n > 128 {
        return Err(Error::bad_param(format!("password: {min_len} to 128 characters")));
    }
    if !p.chars().any(char::is_alphabetic) || !p.chars().any(|c| c.is_ascii_digit()) {
        return Err(Error::bad_param("password: needs a letter and a digit"));
    }
    Ok(())
}

/// The in-process usercenter.
#[derive(Clone)]
pub struct UserCenterLogic {
    db: Db,
    cache: Cache,
    jwt: Arc<Jwt>,
    basic: Arc<dyn Basic>,
    cfg: UsercenterConfig,
    guard: LoginGuard,
    sessions: Sessions,
    /// WeChat mini-game login, when `usercenter.wechat_appid` is set.
    wechat: Option<Wechat>,
    /// Where operator-sent codes are queued for delivery.
    bus: Bus,
}

/// How long a password-reset code an operator sent stays good.
pub const OPERATOR_RESET_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The code key of an operator-sent password reset for `ident` (a normalized phone number or
/// email address): the player sends `resetPassword` without a key, so it is found by target.
fn operator_reset_key(ident: &str) -> String {
    format!("op-{}", &sha256_hex(&format!("operator reset\0{ident}"))[..32])
}

impl UserCenterLogic {
    /// The logic over its storage, its bus (to tell game nodes of ended sessions), token
    /// codec and basic (for captchas).
    pub fn new(db: Db, cache: Cache, bus: Bus, jwt: Arc<Jwt>, basic: Arc<dyn Basic>, cfg: UsercenterConfig) -> Self {
        let guard = LoginGuard::new(cache.clone(), cfg.clone());
        let sessions = Sessions::new(db.clone(), cache.clone(), bus.clone(), jwt.access_expire());
        // The URL's scheme was checked with the configuration; anything else wrong with it
        // turns WeChat login off, loudly.
        let wechat = Wechat::from_config(&cfg).unwrap_or_else(|e| {
            tracing::error!(error = %e, "WeChat login is off: usercenter.wechat_url cannot be used");
            None
        });
        UserCenterLogic { db, cache, jwt, basic, cfg, guard, sessions, wechat, bus }
    }

    /// Sends a password-reset code to the phone or email bound to `user_id` (`via`: "phone"
    /// or "email"; empty: the email if there is one, else the phone). The player then calls
    /// `resetPassword` with that target, the code, an empty key and a new password. Returns
    /// where it went and when the code expires (unix seconds).
    pub async fn send_reset_code(&self, user_id: i64, via: &str) -> Result<(String, i64)> {
        let ids = identity::account_with_identities(&self.db, user_id)
            .await?
            .map(|(_, ids)| ids)
            .ok_or_else(|| Error::msg(Code::NotFound, "no such player"))?;
        let pick = |k: IdentityKind| ids.iter().find(|i| i.kind == k).map(|i| i.ident.clone());
        let target = match via {
            "email" => pick(IdentityKind::Email),
            "phone" => pick(IdentityKind::Phone),
            "" => pick(IdentityKind::Email).or_else(|| pick(IdentityKind::Phone)),
            _ => return Err(Error::bad_param("via: phone, email or empty")),
        }
        .ok_or_else(|| Error::msg(Code::Failed, "the account has no phone or email to send a code to"))?;
        let (_, ident) = target_identity(&target)?;
        let key = operator_reset_key(&ident);
        let purpose = VerilyType::ChangePassword as i32;
        let expires =
            rsgame_basic::code::issue(&self.cache, &self.bus, &key, &ident, purpose, OPERATOR_RESET_TTL).await?;
        model::log(&self.db, user_id, LogKind::Login, "password reset code sent by an operator", "").await?;
        Ok((ident, expires))
    }

    /// The revocation checks that logouts and ended sessions feed, for
    /// [`rsgame_kit::auth::Auth`].
    pub fn revocations(&self) -> Arc<dyn Revocations> {
        crate::sessions::revocations(self.cache.clone())
    }

    /// Bans `user_id` (account status 3) until a time, with a reason the player is shown, and
    /// ends its sessions; `None` lifts the ban (status 1). Returns false when there is no
    /// such account (or it was closed by its owner).
    pub async fn set_banned(&self, user_id: i64, ban: Option<Ban>, ip: &str) -> Result<bool> {
        let Some(user) = model::user_by_id(&self.db, user_id).await? else { return Ok(false) };
        if user.closed_at.is_some() {
            return Ok(false);
        }
        if let Some(b) = &ban {
            if b.reason.len() > 255 || b.reason.chars().any(char::is_control) {
                return Err(Error::bad_param("reason: at most 255 bytes of one-line text"));
            }
            if b.until_ms != 0 && b.until_ms <= model::now_ms() {
                return Err(Error::bad_param("until: a time in the future, or none for a ban without end"));
            }
        }
        model::set_ban(&self.db, user_id, ban.as_ref().map(|b| (b.until_ms, b.reason.as_str()))).await?;
        let what = match &ban {
            Some(b) if b.until_ms > 0 => format!("banned until {} (unix ms): {}", b.until_ms, b.reason),
            Some(b) => format!("banned: {}", b.reason),
            None => "ban lifted".to_owned(),
        };
        model::log(&self.db, user_id, LogKind::Logout, &what, ip).await?;
        if ban.is_some() {
            self.sessions.end_all(user_id, SessionsEndedReason::Banned).await?;
        }
        tracing::info!(user_id, banned = ban.is_some(), "account ban changed");
        Ok(true)
    }

    /// Erases the personal data of accounts closed more than `usercenter.delete_grace_days`
    /// ago; returns how many. Safe to run from several processes at once: each erase is one
    /// transaction that only applies to an account not yet erased.
    pub async fn erase_closed(&self) -> Result<usize> {
        let grace_ms = self.cfg.delete_grace_days.saturating_mul(86_400_000).min(i64::MAX as u64) as i64;
        let cutoff = model::now_ms().saturating_sub(grace_ms);
        let mut erased = 0;
        loop {
            let batch = model::closed_before(&self.db, cutoff, 100).await?;
            if batch.is_empty() {
                return Ok(erased);
            }
            for id in batch {
                model::erase(&self.db, id).await?;
                tracing::info!(user_id = id, "closed account's personal data erased");
                erased += 1;
            }
        }
    }

    async fn issue(&self, user_id: i64, family: Option<String>) -> Result<Tokens> {
        let (access, _) = self.jwt.issue(user_id)?;
        let refresh_token = random_token(32);
        let family = family.unwrap_or_else(|| random_token(16));
        let expires = model::now_ms() + self.cfg.refresh_expire_secs as i64 * 1000;
        model::insert_refresh(&self.db, user_id, &family, &sha256_hex(&refresh_token), expires).await?;
        Ok(Tokens { access, refresh_token })
    }

    /// Whether a new account may be made from `ip` now: past `register_captcha_after_per_ip`
    /// sign-ups from one address in an hour (or always, with `always`), only with a solved
    /// captcha. Checked after the cheap checks: a wrong answer uses the captcha up.
    async fn may_sign_up(&self, ip: &str, captcha_key: &str, captcha_code: &str, always: bool) -> Result<()> {
        let per_ip = self.cfg.register_captcha_after_per_ip;
        let busy = per_ip > 0 && self.cache.get::<i64>(&sign_ups_key(ip)).await.ok().flatten().unwrap_or(0) >= per_ip;
        if always || busy {
            if captcha_key.is_empty() || captcha_code.is_empty() {
                return Err(Error::new(Code::CaptchaRequired));
            }
            if !self.basic.verify_captcha(captcha_key, captcha_code).await? {
                return Err(Error::new(Code::CaptchaWrong));
            }
        }
        Ok(())
    }

    /// Counts a sign-up from `ip` for [`Self::may_sign_up`].
    async fn signed_up(&self, ip: &str) {
        if self.cfg.register_captcha_after_per_ip > 0 {
            // A cache error leaves the sign-up uncounted rather than refused.
            let _ = self.cache.incr(&sign_ups_key(ip), 1, Some(Duration::from_secs(3600))).await;
        }
    }

    /// Logs `user` in once a credential has proven who it is (`how`, for the log): refused
    /// for a banned or closed account, recorded, and new tokens issued.
    async fn log_in(&self, user: &User, ip: &str, how: &str) -> Result<Tokens> {
        if let Some(refused) = user.refusal(model::now_ms()) {
            model::log(&self.db, user.id, LogKind::Login, "refused: account banned or closed", ip).await?;
            return Err(refused);
        }
        let (access, _) = self.jwt.issue(user.id)?;
        let refresh = NewRefresh::new(self.cfg.refresh_expire_secs);
        model::record_login(&self.db, user.id, &refresh.record(ip, LogKind::Login, how)).await?;
        Ok(Tokens { access, refresh_token: refresh.token })
    }

    /// [`Self::log_in`] for the account an identity led to.
    async fn log_in_id(&self, user_id: i64, ip: &str, how: &str) -> Result<Tokens> {
        match model::user_by_id(&self.db, user_id).await? {
            Some(user) => self.log_in(&user, ip, how).await,
            None => Err(Error::new(Code::LoginFailed)),
        }
    }

    /// Makes an account that `identities` open and logs it in; its username is generated
    /// under `prefix`. When the first identity was taken a moment ago (the same client's
    /// first two requests raced), logs into the account it has now.
    async fn sign_up_with(
        &self,
        identities: &[(IdentityKind, &str)],
        prefix: &str,
        ip: &str,
        how: &str,
    ) -> Result<Tokens> {
        // '-' keeps generated names out of the names people register (letters, digits and
        // '_'), so the two never collide.
        let tag = random_hex(8);
        let username = format!("{prefix}-{tag}");
        let nickname = format!("{}-{}", if prefix == "guest" { "Guest" } else { "Player" }, &tag[..6]);
        let refresh = NewRefresh::new(self.cfg.refresh_expire_secs);
        let record = refresh.record(ip, LogKind::NewUser, how);
        match identity::insert_user_with(&self.db, &username, &nickname, identities, &record).await {
            Ok(id) => {
                tracing::info!(user_id = id, how, "account made");
                let (access, _) = self.jwt.issue(id)?;
                Ok(Tokens { access, refresh_token: refresh.token })
            }
            Err(StoreError::Conflict(_)) => {
                let (kind, ident) = identities.first().copied().ok_or_else(|| Error::new(Code::InsertFailed))?;
                match identity::account_of(&self.db, kind, ident).await? {
                    Some(user) => self.log_in(&user, ip, how).await,
                    None => Err(Error::new(Code::InsertFailed)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Why the account may not log in, if it may not (a missing account may not).
    async fn refusal(&self, user_id: i64) -> Result<Option<Error>> {
        Ok(match model::user_by_id(&self.db, user_id).await? {
            Some(u) => u.refusal(model::now_ms()),
            None => Some(Error::new(Code::NotFound)),
        })
    }

    /// Ends every session of an account whose password was just changed or reset. After the
    /// new hash is in: ending the sessions first would let a login with the old password
    /// slip in between and keep its tokens.
    async fn end_all_after_password(&self, user_id: i64) -> Result<()> {
        if let Err(e) = self.sessions.end_all(user_id, SessionsEndedReason::PasswordChanged).await {
            tracing::error!(user_id, error = %e, "password changed, but the account's sessions could not be ended");
            return Err(Error::msg(
                Code::Failed,
                "the password was changed, but other sessions could not be ended: log out everywhere",
            ));
        }
        tracing::info!(user_id, "password changed: every session of the account ended");
        Ok(())
    }

    /// The configured WeChat client, or 400501 when WeChat login is off.
    fn wechat(&self) -> Result<&Wechat> {
        self.wechat.as_ref().ok_or_else(|| Error::msg(Code::Forbidden, "WeChat login is not set up on this server"))
    }

    /// Adds identities to an account, mapping what the store says to the caller's codes.
    async fn bind_identities(&self, user_id: i64, identities: &[(IdentityKind, &str)], ip: &str) -> Result<()> {
        // Already this account's: nothing to do (and no conflict with itself).
        let mut all_ours = true;
        for (kind, ident) in identities {
            match identity::user_of(&self.db, *kind, ident).await? {
                Some(owner) if owner == user_id => {}
                Some(_) => return Err(Error::new(Code::IdentityTaken)),
                None => all_ours = false,
            }
        }
        if all_ours {
            return Ok(());
        }
        match identity::bind(&self.db, user_id, identities).await {
            Ok(Change::Done) => {}
            Ok(_) => return Err(Error::new(Code::AccountClosed)),
            // Another account bound it between our look and our insert.
            Err(StoreError::Conflict(_)) => return Err(Error::new(Code::IdentityTaken)),
            Err(e) => return Err(e.into()),
        }
        let kinds: Vec<&str> = identities.iter().map(|(k, _)| k.as_str()).collect();
        model::log(&self.db, user_id, LogKind::Login, &format!("bound {}", kinds.join("+")), ip).await?;
        Ok(())
    }

    /// Checks a code sent to `target` for `purpose`: [`Code::VerifyCode`] unless right.
    async fn check_code(&self, key: &str, code: &str, target: &str, purpose: VerilyType) -> Result<()> {
        if code.is_empty() || code.len() > 16 {
            return Err(Error::new(Code::VerifyCode));
        }
        if !self.basic.use_code(key, code, target.trim(), purpose as i32).await? {
            return Err(Error::new(Code::VerifyCode));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl UserCenter for UserCenterLogic {
    async fn register(&self, mut req: RegisterReq, ip: &str) -> Result<Tokens> {
        check_username(&req.username)?;
        // One account per name whatever its case, on every database (MariaDB compares case-
        // insensitively, SQLite and PostgreSQL do not): names are kept in lower case.
        req.username = req.username.to_ascii_lowercase();
        check_password(&req.password, self.cfg.password_min_len)?;
        if req.nickname.chars().count() > 32 {
            return Err(Error::bad_param("nickname: at most 32 characters"));
        }
        let nickname = if req.nickname.is_empty() { req.username.clone() } else { req.nickname.clone() };
        // Checked last among the cheap checks: a form rejected for its username should not
        // cost the player a new picture. A captcha is needed even where the page does not
        // ask for one once an address has signed up often: each costs a password hash.
        self.may_sign_up(ip, &req.captcha_key, &req.captcha_code, self.cfg.register_captcha).await?;
        self.signed_up(ip).await;
        let hash = hash_password(req.password).await?;
        let id = match model::insert_user(&self.db, &req.username, &hash, &nickname, ip).await {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => return Err(Error::new(Code::UsernameTaken)),
            Err(e) => return Err(e.into()),
        };
        model::log(&self.db, id, LogKind::NewUser, "register", ip).await?;
        tracing::info!(user_id = id, "account registered");
        self.issue(id, None).await
    }

    async fn login(&self, mut req: LoginReq, ip: &str) -> Result<Tokens> {
        req.username = req.username.to_ascii_lowercase();
        if req.username.is_empty() || req.username.len() > 64 || req.password.is_empty() || req.password.len() > 512 {
            return Err(Error::new(Code::LoginFailed));
        }
        let solved = match self.guard.check(&req.username, ip).await {
            Verdict::Locked => return Err(Error::new(Code::AccountLocked)),
            Verdict::Open => false,
            Verdict::Captcha => {
                if req.captcha_key.is_empty() || req.captcha_code.is_empty() {
                    return Err(Error::new(Code::CaptchaRequired));
                }
                // A wrong or made-up captcha is no password failure: counting it let
                // strangers lock any account without ever solving one.
                if !self.basic.verify_captcha(&req.captcha_key, &req.captcha_code).await? {
                    return Err(Error::new(Code::CaptchaWrong));
                }
                true
            }
        };
        let user = model::user_by_name(&self.db, &req.username).await?;
        let ok = verify_password(req.password, user.as_ref().map(|u| u.password.clone())).await;
        let Some(user) = user.filter(|_| ok) else {
            self.guard.failed(&req.username, ip, solved).await;
            return Err(Error::new(Code::LoginFailed));
        };
        let tokens = self.log_in(&user, ip, "login").await?;
        // Only a login that went through clears the failures (a banned account's right
        // password does not).
        self.guard.succeeded(&req.username, ip).await;
        Ok(tokens)
    }

    async fn login_device(&self, req: DeviceLoginReq, ip: &str) -> Result<Tokens> {
        check_device_id(&req.device_id)?;
        // No password hash on this path: a device id is random, so its SHA-256 is enough to
        // keep a database leak from handing out logins, and device logins stay cheap.
        let ident = sha256_hex(&req.device_id);
        let kind = IdentityKind::Device;
        if let Some(user) = identity::account_of(&self.db, kind, &ident).await? {
            return self.log_in(&user, ip, "device login").await;
        }
        self.may_sign_up(ip, &req.captcha_key, &req.captcha_code, false).await?;
        self.signed_up(ip).await;
        self.sign_up_with(&[(kind, &ident)], "guest", ip, "device sign-up").await
    }

    async fn login_code(&self, req: CodeLoginReq, ip: &str) -> Result<Tokens> {
        let (kind, ident) = target_identity(&req.target)?;
        self.check_code(&req.key, &req.code, &req.target, VerilyType::CodeLogin).await?;
        if let Some(user) = identity::account_of(&self.db, kind, &ident).await? {
            return self.log_in(&user, ip, "code login").await;
        }
        if !self.cfg.code_signup {
            return Err(Error::msg(Code::NotFound, "no account has this phone number or email address"));
        }
        // No captcha: the code was one to get (basic limits codes per address and target).
        self.sign_up_with(&[(kind, &ident)], "player", ip, "code sign-up").await
    }

    async fn login_wechat(&self, req: WechatLoginReq, ip: &str) -> Result<Tokens> {
        let wx = self.wechat()?;
        wechat::check_code(&req.code)?;
        let who = wx.exchange(&req.code).await?;
        if let Some(user) = identity::account_of(&self.db, IdentityKind::Wechat, &who.openid).await? {
            return self.log_in(&user, ip, "WeChat login").await;
        }
        // A player the studio knows from another of its apps: the same account, which now
        // also opens with this mini-game's openid.
        if let Some(union) = &who.unionid
            && let Some(user) = identity::account_of(&self.db, IdentityKind::WechatUnion, union).await?
        {
            self.bind_identities(user.id, &[(IdentityKind::Wechat, &who.openid)], ip).await?;
            return self.log_in(&user, ip, "WeChat login").await;
        }
        self.sign_up_with(&wechat_identities(&who), "wx", ip, "WeChat sign-up").await
    }

    async fn reset_password(&self, req: ResetPasswordReq, ip: &str) -> Result<Tokens> {
        check_password(&req.new, self.cfg.password_min_len)?;
        let (kind, ident) = target_identity(&req.target)?;
        // No key: a code an operator sent, found by its target.
        let key = if req.key.is_empty() { operator_reset_key(&ident) } else { req.key.clone() };
        self.check_code(&key, &req.code, &req.target, VerilyType::ChangePassword).await?;
        let Some(user) = identity::account_of(&self.db, kind, &ident).await? else {
            return Err(Error::msg(Code::NotFound, "no account has this phone number or email address"));
        };
        if user.closed_at.is_some() {
            return Err(Error::new(Code::AccountClosed));
        }
        let hash = hash_password(req.new).await?;
        model::set_password(&self.db, user.id, &hash).await?;
        model::log(&self.db, user.id, LogKind::Logout, "password reset by code", ip).await?;
        self.end_all_after_password(user.id).await?;
        // Whoever proved the phone or email owns the account: failures counted against it
        // (someone guessing its old password) no longer stand in its way.
        self.guard.succeeded(&user.username, ip).await;
        self.log_in(&user, ip, "login after a password reset").await
    }

    async fn bind(&self, user_id: i64, req: BindReq, ip: &str) -> Result<()> {
        match req.kind.as_str() {
            "device" => {
                check_device_id(&req.device_id)?;
                self.bind_identities(user_id, &[(IdentityKind::Device, &sha256_hex(&req.device_id))], ip).await
            }
            "phone" | "email" => {
                let (kind, ident) = target_identity(&req.target)?;
                if kind.as_str() != req.kind {
                    return Err(Error::bad_param(format!("target: not a {} address or number", req.kind)));
                }
                self.check_code(&req.key, &req.code, &req.target, VerilyType::Register).await?;
                self.bind_identities(user_id, &[(kind, &ident)], ip).await
            }
            "wechat" => {
                let wx = self.wechat()?;
                wechat::check_code(&req.code)?;
                let who = wx.exchange(&req.code).await?;
                self.bind_identities(user_id, &wechat_identities(&who), ip).await
            }
            "password" => {
                check_username(&req.username)?;
                check_password(&req.password, self.cfg.password_min_len)?;
                let username = req.username.to_ascii_lowercase();
                let hash = hash_password(req.password).await?;
                match identity::set_login(&self.db, user_id, &username, &hash).await {
                    Ok(Change::Done) => {}
                    Ok(Change::NothingThere) => {
                        return Err(Error::bad_param("the account has a password already: use changePassword"));
                    }
                    Ok(_) => return Err(Error::new(Code::AccountClosed)),
                    Err(StoreError::Conflict(_)) => return Err(Error::new(Code::UsernameTaken)),
                    Err(e) => return Err(e.into()),
                }
                model::log(&self.db, user_id, LogKind::Login, "bound password", ip).await?;
                Ok(())
            }
            _ => Err(Error::bad_param("kind: device, phone, email, wechat or password")),
        }
    }

    async fn unbind(&self, user_id: i64, req: UnbindReq, ip: &str) -> Result<()> {
        let change = match req.kind.as_str() {
            "password" => identity::drop_password(&self.db, user_id, &format!("guest-{}", random_hex(8))).await?,
            "device" => {
                let one = (!req.device_id.is_empty()).then(|| sha256_hex(&req.device_id));
                identity::unbind(&self.db, user_id, &[IdentityKind::Device], one.as_deref()).await?
            }
            "phone" => identity::unbind(&self.db, user_id, &[IdentityKind::Phone], None).await?,
            "email" => identity::unbind(&self.db, user_id, &[IdentityKind::Email], None).await?,
            "wechat" => {
                identity::unbind(&self.db, user_id, &[IdentityKind::Wechat, IdentityKind::WechatUnion], None).await?
            }
            _ => return Err(Error::bad_param("kind: device, phone, email, wechat or password")),
        };
        match change {
            Change::Done => {
                model::log(&self.db, user_id, LogKind::Logout, &format!("unbound {}", req.kind), ip).await?;
                Ok(())
            }
            Change::LastWayIn => Err(Error::new(Code::LastIdentity)),
            Change::NothingThere => Err(Error::msg(Code::NotFound, "the account has no such login")),
            Change::NoAccount => Err(Error::new(Code::AccountClosed)),
        }
    }

    async fn detail(&self, user_id: i64) -> Result<(UserInfo, Vec<IdentityInfo>)> {
        let (user, identities) =
            identity::account_with_identities(&self.db, user_id).await?.ok_or_else(|| Error::new(Code::NotFound))?;
        let mut out = Vec::new();
        if user.password != "!" {
            out.push(IdentityInfo { kind: "password".into(), hint: user.username.clone(), created_at: 0 });
        }
        for i in identities {
            let hint = match i.kind {
                IdentityKind::Phone | IdentityKind::Email => rsgame_basic::code::mask(&i.ident),
                // The unionid is the openid's companion, not a login of its own to show.
                IdentityKind::WechatUnion => continue,
                IdentityKind::Device | IdentityKind::Wechat => String::new(),
            };
            out.push(IdentityInfo { kind: i.kind.as_str().into(), hint, created_at: i.created_at });
        }
        Ok((UserInfo::from(user), out))
    }

    async fn profiles(&self, ids: &[i64]) -> Result<Vec<PublicProfile>> {
        if ids.is_empty() || ids.len() > MAX_PROFILES || ids.iter().any(|&id| id <= 0) {
            return Err(Error::bad_param("userIds: 1 to 100 account ids"));
        }
        let rows = model::public_profiles(&self.db, ids).await?;
        Ok(rows.into_iter().map(|(user_id, nickname, avatar)| PublicProfile { user_id, nickname, avatar }).collect())
    }

    async fn update_profile(&self, user_id: i64, req: ProfileReq) -> Result<UserInfo> {
        let user = model::user_by_id(&self.db, user_id).await?.ok_or_else(|| Error::new(Code::NotFound))?;
        let nickname = match req.nickname {
            Some(n) => {
                check_nickname(&n)?;
                if self.cfg.unique_nicknames
                    && n != user.nickname
                    && model::nickname_taken(&self.db, &n, user_id).await?
                {
                    return Err(Error::msg(Code::UsernameTaken, "that nickname is taken"));
                }
                n
            }
            None => user.nickname.clone(),
        };
        let avatar = match req.avatar {
            Some(a) if a.is_empty() => a,
            Some(a) => {
                if a.len() > 64 || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(Error::bad_param("avatar: the guid of one of your uploaded images"));
                }
                // Someone else's file, or one that is gone, is no avatar of the caller's.
                match self.basic.file_detail(user_id, &a).await {
                    Ok(f) if f.media_type == 1 => a,
                    Ok(_) => return Err(Error::bad_param("avatar: that file is not an image")),
                    Err(e) if e.code() == Code::NotFound => {
                        return Err(Error::bad_param("avatar: the guid of one of your uploaded images"));
                    }
                    Err(e) => return Err(e),
                }
            }
            None => user.avatar.clone(),
        };
        let sex = req.sex.unwrap_or(user.sex);
        if !(0..=2).contains(&sex) {
            return Err(Error::bad_param("sex: 0 unknown, 1 male, 2 female"));
        }
        model::set_profile(&self.db, user_id, &nickname, &avatar, sex).await?;
        Ok(UserInfo { nickname, avatar, sex, ..UserInfo::from(user) })
    }

    async fn delete_account(&self, user_id: i64, issued_ms: i64, ip: &str) -> Result<()> {
        let age = model::now_ms() - issued_ms;
        if issued_ms <= 0 || age > self.cfg.fresh_login_secs.saturating_mul(1000) as i64 {
            return Err(Error::new(Code::FreshLoginRequired));
        }
        if !model::close(&self.db, user_id).await? {
            return Err(Error::new(Code::AccountClosed));
        }
        model::log(&self.db, user_id, LogKind::Logout, "account closed by its owner", ip).await?;
        if let Err(e) = self.sessions.end_all(user_id, SessionsEndedReason::Deleted).await {
            tracing::error!(user_id, error = %e, "account closed, but its sessions could not all be ended");
            return Err(Error::msg(Code::Failed, "the account was closed, but some sessions may still be open"));
        }
        tracing::info!(user_id, grace_days = self.cfg.delete_grace_days, "account closed by its owner");
        Ok(())
    }

    async fn change_password(&self, user_id: i64, old: String, new: String, ip: &str) -> Result<Tokens> {
        check_password(&new, self.cfg.password_min_len)?;
        if old.is_empty() || old.len() > 512 {
            return Err(Error::new(Code::LoginFailed));
        }
        let Some(user) = model::user_by_id(&self.db, user_id).await? else {
            return Err(Error::new(Code::NotFound));
        };
        // A stolen access token must not become a way to guess the password: a wrong old
        // password counts like a failed login from this address, and a lock holds here too.
        if self.guard.check(&user.username, ip).await == Verdict::Locked {
            return Err(Error::new(Code::AccountLocked));
        }
        if !verify_password(old, Some(user.password.clone())).await {
            self.guard.failed(&user.username, ip, false).await;
            return Err(Error::new(Code::LoginFailed));
        }
        let hash = hash_password(new).await?;
        model::set_password(&self.db, user.id, &hash).await?;
        model::log(&self.db, user.id, LogKind::Logout, "password changed", ip).await?;
        self.end_all_after_password(user.id).await?;
        self.issue(user.id, None).await
    }

    async fn user_info(&self, user_id: i64) -> Result<UserInfo> {
        model::user_by_id(&self.db, user_id).await?.map(UserInfo::from).ok_or_else(|| Error::new(Code::NotFound))
    }

    async fn refresh(&self, refresh_token: &str, ip: &str) -> Result<Tokens> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Err(Error::new(Code::TokenExpired));
        }
        let hash = sha256_hex(refresh_token);
        match model::use_refresh(&self.db, &hash).await? {
            Some(r) => {
                // A banned, closed or deleted account gets nothing more from old tokens.
                if let Some(refused) = self.refusal(r.user_id).await? {
                    model::revoke_family(&self.db, &r.family).await?;
                    return Err(refused);
                }
                let tokens = self.issue(r.user_id, Some(r.family.clone())).await?;
                // A replay that revoked the family between our use and our insert did not see
                // the new token: revoke again so it is covered.
                if model::family_revoked(&self.db, &r.family).await? {
                    model::revoke_family(&self.db, &r.family).await?;
                    return Err(Error::new(Code::TokenExpired));
                }
                Ok(tokens)
            }
            None => {
                if let Some(r) = model::refresh_by_hash(&self.db, &hash).await?
                    && r.used
                {
                    // A rotated token came back: whoever holds the family may be an attacker.
                    let n = model::revoke_family(&self.db, &r.family).await?;
                    tracing::warn!(user_id = r.user_id, revoked = n, ip, "refresh token reused; family revoked");
                    model::log(&self.db, r.user_id, LogKind::Logout, "refresh token reused: sessions revoked", ip)
                        .await?;
                }
                Err(Error::new(Code::TokenExpired))
            }
        }
    }

    async fn logout(&self, claims: &Claims, refresh_token: Option<&str>, ip: &str) -> Result<()> {
        self.sessions.revoke_token(claims).await?;
        match refresh_token.filter(|t| !t.is_empty()) {
            Some(t) => {
                if let Some(r) = model::refresh_by_hash(&self.db, &sha256_hex(t)).await?
                    && r.user_id == claims.user_id
                {
                    model::revoke_family(&self.db, &r.family).await?;
                }
            }
            None => {
                model::revoke_user(&self.db, claims.user_id).await?;
            }
        }
        model::log(&self.db, claims.user_id, LogKind::Logout, "logout", ip).await?;
        Ok(())
    }

    async fn logout_all(&self, user_id: i64, ip: &str) -> Result<()> {
        self.sessions.end_all(user_id, SessionsEndedReason::LogoutAll).await?;
        model::log(&self.db, user_id, LogKind::Logout, "logout everywhere", ip).await?;
        Ok(())
    }

    async fn scan_create(&self, ip: &str) -> Result<ScanTicket> {
        let value = random_token(24);
        self.cache.set_reserved(ip, &scan_key(&value), &Scan { user_id: None }, SCAN_TTL).await?;
        Ok(ScanTicket {
            qr: format!("rsgame://login?value={value}"),
            value,
            expire_time: rsgame_kit::time::unix_secs() + SCAN_TTL.as_secs() as i64,
        })
    }

    async fn scan_confirm(&self, user_id: i64, value: &str, ip: &str) -> Result<()> {
        if value.is_empty() || value.len() > 64 {
            return Err(Error::bad_param("value: the scan key"));
        }
        let gone = || Error::msg(Code::NotFound, "this QR code expired or was already used");
        if self.cache.get::<Scan>(&scan_key(value)).await?.is_none() {
            return Err(gone());
        }
        // The confirmation is its own key, set only if absent: of two devices confirming at
        // once one wins, and the waiting page never sees the scan key missing meanwhile.
        if !self.cache.set_if_absent(&confirmed_key(value), &user_id, Some(SCAN_TTL)).await? {
            return Err(gone());
        }
        model::log(&self.db, user_id, LogKind::Login, "confirmed a QR login", ip).await?;
        Ok(())
    }

    async fn login_scan(&self, value: &str, ip: &str) -> Result<Tokens> {
        if value.is_empty() || value.len() > 64 {
            return Err(Error::bad_param("value: the scan key"));
        }
        let gone = || Error::msg(Code::NotFound, "this QR code expired or was already used");
        if self.cache.get::<Scan>(&scan_key(value)).await?.is_none() {
            return Err(gone());
        }
        // Taken: the tokens go to one waiting page only.
        let Some(user_id) = self.cache.take::<i64>(&confirmed_key(value)).await? else {
            return Err(Error::new(Code::ScanPending));
        };
        let _ = self.cache.delete(&[&scan_key(value)]).await;
        self.log_in_id(user_id, ip, "login by QR code").await
    }

    async fn generate_token(&self, user_id: i64) -> Result<Tokens> {
        if let Some(refused) = self.refusal(user_id).await? {
            return Err(refused);
        }
        self.issue(user_id, None).await
    }

    async fn user_by_auth_key(&self, auth_key: &str, auth_type: &str) -> Result<UserInfo> {
        let user = match auth_type {
            "username" | "" => model::user_by_name(&self.db, auth_key).await?,
            "mobile" => model::user_by_field(&self.db, "mobile", auth_key).await?,
            "email" => model::user_by_field(&self.db, "email", auth_key).await?,
            _ => return Err(Error::bad_param("authType: username, mobile or email")),
        };
        user.map(UserInfo::from).ok_or_else(|| Error::new(Code::NotFound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_and_password_rules() {
        assert!(check_username("ann_01").is_ok());
        for bad in ["ab", "a b", "ann'; DROP TABLE mem_user;--", "名字名字", &"x".repeat(33)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
        assert!(check_password("secret99", 8).is_ok());
        for bad in ["short1", "lettersonly", "12345678901", &"a1".repeat(65)] {
            assert!(check_password(bad, 8).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("secret99".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("secret99".into(), Some(h.clone())).await);
        assert!(!verify_password("secret98".into(), Some(h)).await);
        assert!(!verify_password("secret99".into(), None).await, "no account, no login");
    }

    #[test]
    fn pooled_hashes_are_standard_phc_strings() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        // Ours verify with the library, and the library's (hashes already stored) with ours.
        let ours = hash_sync(b"pa55word").expect("hash");
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = argon2::PasswordHash::new(&ours).expect("parse");
        assert!(hasher().verify_password(b"pa55word", &parsed).is_ok());
        let theirs = hasher().hash_password(b"pa55word").expect("library hash").to_string();
        assert!(verify_sync(b"pa55word", &theirs));
        assert!(!verify_sync(b"pa55wore", &theirs));
        assert!(!verify_sync(b"pa55word", "not a phc string"));
        // Other parameters (an older, cheaper hash) verify too: the memory grows to fit.
        let cheap = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64 * 1024, 1, 1, None).expect("params"),
        );
        let bigger = cheap.hash_password(b"x").expect("hash").to_string();
        assert!(verify_sync(b"x", &bigger));
    }
}
