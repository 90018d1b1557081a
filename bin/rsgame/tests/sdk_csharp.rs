//! The C# SDK (`clients/sdk-csharp`) against the served binary: its build script checks the
//! generated files, compiles the SDK and its tests with Mono, and runs them with NUnit — the
//! unit tests, and the integration tests against this server (two players register, log in,
//! walk, chat, play a lockstep room, drop and resume, are taken over, log out). Needs Mono's
//! `mcs`, NUnit 2.6's console and Python 3: set `RSGAME_TEST_MONO=1` where they are installed.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn the_csharp_sdk_plays_against_the_monolith() {
    let Some([_mono]) = rsgame_testkit::services(["RSGAME_TEST_MONO"]) else {
        return;
    };
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/sdk-csharp");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&write_config(dir.path(), ""), &[]);
    let out = Command::new("bash")
        .arg(sdk.join("build.sh"))
        .env("RSGAME_SDK_SERVER", format!("http://127.0.0.1:{}", server.port))
        .output()
        .expect("bash runs");
    let text = text(&out);
    println!("{text}");
    assert!(out.status.success(), "the C# SDK's build or tests failed:\n{text}");
    // Passed, not ignored: build.sh names each test with its result.
    for name in ["TwoPlayersWalkChatAndPlayLockstep", "ADroppedConnectionResumesAndASecondLoginTakesOver"] {
        let line = format!("passed: Rsgame.Tests.IntegrationTests.{name}");
        assert!(text.contains(&line), "no `{line}` in the output:\n{text}");
    }
}
