//! go-game's error codes, its JSON envelope `{code, msg, data}`, and the one error type every
//! HTTP (and, later, gRPC) path returns.
//!
//! A client sees a code and a short public message; the cause behind an internal error is
//! logged with the request's span and never put in the reply.

use std::fmt;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// The codes a client can see. Values up to 400300 are go-game's (reference §2) and keep
/// their meaning so go-game clients read them unchanged; 4005xx and up are rsgame's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 200: success.
    Ok,
    /// 400: a general failure with no more specific code.
    Failed,
    /// 400102: a request parameter is missing or invalid.
    BadParam,
    /// 400103: the token is expired (go-game also used it for any unusable token).
    TokenExpired,
    /// 400104: a token could not be generated.
    TokenGenerate,
    /// 400200: the database failed.
    Db,
    /// 400201: the record does not exist.
    NotFound,
    /// 400202: an insert failed.
    InsertFailed,
    /// 400203: an update failed.
    UpdateFailed,
    /// 400204: an update touched no row.
    UpdateNoRow,
    /// 400300: the verification code is wrong.
    VerifyCode,
    /// 400500: no credentials were sent, or they are not valid (rsgame).
    Unauthorized,
    /// 400501: the caller is authenticated but may not do this (rsgame).
    Forbidden,
    /// 400502: too many requests; try again later (rsgame).
    TooManyRequests,
    /// 400503: the service is overloaded or a dependency is down; try again later (rsgame).
    Unavailable,
    /// 400504: the request took longer than its deadline (rsgame).
    Timeout,
    /// 400505: the route does not exist (rsgame).
    RouteNotFound,
    /// 400506: the username is already taken (rsgame).
    UsernameTaken,
    /// 400507: wrong username or password (rsgame).
    LoginFailed,
    /// 400508: after repeated failures this login needs a captcha (rsgame).
    CaptchaRequired,
    /// 400509: the captcha is wrong, expired or already used (rsgame).
    CaptchaWrong,
    /// 400510: the account is locked for a while after repeated failures (rsgame).
    AccountLocked,
    /// 400511: a QR login is not confirmed yet; ask again (rsgame).
    ScanPending,
    /// 400512: not enough coins (rsgame).
    NotEnoughCoins,
    /// 400513: the player does not have that item, or not enough of it (rsgame).
    NotEnoughItems,
    /// 400514: the player's level is too low for this (rsgame).
    LevelTooLow,
    /// 400515: the account is banned; the message says until when and why (rsgame).
    AccountBanned,
    /// 400516: the account was closed by its owner (rsgame).
    AccountClosed,
    /// 400517: that identity (phone, email, device, WeChat) belongs to another account (rsgame).
    IdentityTaken,
    /// 400518: the account's last way in cannot be removed (rsgame).
    LastIdentity,
    /// 400519: this needs a login from the last few minutes: log in again first (rsgame).
    FreshLoginRequired,
    /// 400520: WeChat refused the login code (rsgame).
    WechatRejected,
    /// 400521: that message's attachment was already claimed (rsgame).
    AlreadyClaimed,
    /// 400522: that message has expired (rsgame).
    MailExpired,
    /// 400523: that message still holds an attachment: claim it first (rsgame).
    AttachmentUnclaimed,
    /// 400524: the player already holds a matchmaking ticket: remove it first (rsgame).
    AlreadyQueued,
    /// 400525: that name is taken (a guild's) (rsgame).
    NameTaken,
    /// 400526: the player may not chat for now; the message says until when (rsgame).
    Muted,
}

impl Code {
    /// Every code, for documentation and tests.
    pub const ALL: [Code; 38] = [
        Code::Ok,
        Code::Failed,
        Code::BadParam,
        Code::TokenExpired,
        Code::TokenGenerate,
        Code::Db,
        Code::NotFound,
        Code::InsertFailed,
        Code::UpdateFailed,
        Code::UpdateNoRow,
        Code::VerifyCode,
        Code::Unauthorized,
        Code::Forbidden,
        Code::TooManyRequests,
        Code::Unavailable,
        Code::Timeout,
        Code::RouteNotFound,
        Code::UsernameTaken,
        Code::LoginFailed,
        Code::CaptchaRequired,
        Code::CaptchaWrong,
        Code::AccountLocked,
        Code::ScanPending,
        Code::NotEnoughCoins,
        Code::NotEnoughItems,
        Code::LevelTooLow,
        Code::AccountBanned,
        Code::AccountClosed,
        Code::IdentityTaken,
        Code::LastIdentity,
        Code::FreshLoginRequired,
        Code::WechatRejected,
        Code::AlreadyClaimed,
        Code::MailExpired,
        Code::AttachmentUnclaimed,
        Code::AlreadyQueued,
        Code::NameTaken,
        Code::Muted,
    ];

    /// The number on the wire.
    pub const fn as_u32(self) -> u32 {
        match self {
            Code::Ok => 200,
            Code::Failed => 400,
            Code::BadParam => 400_102,
            Code::TokenExpired => 400_103,
            Code::TokenGenerate => 400_104,
            Code::Db => 400_200,
            Code::NotFound => 400_201,
            Code::InsertFailed => 400_202,
            Code::UpdateFailed => 400_203,
            Code::UpdateNoRow => 400_204,
            Code::VerifyCode => 400_300,
            Code::Unauthorized => 400_500,
            Code::Forbidden => 400_501,
            Code::TooManyRequests => 400_502,
            Code::Unavailable => 400_503,
            Code::Timeout => 400_504,
            Code::RouteNotFound => 400_505,
            Code::UsernameTaken => 400_506,
            Code::LoginFailed => 400_507,
            Code::CaptchaRequired => 400_508,
            Code::CaptchaWrong => 400_509,
            Code::AccountLocked => 400_510,
            Code::ScanPending => 400_511,
            Code::NotEnoughCoins => 400_512,
            Code::NotEnoughItems => 400_513,
            Code::LevelTooLow => 400_514,
            Code::AccountBanned => 400_515,
            Code::AccountClosed => 400_516,
            Code::IdentityTaken => 400_517,
            Code::LastIdentity => 400_518,
            Code::FreshLoginRequired => 400_519,
            Code::WechatRejected => 400_520,
            Code::AlreadyClaimed => 400_521,
            Code::MailExpired => 400_522,
            Code::AttachmentUnclaimed => 400_523,
            Code::AlreadyQueued => 400_524,
            Code::NameTaken => 400_525,
            Code::Muted => 400_526,
        }
    }

    /// The code for a number, if it is one of ours.
    pub fn from_u32(n: u32) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_u32() == n)
    }

    /// The message a client gets when the error carries none of its own.
    pub const fn default_msg(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Failed => "request failed",
            Code::BadParam => "bad request parameter",
            Code::TokenExpired => "token expired or invalid",
            Code::TokenGenerate => "token could not be generated",
            Code::Db => "database error",
            Code::NotFound => "record not found",
            Code::InsertFailed => "insert failed",
            Code::UpdateFailed => "update failed",
            Code::UpdateNoRow => "update touched no row",
            Code::VerifyCode => "verification code wrong",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::TooManyRequests => "too many requests",
            Code::Unavailable => "service unavailable",
            Code::Timeout => "request timed out",
            Code::RouteNotFound => "route not found",
            Code::UsernameTaken => "username already taken",
            Code::LoginFailed => "wrong username or password",
            Code::CaptchaRequired => "captcha required",
            Code::CaptchaWrong => "captcha wrong or expired",
            Code::AccountLocked => "too many failed logins; try again later",
            Code::ScanPending => "waiting for the QR code to be confirmed",
            Code::NotEnoughCoins => "not enough coins",
            Code::NotEnoughItems => "not enough of that item",
            Code::LevelTooLow => "your level is too low for this",
            Code::AccountBanned => "this account is banned",
            Code::AccountClosed => "this account was closed",
            Code::IdentityTaken => "that login belongs to another account",
            Code::LastIdentity => "the account's last way to log in cannot be removed",
            Code::FreshLoginRequired => "log in again first",
            Code::WechatRejected => "WeChat refused the login code",
            Code::AlreadyClaimed => "already claimed",
            Code::MailExpired => "that message has expired",
            Code::AttachmentUnclaimed => "claim the attachment first",
            Code::AlreadyQueued => "already queued for a match",
            Code::NameTaken => "that name is taken",
            Code::Muted => "muted: chat is closed to this player for now",
        }
    }

    /// The HTTP status that matches the code, used when `http.error_status` is `matching`.
    pub const fn http_status(self) -> StatusCode {
        match self {
            Code::Ok => StatusCode::OK,
            Code::Failed | Code::BadParam | Code::VerifyCode | Code::CaptchaRequired | Code::CaptchaWrong => {
                StatusCode::BAD_REQUEST
            }
            Code::TokenExpired | Code::Unauthorized | Code::LoginFailed => StatusCode::UNAUTHORIZED,
            Code::UsernameTaken | Code::IdentityTaken | Code::LastIdentity => StatusCode::CONFLICT,
            Code::AccountBanned | Code::AccountClosed | Code::Muted => StatusCode::FORBIDDEN,
            Code::FreshLoginRequired | Code::WechatRejected => StatusCode::UNAUTHORIZED,
            Code::ScanPending => StatusCode::ACCEPTED,
            Code::NotEnoughCoins | Code::NotEnoughItems | Code::LevelTooLow => StatusCode::CONFLICT,
            Code::AlreadyClaimed | Code::AttachmentUnclaimed | Code::AlreadyQueued | Code::NameTaken => {
                StatusCode::CONFLICT
            }
            Code::MailExpired => StatusCode::GONE,
            Code::AccountLocked => StatusCode::TOO_MANY_REQUESTS,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound | Code::RouteNotFound => StatusCode::NOT_FOUND,
            Code::UpdateNoRow => StatusCode::CONFLICT,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Code::TokenGenerate | Code::Db | Code::InsertFailed | Code::UpdateFailed => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The gRPC status code (numbering of `google.rpc.Code`) for the rpc layer.
    pub const fn grpc_code(self) -> i32 {
        match self {
            Code::Ok => 0,
            Code::Failed => 2, // UNKNOWN
            Code::BadParam | Code::VerifyCode | Code::CaptchaRequired | Code::CaptchaWrong => 3, // INVALID_ARGUMENT
            Code::UsernameTaken | Code::IdentityTaken | Code::NameTaken => 6, // ALREADY_EXISTS
            Code::AccountBanned | Code::AccountClosed | Code::Muted => 7, // PERMISSION_DENIED
            Code::LastIdentity => 9, // FAILED_PRECONDITION
            Code::FreshLoginRequired | Code::WechatRejected => 16, // UNAUTHENTICATED
            Code::AccountLocked => 8, // RESOURCE_EXHAUSTED
            Code::Timeout => 4, // DEADLINE_EXCEEDED
            Code::NotFound | Code::RouteNotFound => 5, // NOT_FOUND
            Code::Forbidden => 7, // PERMISSION_DENIED
            Code::TooManyRequests => 8, // RESOURCE_EXHAUSTED
            Code::UpdateNoRow
            | Code::ScanPending
            | Code::NotEnoughCoins
            | Code::NotEnoughItems
            | Code::LevelTooLow
            | Code::AlreadyClaimed
            | Code::MailExpired
            | Code::AttachmentUnclaimed
            | Code::AlreadyQueued => 9, // FAILED_PRECONDITION
            Code::TokenGenerate | Code::Db | Code::InsertFailed | Code::UpdateFailed => 13, // INTERNAL
            Code::Unavailable => 14, // UNAVAILABLE
            Code::TokenExpired | Code::Unauthorized | Code::LoginFailed => 16, // UNAUTHENTICATED
        }
    }

    /// Whether the code means the server, not the caller, failed: such errors are logged at
    /// error level with their cause.
    pub const fn is_internal(self) -> bool {
        matches!(self, Code::TokenGenerate | Code::Db | Code::InsertFailed | Code::UpdateFailed | Code::Unavailable)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u32())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        Code::from_u32(n).ok_or_else(|| serde::de::Error::custom(format!("unknown error code {n}")))
    }
}

/// go-game's reply body. `data` is left out on failure, as go-game does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Envelope<T> {
    /// 200 on success, an error code otherwise (docs/errors.md).
    #[schema(value_type = u32, example = 200)]
    pub code: Code,
    /// A short human-readable message.
    pub msg: String,
    /// The payload, on success only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T> Envelope<T> {
    /// A success envelope around `data`.
    pub fn ok(data: T) -> Self {
        Envelope { code: Code::Ok, msg: Code::Ok.default_msg().to_owned(), data: Some(data) }
    }
}

/// How an error's HTTP status is chosen. go-game always answered HTTP 200 and put the error
/// in the envelope; its clients rely on that, so it stays the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorStatus {
    /// HTTP 200 for every envelope (go-game compatible).
    #[default]
    Compat,
    /// An HTTP status that matches the code (400, 401, 404, 429, 500, 503…).
    Matching,
}

/// The error every service layer returns: a code the client sees, a public message, and an
/// optional cause that only the logs see.
pub struct Error {
    code: Code,
    msg: Option<String>,
    cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with the code's default message.
    pub fn new(code: Code) -> Self {
        Error { code, msg: None, cause: None }
    }

    /// An error with a public message. The message reaches the client: it must not contain
    /// internal detail.
    pub fn msg(code: Code, msg: impl Into<String>) -> Self {
        Error { code, msg: Some(msg.into()), cause: None }
    }

    /// A server-side failure: the client sees only the code's default message, the cause is
    /// logged.
    pub fn internal(code: Code, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error { code, msg: None, cause: Some(cause.into()) }
    }

    /// Shorthand for [`Code::BadParam`] with a message naming the parameter.
    pub fn bad_param(msg: impl Into<String>) -> Self {
        Error::msg(Code::BadParam, msg)
    }

    /// Attaches a cause for the logs.
    pub fn with_cause(mut self, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message the client sees.
    pub fn public_msg(&self) -> &str {
        self.msg.as_deref().unwrap_or(self.code.default_msg())
    }

    /// The cause, for logs and for tests; never for replies.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// The envelope a client receives.
    pub fn envelope(&self) -> Envelope<()> {
        Envelope { code: self.code, msg: self.public_msg().to_owned(), data: None }
    }

    /// The HTTP response under the given status policy. Logs the cause here, once, inside
    /// the request's span so the line carries its request id.
    pub fn to_response(&self, policy: ErrorStatus) -> Response {
        self.log();
        self.unlogged_response(policy)
    }

    /// The response of a refusal its caller has already counted and logged in sampled form
    /// (rate limits, load shedding, timeouts): no line per request, which a flood would turn
    /// into a flood of lines.
    pub fn into_quiet_response(self) -> Response {
        self.unlogged_response(ERROR_STATUS.get().copied().unwrap_or_default())
    }

    fn unlogged_response(&self, policy: ErrorStatus) -> Response {
        let status = match policy {
            ErrorStatus::Compat => StatusCode::OK,
            ErrorStatus::Matching => self.code.http_status(),
        };
        let mut resp = (status, Json(self.envelope())).into_response();
        // The code rides along in the response extensions so the access log can tell envelope
        // errors apart even when the HTTP status is 200.
        resp.extensions_mut().insert(self.code);
        resp
    }

    fn log(&self) {
        match (&self.cause, self.code.is_internal()) {
            (Some(cause), true) => {
                tracing::error!(code = %self.code, cause = %DisplayChain(cause.as_ref()), "request failed")
            }
            (Some(cause), false) => {
                tracing::debug!(code = %self.code, cause = %DisplayChain(cause.as_ref()), "request rejected")
            }
            (None, true) => tracing::error!(code = %self.code, msg = self.public_msg(), "request failed"),
            (None, false) => tracing::debug!(code = %self.code, msg = self.public_msg(), "request rejected"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.code).field("msg", &self.public_msg());
        if let Some(c) = &self.cause {
            d.field("cause", &DisplayChain(c.as_ref()).to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.public_msg(), self.code)?;
        if let Some(c) = &self.cause {
            write!(f, ": {}", DisplayChain(c.as_ref()))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl From<Code> for Error {
    fn from(code: Code) -> Self {
        Error::new(code)
    }
}

/// The status policy in force for this process, read by [`Error`]'s `IntoResponse`. It is set
/// once at start-up from `http.error_status`; a process-wide setting because axum's
/// `IntoResponse` has no access to state.
static ERROR_STATUS: std::sync::OnceLock<ErrorStatus> = std::sync::OnceLock::new();

/// Sets the HTTP status policy; the first call wins.
pub fn set_error_status(policy: ErrorStatus) {
    let _ = ERROR_STATUS.set(policy);
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.to_response(ERROR_STATUS.get().copied().unwrap_or_default())
    }
}

/// A successful reply in the envelope: `Ok(Reply(data))` from a handler.
#[derive(Debug)]
pub struct Reply<T>(pub T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut resp = Json(Envelope::ok(self.0)).into_response();
        resp.extensions_mut().insert(Code::Ok);
        resp
    }
}

/// Formats an error with its chain of sources: "a: b: c".
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_game_codes_keep_their_numbers() {
        let expected = [
            (Code::Ok, 200),
            (Code::Failed, 400),
            (Code::BadParam, 400_102),
            (Code::TokenExpired, 400_103),
            (Code::TokenGenerate, 400_104),
            (Code::Db, 400_200),
            (Code::NotFound, 400_201),
            (Code::InsertFailed, 400_202),
            (Code::UpdateFailed, 400_203),
            (Code::UpdateNoRow, 400_204),
            (Code::VerifyCode, 400_300),
        ];
        for (code, n) in expected {
            assert_eq!(code.as_u32(), n);
            assert_eq!(Code::from_u32(n), Some(code));
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_u32()), "duplicate code {c}");
        }
    }

    #[test]
    fn success_envelope_has_data() {
        let v = serde_json::to_value(Envelope::ok(serde_json::json!({"id": 7}))).expect("json");
        assert_eq!(v, serde_json::json!({"code": 200, "msg": "ok", "data": {"id": 7}}));
    }

    #[test]
    fn error_envelope_has_no_data_and_hides_cause() {
        let e = Error::internal(Code::Db, std::io::Error::other("password=hunter2 connection refused"));
        let v = serde_json::to_value(e.envelope()).expect("json");
        assert_eq!(v, serde_json::json!({"code": 400200, "msg": "database error"}));
        assert!(e.to_string().contains("connection refused"), "cause kept for logs");
    }

    #[test]
    fn envelope_round_trips() {
        let text = r#"{"code":400201,"msg":"no such user"}"#;
        let env: Envelope<serde_json::Value> = serde_json::from_str(text).expect("parse");
        assert_eq!(env.code, Code::NotFound);
        assert!(env.data.is_none());
        assert!(serde_json::from_str::<Envelope<()>>(r#"{"code":999,"msg":""}"#).is_err());
    }

    #[tokio::test]
    async fn status_policy_maps_codes() {
        let e = Error::msg(Code::BadParam, "username too short");
        let compat = e.to_response(ErrorStatus::Compat);
        assert_eq!(compat.status(), StatusCode::OK);
        let matching = e.to_response(ErrorStatus::Matching);
        assert_eq!(matching.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(matching.into_body(), 1024).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v, serde_json::json!({"code": 400102, "msg": "username too short"}));

        assert_eq!(Code::Db.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(Code::TooManyRequests.http_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Code::TokenExpired.grpc_code(), 16);
        assert_eq!(Code::NotFound.grpc_code(), 5);
    }

    #[test]
    fn display_chain_walks_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(DisplayChain(&e).to_string(), "outer: inner");
    }
}
