//! The TypeScript SDK (`clients/sdk-ts`) against the served binary: its integration test
//! registers two players, puts one on a WebSocket and one on the gate's TCP port, walks, chats,
//! befriends, plays a lockstep room and is taken over (`npm run test:integration`).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn the_typescript_sdk_plays_against_the_monolith() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/sdk-ts");
    if !sdk.join("node_modules/typescript").is_dir() {
        rsgame_testkit::skip("clients/sdk-ts/node_modules is missing: run `npm ci` in clients/sdk-ts (.ci/run does)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&write_config(dir.path(), ""), &[]);
    let out = Command::new("npm")
        .current_dir(&sdk)
        .args(["run", "--silent", "test:integration"])
        .env("RSGAME_SDK_SERVER", format!("http://127.0.0.1:{}", server.port))
        .env("RSGAME_SDK_TCP", format!("tcp://127.0.0.1:{}", server.gate_port))
        .output()
        .expect("npm runs");
    let text = text(&out);
    println!("{text}");
    assert!(out.status.success(), "the SDK's integration test failed:\n{text}");
    // Every test ran (none skipped for want of the server's address).
    assert!(text.contains("# fail 0") && text.contains("# skipped 0") && !text.contains("# pass 0"), "{text}");
}
