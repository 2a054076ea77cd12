//! What operators read and write about parked orders (see `domain::resolution`).

use chrono::{DateTime, Utc};

use super::{Store, parse_next_action, parse_payment_status, parse_status};
use crate::domain::resolution::{self, Parked, Resolution};
use crate::domain::{NextAction, OrderId};
use crate::error::OrderError;

/// A parked order's saga facts (the order itself is read apart).
#[derive(Debug, Clone)]
pub struct ParkedView {
    pub id: OrderId,
    pub next_action: Option<NextAction>,
    pub last_error: String,
    pub parked_at: DateTime<Utc>,
    pub attempts: i32,
}

/// A parked order's row: id, next action, last error, when it parked, attempts.
type ParkedRow = (uuid::Uuid, Option<String>, Option<String>, DateTime<Utc>, i32);

impl Store {
    /// Up to `limit` parked orders, longest parked first.
    pub async fn parked_orders(&self, limit: u32) -> Result<Vec<ParkedView>, OrderError> {
        let rows: Vec<ParkedRow> = sqlx::query_as(
            "select id, next_action, last_error, parked_at, attempts
                   from orders.orders where parked_at is not null
                  order by parked_at, id limit $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, next, last_error, parked_at, attempts)| {
                Ok(ParkedView {
                    id: OrderId::from(id),
                    next_action: parse_next_action(next.as_deref())?,
                    last_error: last_error.unwrap_or_default(),
                    parked_at,
                    attempts,
                })
            })
            .collect()
    }

    /// Applies `resolution` to parked order `id` in one transaction: its new state, the park
    /// cleared (due now, attempts from 0), and a saga history row with `note`.
    pub async fn resolve_parked(
        &self,
        id: OrderId,
        resolution: Resolution,
        note: &str,
    ) -> Result<(), OrderError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, String, Option<String>, bool)> = sqlx::query_as(
            "select status, payment_status, next_action, parked_at is not null
               from orders.orders where id = $1 for update",
        )
        .bind(id.uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, payment_status, next, parked)) = row else {
            return Err(OrderError::order_not_found(id));
        };
        let next = parse_next_action(next.as_deref())?;
        let (true, Some(next)) = (parked, next) else {
            return Err(OrderError::FailedPrecondition(format!(
                "order {id} is not parked: only a parked order can be resolved"
            )));
        };
        let parked = Parked {
            status: parse_status(&status)?,
            payment_status: parse_payment_status(&payment_status)?,
            next,
        };
        let to = resolution::resolve(parked, resolution).map_err(OrderError::FailedPrecondition)?;
        sqlx::query(
            "with resolved as (
                 update orders.orders
                    set status = $2, payment_status = $3, next_action = $4,
                        parked_at = null, failing_since = null, attempts = 0,
                        next_attempt_at = now(), last_error = null,
                        lease_owner = null, leased_until = null,
                        version = version + 1, updated_at = now()
                  where id = $1
                  returning id)
             insert into orders.saga_steps (order_id, action, outcome, detail)
             select id, 'operator', $5, $6 from resolved",
        )
        .bind(id.uuid())
        .bind(to.status.as_str())
        .bind(to.payment_status.as_str())
        .bind(to.next.map(NextAction::as_str))
        .bind(resolution.as_str())
        .bind(note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
