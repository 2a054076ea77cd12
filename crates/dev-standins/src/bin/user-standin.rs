//! `user-standin`: DEVELOPMENT STAND-IN for the User service. Not for production.

use clap::Parser;
use dev_standins::{UserApp, UserSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `<binary> healthcheck`: container probe of the own grpc.health.v1, before any settings.
    common::healthcheck::exit_if_requested(dev_standins::settings::USER_GRPC_ADDR).await;
    let settings = UserSettings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    UserApp::build(settings).await?.run_until_stopped().await
}
