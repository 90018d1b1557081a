//! Giving freed memory back to the system once a crowd has left.
//!
//! glibc's allocator keeps the pages that thousands of closed sessions freed: the next crowd
//! reuses them, but the process stays at its peak size for good (docs/benchmarks.md: 10,000
//! KCP sessions came and went and the server stayed 130 MiB above where it started).
//! `malloc_trim` hands free pages back. What freed them does not matter (closed sessions,
//! players whose reconnect grace ran out, rooms that ended), so the trigger is the
//! allocator's own count of free bytes it holds, not any one component's sessions: when it
//! has grown by [`AFTER_FREED`] since its lowest point since the last release, the pages go
//! back. Both calls walk the allocator's lists under its locks, so they run on a blocking
//! thread, at most every [`EVERY`].
//!
//! mimalloc, tried instead, gave most pages back by itself but started 20 MiB larger and
//! cost 20 % more per idle KCP session.

use std::time::Duration;

/// Free bytes the allocator must have gained before a release: a crowd, not a minute's churn.
pub const AFTER_FREED: u64 = 32 << 20;
/// How often the allocator's free bytes are looked at.
pub const EVERY: Duration = Duration::from_secs(10);

/// What the allocator holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Allocated and in use.
    pub in_use: u64,
    /// Free in its arenas (given back or not: pages handed back stay listed as free).
    pub free: u64,
}

/// The allocator's figures; None where the allocator is not glibc's.
pub fn heap() -> Option<Heap> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes nothing and returns a plain struct by value; it reads the
        // allocator's own statistics under the allocator's own locks.
        #[allow(unsafe_code)]
        let info = unsafe { libc::mallinfo2() };
        Some(Heap { in_use: (info.uordblks + info.hblkhd) as u64, free: info.fordblks as u64 })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Hands the allocator's free pages back to the system. Returns whether any were; always
/// false where the allocator is not glibc's (musl and others keep or return memory their
/// own way).
pub fn release_free_pages() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes no pointer, only the padding to keep at the top of the
        // heap; it works on the allocator's own lists under the allocator's own locks and
        // may be called from any thread at any time.
        #[allow(unsafe_code)]
        let released = unsafe { libc::malloc_trim(0) };
        released == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// What to do after one look at the allocator: tracks the lowest free count since the last
/// release and says when enough has been freed since.
#[derive(Debug, Default)]
pub struct Trigger {
    low: Option<u64>,
}

impl Trigger {
    /// Whether to release now, given the allocator's free bytes.
    pub fn release(&mut self, free: u64) -> bool {
        let low = self.low.map_or(free, |l| l.min(free));
        if free.saturating_sub(low) >= AFTER_FREED {
            // Freed pages are still counted free after a release: the next one waits for as
            // much to be freed again from here.
            self.low = Some(free);
            return true;
        }
        self.low = Some(low);
        false
    }
}

/// Runs forever (spawn it, and drop it at shutdown): looks at the allocator every [`EVERY`]
/// and releases free pages when a crowd's worth has been freed. Returns at once where the
/// allocator is not glibc's.
pub async fn give_back_after_crowds() {
    if heap().is_none() {
        return;
    }
    let mut trigger = Trigger::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(Some(Heap { in_use, free })) = tokio::task::spawn_blocking(heap).await else { return };
        metrics::gauge!(crate::telemetry::metrics::HEAP_IN_USE).set(in_use as f64);
        metrics::gauge!(crate::telemetry::metrics::HEAP_FREE).set(free as f64);
        if !trigger.release(free) {
            continue;
        }
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(release_free_pages).await {
            Ok(released) => {
                metrics::counter!(crate::telemetry::metrics::MEMORY_RELEASED).increment(1);
                tracing::info!(
                    free_mib = free >> 20,
                    released,
                    took_ms = started.elapsed().as_millis() as u64,
                    "freed memory given back to the system"
                );
            }
            Err(e) => tracing::warn!(error = %e, "giving freed memory back failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_waits_for_a_crowds_worth_freed_since_the_low_point() {
        let mut t = Trigger::default();
        assert!(!t.release(10 << 20), "the first look only sets the low point");
        assert!(!t.release(40 << 20), "30 MiB freed: not yet");
        assert!(!t.release(5 << 20), "reused: a new low");
        assert!(t.release(37 << 20), "32 MiB freed since the low");
        assert!(!t.release(37 << 20), "released: nothing new freed");
        assert!(!t.release(60 << 20));
        assert!(t.release(70 << 20), "another 33 MiB");
    }

    #[test]
    fn freed_pages_go_back_to_the_system() {
        // Many small blocks, freed: glibc keeps them in its lists. The call must not harm
        // live allocations, and on glibc it reports pages handed back.
        let keep: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 64]).collect();
        let freed: Vec<Vec<u8>> = (0..50_000).map(|i| vec![i as u8; 200]).collect();
        drop(freed);
        let released = release_free_pages();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            assert!(released, "50,000 freed blocks, and nothing to give back");
            assert!(heap().is_some_and(|h| h.in_use > 0));
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        assert!(!released && heap().is_none());
        assert_eq!(keep[99][0], 99, "live blocks are untouched");
    }
}
