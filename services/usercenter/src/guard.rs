//! Login protection that a stranger cannot turn against a player.
//!
//! Failed logins are counted three ways, each within `usercenter.failure_window_secs`:
//!
//! - per account and address: after `captcha_after_failures` that address needs a captcha
//!   for that account; after `lock_after_failures` (the ones past the captcha were made with
//!   a solved one) that address is locked out of that account for `lock_secs`;
//! - per account, from every address: after `lock_after_failures` every login of the account
//!   needs a captcha (a guess spread over many addresses); after `lock_after_failures` made
//!   *with a solved captcha* the account is locked — for the addresses that failed on it.
//!   A login from an address with no failure on it, with the right password and a solved
//!   captcha, is never refused;
//! - per address, over all accounts: after `ip_captcha_after_failures` every login from it
//!   needs a captcha, after `ip_lock_after_failures` it is locked out. Both are well above a
//!   player's typos, so players sharing an address (a NAT, a proxy) are not caught by one
//!   player's mistakes.
//!
//! A wrong, unknown or reused captcha is not a password failure: counting it let anyone lock
//! any account by sending made-up captcha keys. Every counter lives in the cache (Redis when
//! shared), so all usercenter replicas see the same counts; a cache outage leaves failures
//! uncounted rather than refusing logins.

use std::time::Duration;

use crate::config::UsercenterConfig;
use rsgame_store::Cache;

/// What a login attempt must bring before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This address may not try this account now.
    Locked,
    /// A solved captcha is required.
    Captcha,
    /// The password alone is checked.
    Open,
}

/// The counters and locks of [`crate::logic::UserCenterLogic`]'s logins.
#[derive(Clone)]
pub struct LoginGuard {
    cache: Cache,
    cfg: UsercenterConfig,
}

/// The key of one (address, account) pair. The address goes first and never holds `|`, so
/// no username (which may hold anything at login) can make two pairs share a key.
fn pair(user: &str, ip: &str) -> String {
    format!("{ip}|{user}")
}

impl LoginGuard {
    /// A guard over `cache` with `cfg`'s limits.
    pub fn new(cache: Cache, cfg: UsercenterConfig) -> LoginGuard {
        LoginGuard { cache, cfg }
    }

    /// What an attempt on `user` (lower-cased) from `ip` needs.
    pub async fn check(&self, user: &str, ip: &str) -> Verdict {
        let pair_key = pair(user, ip);
        if self.is_locked("pair", &pair_key).await || self.is_locked("ip", ip).await {
            return Verdict::Locked;
        }
        let pair = self.count("pair", &pair_key).await;
        let account_locked = self.is_locked("account", user).await;
        if account_locked && pair > 0 {
            return Verdict::Locked;
        }
        let c = &self.cfg;
        if account_locked
            || pair >= c.captcha_after_failures
            || self.count("account", user).await >= c.lock_after_failures
            || self.count("ip", ip).await >= c.ip_captcha_after_failures
        {
            return Verdict::Captcha;
        }
        Verdict::Open
    }

    /// Counts a wrong password (or an unknown account) for `user` from `ip`; `solved`: the
    /// attempt carried a solved captcha. Locks what reached its limit.
    pub async fn failed(&self, user: &str, ip: &str, solved: bool) {
        let pair_key = pair(user, ip);
        let c = &self.cfg;
        if self.bump("pair", &pair_key).await >= c.lock_after_failures {
            self.lock("pair", &pair_key, ip).await;
        }
        self.bump("account", user).await;
        if solved && self.bump("solved", user).await >= c.lock_after_failures {
            self.lock("account", user, &format!("account:{user}")).await;
        }
        if self.bump("ip", ip).await >= c.ip_lock_after_failures {
            self.lock("ip", ip, ip).await;
        }
    }

    /// A right password from `ip`: that address starts afresh on this account. The account's
    /// and the address's counts run out with their window: an attack in progress goes on
    /// meeting captchas.
    pub async fn succeeded(&self, user: &str, ip: &str) {
        let _ = self.cache.delete(&[&format!("uc:fail:pair:{}", pair(user, ip))]).await;
    }

    async fn count(&self, kind: &str, key: &str) -> i64 {
        self.cache.get::<i64>(&format!("uc:fail:{kind}:{key}")).await.ok().flatten().unwrap_or(0)
    }

    /// One more failure; a cache error counts as none (logged by the cache).
    async fn bump(&self, kind: &str, key: &str) -> i64 {
        let window = Duration::from_secs(self.cfg.failure_window_secs);
        self.cache.incr(&format!("uc:fail:{kind}:{key}"), 1, Some(window)).await.unwrap_or(0)
    }

    async fn is_locked(&self, kind: &str, key: &str) -> bool {
        self.cache.get::<bool>(&format!("uc:lock:{kind}:{key}")).await.ok().flatten().unwrap_or(false)
    }

    /// Locks `key`, a reserved entry held by `owner` (the failing address, or the account):
    /// no flood of other keys evicts a lock before its time.
    async fn lock(&self, kind: &str, key: &str, owner: &str) {
        // The key itself (a username, an address) is not logged: the count and kind suffice
        // to see an attack, and logs are no place for account names under attack.
        tracing::warn!(kind, "login locked after repeated failures");
        let ttl = Duration::from_secs(self.cfg.lock_secs);
        if let Err(e) = self.cache.set_reserved(owner, &format!("uc:lock:{kind}:{key}"), &true, ttl).await {
            // The counts that led here still ask for a captcha on every attempt.
            tracing::warn!(kind, error = %e, "login lock not kept: the failure counts still require captchas");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> LoginGuard {
        let cfg = UsercenterConfig {
            captcha_after_failures: 3,
            lock_after_failures: 6,
            ip_captcha_after_failures: 20,
            ip_lock_after_failures: 50,
            ..UsercenterConfig::default()
        };
        LoginGuard::new(Cache::memory(10_000, "t:"), cfg)
    }

    #[tokio::test]
    async fn a_stranger_without_captchas_cannot_lock_the_owner_out() {
        let g = guard();
        // The attacker fails 3 times, then can only send unsolved captchas, which count
        // nothing; from 40 addresses it still reaches only the account-wide captcha.
        for ip in 0..40 {
            let ip = format!("203.0.113.{ip}");
            for _ in 0..3 {
                assert_ne!(g.check("ann", &ip).await, Verdict::Locked);
                g.failed("ann", &ip, false).await;
            }
            assert_eq!(g.check("ann", &ip).await, Verdict::Captcha);
        }
        // The owner, elsewhere: a captcha (the account is under attack), never a lock.
        assert_eq!(g.check("ann", "198.51.100.1").await, Verdict::Captcha);
        // Other accounts behind the owner's address are untouched.
        assert_eq!(g.check("bob", "198.51.100.1").await, Verdict::Open);
    }

    #[tokio::test]
    async fn solved_captchas_lock_the_addresses_that_failed_but_not_the_owner() {
        let g = guard();
        for i in 0..6 {
            let ip = format!("203.0.113.{}", i % 2);
            g.failed("ann", &ip, i >= 2).await;
        }
        // 4 failures with solved captchas: not yet 6.
        assert_eq!(g.check("ann", "203.0.113.0").await, Verdict::Captcha);
        g.failed("ann", "203.0.113.0", true).await;
        g.failed("ann", "203.0.113.1", true).await;
        assert_eq!(g.check("ann", "203.0.113.0").await, Verdict::Locked, "an address that failed is locked out");
        assert_eq!(g.check("ann", "203.0.113.1").await, Verdict::Locked);
        assert_eq!(g.check("ann", "198.51.100.1").await, Verdict::Captcha, "the owner elsewhere may still log in");
    }

    #[tokio::test]
    async fn one_players_typos_do_not_touch_the_others_behind_its_address() {
        let g = guard();
        for _ in 0..3 {
            g.failed("ann", "192.0.2.1", false).await;
        }
        assert_eq!(g.check("ann", "192.0.2.1").await, Verdict::Captcha);
        assert_eq!(g.check("bob", "192.0.2.1").await, Verdict::Open, "a shared address is not behind a captcha");
        g.succeeded("ann", "192.0.2.1").await;
        assert_eq!(g.check("ann", "192.0.2.1").await, Verdict::Open, "a right password starts the pair afresh");
    }

    #[tokio::test]
    async fn an_address_guessing_many_accounts_meets_a_captcha_then_a_lock() {
        let g = guard();
        for i in 0..20 {
            g.failed(&format!("user{i}"), "192.0.2.9", false).await;
        }
        assert_eq!(g.check("anyone", "192.0.2.9").await, Verdict::Captcha);
        for i in 20..50 {
            g.failed(&format!("user{i}"), "192.0.2.9", true).await;
        }
        assert_eq!(g.check("anyone", "192.0.2.9").await, Verdict::Locked);
        assert_eq!(g.check("anyone", "192.0.2.10").await, Verdict::Open);
    }
}
