//! The basic service: captchas, verification codes (SMS or email, sent by a worker over the
//! bus) and files (uploads to local disk, listing, soft deletion, signed download links).
//!
//! [`Basic`] is the service trait other services call (usercenter checks captchas through
//! it); [`BasicLogic`] is the in-process implementation, [`rpc::RemoteBasic`] the remote one.
//!
//! # Layout
//!
//! - [`config`]: the `basic.*` configuration section and its checks.
//! - [`captcha`]: captcha images, their answers in the cache, consumed once.
//! - [`code`]: verification codes (SMS or email), rate-limited, sent by a worker over the bus.
//! - [`files`]: uploads, listing, soft deletion and signed downloads.
//! - [`s3`]: the S3-compatible object store uploaded files may live in.
//! - [`api`]: the REST routes under `/basic/v1/basic/`.
//! - [`rpc`]: the gRPC server over any [`Basic`], and a remote [`Basic`].

#![warn(missing_docs)]

pub mod api;
pub mod captcha;
pub mod code;
pub mod config;
pub mod files;
pub mod rpc;
pub mod s3;

use std::time::Duration;

use crate::config::BasicConfig;
use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Bus, Cache, Db};

pub use captcha::CaptchaImage;
pub use code::{CodeTicket, SendCodeReq};
pub use files::{FileInfo, FileList, NewFile};

/// What other services (and the API) may ask of basic.
#[async_trait::async_trait]
pub trait Basic: Send + Sync {
    /// A new captcha for the client at `ip` (which holds only so many at once).
    async fn captcha(&self, ip: &str) -> Result<CaptchaImage>;
    /// Whether `code` answers the captcha `key` (case-insensitive). A key works once: it is
    /// gone after this call whatever the answer, so a captcha cannot be replayed or guessed
    /// at repeatedly.
    async fn verify_captcha(&self, key: &str, code: &str) -> Result<bool>;
    /// Checks the captcha and rate limits, then has a 6-digit code sent.
    async fn send_code(&self, req: SendCodeReq, ip: &str) -> Result<CodeTicket>;
    /// Whether `code` is the code sent under `key`; a right code is used up, five wrong ones
    /// end the key.
    async fn verify_code(&self, key: &str, code: &str) -> Result<bool>;
    /// [`Basic::verify_code`] for a code that must also have been sent to `target` for
    /// `verily_type` (an account flow: a login code is no password-reset code, and a code
    /// sent to one phone opens nothing for another). A mismatch counts as a wrong guess.
    async fn use_code(&self, key: &str, code: &str, target: &str, verily_type: i32) -> Result<bool>;
    /// The caller's file with this guid.
    async fn file_detail(&self, user_id: i64, guid: &str) -> Result<FileInfo>;
    /// The caller's file with this md5 (to skip uploading content already there).
    async fn file_by_md5(&self, user_id: i64, md5: &str) -> Result<FileInfo>;
    /// The caller's files, paged, optionally filtered by name.
    async fn file_list(&self, user_id: i64, page: i64, page_size: i64, key: &str) -> Result<FileList>;
    /// Soft-deletes the caller's files among `guids`; returns how many.
    async fn delete_files(&self, user_id: i64, guids: &[String]) -> Result<u64>;
    /// Records a stored file (the upload route, gRPC `AddFile`).
    async fn add_file(&self, file: NewFile) -> Result<FileInfo>;
}

/// basic's logic, in process.
#[derive(Clone)]
pub struct BasicLogic {
    cache: Cache,
    bus: Bus,
    cfg: BasicConfig,
    files: files::Files,
    storage: files::Storage,
}

impl BasicLogic {
    /// The logic over its storage; `url_key` signs download links (derive it from a shared
    /// secret so every replica accepts every link).
    pub fn new(db: Db, cache: Cache, bus: Bus, cfg: BasicConfig, url_key: Vec<u8>) -> Result<BasicLogic> {
        let files = files::Files::new(db, files::UrlSigner::new(url_key));
        let storage = match cfg.storage {
            crate::config::FileStorage::Local => files::Storage::new(&cfg.storage_root),
            crate::config::FileStorage::S3 => {
                let s3 = s3::S3::new(s3::S3Config {
                    endpoint: cfg.s3_endpoint.clone(),
                    bucket: cfg.s3_bucket.clone(),
                    region: cfg.s3_region.clone(),
                    access_key: cfg.s3_access_key.clone(),
                    secret_key: cfg.s3_secret_key.expose().to_owned(),
                })
                .map_err(|e| Error::internal(Code::Failed, e))?;
                files::Storage::with_s3(&cfg.storage_root, s3)
            }
        };
        Ok(BasicLogic { cache, bus, cfg, files, storage })
    }

    /// Where file bytes are kept.
    pub fn storage(&self) -> &files::Storage {
        &self.storage
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &BasicConfig {
        &self.cfg
    }

    /// The bus that sending jobs go over.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The file records, for the upload and download routes.
    pub fn files(&self) -> &files::Files {
        &self.files
    }

    /// The answer to a captcha, for tests that play the human.
    #[doc(hidden)]
    pub async fn peek_answer(&self, key: &str) -> Option<String> {
        captcha::peek(&self.cache, key).await
    }

    /// The code sent under a key, for tests that play the phone.
    /// Checks a code, and with `expect` its target and purpose: a right answer uses the key
    /// up, a wrong one counts, and five end it.
    async fn check_code(&self, key: &str, code: &str, expect: Option<(&str, i32)>) -> Result<bool> {
        if key.is_empty() || key.len() > 64 {
            return Ok(false);
        }
        let k = code::pending_key(key);
        // Taken, then put back on a wrong guess: two concurrent right guesses cannot both win.
        let Some(mut p) = self.cache.take::<code::Pending>(&k).await? else { return Ok(false) };
        let meant =
            expect.is_none_or(|(target, purpose)| p.verily_type == purpose && code::same_target(&p.target, target));
        if meant && p.code == code.trim() {
            return Ok(true);
        }
        p.wrong += 1;
        let left = p.expires - rsgame_kit::time::unix_secs();
        if p.wrong < 5 && left > 0 {
            let owner = p.owner.clone();
            self.cache.set_reserved(&owner, &k, &p, Duration::from_secs(left as u64)).await?;
        }
        Ok(false)
    }

    #[doc(hidden)]
    pub async fn peek_code(&self, key: &str) -> Option<String> {
        self.cache.get::<code::Pending>(&code::pending_key(key)).await.ok().flatten().map(|p| p.code)
    }
}

#[async_trait::async_trait]
impl Basic for BasicLogic {
    async fn captcha(&self, ip: &str) -> Result<CaptchaImage> {
        let ttl = Duration::from_secs(self.cfg.captcha_ttl_secs);
        captcha::create(&self.cache, ip, ttl, self.cfg.captcha_length).await
    }

    async fn verify_captcha(&self, key: &str, code: &str) -> Result<bool> {
        captcha::verify(&self.cache, key, code).await
    }

    async fn send_code(&self, req: SendCodeReq, ip: &str) -> Result<CodeTicket> {
        code::check(&req)?;
        if !captcha::verify(&self.cache, &req.key, &req.code).await? {
            return Err(Error::new(Code::CaptchaWrong));
        }
        code::rate_limit(&self.cache, &self.cfg, &req.phone, ip).await?;
        let mut raw = [0u8; 16];
        rand::fill(&mut raw);
        let key = hex::encode(raw);
        let ttl = Duration::from_secs(self.cfg.code_ttl_secs);
        let expires = rsgame_kit::time::unix_secs() + ttl.as_secs() as i64;
        let pending = code::Pending {
            target: req.phone.clone(),
            code: code::six_digits(),
            verily_type: req.verily_type,
            wrong: 0,
            expires,
            owner: ip.to_owned(),
        };
        self.cache.set_reserved(ip, &code::pending_key(&key), &pending, ttl).await?;
        let job =
            code::Job { send_type: req.send_type, target: req.phone, code: pending.code, verily_type: req.verily_type };
        code::enqueue(&self.bus, &job).await?;
        Ok(CodeTicket { key, expire_time: expires })
    }

    async fn verify_code(&self, key: &str, code: &str) -> Result<bool> {
        self.check_code(key, code, None).await
    }

    async fn use_code(&self, key: &str, code: &str, target: &str, verily_type: i32) -> Result<bool> {
        self.check_code(key, code, Some((target, verily_type))).await
    }

    async fn file_detail(&self, user_id: i64, guid: &str) -> Result<FileInfo> {
        self.files.detail(user_id, guid).await
    }

    async fn file_by_md5(&self, user_id: i64, md5: &str) -> Result<FileInfo> {
        self.files.by_md5(user_id, md5).await
    }

    async fn file_list(&self, user_id: i64, page: i64, page_size: i64, key: &str) -> Result<FileList> {
        self.files.list(user_id, page, page_size, key).await
    }

    async fn delete_files(&self, user_id: i64, guids: &[String]) -> Result<u64> {
        self.files.delete(user_id, guids).await
    }

    async fn add_file(&self, file: NewFile) -> Result<FileInfo> {
        self.files.add(file).await
    }
}
