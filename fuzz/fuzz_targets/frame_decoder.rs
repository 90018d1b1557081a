//! The frame decoder on arbitrary bytes, fed in arbitrary pieces, in both layouts: it must
//! never panic, never return a frame over the limit, and never lose or invent bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsgame_gate::frame::{FrameCodec, HEADER_LEN, Layout};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let layout = if ctl & 1 == 0 { Layout::Zinx } else { Layout::Legacy };
    let max = 1 + (ctl as u32 >> 1) * 64;
    let codec = FrameCodec::new(layout, max);
    let step = 1 + (ctl as usize % 7);
    let mut buf = BytesMut::new();
    let mut consumed = 0usize;
    for chunk in rest.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.body.len() as u32 <= max);
                    consumed += HEADER_LEN + f.body.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(consumed + buf.len(), rest.len());
});
