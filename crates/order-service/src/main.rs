//! `order-service`: reads its settings, starts telemetry, runs the server.

use clap::Parser;
use order_service::{App, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    App::build(settings).await?.run_until_stopped().await
}
