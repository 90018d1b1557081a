//! Generates the message types from `proto/*.proto` with protox (pure Rust: no `protoc` on
//! the build machine) and prost.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [root.join("game.proto"), root.join("events.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let mut cfg = prost_build::Config::new();
    // JSON bodies use the protobuf field names (camelCase, as go-game's clients send them);
    // missing fields take their defaults, like protobuf.
    // Enums stay plain: on the wire and in JSON they are the int32 fields that hold them.
    cfg.message_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    cfg.message_attribute(".", "#[serde(rename_all = \"camelCase\", default)]");
    // go-game's Site has capital field names (X, Y, Z, V), and so does its JSON.
    for f in ["X", "Y", "Z", "V"] {
        cfg.field_attribute(format!(".pb.Site.{f}"), format!("#[serde(rename = \"{f}\")]"));
    }
    cfg.compile_fds(fds)?;
    Ok(())
}
