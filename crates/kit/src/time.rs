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

/// A proleptic Gregorian date to days since 1970-01-01 — H. Hinnant's `days_from_civil`.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 time (`2026-12-07T01:05:07Z`, `…07.5+08:00`) as unix milliseconds; `None`
/// when it is not one. Times written with different precision or zones compare correctly
/// only this way: as text, `…07Z` sorts after `…07.767Z`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits];
        ms = format!("{:0<3}", &f[..digits.min(3)]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (rest.get(1..3)?.parse::<i64>().ok()?, rest.get(4..6)?.parse::<i64>().ok()?);
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (oh * 60 + om)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
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

/// The wall clock as of the kernel's last tick (`CLOCK_REALTIME_COARSE`): about 6 ns a read
/// on this project's machines against 21 ns for the precise clock, at the tick's resolution
/// (4 ms on a 250 Hz kernel). For a time a client is only told on a path that runs for every
/// message (ping's `nowTime`), never for measuring; the precise clock elsewhere.
pub fn coarse_now() -> SystemTime {
    match coarse_timespec() {
        Some((sec, nsec)) => UNIX_EPOCH + Duration::new(sec, nsec),
        None => SystemTime::now(),
    }
}

/// `CLOCK_REALTIME_COARSE` as seconds and nanoseconds since the epoch, where there is one.
fn coarse_timespec() -> Option<(u64, u32)> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec through a pointer to a live local and
        // keeps nothing; it is the vDSO read of the kernel's time page.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        if rc == 0 {
            return Some((u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?));
        }
    }
    None
}

/// The length of [`rfc3339`]'s text for the years 0000–9999.
pub const RFC3339_LEN: usize = 24;

/// The coarse now ([`coarse_now`]) as [`rfc3339`] text in a fixed array: no allocation for
/// the caller, and each thread formats it once per tick of the coarse clock at most. The
/// cache is keyed on the clock's raw reading, so a read that finds it current costs a
/// comparison, not a conversion to milliseconds.
pub fn coarse_rfc3339() -> [u8; RFC3339_LEN] {
    /// The raw reading a text was made for, and the text.
    type Cached = (Option<(u64, u32)>, [u8; RFC3339_LEN]);
    thread_local! {
        static LAST: std::cell::Cell<Cached> = const { std::cell::Cell::new((None, [0; RFC3339_LEN])) };
    }
    let raw = coarse_timespec();
    LAST.with(|c| {
        let (at, text) = c.get();
        if raw.is_some() && at == raw {
            return text;
        }
        let now = raw.map_or_else(SystemTime::now, |(sec, nsec)| UNIX_EPOCH + Duration::new(sec, nsec));
        let mut out = [b'0'; RFC3339_LEN];
        let s = rfc3339(now);
        // Years past 9999 would not fit: such a clock keeps the zeros rather than a cut text.
        if s.len() == RFC3339_LEN {
            out.copy_from_slice(s.as_bytes());
        }
        c.set((raw, out));
        out
    })
}

/// The monotonic clock in nanoseconds (`CLOCK_MONOTONIC`, the clock `Instant` reads on
/// Linux), for the per-message paths: a difference of two readings is one subtraction,
/// where `Instant`'s goes through a checked timespec subtraction and a `Duration`
/// (docs/benchmarks.md: ~110 instructions per Ping between the two). Only differences mean
/// anything.
pub fn mono_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: as in `coarse_timespec`: one timespec written to a live local, nothing kept.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        if rc == 0 {
            return (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64);
        }
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A duration in nanoseconds, saturating (for adding to [`mono_ns`] readings).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
    fn the_nanosecond_clock_moves_with_instant() {
        let (i0, n0) = (std::time::Instant::now(), mono_ns());
        std::thread::sleep(Duration::from_millis(20));
        let (n1, i1) = (mono_ns(), std::time::Instant::now());
        let ns = n1 - n0;
        assert!(ns >= 20_000_000, "{ns} ns over a 20 ms sleep");
        assert!(ns <= nanos(i1 - i0), "the same clock as Instant: {ns} ns inside {:?}", i1 - i0);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn coarse_text_is_current_to_the_tick() {
        let text = coarse_rfc3339();
        let parsed = parse_rfc3339(std::str::from_utf8(&text).expect("ascii")).expect("rfc3339");
        assert!((parsed - unix_ms()).abs() < 1_000, "{parsed} vs {}", unix_ms());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn the_coarse_clock_is_the_wall_clock_to_its_tick() {
        let precise = SystemTime::now();
        let coarse = coarse_now();
        let gap = precise.duration_since(coarse).unwrap_or_else(|e| e.duration());
        assert!(gap < Duration::from_millis(50), "coarse clock {gap:?} away from the precise one");
        let text = coarse_rfc3339();
        let parsed = parse_rfc3339(std::str::from_utf8(&text).expect("ascii")).expect("parses");
        assert!((parsed - unix_ms()).abs() < 50, "{parsed} vs {}", unix_ms());
    }

    #[test]
    fn now_is_cached_but_current() {
        let a = now_rfc3339();
        assert_eq!(a.len(), 24);
        std::thread::sleep(Duration::from_millis(3));
        assert_ne!(now_rfc3339(), a, "a later millisecond gives a new string");
    }

    #[test]
    fn rfc3339_parses_with_any_precision_and_zone() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-11-26T13:01:01.005Z"), Some(20_418 * 86_400_000 + 13 * 3_600_000 + 61_005));
        assert_eq!(parse_rfc3339("2025-11-26T21:01:01.005+08:00"), parse_rfc3339("2025-11-26T13:01:01.005Z"));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.5Z"), Some(11_016 * 86_400_000 + 500));
        assert!(parse_rfc3339("2026-12-07T01:05:07Z") < parse_rfc3339("2026-12-07T01:05:07.767Z"));
        for bad in [
            "",
            "2026-12-07",
            "2026-13-07T01:05:07Z",
            "2026-12-07T01:05:07",
            "2026-12-07T01:05:07.Z",
            "2026-12-07T01:05:07+8",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for days in [-1, 0, 11_016, 20_418] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(20_418 * 86_400_000 + 13 * 3_600_000 + 61_005);
        assert_eq!(rfc3339(t), "2025-11-26T13:01:01.005Z");
    }
}
