//! The background task that removes history past its keep period (see `store::retention`).
//!
//! Every replica may run it: each batch is one transaction that only a row's deleter counts,
//! so two replicas share the work instead of doubling it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::store::{Retained, Store};

/// How long each kind of history is kept; `None` keeps it forever.
#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    /// Pause between two rounds; zero disables retention.
    pub interval: Duration,
    /// Most rows one batch (one transaction) removes.
    pub batch: u32,
    /// Ledger movements.
    pub movements: Option<Duration>,
    /// Settled holds (their references become free again).
    pub settled_holds: Option<Duration>,
    /// AdjustStock idempotency keys.
    pub adjustment_keys: Option<Duration>,
}

impl RetentionConfig {
    fn keep(&self, what: Retained) -> Option<Duration> {
        match what {
            Retained::Movements => self.movements,
            Retained::SettledHolds => self.settled_holds,
            Retained::AdjustmentKeys => self.adjustment_keys,
        }
    }
}

/// Runs a round every `config.interval` until `stop` is cancelled. A batch in progress
/// finishes (one transaction); the stop is taken between batches.
pub async fn run(store: Store, config: RetentionConfig, stop: CancellationToken) {
    if config.interval.is_zero() {
        tracing::info!("retention disabled (RETENTION_INTERVAL_MS=0)");
        return;
    }
    let mut failing = false;
    while !stop.is_cancelled() {
        match round(&store, &config, &stop).await {
            Ok(()) if failing => {
                tracing::info!("retention recovered");
                failing = false;
            }
            Ok(()) => {}
            Err(err) if !failing => {
                tracing::warn!(error = %err, "retention failed; retrying every interval");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Removes every kind's old rows, batch after batch, until a batch comes back short.
pub async fn round(
    store: &Store,
    config: &RetentionConfig,
    stop: &CancellationToken,
) -> Result<(), crate::error::InventoryError> {
    for what in Retained::ALL {
        let Some(keep) = config.keep(what) else { continue };
        loop {
            let removed = store.remove_old(what, keep, config.batch).await?;
            metrics::RETENTION_REMOVED.with_label_values(&[what.as_str()]).inc_by(removed);
            if removed < u64::from(config.batch) || stop.is_cancelled() {
                break;
            }
        }
    }
    Ok(())
}
