//! basic's REST routes (go-game's paths, envelope replies).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use md5::Digest as _;
use rsgame_kit::auth::{Auth, AuthUser};
use rsgame_kit::extract::Json;
use rsgame_kit::http::ClientIp;
use rsgame_kit::{Code, Envelope, Error, Reply, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use crate::files::{self, Storage};
use crate::{Basic, BasicLogic, CaptchaImage, CodeTicket, FileInfo, NewFile, SendCodeReq};

#[derive(Clone)]
struct St {
    basic: Arc<dyn Basic>,
    /// The local side of uploads and downloads: storage and link signing live where the
    /// bytes are.
    local: BasicLogic,
    storage: Storage,
}

/// The routes a stranger reaches without an access token: rate-limited per address by
/// default (`governance.public_rate_per_sec`).
pub const PUBLIC_ROUTES: &[&str] =
    &["/basic/v1/basic/captcha", "/basic/v1/basic/sendCode", "/basic/v1/basic/verifyCode"];

/// The routes. `local` handles the bytes of uploads and downloads; everything else goes
/// through `basic` (in process or remote). `auth` checks the tokens of protected routes.
pub fn router(basic: Arc<dyn Basic>, local: BasicLogic, auth: Auth) -> Router {
    let storage = local.storage().clone();
    // The body limit sits above the file limit so that an oversize upload gets our clear
    // error rather than a bare 413.
    let limit = usize::try_from(local.config().upload_max_bytes).unwrap_or(usize::MAX).saturating_add(64 * 1024);
    let st = St { basic, local, storage };
    Router::new()
        .route("/basic/v1/basic/captcha", get(captcha).post(captcha))
        .route("/basic/v1/basic/sendCode", get(send_code_query).post(send_code))
        .route("/basic/v1/basic/verifyCode", post(verify_code))
        .route("/basic/v1/basic/upload", post(upload).layer(DefaultBodyLimit::max(limit)))
        .route("/basic/v1/basic/getFileByKey", post(file_by_key))
        .route("/basic/v1/basic/fileDetail", post(file_detail))
        .route("/basic/v1/basic/myFileList", post(file_list))
        .route("/basic/v1/basic/delFileList", post(delete_files))
        .route("/basic/v1/basic/file/{guid}", get(download))
        .with_state(st)
        .layer(Extension(auth))
}

#[utoipa::path(get, path = "/basic/v1/basic/captcha", tag = "basic", summary = "A new captcha", description = "image is a PNG data URI; send key and the answer where a captcha is asked for. It works once (case-insensitive) and for basic.captcha_ttl_secs.", responses((status = 200, body = Envelope<CaptchaImage>)))]
async fn captcha(State(st): State<St>, ClientIp(ip): ClientIp) -> Result<Reply<CaptchaImage>> {
    st.basic.captcha(&ip).await.map(Reply)
}

#[utoipa::path(post, path = "/basic/v1/basic/sendCode", tag = "basic", summary = "Send a verification code", description = "sendType 1 SMS (phone) / 2 email (phone holds the address); verilyType 1 register, 2 password login, 3 phone login, 4 change password; key and code answer a captcha (400509 when wrong). Rate-limited per target and per IP (400502). Also accepted as GET with query parameters.", request_body = SendCodeReq, responses((status = 200, body = Envelope<CodeTicket>)))]
async fn send_code(
    State(st): State<St>,
    ClientIp(ip): ClientIp,
    Json(req): Json<SendCodeReq>,
) -> Result<Reply<CodeTicket>> {
    st.basic.send_code(req, &ip).await.map(Reply)
}

/// go-game's clients send `sendCode` as a GET with query parameters.
async fn send_code_query(
    State(st): State<St>,
    ClientIp(ip): ClientIp,
    q: std::result::Result<Query<SendCodeReq>, axum::extract::rejection::QueryRejection>,
) -> Result<Reply<CodeTicket>> {
    let Query(req) = q.map_err(|e| Error::bad_param(e.body_text()))?;
    st.basic.send_code(req, &ip).await.map(Reply)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct VerifyCodeReq {
    key: String,
    code: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Status {
    status: bool,
}

#[utoipa::path(post, path = "/basic/v1/basic/verifyCode", tag = "basic", summary = "Check a verification code", description = "A right code is used up; a wrong one is 400300, and five wrong ones end the key.", request_body = VerifyCodeReq, responses((status = 200, body = Envelope<Status>)))]
async fn verify_code(State(st): State<St>, Json(req): Json<VerifyCodeReq>) -> Result<Reply<Status>> {
    let ok = st.basic.verify_code(&req.key, &req.code).await?;
    if !ok {
        return Err(Error::new(Code::VerifyCode));
    }
    Ok(Reply(Status { status: true }))
}

/// go-game's `ValReq` (`val`), or rsgame's `value`.
#[derive(Deserialize, utoipa::ToSchema)]
struct ValueReq {
    #[serde(alias = "val")]
    value: String,
}

/// A file as go-game's basic service answers it (`FileInfo` in its `.api`: guid, name,
/// path, mediaType, size in KB), with rsgame's fields beside them.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct FileView {
    guid: String,
    name: String,
    /// go-game: where to fetch it (the signed download link, valid for a day).
    path: String,
    /// 1 image, 2 video, 3 audio, 4 document.
    media_type: i32,
    /// go-game: kilobytes, rounded up.
    size: i64,
    /// The exact size in bytes.
    bytes: i64,
    ext: String,
    md5: String,
    sha1: String,
    downloads: i64,
    created_at: i64,
    /// The signed download link (as `path`).
    url: String,
}

impl From<FileInfo> for FileView {
    fn from(f: FileInfo) -> FileView {
        FileView {
            guid: f.guid,
            name: f.name,
            path: f.url.clone(),
            media_type: f.media_type,
            size: (f.size + 1023) / 1024,
            bytes: f.size,
            ext: f.ext,
            md5: f.md5,
            sha1: f.sha1,
            downloads: f.downloads,
            created_at: f.created_at,
            url: f.url,
        }
    }
}

/// go-game's `FileDetailResp`: the file under `info`.
#[derive(Serialize, utoipa::ToSchema)]
struct FileDetail {
    info: FileView,
}

impl From<FileInfo> for FileDetail {
    fn from(f: FileInfo) -> FileDetail {
        FileDetail { info: f.into() }
    }
}

/// go-game's `FileListResp`, with rsgame's paging beside it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct FilePage {
    list: Vec<FileView>,
    total: i64,
    page: i64,
    page_size: i64,
}

#[utoipa::path(post, path = "/basic/v1/basic/getFileByKey", tag = "basic", summary = "My file with this md5", description = "value: the md5 (hex). Lets a client skip uploading what it already stored.", security(("bearer" = [])), request_body = ValueReq, responses((status = 200, body = Envelope<FileDetail>)))]
async fn file_by_key(State(st): State<St>, user: AuthUser, Json(r): Json<ValueReq>) -> Result<Reply<FileDetail>> {
    st.basic.file_by_md5(user.user_id, &r.value).await.map(|f| Reply(f.into()))
}

#[utoipa::path(post, path = "/basic/v1/basic/fileDetail", tag = "basic", summary = "One of my files", description = "value: the guid. Another user's file is 400201, as a missing one.", security(("bearer" = [])), request_body = ValueReq, responses((status = 200, body = Envelope<FileDetail>)))]
async fn file_detail(State(st): State<St>, user: AuthUser, Json(r): Json<ValueReq>) -> Result<Reply<FileDetail>> {
    st.basic.file_detail(user.user_id, &r.value).await.map(|f| Reply(f.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ListReq {
    #[serde(default = "one")]
    page: i64,
    #[serde(default = "twenty")]
    page_size: i64,
    #[serde(default)]
    key: String,
}

fn one() -> i64 {
    1
}

fn twenty() -> i64 {
    20
}

#[utoipa::path(post, path = "/basic/v1/basic/myFileList", tag = "basic", summary = "My files, newest first", description = "page from 1, pageSize 1 to 100; key filters names containing it literally.", security(("bearer" = [])), request_body = ListReq, responses((status = 200, body = Envelope<FilePage>)))]
async fn file_list(State(st): State<St>, user: AuthUser, Json(r): Json<ListReq>) -> Result<Reply<FilePage>> {
    let l = st.basic.file_list(user.user_id, r.page, r.page_size, &r.key).await?;
    let list = l.list.into_iter().map(FileView::from).collect();
    Ok(Reply(FilePage { list, total: l.total, page: l.page, page_size: l.page_size }))
}

/// go-game's `GuidListReq` (`guidList`), or rsgame's `guids`.
#[derive(Deserialize, utoipa::ToSchema)]
struct DeleteReq {
    #[serde(alias = "guidList")]
    guids: Vec<String>,
}

/// go-game's `OkResp` (`id` 0, `status` 1, `msg`), and how many files were deleted.
#[derive(Serialize, utoipa::ToSchema)]
struct Deleted {
    id: i64,
    status: i32,
    msg: String,
    deleted: u64,
}

#[utoipa::path(post, path = "/basic/v1/basic/delFileList", tag = "basic", summary = "Delete some of my files", description = "Soft deletion; other users' guids are ignored.", security(("bearer" = [])), request_body = DeleteReq, responses((status = 200, body = Envelope<Deleted>)))]
async fn delete_files(State(st): State<St>, user: AuthUser, Json(r): Json<DeleteReq>) -> Result<Reply<Deleted>> {
    let deleted = st.basic.delete_files(user.user_id, &r.guids).await?;
    Ok(Reply(Deleted { id: 0, status: 1, msg: "ok".into(), deleted }))
}

/// Removes a temporary file when an upload does not finish.
struct TempGuard(Option<std::path::PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io(e: std::io::Error) -> Error {
    Error::internal(Code::Failed, e)
}

#[utoipa::path(post, path = "/basic/v1/basic/upload", tag = "basic", summary = "Upload a file", description = "multipart/form-data with a field named file. At most basic.upload_max_bytes; extension among basic.upload_types and matching the content (checked from the bytes).", security(("bearer" = [])), request_body(content = UploadForm, content_type = "multipart/form-data"), responses((status = 200, body = Envelope<FileDetail>)))]
/// Streams the multipart field `file` to a temporary file while hashing it, checks its size
/// and content, stores it under a generated name (or reuses identical stored content), and
/// records it.
async fn upload(State(st): State<St>, user: AuthUser, mut form: Multipart) -> Result<Reply<FileDetail>> {
    let cfg = st.local.config();
    let bad_form = |e: axum::extract::multipart::MultipartError| Error::bad_param(format!("file: {}", e.body_text()));
    let mut field = loop {
        match form.next_field().await.map_err(bad_form)? {
            Some(f) if f.name() == Some("file") => break f,
            Some(_) => continue,
            None => return Err(Error::bad_param("file: missing (a multipart field named file)")),
        }
    };
    let name = files::clean_name(field.file_name().unwrap_or(""));
    let ext = files::extension(&name);
    if !cfg.upload_types.iter().any(|t| t.eq_ignore_ascii_case(&ext)) {
        return Err(Error::bad_param(format!("file: .{ext} is not accepted ({})", cfg.upload_types.join(", "))));
    }
    let temp = st.storage.temp().await.map_err(io)?;
    let mut guard = TempGuard(Some(temp.clone()));
    let mut out = tokio::fs::File::create(&temp).await.map_err(io)?;
    let (mut md5, mut sha1) = (md5::Md5::new(), sha1::Sha1::new());
    let mut head = Vec::with_capacity(4096);
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        size += chunk.len() as u64;
        if size > cfg.upload_max_bytes {
            return Err(Error::bad_param(format!("file: larger than {} bytes", cfg.upload_max_bytes)));
        }
        if head.len() < 4096 {
            head.extend_from_slice(&chunk[..chunk.len().min(4096 - head.len())]);
        }
        md5.update(&chunk);
        sha1.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    drop(out);
    if size == 0 {
        return Err(Error::bad_param("file: empty"));
    }
    let kind = files::sniff(&head);
    if kind.and_then(|k| files::media_type(&ext, k)).is_none() {
        return Err(Error::bad_param(format!("file: the content is not a .{ext} file")));
    }
    let (md5, sha1) = (hex::encode(md5.finalize()), hex::encode(sha1.finalize()));
    let stored = match st.local.files().stored_path(&md5, &sha1).await? {
        Some(p) if st.storage.exists(&p).await.map_err(io)? => Some(p),
        _ => None,
    };
    let path = match stored {
        Some(p) => p, // identical bytes: stored once
        None => {
            let guid = uuid::Uuid::new_v4().simple().to_string();
            let rel = st.storage.keep(&temp, &guid, &ext).await.map_err(io)?;
            guard.0 = None;
            rel
        }
    };
    let driver = st.storage.driver();
    let file = NewFile { user_id: user.user_id, name, ext, path, size: size as i64, md5, sha1, driver };
    st.basic.add_file(file).await.map(|f| Reply(f.into()))
}

#[derive(Deserialize)]
struct LinkQuery {
    e: i64,
    s: String,
}

#[utoipa::path(get, path = "/basic/v1/basic/file/{guid}", tag = "basic", summary = "Download by signed link", description = "The url of a FileInfo: signed, valid for a day. A bad or expired link is 400501.", params(("guid" = String, Path, description = "The file"), ("e" = i64, Query, description = "Expiry"), ("s" = String, Query, description = "Signature")), responses((status = 200, description = "The bytes", content_type = "application/octet-stream")))]
/// Streams a file to whoever holds a valid signed link.
async fn download(
    State(st): State<St>,
    Path(guid): Path<String>,
    q: std::result::Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Ok(Query(q)) = q else { return Err(Error::new(Code::Forbidden)) };
    if !st.local.files().signer().check(&guid, q.e, &q.s) {
        return Err(Error::msg(Code::Forbidden, "the link is invalid or expired"));
    }
    let (rel, name, ext) = st.local.files().for_download(&guid).await?;
    let (len, body) = st.storage.open(&rel).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(Code::NotFound),
        _ => io(e),
    })?;
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(files::content_type(&ext)));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    // The name is the client's; only ASCII letters, digits and a few marks go in the header.
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(resp)
}

/// The upload form, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The file's bytes, with its name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The OpenAPI document of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(captcha, send_code, verify_code, upload, file_by_key, file_detail, file_list, delete_files, download))]
struct Doc;

/// The OpenAPI document of basic's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
