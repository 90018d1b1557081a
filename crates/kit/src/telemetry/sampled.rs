//! Log lines that strangers can cause, at most once a second: a flood of refusals must not
//! become a flood of lines (or a full disk when file logging is on).

use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of event logged at most once a second; the line says how many were held back.
#[derive(Debug, Default)]
pub struct Sampled {
    last_ms: AtomicU64,
    held: AtomicU64,
}

impl Sampled {
    /// A sampler for a `static`.
    pub const fn new() -> Sampled {
        Sampled { last_ms: AtomicU64::new(0), held: AtomicU64::new(0) }
    }

    /// `Some(held back since the last line)` when this event should be logged, else `None`
    /// (and the event is counted for the next line).
    pub fn hit(&self) -> Option<u64> {
        let now = crate::time::unix_ms().max(0) as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            Some(self.held.swap(0, Ordering::Relaxed))
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_says_how_many_were_held() {
        let s = Sampled::new();
        assert_eq!(s.hit(), Some(0));
        assert_eq!((0..500).filter_map(|_| s.hit()).count(), 0, "a burst writes nothing more");
        s.last_ms.store(0, Ordering::Relaxed); // a second later
        assert_eq!(s.hit(), Some(500));
    }
}
