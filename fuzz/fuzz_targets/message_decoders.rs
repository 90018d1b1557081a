//! Every message decoder the gate uses — protobuf and JSON bodies of each go-game message,
//! and WebSocket JSON text messages — on arbitrary bytes: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsgame_gate::codec::{decode_body, decode_text};
use rsgame_kit::config::BodyCodec;
use rsgame_proto::pb;

fn all(codec: BodyCodec, data: &[u8]) {
    let _ = decode_body::<pb::Ping>(codec, data);
    let _ = decode_body::<pb::GameLogin>(codec, data);
    let _ = decode_body::<pb::EnterRoom>(codec, data);
    let _ = decode_body::<pb::ChatMsg>(codec, data);
    let _ = decode_body::<pb::CreateRoom>(codec, data);
    let _ = decode_body::<pb::RoomList>(codec, data);
    let _ = decode_body::<pb::QuitRoom>(codec, data);
    let _ = decode_body::<pb::AddFriend>(codec, data);
    let _ = decode_body::<pb::MyFriend>(codec, data);
    let _ = decode_body::<pb::Move>(codec, data);
    let _ = decode_body::<pb::Attack>(codec, data);
    let _ = decode_body::<pb::Logout>(codec, data);
    let _ = decode_body::<pb::MoveResp>(codec, data);
    let _ = decode_body::<pb::EnterRoomResp>(codec, data);
}

fuzz_target!(|data: &[u8]| {
    all(BodyCodec::Protobuf, data);
    all(BodyCodec::Json, data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((_, body)) = decode_text(text) {
            all(BodyCodec::Json, &body);
        }
    }
});
