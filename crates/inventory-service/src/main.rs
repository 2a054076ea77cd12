//! `inventory-service`: reads its settings, starts telemetry, runs the server.

use clap::Parser;
use inventory_service::{App, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `<binary> healthcheck`: container probe of the own grpc.health.v1, before any settings.
    common::healthcheck::exit_if_requested(inventory_service::settings::DEFAULT_GRPC_ADDR).await;
    let settings = Settings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    App::build(settings).await?.run_until_stopped().await
}
