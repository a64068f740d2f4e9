//! Compiles every `folio/**/*.proto` with protox (a pure-Rust protobuf
//! compiler, so a fresh machine needs no `protoc`) and writes the file
//! descriptor set that the api-server serves through gRPC reflection. The
//! tonic server and client code is generated only for the crate's `server`
//! and `client` features (Cargo tells a build script its features through
//! `CARGO_FEATURE_*`); the messages are always generated.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Cargo watches the whole directory, so a new or changed proto rebuilds.
    println!("cargo:rerun-if-changed=folio");
    let mut protos = Vec::new();
    collect(Path::new("folio"), &mut protos)?;
    protos.sort();
    let fds = protox::compile(&protos, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("folio_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(env::var_os("CARGO_FEATURE_SERVER").is_some())
        // Hand-written (src/watch.rs): it can carry its own encoding.
        .extern_path(".folio.v1.WatchResponse", "crate::watch::WatchResponse")
        .compile_fds(fds)?;
    Ok(())
}

fn collect(dir: &Path, protos: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, protos)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            protos.push(path);
        }
    }
    Ok(())
}
