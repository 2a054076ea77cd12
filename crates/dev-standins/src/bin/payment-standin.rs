//! `payment-standin`: DEVELOPMENT STAND-IN for the Payment service. Not for production.

use clap::Parser;
use dev_standins::{PaymentApp, PaymentSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = PaymentSettings::parse();
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    PaymentApp::build(settings).await?.run_until_stopped().await
}
