//! The background task that releases holds past their expiry.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::store::Store;

/// Sweeps every `interval` until `stop` is cancelled; a full batch sweeps again at once. A
/// sweep in progress finishes (it is one transaction): the stop is taken between sweeps.
pub async fn run(store: Store, interval: Duration, batch: u32, stop: CancellationToken) {
    let mut failing = false;
    while !stop.is_cancelled() {
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
            () = stop.cancelled() => return,
        }
    }
}
