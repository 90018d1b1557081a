//! Message bodies: protobuf (go-game's default) or JSON with the protobuf field names, and
//! the JSON text messages WebSocket clients may send instead of binary frames:
//! `{"id":100002,"data":{…}}`.

use crate::config::BodyCodec;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{HEADER_LEN, Layout, put_header};

/// A message the gate can carry: a protobuf message that is also serde-(de)serializable.
/// Every type in `rsgame_proto::pb` is one.
pub trait Message: prost::Message + Default + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T> Message for T where T: prost::Message + Default + Serialize + DeserializeOwned + Send + Sync + 'static {}

/// A body that does not decode as the message its id names.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Invalid protobuf.
    #[error("invalid protobuf body: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Invalid JSON, or JSON of the wrong shape.
    #[error("invalid JSON body: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a body with `codec`.
pub fn decode_body<M: Message>(codec: BodyCodec, body: &[u8]) -> Result<M, DecodeError> {
    Ok(match codec {
        BodyCodec::Protobuf => M::decode(body)?,
        BodyCodec::Json => serde_json::from_slice(body)?,
    })
}

/// Encodes a body with `codec`.
pub fn encode_body<M: Message>(codec: BodyCodec, msg: &M) -> Vec<u8> {
    match codec {
        BodyCodec::Protobuf => msg.encode_to_vec(),
        // A derived Serialize over plain data cannot fail; an empty object is the safe
        // fallback if a future message type ever could.
        BodyCodec::Json => serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// Everything that decides the bytes a session receives: frames of a layout with bodies of
/// a codec, or WebSocket JSON text messages. Sessions with the same `Wire` get the same
/// bytes, so a fan-out encodes once per distinct `Wire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Wire {
    /// Frame header layout.
    pub layout: Layout,
    /// Body codec.
    pub codec: BodyCodec,
    /// WebSocket text mode: each message is `{"id":…,"data":…}` JSON text, not a frame.
    pub text: bool,
}

impl Wire {
    /// Frames of `layout` with `codec` bodies.
    pub fn frames(layout: Layout, codec: BodyCodec) -> Self {
        Wire { layout, codec, text: false }
    }

    /// WebSocket JSON text messages.
    pub fn text() -> Self {
        Wire { layout: Layout::Zinx, codec: BodyCodec::Json, text: true }
    }

    /// The bytes that carry message `id` to a session of this wire: header and body built in
    /// one buffer, no intermediate copy.
    pub fn encode<M: Message>(&self, id: u32, msg: &M) -> Bytes {
        if self.text {
            return encode_text(id, msg);
        }
        let cap = match self.codec {
            BodyCodec::Protobuf => HEADER_LEN + msg.encoded_len(),
            BodyCodec::Json => HEADER_LEN + 64,
        };
        let mut out = BytesMut::with_capacity(cap);
        self.encode_into(id, msg, &mut out);
        out.freeze()
    }

    /// Frames a protobuf body encoded beforehand (for instance the parts of a repeated field,
    /// each encoded once and shared by many receivers, laid end to end) on a binary protobuf
    /// wire. Writes nothing and returns false on a text or JSON wire, which needs the message.
    pub fn encode_protobuf_body_into(&self, id: u32, body: &[u8], out: &mut BytesMut) -> bool {
        if self.text || self.codec != BodyCodec::Protobuf {
            return false;
        }
        out.reserve(HEADER_LEN + body.len());
        put_header(self.layout, id, body.len() as u32, out);
        out.extend_from_slice(body);
        true
    }

    /// Appends the frame for message `id` to `out` (binary wires; a text wire appends the
    /// JSON text).
    pub fn encode_into<M: Message>(&self, id: u32, msg: &M, out: &mut BytesMut) {
        if self.text {
            out.extend_from_slice(&encode_text(id, msg));
            return;
        }
        let start = out.len();
        match self.codec {
            BodyCodec::Protobuf => {
                let len = msg.encoded_len();
                out.reserve(HEADER_LEN + len);
                put_header(self.layout, id, len as u32, out);
                // Cannot fail: room for encoded_len was reserved.
                let _ = msg.encode(out);
            }
            BodyCodec::Json => {
                put_header(self.layout, id, 0, out);
                let mut w = std::mem::take(out).writer();
                let ok = serde_json::to_writer(&mut w, msg).is_ok();
                *out = w.into_inner();
                if !ok {
                    out.truncate(start + HEADER_LEN);
                    out.extend_from_slice(b"{}");
                }
                let len = (out.len() - start - HEADER_LEN) as u32;
                let (at, bytes) = match self.layout {
                    Layout::Zinx => (start + 4, len.to_be_bytes()),
                    Layout::Legacy => (start, len.to_le_bytes()),
                };
                out[at..at + 4].copy_from_slice(&bytes);
            }
        }
    }
}

#[derive(Serialize)]
struct TextOut<'a, M> {
    id: u32,
    data: &'a M,
}

#[derive(serde::Deserialize)]
struct TextIn<'a> {
    id: u32,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

fn encode_text<M: Message>(id: u32, msg: &M) -> Bytes {
    serde_json::to_vec(&TextOut { id, data: msg }).map(Bytes::from).unwrap_or_else(|_| Bytes::from_static(b"{}"))
}

/// Splits a WebSocket text message into its id and its JSON body (`{}` when `data` is absent).
pub fn decode_text(text: &str) -> Result<(u32, Bytes), serde_json::Error> {
    let t: TextIn<'_> = serde_json::from_str(text)?;
    let body = t.data.map_or_else(|| Bytes::from_static(b"{}"), |d| Bytes::copy_from_slice(d.get().as_bytes()));
    Ok((t.id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameCodec;
    use rsgame_proto::pb;

    #[test]
    fn a_body_encoded_in_parts_frames_like_the_whole_message() {
        use prost::Message as _;
        // A repeated message field: each element encoded alone is a valid part.
        let e = |id: i64| pb::Entity { id, name: format!("p{id}"), hp: 3, ..Default::default() };
        let whole = pb::SpawnResp { list: vec![e(1), e(7)] };
        let mut body = pb::SpawnResp { list: vec![e(1)] }.encode_to_vec();
        body.extend_from_slice(&pb::SpawnResp { list: vec![e(7)] }.encode_to_vec());
        for layout in [Layout::Zinx, Layout::Legacy] {
            let wire = Wire::frames(layout, BodyCodec::Protobuf);
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            assert!(wire.encode_protobuf_body_into(9, &body, &mut a));
            wire.encode_into(9, &whole, &mut b);
            assert_eq!(a, b);
        }
        let mut c = BytesMut::new();
        assert!(!Wire::frames(Layout::Zinx, BodyCodec::Json).encode_protobuf_body_into(9, &body, &mut c));
        assert!(!Wire::text().encode_protobuf_body_into(9, &body, &mut c));
        assert!(c.is_empty());
    }

    #[test]
    fn bodies_round_trip_in_both_codecs() {
        let m = pb::ChatMsg { user_id: 9, msg: "hi".into(), chat_type: 1, ..Default::default() };
        for codec in [BodyCodec::Protobuf, BodyCodec::Json] {
            let b = encode_body(codec, &m);
            let back: pb::ChatMsg = decode_body(codec, &b).expect("decode");
            assert_eq!(back, m);
        }
        assert!(decode_body::<pb::ChatMsg>(BodyCodec::Json, b"{\"userId\":\"x\"}").is_err());
        assert!(decode_body::<pb::ChatMsg>(BodyCodec::Protobuf, &[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn text_messages() {
        let (id, body) = decode_text(r#"{"id":100002,"data":{"msg":"hello","chatType":1}}"#).expect("parse");
        assert_eq!(id, 100_002);
        let m: pb::ChatMsg = decode_body(BodyCodec::Json, &body).expect("body");
        assert_eq!((m.msg.as_str(), m.chat_type), ("hello", 1));
        let (id, body) = decode_text(r#"{"id":1000}"#).expect("no data");
        assert_eq!((id, &body[..]), (1000, &b"{}"[..]));
        assert!(decode_text("not json").is_err());
        assert!(decode_text(r#"{"data":{}}"#).is_err(), "id is required");

        // Frames built in one buffer match header + separately encoded body, in every wire.
        let m = pb::PingResp { sn: 3, now_time: "t".into() };
        for layout in [Layout::Zinx, Layout::Legacy] {
            for codec in [BodyCodec::Protobuf, BodyCodec::Json] {
                let direct = Wire::frames(layout, codec).encode(2000, &m);
                let two_step = FrameCodec::new(layout, u32::MAX).encode(2000, &encode_body(codec, &m));
                assert_eq!(direct, two_step, "{layout:?} {codec:?}");
            }
        }

        let out = Wire::text().encode(2000, &pb::PingResp { sn: 3, now_time: "t".into() });
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v, serde_json::json!({"id": 2000, "data": {"sn": 3, "nowTime": "t"}}));
    }
}
