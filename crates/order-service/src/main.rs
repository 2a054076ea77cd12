//! `order-service`: reads its settings, starts telemetry, runs the server.

use clap::Parser;
use order_service::{App, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `<binary> healthcheck`: container probe of the own grpc.health.v1, before any settings.
    common::healthcheck::exit_if_requested(order_service::settings::DEFAULT_GRPC_ADDR).await;
    // Before the listeners bind: a SIGTERM from then on is a clean stop.
    let stop = common::shutdown::signal();
    // `<binary> migrate`: the migrations once, then exit (a deploy step or init container).
    let (migrate_only, args) = common::db::migrate_requested(std::env::args_os());
    let settings = Settings::parse_from(args);
    common::telemetry::init(&settings.log.rust_log, settings.log.log_format);
    if migrate_only {
        order_service::app::migrate(&settings).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    App::build(settings).await?.run_until(stop).await
}
