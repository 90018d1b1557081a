//! Generates the gRPC services and messages from `proto/usercenter.proto` and
//! `proto/basic.proto` and `proto/gamesvc.proto` with protox (pure Rust: no `protoc` on the build machine) and tonic.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [root.join("usercenter.proto"), root.join("basic.proto"), root.join("gamesvc.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
