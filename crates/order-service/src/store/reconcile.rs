//! The reconciler's reads of schema `orders`: confirmed orders whose inventory commit is still
//! queued, and settled confirmed orders to compare with the inventory's holds.

use std::time::Duration;

use uuid::Uuid;

use super::{Store, lease_ms};
use crate::domain::{NextAction, OrderId, OrderStatus};
use crate::error::OrderError;

/// A confirmed order, with the hold it recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmedOrder {
    pub id: OrderId,
    pub reservation_id: Option<Uuid>,
}

/// Confirmed orders whose saga still has a step to do (the commit, or re-taking a lost hold
/// before it) although they were confirmed longer ago than the grace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueuedCommits {
    /// All of them, not only the sampled ones.
    pub count: u64,
    /// The first few, oldest id first.
    pub samples: Vec<ConfirmedOrder>,
}

impl Store {
    /// Counts confirmed orders still waiting for their commit more than `grace` after they
    /// were confirmed, keeping at most `samples` of them.
    ///
    /// The confirmation time is the audit row of the successful payment (`updated_at` moves
    /// on every retry of the commit, so it cannot say how long the commit has been queued);
    /// rows without one (written by hand) fall back to `created_at`. Only orders with a next
    /// action are read, through the partial index `orders_due`.
    pub async fn queued_commits(
        &self,
        grace: Duration,
        samples: u32,
    ) -> Result<QueuedCommits, OrderError> {
        let rows: Vec<(Uuid, Option<Uuid>, i64)> = sqlx::query_as(
            "select o.id, o.reservation_id, count(*) over ()
               from orders.orders o
              where o.next_action is not null and o.status = $1
                and coalesce((select min(s.created_at) from orders.saga_steps s
                               where s.order_id = o.id and s.action = $2 and s.outcome = 'ok'),
                             o.created_at) < now() - $3 * interval '1 millisecond'
              order by o.id
              limit $4",
        )
        .bind(OrderStatus::Confirmed.as_str())
        .bind(NextAction::Pay.as_str())
        .bind(lease_ms(grace))
        .bind(i64::from(samples))
        .fetch_all(&self.pool)
        .await?;
        let count = rows.first().map_or(0, |r| u64::try_from(r.2).unwrap_or(0));
        let samples = rows
            .into_iter()
            .map(|(id, reservation_id, _)| ConfirmedOrder { id: OrderId::from(id), reservation_id })
            .collect();
        Ok(QueuedCommits { count, samples })
    }

    /// Up to `limit` settled confirmed orders (no step left) with an id above `after`, last
    /// changed longer ago than `grace`, in id order: one page of the reconciler's pass. The
    /// primary key serves the order and the range, so a page costs what it reads.
    pub async fn settled_confirmed_after(
        &self,
        after: Option<OrderId>,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<ConfirmedOrder>, OrderError> {
        let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "select id, reservation_id from orders.orders
              where id > $1 and status = $2 and next_action is null
                and updated_at < now() - $3 * interval '1 millisecond'
              order by id
              limit $4",
        )
        .bind(after.map_or(Uuid::nil(), |id| id.uuid()))
        .bind(OrderStatus::Confirmed.as_str())
        .bind(lease_ms(grace))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, reservation_id)| ConfirmedOrder { id: OrderId::from(id), reservation_id })
            .collect())
    }

    /// Those of `ids` that are still settled confirmed orders, with their recorded holds.
    pub async fn settled_confirmed_among(
        &self,
        ids: &[OrderId],
    ) -> Result<Vec<ConfirmedOrder>, OrderError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.uuid()).collect();
        let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "select id, reservation_id from orders.orders
              where id = any($1) and status = $2 and next_action is null
              order by id",
        )
        .bind(&ids)
        .bind(OrderStatus::Confirmed.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, reservation_id)| ConfirmedOrder { id: OrderId::from(id), reservation_id })
            .collect())
    }

    /// Takes or renews the reconciler's turn for `owner` for `lease`; false while another
    /// replica's lease runs.
    pub async fn take_reconcile_turn(
        &self,
        owner: Uuid,
        lease: Duration,
    ) -> Result<bool, OrderError> {
        let taken: Option<bool> = sqlx::query_scalar(
            "update orders.reconcile_runner
                set owner = $1, leased_until = now() + $2 * interval '1 millisecond'
              where owner is null or owner = $1 or leased_until < now()
             returning true",
        )
        .bind(owner)
        .bind(lease_ms(lease))
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Stores the count of a tick `owner` ran while holding the turn.
    pub async fn store_reconcile_result(&self, owner: Uuid, count: u64) -> Result<(), OrderError> {
        sqlx::query(
            "update orders.reconcile_runner set inconsistencies = $2, finished_at = now()
              where owner = $1",
        )
        .bind(owner)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The count the runner last stored, and when (Unix seconds; None before the first).
    pub async fn shared_reconcile_result(&self) -> Result<(u64, Option<i64>), OrderError> {
        let (count, finished): (i64, Option<i64>) = sqlx::query_as(
            "select inconsistencies, extract(epoch from finished_at)::bigint
               from orders.reconcile_runner",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((u64::try_from(count).unwrap_or(0), finished))
    }
}
