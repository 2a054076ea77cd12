//! The background reconciler, order side: measures, never repairs. It counts confirmed orders
//! whose inventory hold is not COMMITTED a grace period after confirmation, exports the count
//! as `order_inconsistencies{kind="confirmed_not_committed"}` and logs each of them with its
//! order_id and reservation_id.
//!
//! Two sources make up the count, because this service never reads the inventory schema:
//! - *queued*: confirmed orders whose saga still has its commit (or a hold to re-take) to do,
//!   confirmed longer ago than the grace. The order row itself says the hold is not
//!   committed, so they are counted from SQL alone, every tick, inventory reachable or not.
//! - *settled*: confirmed orders whose saga finished. Their hold must be COMMITTED; the
//!   inventory is asked (`GetReservation`), at most `batch` orders per tick. A pass walks all
//!   settled confirmed orders in id order, one page per tick, and starts over at the end; the
//!   orders found wrong ("suspects") are remembered and asked about again every tick until
//!   they heal, so the count stays right between two passes. Both COMMITTED and a confirmed
//!   order are final states, so an order found right stays right unless data is lost or
//!   tampered with, which the next pass catches.
//!
//! One replica runs the ticks at a time: the one holding the turn (a lease in
//! `orders.reconcile_runner`, three intervals long, renewed every tick). It stores its count
//! there, and every other replica exports that count, so every replica's gauge follows the
//! runner's. A new runner (the old one stopped or died) starts its walk from the first order.
//! When the inventory is unreachable the settled part keeps its last value and the failure is
//! logged once per outage.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use common::server::Readiness;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clients::{InventoryPeer, PeerError};
use crate::domain::OrderId;
use crate::domain::inconsistency::CONFIRMED_NOT_COMMITTED;
use crate::error::OrderError;
use crate::metrics;
use crate::store::{ConfirmedOrder, QueuedCommits, Store};

/// How many orders of each source one tick logs one by one (then only a count).
pub const LOG_SAMPLES: u32 = 20;

/// How the reconciler runs.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileConfig {
    /// Pause between two ticks; zero disables the reconciler.
    pub interval: Duration,
    /// How long after confirmation an order's hold may stay uncommitted (the commit may be
    /// retrying through a short inventory outage) before it counts.
    pub grace: Duration,
    /// Most `GetReservation` calls one tick makes.
    pub batch: u32,
}

/// Reconciles every `config.interval` until `stop` is cancelled, while `readiness` says the
/// database is reachable and migrated.
pub async fn run(
    store: Store,
    inventory: InventoryPeer,
    config: ReconcileConfig,
    readiness: Readiness,
    stop: CancellationToken,
) {
    if config.interval.is_zero() {
        tracing::info!("reconciler disabled (RECONCILE_INTERVAL_MS=0)");
        return;
    }
    let me = Uuid::now_v7();
    let turn = config.interval.saturating_mul(3);
    let mut reconciler = Reconciler::new(store.clone(), inventory, config);
    let mut failing = false;
    loop {
        if readiness.is_serving() {
            // A tick waiting on an unreachable inventory must not hold up shutdown; dropping
            // it midway is safe, its state changes are applied after its last await.
            let result = tokio::select! {
                result = turn_or_export(&store, &mut reconciler, me, turn) => result,
                () = stop.cancelled() => return,
            };
            match result {
                Ok(()) if failing => {
                    tracing::info!("order reconciliation recovered");
                    failing = false;
                }
                Ok(()) => {}
                Err(err) if !failing => {
                    tracing::warn!(error = %err, "order reconciliation incomplete; keeping the last known mismatches, retrying every interval");
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

/// A tick if this replica holds (or takes) the reconciler's turn, storing its count for the
/// others; else the count the runner stored, exported as this replica's.
async fn turn_or_export(
    store: &Store,
    reconciler: &mut Reconciler,
    me: Uuid,
    turn: Duration,
) -> Result<(), TickError> {
    if store.take_reconcile_turn(me, turn).await? {
        let total = reconciler.tick().await?;
        store.store_reconcile_result(me, total).await?;
        return Ok(());
    }
    let (total, finished_at) = store.shared_reconcile_result().await?;
    metrics::INCONSISTENCIES
        .with_label_values(&[CONFIRMED_NOT_COMMITTED])
        .set(i64::try_from(total).unwrap_or(i64::MAX));
    if let Some(at) = finished_at {
        metrics::RECONCILE_LAST_SUCCESS.set(at);
    }
    Ok(())
}

/// Why a tick could not finish.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The orders schema could not be read; the gauge keeps its last value.
    #[error("reading orders: {0}")]
    Database(#[from] OrderError),
    /// The inventory could not be asked; the settled part keeps its last value.
    #[error("asking the inventory: {0}")]
    Inventory(#[from] PeerError),
}

/// A settled confirmed order whose hold was not COMMITTED when last asked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Suspect {
    reservation_id: Option<Uuid>,
    why: String,
}

/// The reconciler's state between ticks: where the pass is, and the suspects.
pub struct Reconciler {
    store: Store,
    inventory: InventoryPeer,
    config: ReconcileConfig,
    /// The last order of the pass's previous page; None: the next page starts a new pass.
    cursor: Option<OrderId>,
    suspects: BTreeMap<OrderId, Suspect>,
    /// The last suspect asked about, so that more suspects than `batch` take turns.
    recheck_after: Option<OrderId>,
}

impl Reconciler {
    /// A reconciler at the start of its first pass.
    pub fn new(store: Store, inventory: InventoryPeer, config: ReconcileConfig) -> Self {
        Self {
            store,
            inventory,
            config,
            cursor: None,
            suspects: BTreeMap::new(),
            recheck_after: None,
        }
    }

    /// The mismatches known after the last tick, queued ones aside.
    pub fn suspects(&self) -> usize {
        self.suspects.len()
    }

    /// One tick: counts the queued commits, asks the inventory about up to `batch` settled
    /// orders, exports the gauge and logs the mismatches; returns the count. Its own trace:
    /// the tick's GetReservation calls are one trace, not one each.
    #[tracing::instrument(name = "reconcile.tick", skip_all)]
    pub async fn tick(&mut self) -> Result<u64, TickError> {
        let queued = self.store.queued_commits(self.config.grace, LOG_SAMPLES).await?;
        // Even when the inventory cannot be asked, the queued count is fresh: an inventory
        // outage is exactly when commits pile up.
        let verified = self.verify().await;
        let total = queued.count.saturating_add(self.suspects.len() as u64);
        metrics::INCONSISTENCIES
            .with_label_values(&[CONFIRMED_NOT_COMMITTED])
            .set(i64::try_from(total).unwrap_or(i64::MAX));
        self.log(&queued);
        verified?;
        metrics::RECONCILE_LAST_SUCCESS.set(chrono::Utc::now().timestamp());
        Ok(total)
    }

    /// Asks the inventory about the suspects (in turns) and the pass's next page; changes
    /// nothing unless every answer came.
    async fn verify(&mut self) -> Result<(), TickError> {
        let budget = usize::try_from(self.config.batch.max(1)).unwrap_or(usize::MAX);
        let recheck = take_turns(&self.suspects, self.recheck_after, budget);
        let still = if recheck.is_empty() {
            Vec::new()
        } else {
            self.store.settled_confirmed_among(&recheck).await?
        };
        let room = budget - recheck.len();
        let page = if room == 0 {
            Vec::new()
        } else {
            let limit = u32::try_from(room).unwrap_or(u32::MAX);
            self.store.settled_confirmed_after(self.cursor, self.config.grace, limit).await?
        };

        let mut found = Vec::new();
        for order in still.iter().chain(&page) {
            if let Some(why) = self.check(order).await? {
                found.push((*order, why));
            }
        }

        // Every answer came: apply. Re-checked suspects that healed, or are no longer settled
        // confirmed orders, drop out; the ones still wrong are re-added below.
        for id in &recheck {
            self.suspects.remove(id);
        }
        self.recheck_after = recheck.last().copied();
        if room > 0 {
            // A short page ends the pass; the next tick starts over from the first order.
            self.cursor = if page.len() < room { None } else { page.last().map(|o| o.id) };
        }
        for (order, why) in found {
            self.suspects.insert(order.id, Suspect { reservation_id: order.reservation_id, why });
        }
        Ok(())
    }

    /// Why `order`'s hold is not as a confirmed order needs it, or None when it is COMMITTED.
    async fn check(&self, order: &ConfirmedOrder) -> Result<Option<String>, PeerError> {
        let Some(reservation) = order.reservation_id else {
            return Ok(Some("confirmed without a recorded reservation".to_owned()));
        };
        Ok(match self.inventory.get_reservation(reservation).await? {
            Some(hold) if hold.status == "COMMITTED" => None,
            Some(hold) => Some(format!("reservation is {}", hold.status)),
            None => Some("reservation not found in the inventory".to_owned()),
        })
    }

    fn log(&self, queued: &QueuedCommits) {
        for order in &queued.samples {
            tracing::warn!(
                kind = CONFIRMED_NOT_COMMITTED,
                order_id = %order.id,
                reservation_id = %display_reservation(order.reservation_id),
                "confirmed order's inventory commit still queued after the grace period"
            );
        }
        let limit = usize::try_from(LOG_SAMPLES).unwrap_or(usize::MAX);
        for (id, suspect) in self.suspects.iter().take(limit) {
            tracing::warn!(
                kind = CONFIRMED_NOT_COMMITTED,
                order_id = %id,
                reservation_id = %display_reservation(suspect.reservation_id),
                detail = %suspect.why,
                "confirmed order's reservation is not committed"
            );
        }
        let unlisted = queued.count.saturating_sub(queued.samples.len() as u64)
            + self.suspects.len().saturating_sub(limit) as u64;
        if unlisted > 0 {
            tracing::warn!(
                kind = CONFIRMED_NOT_COMMITTED,
                unlisted,
                "more confirmed orders with an uncommitted reservation than logged one by one"
            );
        }
    }
}

/// Up to `budget` keys of `map`, continuing after `after` and wrapping around, so that more
/// keys than the budget all take turns over successive ticks.
fn take_turns<V>(
    map: &BTreeMap<OrderId, V>,
    after: Option<OrderId>,
    budget: usize,
) -> Vec<OrderId> {
    let tail = map
        .range((after.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded))
        .map(|(id, _)| *id);
    let head = after.into_iter().flat_map(|after| map.range(..=after).map(|(id, _)| *id));
    tail.chain(head).take(budget).collect()
}

fn display_reservation(id: Option<Uuid>) -> String {
    id.map_or_else(|| "none".to_owned(), |id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<OrderId> {
        (1..=n).map(|i| OrderId::from(Uuid::from_u128(i))).collect()
    }

    #[test]
    fn suspects_take_turns_and_wrap_around() {
        let all = ids(5);
        let map: BTreeMap<OrderId, ()> = all.iter().map(|id| (*id, ())).collect();
        assert_eq!(take_turns(&map, None, 2), all[..2]);
        assert_eq!(take_turns(&map, Some(all[1]), 2), all[2..4]);
        assert_eq!(take_turns(&map, Some(all[3]), 2), [all[4], all[0]]);
        // A budget above the count takes each once, starting after the last one asked.
        assert_eq!(take_turns(&map, Some(all[2]), 10), [all[3], all[4], all[0], all[1], all[2]]);
        // The last one asked may have healed and left the map meanwhile.
        let mut fewer = map.clone();
        fewer.remove(&all[1]);
        assert_eq!(take_turns(&fewer, Some(all[1]), 2), all[2..4]);
        assert!(take_turns(&BTreeMap::<OrderId, ()>::new(), Some(all[0]), 2).is_empty());
    }
}
