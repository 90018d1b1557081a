//! The basic service's configuration section, `basic.*`: captchas, verification codes and
//! how they are sent, uploads and where files are kept.

use rsgame_kit::config::{Invalid, Secret, Section};
use serde::{Deserialize, Serialize};

/// How verification codes are delivered.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CodeSender {
    /// Not delivered: the log says a code was asked for (target masked, code never written).
    #[default]
    Log,
    /// Development only: the code itself is written to the log. Never on a public server.
    DevLog,
    /// Emailed over SMTP (`basic.smtp_*`); SMS targets are handled as by `log`.
    Smtp,
}

/// `basic.*` — captchas, verification codes, files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicConfig {
    /// How long a captcha works, seconds.
    pub captcha_ttl_secs: u64,
    /// Characters in a captcha.
    pub captcha_length: u32,
    /// How long a verification code works, seconds.
    pub code_ttl_secs: u64,
    /// Seconds before another code may be sent to the same phone or email.
    pub code_resend_secs: u64,
    /// Codes one IP may request per hour.
    pub code_per_ip_per_hour: i64,
    /// `log`, `dev-log` or `smtp`.
    pub code_sender: CodeSender,
    /// SMTP server host.
    pub smtp_host: String,
    /// SMTP server port.
    pub smtp_port: u16,
    /// SMTP user (empty: no AUTH).
    pub smtp_username: String,
    /// SMTP password.
    pub smtp_password: Secret,
    /// The From address of code emails.
    pub smtp_from: String,
    /// Largest upload, bytes.
    pub upload_max_bytes: u64,
    /// Extensions accepted (the content must match).
    pub upload_types: Vec<String>,
    /// Where local storage keeps files (and, with S3, uploads in progress).
    pub storage_root: String,
    /// `local` or `s3`.
    pub storage: FileStorage,
    /// S3 endpoint: `https://s3.amazonaws.com`, `http://minio:9000`…
    pub s3_endpoint: String,
    /// S3 bucket.
    pub s3_bucket: String,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id.
    pub s3_access_key: String,
    /// S3 secret key.
    pub s3_secret_key: Secret,
}

impl Default for BasicConfig {
    fn default() -> Self {
        BasicConfig {
            captcha_ttl_secs: 300,
            captcha_length: 5,
            code_ttl_secs: 300,
            code_resend_secs: 60,
            code_per_ip_per_hour: 20,
            code_sender: CodeSender::Log,
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            smtp_from: "rsgame@localhost".into(),
            upload_max_bytes: 100 * 1024 * 1024,
            upload_types: ["jpg", "png", "jpeg", "mp3", "mp4", "pdf", "zip", "docx"].map(String::from).to_vec(),
            storage_root: "./data/files".into(),
            storage: FileStorage::Local,
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key: String::new(),
            s3_secret_key: Secret::default(),
        }
    }
}

/// Where uploaded files are kept.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileStorage {
    /// Local disk under `basic.storage_root`.
    #[default]
    Local,
    /// An S3-compatible bucket (`basic.s3_*`).
    S3,
}

impl Section for BasicConfig {
    fn check(&self) -> Result<(), Invalid> {
        if !(4..=8).contains(&self.captcha_length) {
            return Err(Invalid::new("captcha_length", "must be between 4 and 8"));
        }
        if self.upload_max_bytes == 0 {
            return Err(Invalid::new("upload_max_bytes", "must be at least 1"));
        }
        if self.storage == FileStorage::S3 {
            if !(self.s3_endpoint.starts_with("http://") || self.s3_endpoint.starts_with("https://")) {
                return Err(Invalid::new("s3_endpoint", "must be an http:// or https:// URL with basic.storage: s3"));
            }
            if self.s3_bucket.is_empty() {
                return Err(Invalid::new("s3_bucket", "must be set with basic.storage: s3"));
            }
        }
        if self.storage_root.is_empty() {
            return Err(Invalid::new("storage_root", "must not be empty"));
        }
        Ok(())
    }
}
