//! `product-standin`: DEVELOPMENT STAND-IN for the Product service. Not for production.

use clap::Parser;
use dev_standins::{ProductApp, ProductSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = ProductSettings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    ProductApp::build(settings).await?.run_until_stopped().await
}
