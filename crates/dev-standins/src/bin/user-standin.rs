//! `user-standin`: DEVELOPMENT STAND-IN for the User service. Not for production.

use clap::Parser;
use dev_standins::{UserApp, UserSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = UserSettings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    UserApp::build(settings).await?.run_until_stopped().await
}
