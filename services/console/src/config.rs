//! The console's configuration section, `console.*`: its own listener (loopback unless a
//! studio opens it), how long an operator's session lasts, and the lock-out after failed
//! logins.

use rsgame_kit::config::{Invalid, Section};
use serde::{Deserialize, Serialize};

/// `console.*` — the operator console.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether the console's listener runs (with the usercenter and game APIs in process).
    pub enabled: bool,
    /// The console's address: loopback by default, so only a studio that means to opens it.
    pub host: String,
    /// The console's port, apart from the public one so that it can be firewalled.
    pub port: u16,
    /// How long an operator's session lasts after its last request, minutes.
    pub idle_minutes: u64,
    /// The longest an operator's session lasts, hours, however busy.
    pub session_hours: u64,
    /// Marks the session cookie `Secure` (set when the console is reached over HTTPS).
    pub secure_cookie: bool,
    /// Wrong passwords from one address for one operator before that address is locked out
    /// of it (other addresses are not: a stranger cannot lock an operator out).
    pub lock_after_failures: i64,
    /// Wrong passwords from one address over all operators before it is locked out.
    pub ip_lock_after_failures: i64,
    /// How long a lock-out lasts, seconds.
    pub lock_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 7351,
            idle_minutes: 60,
            session_hours: 12,
            secure_cookie: false,
            lock_after_failures: 5,
            ip_lock_after_failures: 20,
            lock_secs: 900,
        }
    }
}

impl Section for ConsoleConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.host.is_empty() {
            return Err(Invalid::new("host", "must not be empty"));
        }
        if !(1..=24 * 60).contains(&self.idle_minutes) {
            return Err(Invalid::new("idle_minutes", "1 to 1440"));
        }
        if !(1..=720).contains(&self.session_hours) {
            return Err(Invalid::new("session_hours", "1 to 720"));
        }
        if self.lock_after_failures < 1 || self.ip_lock_after_failures < self.lock_after_failures {
            return Err(Invalid::new("lock_after_failures", "at least 1, and ip_lock_after_failures at least as many"));
        }
        if !(1..=86_400).contains(&self.lock_secs) {
            return Err(Invalid::new("lock_secs", "1 to 86400"));
        }
        Ok(())
    }
}
