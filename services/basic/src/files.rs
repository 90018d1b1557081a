//! Files: uploads streamed to local disk under generated names while md5 and sha1 are
//! computed, the type checked from the content, identical content stored once; listing,
//! soft deletion and signed download URLs. Only a file's owner sees or deletes it.

use std::path::{Path, PathBuf};

use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Db, Row, StoreError};
use sea_query::{Expr, ExprTrait as _, LikeExpr, Order, Query};
use serde::{Deserialize, Serialize};

/// A file as the API shows it to its owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Public id.
    pub guid: String,
    /// The name it was uploaded with (cleaned).
    pub name: String,
    /// 1 image, 2 video, 3 audio, 4 document.
    pub media_type: i32,
    /// Extension.
    pub ext: String,
    /// Bytes.
    pub size: i64,
    /// Hex md5 of the content.
    pub md5: String,
    /// Hex sha1 of the content.
    pub sha1: String,
    /// Downloads so far.
    pub downloads: i64,
    /// Uploaded at, unix milliseconds.
    pub created_at: i64,
    /// A signed download link, valid for a day.
    pub url: String,
}

/// A page of files.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileList {
    /// This page.
    pub list: Vec<FileInfo>,
    /// Files in all pages.
    pub total: i64,
    /// 1-based page.
    pub page: i64,
    /// Page size.
    pub page_size: i64,
}

/// A stored file's metadata, for `add_file` (upload and gRPC `AddFile`).
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Owner.
    pub user_id: i64,
    /// Cleaned name.
    pub name: String,
    /// Extension (lower case).
    pub ext: String,
    /// Path under the storage root, made by the server.
    pub path: String,
    /// Bytes.
    pub size: i64,
    /// Hex md5.
    pub md5: String,
    /// Hex sha1.
    pub sha1: String,
    /// Where the bytes are: 0 local disk, 1 S3.
    pub driver: i32,
}

/// The content families that can be recognised from their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// MP3 (ID3 tag or an MPEG audio frame).
    Mp3,
    /// ISO base media (MP4).
    Mp4,
    /// PDF.
    Pdf,
    /// A ZIP archive.
    Zip,
    /// A ZIP archive holding a Word document.
    Docx,
}

/// What the first bytes of a file say it is.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"\xFF\xD8\xFF") {
        Some(Sniffed::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(Sniffed::Png)
    } else if starts(b"%PDF-") {
        Some(Sniffed::Pdf)
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
        Some(Sniffed::Mp4)
    } else if starts(b"PK\x03\x04") {
        let word = head.windows(5).any(|w| w == b"word/");
        Some(if word { Sniffed::Docx } else { Sniffed::Zip })
    } else if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        Some(Sniffed::Mp3)
    } else {
        None
    }
}

/// Whether content of kind `s` may carry extension `ext`, and its media type.
pub fn media_type(ext: &str, s: Sniffed) -> Option<i32> {
    match (ext, s) {
        ("jpg" | "jpeg", Sniffed::Jpeg) | ("png", Sniffed::Png) => Some(1),
        ("mp4", Sniffed::Mp4) => Some(2),
        ("mp3", Sniffed::Mp3) => Some(3),
        ("pdf", Sniffed::Pdf) | ("zip", Sniffed::Zip | Sniffed::Docx) | ("docx", Sniffed::Docx) => Some(4),
        _ => None,
    }
}

/// A client's file name reduced to something safe to store and show: the last path
/// component, no control characters, at most 200 characters. Never used as a path.
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    let name = name.trim().trim_start_matches('.').to_owned();
    if name.is_empty() { "file".to_owned() } else { name }
}

/// The extension of a cleaned name, lower case.
pub fn extension(name: &str) -> String {
    name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default()
}

/// Where file bytes are kept: local disk under one root, or an S3-compatible bucket. Uploads
/// in progress are always written under the local root first (they are hashed and checked
/// while they arrive).
#[derive(Clone)]
pub struct Storage {
    root: PathBuf,
    s3: Option<crate::s3::S3>,
}

impl Storage {
    /// Local storage under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Storage {
        Storage { root: root.into(), s3: None }
    }

    /// Objects in `s3`; `root` holds uploads in progress.
    pub fn with_s3(root: impl Into<PathBuf>, s3: crate::s3::S3) -> Storage {
        Storage { root: root.into(), s3: Some(s3) }
    }

    /// `basic_file.driver`: 0 local disk, 1 S3.
    pub fn driver(&self) -> i32 {
        i32::from(self.s3.is_some())
    }

    /// A fresh temporary file path for an upload in progress.
    pub async fn temp(&self) -> std::io::Result<PathBuf> {
        let dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&dir).await?;
        Ok(dir.join(uuid::Uuid::new_v4().simple().to_string()))
    }

    /// Stores a finished upload as `<yyyymm>/<guid>.<ext>` and removes the temporary file;
    /// returns that relative path (the object key on S3).
    pub async fn keep(&self, temp: &Path, guid: &str, ext: &str) -> std::io::Result<String> {
        let month = rsgame_kit::time::rfc3339(std::time::SystemTime::now());
        let month = month.get(..7).unwrap_or("0000-00").replace('-', "");
        let rel = format!("{month}/{guid}.{ext}");
        match &self.s3 {
            Some(s3) => {
                s3.put_file(&rel, temp, content_type(ext)).await?;
                tokio::fs::remove_file(temp).await?;
            }
            None => {
                tokio::fs::create_dir_all(self.root.join(&month)).await?;
                tokio::fs::rename(temp, self.root.join(&rel)).await?;
            }
        }
        Ok(rel)
    }

    /// Whether a stored file is there.
    pub async fn exists(&self, rel: &str) -> std::io::Result<bool> {
        match (&self.s3, self.path(rel)) {
            (_, None) => Ok(false),
            (Some(s3), Some(_)) => s3.exists(rel).await,
            (None, Some(p)) => tokio::fs::try_exists(p).await,
        }
    }

    /// A stored file's length (when known) and bytes.
    pub async fn open(&self, rel: &str) -> std::io::Result<(Option<u64>, axum::body::Body)> {
        let path = self.path(rel).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "bad path"))?;
        match &self.s3 {
            Some(s3) => s3.get(rel).await,
            None => {
                let file = tokio::fs::File::open(&path).await?;
                let len = file.metadata().await.map(|m| m.len()).ok();
                Ok((len, axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file))))
            }
        }
    }

    /// The absolute path of a locally stored file. `rel` comes from our own database, but is
    /// checked anyway: only plain components, no `..`, no root.
    pub fn path(&self, rel: &str) -> Option<PathBuf> {
        let p = Path::new(rel);
        p.components().all(|c| matches!(c, std::path::Component::Normal(_))).then(|| self.root.join(p))
    }
}

/// Signs and checks download links.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

/// How long a download link works, seconds.
const LINK_SECS: i64 = 86_400;

use rsgame_kit::time::unix_secs as now_secs;

impl UrlSigner {
    /// A signer with `key`.
    pub fn new(key: Vec<u8>) -> UrlSigner {
        UrlSigner { key }
    }

    fn mac(&self, guid: &str, exp: i64) -> [u8; 32] {
        rsgame_kit::auth::hmac_sha256(&self.key, &[format!("{guid}|{exp}").as_bytes()])
    }

    /// A link to download `guid`.
    pub fn url(&self, guid: &str) -> String {
        let exp = now_secs() + LINK_SECS;
        let sig = hex::encode(self.mac(guid, exp));
        format!("/basic/v1/basic/file/{guid}?e={exp}&s={sig}")
    }

    /// Whether a link's signature is ours and unexpired.
    pub fn check(&self, guid: &str, exp: i64, sig: &str) -> bool {
        exp > now_secs() && hex::decode(sig).is_ok_and(|s| rsgame_kit::auth::constant_time_eq(&self.mac(guid, exp), &s))
    }
}

const COLS: [&str; 11] =
    ["guid", "name", "media_type", "ext", "size", "md5", "sha1", "downloads", "created_at", "path", "user_id"];

fn info(r: &Row, signer: &UrlSigner) -> std::result::Result<FileInfo, StoreError> {
    let guid = r.string("guid")?;
    Ok(FileInfo {
        url: signer.url(&guid),
        guid,
        name: r.string("name")?,
        media_type: r.i32("media_type")?,
        ext: r.string("ext")?,
        size: r.i64("size")?,
        md5: r.string("md5")?,
        sha1: r.string("sha1")?,
        downloads: r.i64("downloads")?,
        created_at: r.i64("created_at")?,
    })
}

/// Status 3 is go-game's "deleted".
const DELETED: i32 = 3;

/// The file database and signer together.
#[derive(Clone)]
pub struct Files {
    db: Db,
    signer: UrlSigner,
}

impl Files {
    /// Over `db`, signing links with `signer`.
    pub fn new(db: Db, signer: UrlSigner) -> Files {
        Files { db, signer }
    }

    /// The signer, for the download route.
    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    async fn one(&self, user_id: i64, col: &str, value: &str) -> Result<FileInfo> {
        let q = Query::select()
            .columns(COLS)
            .from("basic_file")
            .and_where(Expr::col(col.to_owned()).eq(value))
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("status").ne(DELETED))
            .order_by("id", Order::Desc)
            .limit(1)
            .to_owned();
        let row = self.db.fetch_optional(&q).await?;
        // Another user's file is "not found": its existence is not revealed.
        row.map(|r| info(&r, &self.signer).map_err(Error::from)).transpose()?.ok_or_else(|| Error::new(Code::NotFound))
    }

    /// The caller's file with this guid.
    pub async fn detail(&self, user_id: i64, guid: &str) -> Result<FileInfo> {
        self.one(user_id, "guid", guid).await
    }

    /// The caller's file with this md5.
    pub async fn by_md5(&self, user_id: i64, md5: &str) -> Result<FileInfo> {
        self.one(user_id, "md5", &md5.to_ascii_lowercase()).await
    }

    /// A stored path holding exactly this content, if any (any owner, deleted or not: the
    /// bytes are the same).
    pub async fn stored_path(&self, md5: &str, sha1: &str) -> Result<Option<String>> {
        let q = Query::select()
            .column("path")
            .from("basic_file")
            .and_where(Expr::col("md5").eq(md5))
            .and_where(Expr::col("sha1").eq(sha1))
            .limit(1)
            .to_owned();
        Ok(self.db.fetch_optional(&q).await?.map(|r| r.string("path")).transpose()?)
    }

    /// Records a stored file.
    pub async fn add(&self, f: NewFile) -> Result<FileInfo> {
        let media = sniff_ext_media(&f.ext).ok_or_else(|| Error::bad_param("ext: not an accepted type"))?;
        let guid = uuid::Uuid::new_v4().simple().to_string();
        let now = rsgame_kit::time::unix_ms();
        let mut q = Query::insert();
        q.into_table("basic_file")
            .columns([
                "guid",
                "user_id",
                "name",
                "media_type",
                "driver",
                "path",
                "ext",
                "size",
                "md5",
                "sha1",
                "created_at",
                "updated_at",
            ])
            .values([
                Expr::val(&guid),
                Expr::val(f.user_id),
                Expr::val(&f.name),
                Expr::val(media),
                Expr::val(f.driver),
                Expr::val(&f.path),
                Expr::val(&f.ext),
                Expr::val(f.size),
                Expr::val(&f.md5),
                Expr::val(&f.sha1),
                Expr::val(now),
                Expr::val(now),
            ])
            .map_err(|e| Error::internal(Code::InsertFailed, e))?;
        self.db.insert_id(&q).await?;
        self.detail(f.user_id, &guid).await
    }

    /// The caller's files, newest first; `key` filters names containing it (literally).
    pub async fn list(&self, user_id: i64, page: i64, page_size: i64, key: &str) -> Result<FileList> {
        if !(1..=1_000_000).contains(&page) || !(1..=100).contains(&page_size) {
            return Err(Error::bad_param("page: 1 to 1000000; pageSize: 1 to 100"));
        }
        let mut filter = Query::select();
        filter
            .from("basic_file")
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("status").ne(DELETED));
        if !key.is_empty() {
            // % and _ in the key are matched literally.
            let escaped = key.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            filter.and_where(Expr::col("name").like(LikeExpr::new(format!("%{escaped}%")).escape('\\')));
        }
        let count = filter.clone().expr_as(Expr::col("id").count(), "n").to_owned();
        let total = self.db.fetch_optional(&count).await?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
        let rows = filter
            .columns(COLS)
            .order_by("id", Order::Desc)
            .limit(page_size as u64)
            .offset(((page - 1) * page_size) as u64)
            .to_owned();
        let list = self
            .db
            .fetch_all(&rows)
            .await?
            .iter()
            .map(|r| info(r, &self.signer))
            .collect::<std::result::Result<_, _>>()?;
        Ok(FileList { list, total, page, page_size })
    }

    /// Soft-deletes the caller's files among `guids`; returns how many.
    pub async fn delete(&self, user_id: i64, guids: &[String]) -> Result<u64> {
        if guids.is_empty() || guids.len() > 100 {
            return Err(Error::bad_param("guids: 1 to 100 ids"));
        }
        let q = Query::update()
            .table("basic_file")
            .value("status", DELETED)
            .value("updated_at", rsgame_kit::time::unix_ms())
            .and_where(Expr::col("guid").is_in(guids.iter().map(String::as_str)))
            .and_where(Expr::col("user_id").eq(user_id))
            .and_where(Expr::col("status").ne(DELETED))
            .to_owned();
        Ok(self.db.execute(&q).await?)
    }

    /// For a download: the stored path, name and extension of a live file; counts the
    /// download.
    pub async fn for_download(&self, guid: &str) -> Result<(String, String, String)> {
        let q = Query::select()
            .columns(["path", "name", "ext"])
            .from("basic_file")
            .and_where(Expr::col("guid").eq(guid))
            .and_where(Expr::col("status").ne(DELETED))
            .to_owned();
        let row = self.db.fetch_optional(&q).await?.ok_or_else(|| Error::new(Code::NotFound))?;
        let bump = Query::update()
            .table("basic_file")
            .value("downloads", Expr::col("downloads").add(1))
            .and_where(Expr::col("guid").eq(guid))
            .to_owned();
        self.db.execute(&bump).await?;
        Ok((row.string("path")?, row.string("name")?, row.string("ext")?))
    }
}

fn sniff_ext_media(ext: &str) -> Option<i32> {
    match ext {
        "jpg" | "jpeg" | "png" => Some(1),
        "mp4" => Some(2),
        "mp3" => Some(3),
        "pdf" | "zip" | "docx" => Some(4),
        _ => None,
    }
}

/// The Content-Type of a stored extension.
pub fn content_type(ext: &str) -> &'static str {
    match ext {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_not_the_name() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Sniffed::Png));
        assert_eq!(sniff(b"\x7FELF\x02\x01\x01"), None, "an executable is nothing we accept");
        assert_eq!(sniff(b"MZ\x90\x00"), None);
        assert_eq!(media_type("png", Sniffed::Png), Some(1));
        assert_eq!(media_type("png", Sniffed::Pdf), None, "a PDF named .png");
        assert_eq!(media_type("docx", Sniffed::Zip), None, "a zip without a Word document");
        assert_eq!(sniff(b"\x00\x00\x00\x18ftypmp42"), Some(Sniffed::Mp4));
    }

    #[test]
    fn names_never_carry_paths() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Windows\\win.ini"), "win.ini");
        assert_eq!(clean_name("/abs/path/a.png"), "a.png");
        assert_eq!(clean_name("..\u{0}.png"), "png");
        assert_eq!(clean_name(""), "file");
        assert_eq!(extension("A.PNG"), "png");
        let s = Storage::new("/srv/files");
        assert!(s.path("202611/x.png").is_some());
        assert!(s.path("../x.png").is_none() && s.path("/etc/passwd").is_none());
    }

    #[test]
    fn links_are_signed_and_expire() {
        let s = UrlSigner::new(b"k".to_vec());
        let url = s.url("abc");
        let q = url.split_once('?').map(|(_, q)| q).expect("query");
        let exp: i64 = q.split('&').next().and_then(|e| e.strip_prefix("e=")).and_then(|e| e.parse().ok()).expect("e");
        let sig = q.split("s=").nth(1).expect("s");
        assert!(s.check("abc", exp, sig));
        assert!(!s.check("abd", exp, sig), "another file");
        assert!(!s.check("abc", exp + 1, sig), "another expiry");
        assert!(!s.check("abc", 1, sig), "expired");
        assert!(!UrlSigner::new(b"other".to_vec()).check("abc", exp, sig));
    }
}
