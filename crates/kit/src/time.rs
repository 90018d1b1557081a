//! UTC calendar helpers, without a date-time dependency: RFC 3339 timestamps for clients and
//! dates for log file names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) — H. Hinnant's
/// `civil_from_days`.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-11-26T06:40:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

/// Now, as [`rfc3339`]. Formatting costs more than a busy server's ping handler does
/// otherwise, so each thread keeps the last string and reuses it within the same millisecond.
pub fn now_rfc3339() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u128, String)> = const { std::cell::RefCell::new((u128::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let ms = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
    LAST.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != ms {
            *c = (ms, rfc3339(now));
        }
        c.1.clone()
    })
}

/// Now as unix milliseconds: what every timestamp column holds.
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Now as unix seconds: what token and link expiries hold.
pub fn unix_secs() -> i64 {
    unix_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn now_is_cached_but_current() {
        let a = now_rfc3339();
        assert_eq!(a.len(), 24);
        std::thread::sleep(Duration::from_millis(3));
        assert_ne!(now_rfc3339(), a, "a later millisecond gives a new string");
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(20_418 * 86_400_000 + 13 * 3_600_000 + 61_005);
        assert_eq!(rfc3339(t), "2025-11-26T13:01:01.005Z");
    }
}
