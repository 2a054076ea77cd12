//! The background reconciler: measures, never repairs. Every interval it counts the stock
//! rows and holds that break an invariant (see [`InconsistencyKind`]), exports the counts as
//! `inventory_inconsistencies{kind}` and logs the mismatches with their SKU and warehouse.
//!
//! One replica runs a pass at a time (an advisory lock); a replica whose turn it was not, or
//! that finds a pass finished less than half an interval ago, exports the counts that pass
//! stored instead, so every replica's gauge follows the latest pass and none goes stale. A
//! pass reads the ledger since its checkpoints only (see `store::reconcile`): its cost follows
//! the traffic since the last pass, not the history. A full verification (every movement)
//! runs when the last one is older than `full_every`, or when an operator asks for one.

use std::time::Duration;

use common::server::Readiness;
use tokio_util::sync::CancellationToken;

use crate::domain::InconsistencyKind;
use crate::error::InventoryError;
use crate::metrics;
use crate::store::{Inconsistencies, Scope, SharedResults, Store, Turn};

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
    /// Age of the last full verification past which a pass verifies in full (`None`: only
    /// when asked).
    pub full_every: Option<Duration>,
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
                pass = tick(&store, &config) => pass,
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

/// One interval's work: a pass if it is this replica's turn, else the stored counts.
async fn tick(store: &Store, config: &ReconcileConfig) -> Result<(), InventoryError> {
    let shared = store.shared_results().await?;
    let fresh = chrono::Utc::now().timestamp() - shared.finished_at
        < i64::try_from((config.interval / 2).as_secs()).unwrap_or(i64::MAX);
    if fresh {
        export(&shared);
        return Ok(());
    }
    let scope = Scope::Incremental { full_every: config.full_every };
    match store.reconcile(scope, config.lapse_grace, LOG_SAMPLES, Turn::Skip).await? {
        Some(found) => report(&found),
        // Another replica's pass had the turn: export what it stores when done.
        None => export(&store.shared_results().await?),
    }
    Ok(())
}

/// One incremental pass, now (after any pass in progress): measures, exports the gauges,
/// logs the mismatches, and returns what it found.
pub async fn reconcile_once(
    store: &Store,
    lapse_grace: Duration,
) -> Result<Inconsistencies, InventoryError> {
    pass(store, Scope::Incremental { full_every: None }, lapse_grace).await
}

/// A full verification, now: every movement and every checkpoint, as [`reconcile_once`].
pub async fn verify_full(
    store: &Store,
    lapse_grace: Duration,
) -> Result<Inconsistencies, InventoryError> {
    pass(store, Scope::Full, lapse_grace).await
}

async fn pass(
    store: &Store,
    scope: Scope,
    lapse_grace: Duration,
) -> Result<Inconsistencies, InventoryError> {
    let found = store.reconcile(scope, lapse_grace, LOG_SAMPLES, Turn::Wait).await?;
    // Turn::Wait returns only with a pass of its own.
    let found =
        found.ok_or_else(|| InventoryError::Internal(anyhow::anyhow!("reconcile pass skipped")))?;
    report(&found);
    Ok(found)
}

/// Exports and logs a pass this replica ran.
fn report(found: &Inconsistencies) {
    for report in &found.kinds {
        metrics::INCONSISTENCIES
            .with_label_values(&[report.kind.as_str()])
            .set(i64::try_from(report.count).unwrap_or(i64::MAX));
        log(report.kind, report.count, &report.samples);
    }
    let scope = if found.full { "full" } else { "incremental" };
    metrics::RECONCILE_PASS_SECONDS
        .with_label_values(&[scope])
        .observe(found.elapsed.as_secs_f64());
    metrics::LEDGER_TAIL.set(i64::try_from(found.tail_after).unwrap_or(i64::MAX));
    metrics::RECONCILE_LAST_SUCCESS.set(chrono::Utc::now().timestamp());
    tracing::debug!(
        full = found.full,
        tail_movements = found.tail_movements,
        tail_after = found.tail_after,
        elapsed_ms = u64::try_from(found.elapsed.as_millis()).unwrap_or(u64::MAX),
        "reconcile pass done"
    );
}

/// Exports the counts another replica's pass stored.
fn export(shared: &SharedResults) {
    for (kind, count) in &shared.counts {
        metrics::INCONSISTENCIES
            .with_label_values(&[kind.as_str()])
            .set(i64::try_from(*count).unwrap_or(i64::MAX));
    }
    if shared.finished_at > 0 {
        metrics::RECONCILE_LAST_SUCCESS.set(shared.finished_at);
    }
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
