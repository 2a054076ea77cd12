//! Retention of the order side's history: batched deletes of old saga audit rows and of old
//! idempotency keys, each batch one statement. Only settled orders lose history: an order
//! with a step to do keeps every row an operator may need.

use std::time::Duration;

use common::retention::History;

use super::Store;
use crate::error::OrderError;

/// Audit rows older than `$1` ms of settled orders, at most `$2`.
const REMOVE_SAGA_STEPS: &str = "
    with doomed as (
        select s.id from orders.saga_steps s
          join orders.orders o on o.id = s.order_id
         where s.created_at < now() - $1 * interval '1 millisecond'
           and o.next_action is null
         limit $2),
    gone as (delete from orders.saga_steps s using doomed where s.id = doomed.id returning 1)
    select count(*)::bigint from gone";

/// Idempotency keys of settled orders created more than `$1` ms ago, at most `$2`: the order
/// stays, its key no longer deduplicates a retry.
const FORGET_IDEMPOTENCY_KEYS: &str = "
    with doomed as (
        select id from orders.orders
         where created_at < now() - $1 * interval '1 millisecond'
           and idempotency_key is not null and next_action is null
         limit $2),
    forgotten as (
        update orders.orders o set idempotency_key = null
          from doomed where o.id = doomed.id returning 1)
    select count(*)::bigint from forgotten";

/// What retention removes on the order side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Saga audit rows of settled orders.
    SagaSteps,
    /// Idempotency keys of settled orders (the orders stay).
    IdempotencyKeys,
    /// The oldest events of the event log (WatchEvents answers OUT_OF_RANGE before them).
    Events,
}

impl History for Store {
    type Kind = Retained;
    type Error = OrderError;

    fn label(kind: Retained) -> &'static str {
        match kind {
            Retained::SagaSteps => "saga_steps",
            Retained::IdempotencyKeys => "idempotency_keys",
            Retained::Events => "events",
        }
    }

    /// One statement per batch (see the queries above).
    async fn remove_old(
        &self,
        what: Retained,
        keep: Duration,
        batch: u32,
    ) -> Result<u64, OrderError> {
        let sql = match what {
            Retained::SagaSteps => REMOVE_SAGA_STEPS,
            Retained::IdempotencyKeys => FORGET_IDEMPOTENCY_KEYS,
            Retained::Events => {
                let log = common::events::EventLog::new(
                    self.pool.clone(),
                    super::SCHEMA,
                    super::EVENT_ROWS,
                );
                return Ok(log.remove_old(keep, batch).await?);
            }
        };
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        let removed: i64 = sqlx::query_scalar(sql)
            .bind(keep_ms)
            .bind(i64::from(batch))
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(removed).unwrap_or(0))
    }
}
