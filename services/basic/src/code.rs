//! Verification codes (SMS or email): `send_code` checks a captcha and the rate limits, keeps
//! a 6-digit code under a random key, and publishes a sending job on the bus; a worker
//! consumes the jobs and hands them to a provider (the log by default, or SMTP).

use std::time::Duration;

use crate::config::{BasicConfig, CodeSender};
use rsgame_kit::{Code, Error, Result};
use rsgame_store::{Bus, Cache};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// The bus topic sending jobs go to.
pub const TOPIC: &str = "basic.send-code";

/// go-game's `sendCode` request.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendCodeReq {
    /// 1 SMS, 2 email.
    pub send_type: i32,
    /// The phone number (SMS) or email address (email).
    pub phone: String,
    /// 1 register, 2 password login, 3 phone login, 4 change password.
    pub verily_type: i32,
    /// The captcha's key.
    pub key: String,
    /// The captcha's answer.
    pub code: String,
}

/// What `sendCode` returns: the key to verify the code against.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeTicket {
    /// Send it back with the code.
    pub key: String,
    /// When the code stops working, unix seconds.
    pub expire_time: i64,
}

/// A code as kept in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub target: String,
    pub code: String,
    pub verily_type: i32,
    pub wrong: u32,
    pub expires: i64,
    /// The address that asked for it: the reserve's quota is counted against it.
    #[serde(default)]
    pub owner: String,
}

/// A sending job, as it goes over the bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Job {
    /// 1 SMS, 2 email.
    pub send_type: i32,
    /// Where to.
    pub target: String,
    /// The code.
    pub code: String,
    /// What it is for.
    pub verily_type: i32,
}

/// Whether `p` is a phone number as codes are sent to: 6 to 20 digits, optionally after `+`.
pub fn is_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or(p);
    (6..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `p` looks like an email address codes can be sent to (one line, one `@`, a dotted
/// host, nothing a mail header would read as a separator).
pub fn is_email(p: &str) -> bool {
    p.len() <= 254
        && p.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
        })
        && !p.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

pub(crate) fn check(req: &SendCodeReq) -> Result<()> {
    match req.send_type {
        1 if !is_phone(&req.phone) => return Err(Error::bad_param("phone: 6 to 20 digits, optionally after +")),
        2 if !is_email(&req.phone) => return Err(Error::bad_param("phone: not an email address")),
        1 | 2 => {}
        _ => return Err(Error::bad_param("sendType: 1 (SMS) or 2 (email)")),
    }
    if !(1..=4).contains(&req.verily_type) {
        return Err(Error::bad_param("verilyType: 1 to 4"));
    }
    Ok(())
}

/// Whether two spellings name the same phone or mailbox: email addresses compare without
/// case, phone numbers as written (digits, optionally after `+`).
pub fn same_target(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

pub(crate) fn pending_key(k: &str) -> String {
    format!("basic:code:{k}")
}

/// Checks the rate limits for one target and one IP; `Err` when over.
pub(crate) async fn rate_limit(cache: &Cache, cfg: &BasicConfig, target: &str, ip: &str) -> Result<()> {
    let per_ip = cache.incr(&format!("basic:code:ip:{ip}"), 1, Some(Duration::from_secs(3600))).await?;
    if per_ip > cfg.code_per_ip_per_hour {
        return Err(Error::msg(Code::TooManyRequests, "too many codes from this address; try again later"));
    }
    let fresh = cache
        .set_if_absent(
            &format!("basic:code:to:{}", target.to_lowercase()),
            &1,
            Some(Duration::from_secs(cfg.code_resend_secs)),
        )
        .await?;
    if !fresh {
        return Err(Error::msg(Code::TooManyRequests, "a code was just sent there; wait before asking again"));
    }
    Ok(())
}

/// A 6-digit code, uniformly drawn.
pub(crate) fn six_digits() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// A code an operator has sent (no captcha, no per-address limit: the console's permission
/// and audit log stand in for them), kept under `key` for `ttl` and checked like any other:
/// five wrong guesses end it. Sent to `target` (a phone number or an email address) for
/// `verily_type`. Returns when it expires (unix seconds).
pub async fn issue(cache: &Cache, bus: &Bus, key: &str, target: &str, verily_type: i32, ttl: Duration) -> Result<i64> {
    let send_type = if is_email(target) {
        2
    } else if is_phone(target) {
        1
    } else {
        return Err(Error::bad_param("target: a phone number or an email address"));
    };
    let expires = rsgame_kit::time::unix_secs() + ttl.as_secs() as i64;
    let pending =
        Pending { target: target.to_owned(), code: six_digits(), verily_type, wrong: 0, expires, owner: String::new() };
    cache.set(&pending_key(key), &pending, Some(ttl)).await.map_err(|e| Error::internal(Code::Unavailable, e))?;
    enqueue(bus, &Job { send_type, target: target.to_owned(), code: pending.code, verily_type }).await?;
    Ok(expires)
}

/// Publishes a job; the request fails if the bus cannot take it (the code would never arrive).
pub(crate) async fn enqueue(bus: &Bus, job: &Job) -> Result<()> {
    let payload = serde_json::to_vec(job).map_err(|e| Error::internal(Code::Failed, e))?;
    bus.publish(TOPIC, &payload).await.map_err(|e| Error::internal(Code::Unavailable, e))
}

/// Delivers sending jobs.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Sends one message; an error leaves the job unacknowledged (redelivered on durable buses).
    async fn send(&self, job: &Job) -> std::io::Result<()>;
}

/// Delivers nothing: says in the log that a code was asked for, with the target masked and
/// never the code (logs are read by more people than the players the codes belong to).
pub struct LogProvider;

#[async_trait::async_trait]
impl Provider for LogProvider {
    async fn send(&self, job: &Job) -> std::io::Result<()> {
        let via = if job.send_type == 1 { "sms" } else { "email" };
        tracing::warn!(
            via,
            to = %mask(&job.target),
            purpose = job.verily_type,
            "verification code not delivered: no sender for it (basic.code_sender)"
        );
        Ok(())
    }
}

/// Writes the code itself to the log: for development only, chosen explicitly with
/// `basic.code_sender: dev-log` (start-up warns).
pub struct DevLogProvider;

#[async_trait::async_trait]
impl Provider for DevLogProvider {
    async fn send(&self, job: &Job) -> std::io::Result<()> {
        let via = if job.send_type == 1 { "sms" } else { "email" };
        tracing::info!(via, to = %job.target, code = %job.code, purpose = job.verily_type, "verification code (dev-log sender)");
        Ok(())
    }
}

/// A phone number or email address as logs may show it: the last four digits of a phone,
/// the first letter and the domain of an email.
pub fn mask(target: &str) -> String {
    match target.split_once('@') {
        Some((user, domain)) => format!("{}***@{domain}", user.chars().next().unwrap_or('*')),
        None => {
            let digits: Vec<char> = target.chars().collect();
            let keep = digits.len().saturating_sub(4);
            format!("***{}", digits[keep..].iter().collect::<String>())
        }
    }
}

/// Emails over SMTP (plain connection, optional AUTH PLAIN); SMS jobs go to the log.
pub struct SmtpProvider {
    host: String,
    port: u16,
    username: String,
    password: String,
    from: String,
}

impl SmtpProvider {
    /// From `basic.smtp_*`.
    pub fn from_config(cfg: &BasicConfig) -> SmtpProvider {
        SmtpProvider {
            host: cfg.smtp_host.clone(),
            port: cfg.smtp_port,
            username: cfg.smtp_username.clone(),
            password: cfg.smtp_password.expose().to_owned(),
            from: cfg.smtp_from.clone(),
        }
    }
}

async fn smtp_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, want: u16) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("SMTP server closed the connection"));
        }
        // "250-..." continues a multi-line reply; "250 ..." ends it.
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            break;
        }
    }
    let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
    if code != want {
        return Err(std::io::Error::other(format!("SMTP: expected {want}, got {}", line.trim_end())));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Provider for SmtpProvider {
    async fn send(&self, job: &Job) -> std::io::Result<()> {
        if job.send_type != 2 {
            return LogProvider.send(job).await;
        }
        // The whole exchange is bounded: a server that accepts and then stalls must not hold
        // up every later code (the worker sends one at a time).
        tokio::time::timeout(Duration::from_secs(30), self.exchange(job))
            .await
            .map_err(|_| std::io::Error::other("SMTP exchange timed out"))?
    }
}

impl SmtpProvider {
    async fn exchange(&self, job: &Job) -> std::io::Result<()> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| std::io::Error::other("SMTP connect timed out"))??;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        smtp_reply(&mut r, 220).await?;
        w.write_all(b"EHLO rsgame\r\n").await?;
        smtp_reply(&mut r, 250).await?;
        if !self.username.is_empty() {
            use base64::Engine as _;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{}", self.username, self.password));
            w.write_all(format!("AUTH PLAIN {token}\r\n").as_bytes()).await?;
            smtp_reply(&mut r, 235).await?;
        }
        w.write_all(format!("MAIL FROM:<{}>\r\n", self.from).as_bytes()).await?;
        smtp_reply(&mut r, 250).await?;
        w.write_all(format!("RCPT TO:<{}>\r\n", job.target).as_bytes()).await?;
        smtp_reply(&mut r, 250).await?;
        w.write_all(b"DATA\r\n").await?;
        smtp_reply(&mut r, 354).await?;
        let body = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: Your verification code\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour code is {}. It works for a few minutes and only once.\r\n.\r\n",
            self.from, job.target, job.code
        );
        w.write_all(body.as_bytes()).await?;
        smtp_reply(&mut r, 250).await?;
        w.write_all(b"QUIT\r\n").await?;
        Ok(())
    }
}

/// The provider `basic.code_sender` names.
pub fn provider(cfg: &BasicConfig) -> std::sync::Arc<dyn Provider> {
    match cfg.code_sender {
        CodeSender::Log => std::sync::Arc::new(LogProvider),
        CodeSender::DevLog => {
            tracing::warn!(
                "basic.code_sender is dev-log: verification codes are written to the log (development only)"
            );
            std::sync::Arc::new(DevLogProvider)
        }
        CodeSender::Smtp => std::sync::Arc::new(SmtpProvider::from_config(cfg)),
    }
}

/// Runs the sending worker until the bus goes away: each job is handed to `provider` and
/// acknowledged once sent; a failed send is logged and left unacknowledged.
pub async fn run_worker(bus: Bus, provider: std::sync::Arc<dyn Provider>) -> Result<()> {
    let mut sub =
        bus.subscribe(TOPIC, "basic-code-senders").await.map_err(|e| Error::internal(Code::Unavailable, e))?;
    tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            let job: Job = match serde_json::from_slice(&d.payload) {
                Ok(j) => j,
                Err(e) => {
                    // Not ours to retry: acknowledge so it does not come back forever.
                    tracing::warn!(error = %e, "unreadable code job dropped");
                    let _ = d.ack().await;
                    continue;
                }
            };
            match provider.send(&job).await {
                Ok(()) => {
                    let _ = d.ack().await;
                }
                Err(e) => tracing::warn!(error = %e, "verification code not sent; left for redelivery"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(send_type: i32, phone: &str) -> SendCodeReq {
        SendCodeReq { send_type, phone: phone.into(), verily_type: 1, ..Default::default() }
    }

    #[test]
    fn logs_show_targets_masked() {
        assert_eq!(mask("+8613800138000"), "***8000");
        assert_eq!(mask("ann@example.com"), "a***@example.com");
        assert_eq!(mask("12"), "***12");
        assert_eq!(mask("@x"), "****@x");
    }

    #[test]
    fn targets_are_checked() {
        assert!(check(&req(1, "+8613800138000")).is_ok());
        assert!(check(&req(2, "ann@example.com")).is_ok());
        for (t, p) in
            [(1, "12ab5678"), (1, "123"), (2, "nope"), (2, "a@b"), (2, "a@b.com>\r\nRCPT TO:<x@y.z"), (3, "1")]
        {
            assert!(check(&req(t, p)).is_err(), "{t} {p}");
        }
        assert!(check(&SendCodeReq { verily_type: 9, ..req(1, "12345678") }).is_err());
    }

    #[test]
    fn codes_have_six_digits() {
        for _ in 0..100 {
            let c = six_digits();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
