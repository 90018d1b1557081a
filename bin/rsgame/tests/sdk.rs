//! The TypeScript SDK (`clients/sdk-ts`) against the served binary: its integration test
//! registers two players, puts one on a WebSocket and one on the gate's TCP port, walks, chats,
//! befriends, plays a lockstep room and is taken over (`npm run test:integration`); then every
//! example in `clients/sdk-ts/examples` runs as documented and must exit 0.

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
    // The examples register a few players each, all from this address.
    let server =
        Server::start(&write_config(dir.path(), ""), &[("RSGAME_USERCENTER__REGISTER_CAPTCHA_AFTER_PER_IP", "0")]);
    let out = Command::new("npm")
        .current_dir(&sdk)
        .args(["run", "--silent", "test:integration"])
        .env("RSGAME_SDK_SERVER", format!("http://127.0.0.1:{}", server.port))
        .env("RSGAME_SDK_TCP", format!("tcp://127.0.0.1:{}", server.gate_port))
        .output()
        .expect("npm runs");
    let said = text(&out);
    println!("{said}");
    assert!(out.status.success(), "the SDK's integration test failed:\n{said}");
    // Every test ran (none skipped for want of the server's address).
    assert!(said.contains("# fail 0") && said.contains("# skipped 0") && !said.contains("# pass 0"), "{said}");

    let mut examples: Vec<_> = std::fs::read_dir(sdk.join("examples"))
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "mjs")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('_'))
        })
        .collect();
    examples.sort();
    assert!(examples.len() >= 10, "an example per feature: {examples:?}");
    for example in examples {
        let out = Command::new("node")
            .current_dir(&sdk)
            .arg("--experimental-websocket")
            .arg(&example)
            .env("RSGAME_SERVER", format!("http://127.0.0.1:{}", server.port))
            .output()
            .expect("node runs");
        let said = text(&out);
        println!("{}:\n{said}", example.display());
        assert!(out.status.success(), "{} failed:\n{said}", example.display());
    }
}
