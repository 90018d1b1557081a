//! RFC 6455 frames as a server reads and writes them: the header, the client's mask, and the
//! rules a frame must keep. Pure functions over bytes, so the link in `ws.rs` owns every
//! buffer (and can give them back while a session is idle).

/// A frame's opcode (RFC 6455 §5.2). Any other value fails the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: [u8; 4],
    /// Bytes of the header itself (2 to 14).
    pub header_len: usize,
    pub payload_len: usize,
}

/// Why a frame fails the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Reserved bits set (no extension is negotiated), an unknown opcode, an unmasked client
    /// frame, or a control frame that is fragmented or too long.
    Protocol,
    /// A frame longer than the limit.
    TooLarge,
}

/// Largest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
pub(crate) const MAX_HEADER: usize = 14;
/// Largest control-frame payload.
const MAX_CONTROL: usize = 125;

/// Parses the header at the start of `buf`: `Ok(None)` while it is incomplete. Checked
/// before any payload is waited for, so an oversized frame is refused from its first bytes.
pub(crate) fn parse(buf: &[u8], max_payload: usize) -> Result<Option<Header>, Violation> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(Violation::Protocol);
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(Violation::Protocol)?;
    let fin = b0 & 0x80 != 0;
    // A server must fail a client frame that is not masked (§5.1).
    if b1 & 0x80 == 0 {
        return Err(Violation::Protocol);
    }
    let (len, at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else { return Ok(None) };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else { return Ok(None) };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            (u64::from_be_bytes(a), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || len > MAX_CONTROL as u64) {
        return Err(Violation::Protocol);
    }
    let payload_len = usize::try_from(len).map_err(|_| Violation::TooLarge)?;
    if payload_len > max_payload {
        return Err(Violation::TooLarge);
    }
    let Some(m) = buf.get(at..at + 4) else { return Ok(None) };
    Ok(Some(Header { fin, opcode, mask: [m[0], m[1], m[2], m[3]], header_len: at + 4, payload_len }))
}

/// Removes the client's mask in place.
pub(crate) fn unmask(data: &mut [u8], mask: [u8; 4]) {
    // Eight bytes at a time: the mask repeats every four, so twice over is a u64 mask.
    let wide = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(a) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Writes a server frame's header (final, unmasked) for a payload of `len` bytes into `out`;
/// returns its length.
pub(crate) fn header(opcode: Opcode, len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x80 | opcode.bits();
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(n) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&n.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Appends a whole server frame to `out`.
pub(crate) fn put_frame(out: &mut bytes::BytesMut, opcode: Opcode, payload: &[u8]) {
    let mut h = [0u8; 10];
    let n = header(opcode, payload.len(), &mut h);
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser would send it.
    fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut v = vec![first];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    #[test]
    fn every_length_form_parses_and_unmasks_back_to_the_payload() {
        for len in [0usize, 1, 7, 8, 9, 125, 126, 127, 1000, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let f = client_frame(0x82, &payload, [0x12, 0x34, 0x56, 0x78]);
            // Every prefix shorter than the header is "not yet".
            let h = parse(&f, 1 << 20).expect("valid").expect("whole header");
            for cut in 0..h.header_len {
                assert_eq!(parse(&f[..cut], 1 << 20), Ok(None), "len {len} cut {cut}");
            }
            assert_eq!((h.fin, h.opcode, h.payload_len), (true, Opcode::Binary, len));
            assert_eq!(h.header_len + len, f.len());
            let mut body = f[h.header_len..].to_vec();
            unmask(&mut body, h.mask);
            assert_eq!(body, payload, "len {len}");
        }
    }

    #[test]
    fn frames_a_server_must_refuse_are_refused() {
        let m = [1, 2, 3, 4];
        // Reserved bits (no extension negotiated).
        assert_eq!(parse(&client_frame(0xC2, b"x", m), 100), Err(Violation::Protocol));
        // Unknown opcodes.
        assert_eq!(parse(&client_frame(0x83, b"x", m), 100), Err(Violation::Protocol));
        assert_eq!(parse(&client_frame(0x8B, b"x", m), 100), Err(Violation::Protocol));
        // Unmasked.
        assert_eq!(parse(&[0x82, 0x01, b'x'], 100), Err(Violation::Protocol));
        // A fragmented or long control frame.
        assert_eq!(parse(&client_frame(0x09, b"x", m), 100), Err(Violation::Protocol));
        assert_eq!(parse(&client_frame(0x89, &[0; 126], m), 1000), Err(Violation::Protocol));
        // Over the limit, known from the header alone.
        let f = client_frame(0x82, &[0; 101], m);
        assert_eq!(parse(&f[..4], 100), Err(Violation::TooLarge));
        // A 64-bit length with the top bit set.
        assert_eq!(parse(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], 100), Err(Violation::TooLarge));
        // A control frame at the limit is fine.
        assert!(parse(&client_frame(0x89, &[7; 125], m), 1000).expect("ok").is_some());
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        let mut h = [0u8; 10];
        assert_eq!(header(Opcode::Binary, 5, &mut h), 2);
        assert_eq!(&h[..2], &[0x82, 5]);
        assert_eq!(header(Opcode::Text, 126, &mut h), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0, 126]);
        assert_eq!(header(Opcode::Binary, 65_536, &mut h), 10);
        assert_eq!(&h[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut out = bytes::BytesMut::new();
        put_frame(&mut out, Opcode::Pong, b"hi");
        assert_eq!(&out[..], &[0x8A, 2, b'h', b'i']);
    }
}
