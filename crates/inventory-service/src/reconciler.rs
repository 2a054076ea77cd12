//! The background reconciler: measures, never repairs. Every interval it counts the stock
//! rows and holds that break an invariant (see [`InconsistencyKind`]), exports the counts as
//! `inventory_inconsistencies{kind}` and logs the mismatches with their SKU and warehouse.
//!
//! Every replica runs it and exports its own gauge. It only reads, in a read-only snapshot,
//! so replicas cannot disturb each other or live traffic; and a replica that skipped ticks
//! (as it would behind an advisory lock taken by another) would export a stale value that
//! `max(inventory_inconsistencies)` could never clear. The cost is one pass over the stock
//! rows and the movement ledger per replica per interval; raise `RECONCILE_INTERVAL_MS` (or
//! set it to 0 on some replicas) when the ledger grows large.

use std::time::Duration;

use common::server::Readiness;
use tokio_util::sync::CancellationToken;

use crate::domain::InconsistencyKind;
use crate::error::InventoryError;
use crate::metrics;
use crate::store::{Inconsistencies, Store};

/// How many mismatches of each kind one pass logs one by one (then only a count), so that a
/// mass corruption cannot flood the logs.
pub const LOG_SAMPLES: u32 = 20;

/// How the reconciler runs.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileConfig {
    /// Pause between two passes; zero disables the reconciler.
    pub interval: Duration,
    /// How long a PENDING hold may stay past its expiry before it counts as lapsed: the
    /// sweeper needs a few intervals to reach it.
    pub lapse_grace: Duration,
}

/// Reconciles every `config.interval` until `stop` is cancelled, while `readiness` says the
/// database is reachable and migrated.
pub async fn run(
    store: Store,
    config: ReconcileConfig,
    readiness: Readiness,
    stop: CancellationToken,
) {
    if config.interval.is_zero() {
        tracing::info!("reconciler disabled (RECONCILE_INTERVAL_MS=0)");
        return;
    }
    let mut failing = false;
    loop {
        if readiness.is_serving() {
            // A pass only reads: dropping it at a stop is safe.
            let pass = tokio::select! {
                pass = reconcile_once(&store, config.lapse_grace) => pass,
                () = stop.cancelled() => return,
            };
            match pass {
                Ok(_) if failing => {
                    tracing::info!("reconciliation recovered");
                    failing = false;
                }
                Ok(_) => {}
                // The gauges keep their last values (a database outage is not an
                // inconsistency); logged once per outage, not every tick.
                Err(err) if !failing => {
                    tracing::warn!(error = %err, "reconciliation failed; retrying every interval");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One pass: measures, exports the gauges, logs the mismatches, and returns what it found.
pub async fn reconcile_once(
    store: &Store,
    lapse_grace: Duration,
) -> Result<Inconsistencies, InventoryError> {
    let found = store.inconsistencies(lapse_grace, LOG_SAMPLES).await?;
    for report in &found.kinds {
        metrics::INCONSISTENCIES
            .with_label_values(&[report.kind.as_str()])
            .set(i64::try_from(report.count).unwrap_or(i64::MAX));
        log(report.kind, report.count, &report.samples);
    }
    metrics::RECONCILE_LAST_SUCCESS.set(chrono::Utc::now().timestamp());
    Ok(found)
}

fn log(kind: InconsistencyKind, count: u64, samples: &[crate::store::Mismatch]) {
    for m in samples {
        match m.reservation_id {
            Some(reservation_id) => tracing::warn!(
                kind = kind.as_str(),
                sku = %m.sku,
                warehouse_id = %m.warehouse_id,
                %reservation_id,
                detail = %m.detail,
                "inventory inconsistency"
            ),
            None => tracing::warn!(
                kind = kind.as_str(),
                sku = %m.sku,
                warehouse_id = %m.warehouse_id,
                detail = %m.detail,
                "inventory inconsistency"
            ),
        }
    }
    let unlisted = count.saturating_sub(samples.len() as u64);
    if unlisted > 0 {
        tracing::warn!(
            kind = kind.as_str(),
            count,
            unlisted,
            "more inventory inconsistencies of this kind than logged one by one"
        );
    }
}
