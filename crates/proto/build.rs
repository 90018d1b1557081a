//! Generates the message types from `proto/*.proto` with protox (pure Rust: no `protoc` on
//! the build machine) and prost.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("game.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    let mut cfg = prost_build::Config::new();
    // JSON bodies use the protobuf field names (camelCase, as go-game's clients send them);
    // missing fields take their defaults, like protobuf.
    cfg.type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    cfg.type_attribute(".", "#[serde(rename_all = \"camelCase\", default)]");
    // go-game's Site has capital field names (X, Y, Z, V), and so does its JSON.
    for f in ["X", "Y", "Z", "V"] {
        cfg.field_attribute(format!(".pb.Site.{f}"), format!("#[serde(rename = \"{f}\")]"));
    }
    cfg.compile_fds(fds)?;
    Ok(())
}
