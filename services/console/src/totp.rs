//! The optional second factor: time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second
//! steps, 6 digits), the kind every authenticator app reads from an `otpauth://` link.

use hmac::{Hmac, KeyInit, Mac};

const STEP_SECS: i64 = 30;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new secret: 20 random bytes, base32 (what apps expect).
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::fill(&mut b[..]);
    base32(&b)
}

/// The link an authenticator app scans (as a QR code) or takes pasted.
pub fn link(secret: &str, operator: &str) -> String {
    let label: String =
        operator.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).collect();
    format!("otpauth://totp/rsgame:{label}?secret={secret}&issuer=rsgame&algorithm=SHA1&digits=6&period=30")
}

/// The code for `secret` at the step holding `unix_secs`.
pub fn code_at(secret: &str, unix_secs: i64) -> Option<String> {
    let key = unbase32(secret)?;
    let step = unix_secs.div_euclid(STEP_SECS);
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    Some(format!("{:06}", bin % 1_000_000))
}

/// Whether `code` is right now, or one step before or after (a clock a little off, a code
/// typed as it changed).
pub fn verify(secret: &str, code: &str, unix_secs: i64) -> bool {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    [-STEP_SECS, 0, STEP_SECS].iter().any(|d| {
        code_at(secret, unix_secs + d)
            .is_some_and(|c| rsgame_kit::auth::constant_time_eq(c.as_bytes(), code.as_bytes()))
    })
}

fn base32(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1, key "12345678901234567890", last six digits.
        let secret = base32(b"12345678901234567890");
        assert_eq!(code_at(&secret, 59).as_deref(), Some("287082"));
        assert_eq!(code_at(&secret, 1_111_111_109).as_deref(), Some("081804"));
        assert_eq!(code_at(&secret, 2_000_000_000).as_deref(), Some("279037"));
        assert!(verify(&secret, "287082", 59 + 30), "one step late is accepted");
        assert!(!verify(&secret, "287082", 59 + 90), "three steps late is not");
        assert!(!verify(&secret, "28708", 59) && !verify(&secret, "abcdef", 59));
    }

    #[test]
    fn secrets_round_trip_and_links_name_the_operator() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(unbase32(&s).map(|b| b.len()), Some(20));
        assert!(link(&s, "ann <x>").starts_with("otpauth://totp/rsgame:annx?secret="));
    }
}
