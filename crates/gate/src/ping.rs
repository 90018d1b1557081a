//! go-game's Ping (1000 → 2000), built into every router: the sequence number back with the
//! server's time. A client may send it many times a second, so the answer is built without
//! an allocation: the time is a fixed 24-byte text read from the coarse clock, and the reply
//! type encodes exactly as `pb::PingResp` (protobuf and JSON) without owning a `String`.

use bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use rsgame_kit::time::{RFC3339_LEN, coarse_rfc3339};
use rsgame_proto::{ids, pb};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::session::Session;

/// The handler: answers on the session (a failed send means it is closing: nothing to say).
pub(crate) fn ping(session: &Session, msg: pb::Ping) -> rsgame_kit::Result<()> {
    let _ = session.send(ids::PING_RESP, &PingReply { sn: msg.sn, now_time: TimeText(coarse_rfc3339()) });
    Ok(())
}

/// `pb::PingResp` with its time held inline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PingReply {
    pub sn: i64,
    pub now_time: TimeText,
}

/// RFC 3339 text of [`RFC3339_LEN`] bytes; all zero bytes mean none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeText(pub [u8; RFC3339_LEN]);

impl Default for TimeText {
    fn default() -> Self {
        TimeText([0; RFC3339_LEN])
    }
}

impl TimeText {
    /// The text's bytes, none when unset. Always UTF-8: only `coarse_rfc3339`'s ASCII and
    /// whole strings of exactly this length are ever stored, so the per-message path (the
    /// protobuf encoding) takes the bytes without checking them again.
    fn bytes(&self) -> &[u8] {
        if self.0[0] == 0 { &[] } else { &self.0 }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap_or("")
    }
}

impl Serialize for TimeText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TimeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(TimeText::from_text(&s))
    }
}

impl TimeText {
    /// Text of another length (not ours) reads as none rather than a cut one.
    fn from_text(s: &str) -> TimeText {
        let mut t = TimeText::default();
        if s.len() == RFC3339_LEN {
            t.0.copy_from_slice(s.as_bytes());
        }
        t
    }
}

impl prost::Message for PingReply {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.sn != 0 {
            prost::encoding::int64::encode(1, &self.sn, buf);
        }
        let text = self.now_time.bytes();
        if !text.is_empty() {
            prost::encoding::encode_key(2, WireType::LengthDelimited, buf);
            prost::encoding::encode_varint(text.len() as u64, buf);
            buf.put_slice(text);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => prost::encoding::int64::merge(wire_type, &mut self.sn, buf, ctx),
            2 => {
                let mut s = String::new();
                prost::encoding::string::merge(wire_type, &mut s, buf, ctx)?;
                self.now_time = TimeText::from_text(&s);
                Ok(())
            }
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let sn = if self.sn != 0 { prost::encoding::int64::encoded_len(1, &self.sn) } else { 0 };
        let n = self.now_time.bytes().len();
        let text = if n > 0 { 1 + prost::encoding::encoded_len_varint(n as u64) + n } else { 0 };
        sn + text
    }

    fn clear(&mut self) {
        *self = PingReply::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn the_reply_is_byte_for_byte_a_ping_resp() {
        let now = coarse_rfc3339();
        for sn in [0, 1, -1, 1_700_000_000_123, i64::MAX] {
            let ours = PingReply { sn, now_time: TimeText(now) };
            let theirs = pb::PingResp { sn, now_time: String::from_utf8(now.to_vec()).expect("ascii") };
            assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec(), "protobuf, sn {sn}");
            assert_eq!(ours.encoded_len(), theirs.encoded_len());
            assert_eq!(
                serde_json::to_value(&ours).expect("json"),
                serde_json::to_value(&theirs).expect("json"),
                "JSON, sn {sn}"
            );
            let back = PingReply::decode(theirs.encode_to_vec().as_slice()).expect("decodes");
            assert_eq!(back, ours);
        }
        let empty = PingReply::default();
        assert_eq!(empty.encode_to_vec(), pb::PingResp::default().encode_to_vec());
    }
}
