//! Compiles every proto under `proto/` in pure Rust (protox), so no system `protoc` is needed,
//! and writes the encoded descriptor set that gRPC reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "events/v1/events.proto",
    "inventory/v1/inventory.proto",
    "order/v1/order.proto",
    "product/v1/product.proto",
    "payment/v1/payment.proto",
    "user/v1/user.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let fds = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
