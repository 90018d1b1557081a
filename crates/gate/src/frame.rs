//! zinx's frames: an 8-byte header (message id and body length) and the body.
//!
//! Two layouts: zinx ≥ 1.2 (go-game) puts the id first, both u32 big-endian; older zinx puts
//! the length first, both u32 little-endian. The decoder checks the length against the
//! configured limit as soon as the header is in, before any of the body is buffered.

use crate::config::FrameLayoutName;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Header size in bytes.
pub const HEADER_LEN: usize = 8;

/// One frame: a message id and its (still encoded) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message id.
    pub id: u32,
    /// Encoded body (protobuf or JSON).
    pub body: Bytes,
}

/// The header layout on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// id u32 BE, length u32 BE.
    #[default]
    Zinx,
    /// length u32 LE, id u32 LE.
    Legacy,
}

impl From<FrameLayoutName> for Layout {
    fn from(n: FrameLayoutName) -> Self {
        match n {
            FrameLayoutName::Zinx => Layout::Zinx,
            FrameLayoutName::Legacy => Layout::Legacy,
        }
    }
}

/// A frame the decoder refuses. Each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a body over the limit.
    #[error("frame of message {id} announces {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Message id from the header.
        id: u32,
        /// Announced body length.
        len: u32,
        /// The configured limit.
        max: u32,
    },
}

/// Decodes and encodes frames of one layout with one size limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Header layout.
    pub layout: Layout,
    /// Largest body accepted.
    pub max_body: u32,
}

impl FrameCodec {
    /// A codec for `layout` with a body limit.
    pub fn new(layout: Layout, max_body: u32) -> Self {
        FrameCodec { layout, max_body }
    }

    fn header(&self, h: &[u8]) -> (u32, u32) {
        let a = [h[0], h[1], h[2], h[3]];
        let b = [h[4], h[5], h[6], h[7]];
        match self.layout {
            Layout::Zinx => (u32::from_be_bytes(a), u32::from_be_bytes(b)),
            Layout::Legacy => (u32::from_le_bytes(b), u32::from_le_bytes(a)),
        }
    }

    /// Takes one frame off the front of `buf`. `Ok(None)` means "need more bytes" (the
    /// buffer is left as it was); an error means the stream is unusable.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some((id, len)) = self.peek(buf)? else { return Ok(None) };
        buf.advance(HEADER_LEN);
        let body = buf.split_to(len).freeze();
        Ok(Some(Frame { id, body }))
    }

    /// The id and body length of the whole frame at the front of `buf`, without consuming
    /// it; `Ok(None)` means "need more bytes" (and room for the rest is reserved).
    pub fn peek(&self, buf: &mut BytesMut) -> Result<Option<(u32, usize)>, FrameError> {
        let found = self.whole(buf)?;
        if found.is_none() && buf.len() >= HEADER_LEN {
            let (_, len) = self.header(&buf[..HEADER_LEN]);
            // Make room for the rest of this frame in one allocation, not several.
            buf.reserve(HEADER_LEN + len as usize - buf.len());
        }
        Ok(found)
    }

    /// The id and body length of the whole frame at the front of `buf`; `Ok(None)` when
    /// `buf` holds only part of one.
    pub fn whole(&self, buf: &[u8]) -> Result<Option<(u32, usize)>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (id, len) = self.header(&buf[..HEADER_LEN]);
        if len > self.max_body {
            return Err(FrameError::TooLarge { id, len, max: self.max_body });
        }
        if buf.len() < HEADER_LEN + len as usize {
            return Ok(None);
        }
        Ok(Some((id, len as usize)))
    }

    /// Appends one frame to `out`.
    pub fn encode_into(&self, id: u32, body: &[u8], out: &mut BytesMut) {
        out.reserve(HEADER_LEN + body.len());
        put_header(self.layout, id, body.len() as u32, out);
        out.put_slice(body);
    }

    /// One frame as its own buffer.
    pub fn encode(&self, id: u32, body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
        self.encode_into(id, body, &mut out);
        out.freeze()
    }
}

/// Appends a frame header for a body of `len` bytes.
pub fn put_header(layout: Layout, id: u32, len: u32, out: &mut BytesMut) {
    match layout {
        Layout::Zinx => {
            out.put_u32(id);
            out.put_u32(len);
        }
        Layout::Legacy => {
            out.put_u32_le(len);
            out.put_u32_le(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zinx_layout_worked_example() {
        // Ping{sn: 1} is protobuf 08 01; message id 1000 = 0x3e8.
        let c = FrameCodec::new(Layout::Zinx, 64);
        let bytes = c.encode(1000, &[0x08, 0x01]);
        assert_eq!(&bytes[..], &[0, 0, 0x03, 0xe8, 0, 0, 0, 2, 0x08, 0x01]);
        let legacy = FrameCodec::new(Layout::Legacy, 64).encode(1000, &[0x08, 0x01]);
        assert_eq!(&legacy[..], &[2, 0, 0, 0, 0xe8, 0x03, 0, 0, 0x08, 0x01]);
    }

    #[test]
    fn byte_by_byte_and_many_in_one_buffer() {
        let c = FrameCodec::new(Layout::Zinx, 1024);
        let mut wire = BytesMut::new();
        for i in 0..5u32 {
            c.encode_into(i, &vec![i as u8; i as usize * 3], &mut wire);
        }
        // All at once.
        let mut all = wire.clone();
        let mut got = Vec::new();
        while let Some(f) = c.decode(&mut all).expect("valid") {
            got.push(f);
        }
        assert_eq!(got.len(), 5);
        assert!(all.is_empty());
        // One byte at a time.
        let mut buf = BytesMut::new();
        let mut got2 = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = c.decode(&mut buf).expect("valid") {
                got2.push(f);
            }
        }
        assert_eq!(got, got2);
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let c = FrameCodec::new(Layout::Zinx, 100);
        let mut buf = BytesMut::from(&[0, 0, 0, 7, 0, 0, 0, 101][..]);
        assert_eq!(c.decode(&mut buf), Err(FrameError::TooLarge { id: 7, len: 101, max: 100 }));
        let mut ok = BytesMut::from(&[0, 0, 0, 7, 0, 0, 0, 100][..]);
        assert_eq!(c.decode(&mut ok), Ok(None), "at the limit is fine, body pending");
    }

    proptest! {
        #[test]
        fn frames_round_trip(
            frames in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
            legacy in any::<bool>(),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let c = FrameCodec::new(if legacy { Layout::Legacy } else { Layout::Zinx }, 300);
            let mut wire = BytesMut::new();
            for (id, body) in &frames {
                c.encode_into(*id, body, &mut wire);
            }
            // Feed the wire in arbitrary pieces.
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < wire.len() {
                let n = cuts[i % cuts.len()].min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..pos + n]);
                pos += n;
                i += 1;
                while let Some(f) = c.decode(&mut buf).expect("valid frames") {
                    out.push((f.id, f.body.to_vec()));
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let c = FrameCodec::new(Layout::Zinx, 64);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = c.decode(&mut buf) {}
        }
    }
}
