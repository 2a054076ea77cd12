//! Retention: removes what is older than its keep period, in small batches, each one
//! transaction. Removed movements leave their sums in `ledger_base`, so the ledger still
//! proves every stock row (see `store::reconcile`).

use std::time::Duration;

use common::retention::History;

use super::Store;
use crate::error::InventoryError;

/// Movements older than `$1` ms that the checkpoints already hold (below the horizon), at
/// most `$2`, removed with their sums added to the base in the same statement. Concurrent
/// removers cannot count a row twice: only the statement that deletes a row returns it.
const RETIRE_MOVEMENTS: &str = "
    with doomed as (
        select id from inventory.movements
         where created_at < now() - $1 * interval '1 millisecond'
           and (txid is null or txid < (select through_txid from inventory.ledger_horizon))
         limit $2),
    gone as (
        delete from inventory.movements m using doomed where m.id = doomed.id
        returning m.stock_level_id, m.on_hand_delta, m.reserved_delta),
    based as (
        insert into inventory.ledger_base as b (stock_level_id, on_hand, reserved)
        select stock_level_id, sum(on_hand_delta), sum(reserved_delta) from gone
         group by stock_level_id
        on conflict (stock_level_id) do update
           set on_hand = b.on_hand + excluded.on_hand, reserved = b.reserved + excluded.reserved
        returning 1)
    select (select count(*) from gone)::bigint, (select count(*) from based)::bigint";

/// Settled holds (committed, cancelled, expired) last changed more than `$1` ms ago (a return
/// changes its hold), with their lines and returns; their references are free again
/// afterwards, and a return under one of their keys would be refused as unknown hold.
const REMOVE_SETTLED_HOLDS: &str = "
    with doomed as (
        select id from inventory.reservations
         where status <> 'PENDING' and updated_at < now() - $1 * interval '1 millisecond'
         limit $2
           for update skip locked),
    lines as (
        delete from inventory.reservation_items ri using doomed where ri.reservation_id = doomed.id),
    return_lines as (
        delete from inventory.stock_return_lines l
         using inventory.stock_returns sr, doomed
         where l.return_id = sr.id and sr.reservation_id = doomed.id),
    returns as (
        delete from inventory.stock_returns sr using doomed where sr.reservation_id = doomed.id),
    gone as (
        delete from inventory.reservations r using doomed where r.id = doomed.id returning 1)
    select count(*)::bigint from gone";

/// AdjustStock idempotency keys recorded more than `$1` ms ago.
const REMOVE_ADJUSTMENT_KEYS: &str = "
    with doomed as (
        select idempotency_key from inventory.adjustments
         where created_at < now() - $1 * interval '1 millisecond'
         limit $2),
    gone as (
        delete from inventory.adjustments a using doomed
         where a.idempotency_key = doomed.idempotency_key returning 1)
    select count(*)::bigint from gone";

/// What retention removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Ledger movements (their sums stay in the base).
    Movements,
    /// Settled holds with their lines.
    SettledHolds,
    /// AdjustStock idempotency keys.
    AdjustmentKeys,
    /// The oldest events of the event log (WatchEvents answers OUT_OF_RANGE before them).
    Events,
}

impl History for Store {
    type Kind = Retained;
    type Error = InventoryError;

    fn label(kind: Retained) -> &'static str {
        match kind {
            Retained::Movements => "movements",
            Retained::SettledHolds => "reservations",
            Retained::AdjustmentKeys => "adjustments",
            Retained::Events => "events",
        }
    }

    /// One statement per batch (see the queries above).
    async fn remove_old(
        &self,
        what: Retained,
        keep: Duration,
        batch: u32,
    ) -> Result<u64, InventoryError> {
        if what == Retained::Events {
            let log =
                common::events::EventLog::new(self.pool.clone(), super::SCHEMA, super::EVENT_ROWS);
            return Ok(log.remove_old(keep, batch).await?);
        }
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let batch = i64::from(batch);
        let removed: i64 = match what {
            Retained::Movements => {
                let (gone, _rows): (i64, i64) = sqlx::query_as(RETIRE_MOVEMENTS)
                    .bind(keep_ms)
                    .bind(batch)
                    .fetch_one(&self.pool)
                    .await?;
                gone
            }
            Retained::SettledHolds => {
                sqlx::query_scalar(REMOVE_SETTLED_HOLDS)
                    .bind(keep_ms)
                    .bind(batch)
                    .fetch_one(&self.pool)
                    .await?
            }
            Retained::AdjustmentKeys => {
                sqlx::query_scalar(REMOVE_ADJUSTMENT_KEYS)
                    .bind(keep_ms)
                    .bind(batch)
                    .fetch_one(&self.pool)
                    .await?
            }
            Retained::Events => 0,
        };
        Ok(u64::try_from(removed).unwrap_or(0))
    }
}
