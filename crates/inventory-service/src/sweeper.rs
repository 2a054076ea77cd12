//! The background task that releases holds past their expiry.

use std::time::Duration;

use tokio::sync::watch;

use crate::metrics;
use crate::store::Store;

/// Sweeps every `interval` until `stop` flips; a full batch sweeps again at once.
pub async fn run(store: Store, interval: Duration, batch: u32, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        match store.sweep_expired(batch).await {
            Ok(report) => {
                if failing {
                    tracing::info!("expiry sweep recovered");
                    failing = false;
                }
                metrics::EXPIRED_HOLDS.with_label_values(&[] as &[&str]).inc_by(report.expired);
                if report.expired >= u64::from(batch) {
                    continue;
                }
            }
            // Logged once per outage, not every tick: the database being down is already
            // visible through health and every RPC.
            Err(err) if !failing => {
                tracing::warn!(error = %err, "expiry sweep failed; retrying every interval");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
