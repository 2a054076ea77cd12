//! The recovery worker: resumes every order (and every return) whose saga step is due and whose lease is free or
//! lapsed (its driver crashed, a step is waiting for its retry, or a request ran out of
//! budget). It runs at start, so a restart resumes everything, and on every replica: claims
//! use `FOR UPDATE SKIP LOCKED`, and a claimed order is leased to one driver.

use std::sync::Arc;
use std::time::Duration;

use common::server::Readiness;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Engine, Prior};
use crate::error::OrderError;
use crate::metrics;
use crate::store::Store;

/// How the worker runs.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryConfig {
    /// Pause between two scans.
    pub interval: Duration,
    /// Most orders this replica drives at once.
    pub batch: u32,
    /// Lease a claim takes on each order.
    pub lease: Duration,
}

/// Scans every `config.interval` until `stop` is cancelled, driving claimed orders on
/// `tasks`; scans only while `readiness` says the database is reachable and migrated.
pub async fn run(
    engine: Engine,
    store: Store,
    config: RecoveryConfig,
    readiness: Readiness,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    // One owner id per worker: its leases are told apart from request-held ones.
    let owner = Uuid::now_v7();
    let batch = config.batch.max(1);
    let permits = Arc::new(Semaphore::new(usize::try_from(batch).unwrap_or(1)));
    let mut failing = false;
    loop {
        if readiness.is_serving() {
            match scan(&engine, &store, &config, owner, &permits, &tasks).await {
                Ok(()) if failing => {
                    tracing::info!("saga recovery scan recovered");
                    failing = false;
                }
                Ok(()) => {}
                // Logged once per outage: the database being down is already visible
                // through health and every RPC.
                Err(err) if !failing => {
                    tracing::warn!(error = %err, "saga recovery scan failed; retrying every interval");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn scan(
    engine: &Engine,
    store: &Store,
    config: &RecoveryConfig,
    owner: Uuid,
    permits: &Arc<Semaphore>,
    tasks: &TaskTracker,
) -> Result<(), OrderError> {
    let backlog = store.backlog().await?;
    metrics::SAGA_BACKLOG.set(backlog.count);
    metrics::SAGA_OLDEST_PENDING.set(backlog.oldest_seconds);
    metrics::SAGA_PARKED.set(backlog.parked);
    metrics::RETURNS_NEEDING_OPERATOR.set(store.returns_needing_operator().await?);

    let free = u32::try_from(permits.available_permits()).unwrap_or(u32::MAX);
    if free == 0 {
        return Ok(());
    }
    for claimed in store.claim_due(owner, config.lease, free).await? {
        let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
            // Cannot happen (only this loop takes permits), but never strand a claim.
            store.give_back(claimed, owner).await?;
            continue;
        };
        let engine = engine.clone();
        let id = claimed.id;
        let prior = if claimed.lapsed { Prior::Lapsed } else { Prior::Recorded };
        // A trace of its own (the request that created the order is long answered), linked
        // to that request's: its peer calls carry this one's context.
        let span = tracing::info_span!(parent: None, "saga.recover", order_id = %id, lapsed = claimed.lapsed);
        if let Some(origin) = &claimed.origin {
            origin.link(&span);
        }
        tasks.spawn(
            async move {
                let _permit = permit;
                match engine.drive(id, owner, prior).await {
                    Ok(drive) => tracing::debug!(end = ?drive.end, "recovery drive ended"),
                    Err(err) => {
                        tracing::warn!(error = %err, "recovery drive failed; the order stays due")
                    }
                }
            }
            .instrument(span),
        );
    }
    resume_returns(engine, store, config, owner, permits, tasks).await
}

/// Claims due returns (their lease free or lapsed, none needing an operator) with the permits
/// the orders left, and drives each: a return's steps are idempotent on the peers, so a
/// lapsed driver's work is simply repeated.
async fn resume_returns(
    engine: &Engine,
    store: &Store,
    config: &RecoveryConfig,
    owner: Uuid,
    permits: &Arc<Semaphore>,
    tasks: &TaskTracker,
) -> Result<(), OrderError> {
    let free = u32::try_from(permits.available_permits()).unwrap_or(u32::MAX);
    if free == 0 {
        return Ok(());
    }
    // Measured before the claim takes the leases, so each surely holds until then + lease.
    let leased_at = tokio::time::Instant::now();
    for id in store.claim_due_returns(owner, config.lease, free).await? {
        // A claim the permits cannot cover lapses and is claimed again: nothing is lost.
        let Ok(permit) = Arc::clone(permits).try_acquire_owned() else { continue };
        let engine = engine.clone();
        // A trace of its own; unlike an order's, a return keeps no link to its request's.
        let span = tracing::info_span!(parent: None, "saga.recover_return", return_id = %id);
        tasks.spawn(
            async move {
                let _permit = permit;
                match engine.drive_return(id, owner, leased_at).await {
                    Ok(end) => tracing::debug!(?end, "recovery drive of a return ended"),
                    Err(err) => {
                        tracing::warn!(error = %err, "recovery drive of a return failed; it stays due")
                    }
                }
            }
            .instrument(span),
        );
    }
    Ok(())
}
