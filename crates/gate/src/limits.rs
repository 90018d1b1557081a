//! Admission and rate limits: connections in total and per IP address, and a token bucket
//! per session for messages.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::session::CloseReason;

/// Counts open connections; a [`ConnPermit`] gives its place back when dropped.
pub(crate) struct Limits {
    max: usize,
    per_ip: usize,
    total: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection.
pub(crate) struct ConnPermit {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    /// `0` means no limit.
    pub fn new(max: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(Limits { max, per_ip, total: AtomicUsize::new(0), by_ip: Mutex::new(HashMap::new()) })
    }

    /// Admits a connection from `ip`, or says which limit refuses it.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, CloseReason> {
        let prev = self.total.fetch_add(1, Ordering::AcqRel);
        if self.max != 0 && prev >= self.max {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(CloseReason::ServerFull);
        }
        if self.per_ip != 0 {
            let Ok(mut m) = self.by_ip.lock() else {
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(CloseReason::ServerFull);
            };
            let n = m.entry(ip).or_insert(0);
            if *n >= self.per_ip {
                drop(m);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(CloseReason::IpLimit);
            }
            *n += 1;
        }
        Ok(ConnPermit { limits: self.clone(), ip })
    }

    /// Open connections.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let l = &self.limits;
        l.total.fetch_sub(1, Ordering::AcqRel);
        if l.per_ip != 0 {
            if let Ok(mut m) = l.by_ip.lock() {
                if let Some(n) = m.get_mut(&self.ip) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&self.ip);
                    }
                }
            }
        }
    }
}

/// A token bucket: `rate` tokens a second, up to `burst` saved. Times are
/// [`rsgame_kit::time::mono_ns`] readings: it is consulted for every message.
pub(crate) struct TokenBucket {
    per_token_ns: u64,
    burst: u32,
    tokens: u32,
    last_ns: u64,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, now_ns: u64) -> Self {
        let rate = u64::from(rate.max(1));
        TokenBucket {
            per_token_ns: (1_000_000_000 / rate).max(1),
            burst: burst.max(1),
            tokens: burst.max(1),
            last_ns: now_ns,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now_ns: u64) -> bool {
        if self.tokens < self.burst {
            let elapsed = now_ns.saturating_sub(self.last_ns);
            if elapsed >= self.per_token_ns {
                let earned = elapsed / self.per_token_ns;
                self.tokens = (u64::from(self.tokens) + earned).min(u64::from(self.burst)) as u32;
                // earned × per_token ≤ elapsed: no overflow, and the remainder is kept.
                self.last_ns += earned * self.per_token_ns;
            }
        } else {
            self.last_ns = now_ns;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits() {
        let l = Limits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let p1 = l.try_admit(a).expect("1");
        let _p2 = l.try_admit(a).expect("2");
        assert_eq!(l.try_admit(a).err(), Some(CloseReason::IpLimit));
        let _p3 = l.try_admit(b).expect("3");
        assert_eq!(l.try_admit(b).err(), Some(CloseReason::ServerFull));
        drop(p1);
        assert_eq!(l.open(), 2);
        let _p4 = l.try_admit(a).expect("a has room again");
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        const MS: u64 = 1_000_000;
        let t0 = 5_000 * MS;
        let mut b = TokenBucket::new(10, 5, t0);
        for _ in 0..5 {
            assert!(b.allow(t0));
        }
        assert!(!b.allow(t0), "burst spent");
        assert!(!b.allow(t0 + 99 * MS), "not yet a token");
        assert!(b.allow(t0 + 100 * MS), "one token per 100 ms");
        assert!(!b.allow(t0 + 150 * MS));
        assert!(b.allow(t0 + 1000 * MS));
        let mut n = 0;
        while b.allow(t0 + 10_000 * MS) {
            n += 1;
        }
        assert_eq!(n, 5, "never more than the burst saved");
    }
}
