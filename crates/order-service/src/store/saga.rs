//! The saga's reads and guarded writes: load, begin a step (renew the lease, count the
//! attempt), finish it, park it for a later retry, and the recovery worker's claim.

use std::time::Duration;

use uuid::Uuid;

use super::{
    Backlog, OrderItemView, SagaState, StepRecord, Store, Transition, lease_ms, parse_next_action,
    parse_payment_status, parse_status,
};
use crate::domain::OrderId;
use crate::error::OrderError;

#[derive(sqlx::FromRow)]
struct SagaRow {
    status: String,
    status_reason: String,
    payment_status: String,
    payment_id: Option<String>,
    reservation_id: Option<Uuid>,
    next_action: Option<String>,
    attempts: i32,
    version: i64,
    total_amount_minor: i64,
    currency: String,
    payment_method: String,
    lease_owner: Option<Uuid>,
    lease_active: bool,
}

/// Longest `last_error` / audit detail kept: peers' messages are not ours to store unbounded.
const MAX_DETAIL: usize = 500;

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

impl Store {
    /// The saga state of order `id`.
    pub async fn saga_state(&self, id: OrderId) -> Result<Option<SagaState>, OrderError> {
        let row: Option<SagaRow> = sqlx::query_as(
            "select status, status_reason, payment_status, payment_id, reservation_id,
                    next_action, attempts, version, total_amount_minor, currency, payment_method,
                    lease_owner, coalesce(leased_until > now(), false) as lease_active
               from orders.orders where id = $1",
        )
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SagaState {
                id,
                status: parse_status(&r.status)?,
                status_reason: r.status_reason,
                payment_status: parse_payment_status(&r.payment_status)?,
                payment_id: r.payment_id,
                reservation_id: r.reservation_id,
                next_action: parse_next_action(r.next_action.as_deref())?,
                attempts: r.attempts,
                version: r.version,
                total_amount_minor: r.total_amount_minor,
                currency: r.currency,
                payment_method: r.payment_method,
                lease_owner: r.lease_owner,
                lease_active: r.lease_active,
            })
        })
        .transpose()
    }

    /// The lines of order `id`, in order.
    pub async fn order_lines(&self, id: OrderId) -> Result<Vec<OrderItemView>, OrderError> {
        let rows: Vec<(String, Option<String>, String, i32, i64)> = sqlx::query_as(
            "select product_id, variant_id, sku, quantity, unit_price_minor
               from orders.order_items where order_id = $1 order by line",
        )
        .bind(id.uuid())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(product_id, variant_id, sku, quantity, unit_price_minor)| OrderItemView {
                product_id,
                variant_id,
                sku,
                quantity,
                unit_price_minor,
            })
            .collect())
    }

    /// Before a remote call: counts the attempt and renews `owner`'s lease, if the order is
    /// still at `version` and the lease is `owner`'s or free. Returns the new version.
    pub async fn begin_step(
        &self,
        id: OrderId,
        version: i64,
        owner: Uuid,
        lease: Duration,
    ) -> Result<Option<i64>, OrderError> {
        Ok(sqlx::query_scalar(
            "update orders.orders
                set attempts = attempts + 1, lease_owner = $3,
                    leased_until = now() + $4 * interval '1 millisecond',
                    version = version + 1, updated_at = now()
              where id = $1 and version = $2
                and (lease_owner = $3 or leased_until is null or leased_until < now())
              returning version",
        )
        .bind(id.uuid())
        .bind(version)
        .bind(owner)
        .bind(lease_ms(lease))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// After a remote call: writes its outcome and the following action if the order is
    /// still at `version`, with the audit row, in one transaction. A settled order (no next
    /// action) gives up its lease. Returns false when someone changed the order meanwhile.
    pub async fn finish_step(
        &self,
        id: OrderId,
        version: i64,
        to: &Transition,
        record: &StepRecord,
    ) -> Result<bool, OrderError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "update orders.orders
                set status = $3, status_reason = $4, payment_status = $5, payment_id = $6,
                    reservation_id = $7, next_action = $8, attempts = 0, last_error = null,
                    next_attempt_at = now(), version = version + 1, updated_at = now(),
                    lease_owner = case when $8 is null then null else lease_owner end,
                    leased_until = case when $8 is null then null else leased_until end
              where id = $1 and version = $2",
        )
        .bind(id.uuid())
        .bind(version)
        .bind(to.status.as_str())
        .bind(&to.status_reason)
        .bind(to.payment_status.as_str())
        .bind(&to.payment_id)
        .bind(to.reservation_id)
        .bind(to.next_action.map(|a| a.as_str()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        audit(&mut tx, id, record).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// After a transient failure: keeps the action, records the error, schedules the next
    /// attempt after `delay` and releases the lease so the recovery worker picks it up.
    pub async fn park(
        &self,
        id: OrderId,
        version: i64,
        delay: Duration,
        record: &StepRecord,
    ) -> Result<bool, OrderError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "update orders.orders
                set last_error = $3, next_attempt_at = now() + $4 * interval '1 millisecond',
                    lease_owner = null, leased_until = null,
                    version = version + 1, updated_at = now()
              where id = $1 and version = $2",
        )
        .bind(id.uuid())
        .bind(version)
        .bind(clip(&record.detail))
        .bind(lease_ms(delay))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        audit(&mut tx, id, record).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives up `owner`'s lease without changing the order, so others may drive it now.
    pub async fn release_lease(&self, id: OrderId, owner: Uuid) -> Result<(), OrderError> {
        sqlx::query(
            "update orders.orders set lease_owner = null, leased_until = null
              where id = $1 and lease_owner = $2",
        )
        .bind(id.uuid())
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due orders whose lease is free or lapsed, leasing them to
    /// `owner`. Replicas claim side by side: each skips the rows another is claiming.
    pub async fn claim_due(
        &self,
        owner: Uuid,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OrderId>, OrderError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "update orders.orders
                set lease_owner = $1, leased_until = now() + $2 * interval '1 millisecond',
                    version = version + 1
              where id in (
                    select id from orders.orders
                     where next_action is not null and next_attempt_at <= now()
                       and (leased_until is null or leased_until < now())
                     order by next_attempt_at
                     limit $3
                       for update skip locked)
              returning id",
        )
        .bind(owner)
        .bind(lease_ms(lease))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(OrderId::from).collect())
    }

    /// How many orders still have a saga step to do, and the age of the oldest.
    pub async fn backlog(&self) -> Result<Backlog, OrderError> {
        let (count, oldest): (i64, Option<f64>) = sqlx::query_as(
            "select count(*), extract(epoch from now() - min(created_at))::float8
               from orders.orders where next_action is not null",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog { count, oldest_seconds: oldest.map_or(0, |s| s.max(0.0) as i64) })
    }
}

async fn audit(
    tx: &mut sqlx::PgConnection,
    id: OrderId,
    record: &StepRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into orders.saga_steps (order_id, action, outcome, detail) values ($1, $2, $3, $4)",
    )
    .bind(id.uuid())
    .bind(record.action)
    .bind(record.outcome)
    .bind(clip(&record.detail))
    .execute(tx)
    .await?;
    Ok(())
}
