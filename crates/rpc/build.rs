//! Generates the gRPC services and messages from `proto/usercenter.proto`,
//! `proto/basic.proto`, `proto/gamesvc.proto` and the etcd subset in `proto/etcd/` with
//! protox (pure Rust: no `protoc` on the build machine) and tonic.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [root.join("usercenter.proto"), root.join("basic.proto"), root.join("gamesvc.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure().compile_fds(fds)?;

    // etcd: clients only (rsgame never serves etcd's API).
    let etcd = root.join("etcd");
    let files = [etcd.join("kv.proto"), etcd.join("rpc.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&etcd])?;
    tonic_prost_build::configure().build_server(false).compile_fds(fds)?;
    Ok(())
}
