//! `product-standin`: DEVELOPMENT STAND-IN for the Product service. Not for production.

use clap::Parser;
use dev_standins::{ProductApp, ProductSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `<binary> healthcheck`: container probe of the own grpc.health.v1, before any settings.
    common::healthcheck::exit_if_requested(dev_standins::settings::PRODUCT_GRPC_ADDR).await;
    // Before the listeners bind: a SIGTERM from then on is a clean stop.
    let stop = common::shutdown::signal();
    let settings = ProductSettings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    ProductApp::build(settings).await?.run_until(stop).await
}
