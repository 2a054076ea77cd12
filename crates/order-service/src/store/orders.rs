//! Orders as the API reads and writes them: create, read, list, cancel.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::telemetry::W3cTraceContext;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    NewOrder, OrderItemView, OrderView, SagaState, Store, lease_ms, parse_next_action,
    parse_payment_status, parse_status,
};
use crate::domain::cancellation::{CancelDecision, decide};
use crate::domain::commands::{CancelOrder, ListPage};
use crate::domain::{Backordered, NextAction, OrderId, OrderStatus};
use crate::error::OrderError;

const ORDER_COLUMNS: &str = "id, user_id, status, status_reason, total_amount_minor, currency, \
     payment_method, payment_status, reservation_id, next_action, request_fingerprint, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: String,
    status: String,
    status_reason: String,
    total_amount_minor: i64,
    currency: String,
    payment_method: String,
    payment_status: String,
    reservation_id: Option<Uuid>,
    next_action: Option<String>,
    request_fingerprint: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    product_id: String,
    variant_id: Option<String>,
    sku: String,
    quantity: i32,
    unit_price_minor: i64,
}

/// What CancelOrder achieved on the order row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Now CANCELLED with its hold to release, leased to the cancelling call (which drives
    /// the release itself).
    Cancelled,
    /// It was already cancelled.
    AlreadyCancelled,
    /// Its state forbids a cancel, for this reason.
    Refused(String),
    /// It is confirmed: undoing it is a return.
    UseReturn,
}

impl Store {
    /// Writes the order, its lines and its first audit row in one statement, leased to the
    /// creating request; returns its version and creation time. None, writing nothing, when
    /// the user's idempotency key is already taken (a racing twin won).
    pub async fn insert_order(
        &self,
        order: &NewOrder,
    ) -> Result<Option<(i64, DateTime<Utc>)>, OrderError> {
        let lines = &order.lines;
        let line_numbers: Vec<i32> = (0..).take(lines.len()).collect();
        let product_ids: Vec<&str> = lines.iter().map(|l| l.product_id.as_str()).collect();
        let variant_ids: Vec<Option<&str>> =
            lines.iter().map(|l| l.variant_id.as_ref().map(|v| v.as_str())).collect();
        let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
        let quantities: Vec<i32> = lines.iter().map(|l| l.quantity.get()).collect();
        let prices: Vec<i64> = lines.iter().map(|l| l.unit_price_minor).collect();
        Ok(sqlx::query_as(
            "with placed as (
                 insert into orders.orders
                     (id, user_id, idempotency_key, request_fingerprint, status, currency,
                      payment_method, total_amount_minor, next_action, lease_owner, leased_until,
                      trace_parent, trace_state)
                 values ($1, $2, $3, $4, 'PENDING', $5, $6, $7, 'reserve', $8,
                         now() + $9 * interval '1 millisecond', $16, $17)
                 on conflict (user_id, idempotency_key) do nothing
                 returning id, version, created_at),
             items as (
                 insert into orders.order_items
                     (order_id, line, product_id, variant_id, sku, quantity, unit_price_minor)
                 select placed.id, l.*
                   from placed,
                        unnest($10::int4[], $11::text[], $12::text[], $13::text[], $14::int4[],
                               $15::int8[]) as l),
             audit as (
                 insert into orders.saga_steps (order_id, action, outcome, detail)
                 select id, 'create', 'accepted', '' from placed)
             select version, created_at from placed",
        )
        .bind(order.id.uuid())
        .bind(&order.user_id)
        .bind(&order.idempotency_key)
        .bind(&order.fingerprint)
        .bind(&order.currency)
        .bind(&order.payment_method)
        .bind(order.total_amount_minor)
        .bind(order.lease_owner)
        .bind(lease_ms(order.lease))
        .bind(&line_numbers)
        .bind(&product_ids)
        .bind(&variant_ids)
        .bind(&skus)
        .bind(&quantities)
        .bind(&prices)
        .bind(order.trace.as_ref().map(W3cTraceContext::traceparent))
        .bind(order.trace.as_ref().map(W3cTraceContext::tracestate).filter(|s| !s.is_empty()))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deletes an order with its lines and audit, if it is still at `state.version` (nobody
    /// took it over): an order withdrawn by the request that placed it. Returns whether it did.
    #[tracing::instrument(skip_all, fields(order_id = %state.id))]
    pub async fn withdraw_order(&self, state: &SagaState) -> Result<bool, OrderError> {
        let gone: i64 = sqlx::query_scalar(
            "with gone as (
                 delete from orders.orders where id = $1 and version = $2 returning id),
             items as (
                 delete from orders.order_items where order_id in (select id from gone)),
             audit as (
                 delete from orders.saga_steps where order_id in (select id from gone))
             select count(*) from gone",
        )
        .bind(state.id.uuid())
        .bind(state.version)
        .fetch_one(&self.pool)
        .await?;
        Ok(gone > 0)
    }

    /// The order `id`, if it exists, as the primary has it (what workflows read).
    pub async fn order(&self, id: OrderId) -> Result<Option<OrderView>, OrderError> {
        order_on(&self.pool, id).await
    }

    /// The order `id` for a client (GetOrder): read on the replica while it is within
    /// `READ_MAX_STALENESS_MS`, so it may be that much older than the primary's. Read your
    /// own writes: when the replica has no such order (it may not have replayed a create the
    /// client was just answered), the primary is asked before answering that there is none.
    /// Each read uses one pool for the order, its lines and its returns, so they agree.
    pub async fn read_order(&self, id: OrderId) -> Result<Option<OrderView>, OrderError> {
        let first = self.reads.pick();
        found_or_primary(
            (first.pool, first.replica),
            || self.reads.primary().pool,
            |pool| order_on(pool, id),
        )
        .await
    }

    /// The user's order created with `key`, if any.
    pub async fn order_by_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<OrderView>, OrderError> {
        let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders.orders where user_id = $1 and idempotency_key = $2"
        )))
        .bind(user_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(with_items(&self.pool, row.into_iter().collect()).await?.pop())
    }

    /// One page of the user's orders, newest first; the flag says whether more follow. For
    /// clients (ListOrders) only: read on the replica while it is within
    /// `READ_MAX_STALENESS_MS`, so the page may miss what was written that recently (no
    /// fallback: an empty page is a valid answer). One pool answers the whole page.
    pub async fn list_orders(&self, page: &ListPage) -> Result<(Vec<OrderView>, bool), OrderError> {
        let pool = self.reads.pool();
        let size = i64::from(page.size.get());
        let (after_at, after_id) = match page.after {
            Some(c) => (Some(c.created_at), Some(c.id)),
            None => (None, None),
        };
        let mut rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {ORDER_COLUMNS} from orders.orders
              where user_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
              order by created_at desc, id desc
              limit $4"
        )))
        .bind(page.user_id.as_str())
        .bind(after_at)
        .bind(after_id)
        .bind(size + 1)
        .fetch_all(pool)
        .await?;
        let more = rows.len() as i64 > size;
        rows.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        Ok((with_items(pool, rows).await?, more))
    }

    /// Cancels the order if its state allows, under its row lock, taking the saga's lease.
    /// An order someone holds (or held, until a driver picks it up again) is never cancelled:
    /// its driver may have charged it without writing so yet.
    #[tracing::instrument(skip_all, fields(order_id = %cmd.order_id))]
    pub async fn cancel_order(
        &self,
        cmd: &CancelOrder,
        owner: Uuid,
        lease: std::time::Duration,
    ) -> Result<CancelOutcome, OrderError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Option<String>, i32, bool, bool)> = sqlx::query_as(
            "select status, next_action, attempts, lease_owner is not null, parked_at is not null
               from orders.orders where id = $1 for update",
        )
        .bind(cmd.order_id.uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, next, attempts, driven, parked)) = row else {
            return Err(OrderError::NotFound { what: "order", key: cmd.order_id.to_string() });
        };
        // A parked order's state is what an operator must establish (a charge may be
        // unknown): a customer's cancel cannot decide it.
        if parked {
            return Ok(CancelOutcome::Refused(
                "order is waiting for an operator (a saga step failed for good); it cannot be \
                 cancelled now"
                    .to_owned(),
            ));
        }
        let status = parse_status(&status)?;
        let next = parse_next_action(next.as_deref())?;
        match decide(status, next, attempts, driven) {
            CancelDecision::AlreadyCancelled => return Ok(CancelOutcome::AlreadyCancelled),
            CancelDecision::Refuse(reason) => return Ok(CancelOutcome::Refused(reason)),
            CancelDecision::UseReturn => return Ok(CancelOutcome::UseReturn),
            CancelDecision::Cancel => {}
        }
        sqlx::query(
            "update orders.orders
                set status = $2, status_reason = $3, next_action = $4, attempts = 0,
                    next_attempt_at = now(), last_error = null, version = version + 1,
                    updated_at = now(), lease_owner = $5,
                    leased_until = now() + $6 * interval '1 millisecond'
              where id = $1",
        )
        .bind(cmd.order_id.uuid())
        .bind(OrderStatus::Cancelled.as_str())
        .bind(&cmd.reason)
        .bind(NextAction::ReleaseHold.as_str())
        .bind(owner)
        .bind(lease_ms(lease))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into orders.saga_steps (order_id, action, outcome, detail)
             values ($1, 'cancel', 'requested', $2)",
        )
        .bind(cmd.order_id.uuid())
        .bind(&cmd.reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled)
    }
}

/// The order `id` as `pool` has it.
async fn order_on(pool: &PgPool, id: OrderId) -> Result<Option<OrderView>, OrderError> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {ORDER_COLUMNS} from orders.orders where id = $1"
    )))
    .bind(id.uuid())
    .fetch_optional(pool)
    .await?;
    Ok(with_items(pool, row.into_iter().collect()).await?.pop())
}

/// Reads with `read` on `first` (a pool, and whether it is the replica); when the replica
/// found nothing, reads again on `primary`: a row just written there may not have been
/// replayed yet, and "none" must not be answered for it.
async fn found_or_primary<P, T, Fut>(
    first: (P, bool),
    primary: impl FnOnce() -> P,
    read: impl Fn(P) -> Fut,
) -> Result<Option<T>, OrderError>
where
    Fut: Future<Output = Result<Option<T>, OrderError>>,
{
    let (pool, replica) = first;
    match read(pool).await? {
        None if replica => read(primary()).await,
        found => Ok(found),
    }
}

/// Attaches their lines and their returns to `rows` (one query each for all of them), all
/// read on `pool`, the pool the rows came from.
async fn with_items(pool: &PgPool, rows: Vec<OrderRow>) -> Result<Vec<OrderView>, OrderError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items: Vec<ItemRow> = sqlx::query_as(
        "select order_id, product_id, variant_id, sku, quantity, unit_price_minor
           from orders.order_items where order_id = any($1) order by order_id, line",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut returns = Store::returns_of(pool, &ids).await?;
    let backorders: Vec<(Uuid, String, i32, String)> = sqlx::query_as(
        "select order_id, sku, quantity, expected_restock_date
           from orders.order_backorders where order_id = any($1) order by order_id, sku",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut backordered: HashMap<Uuid, Vec<Backordered>> = HashMap::new();
    for (order_id, sku, quantity, expected_restock_date) in backorders {
        backordered.entry(order_id).or_default().push(Backordered {
            sku,
            quantity,
            expected_restock_date,
        });
    }
    let mut by_order: HashMap<Uuid, Vec<OrderItemView>> = HashMap::new();
    for item in items {
        by_order.entry(item.order_id).or_default().push(OrderItemView {
            product_id: item.product_id,
            variant_id: item.variant_id,
            sku: item.sku,
            quantity: item.quantity,
            unit_price_minor: item.unit_price_minor,
        });
    }
    rows.into_iter()
        .map(|r| {
            Ok(OrderView {
                id: OrderId::from(r.id),
                items: by_order.remove(&r.id).unwrap_or_default(),
                returns: returns.remove(&r.id).unwrap_or_default(),
                backordered: backordered.remove(&r.id).unwrap_or_default(),
                user_id: r.user_id,
                status: parse_status(&r.status)?,
                status_reason: r.status_reason,
                total_amount_minor: r.total_amount_minor,
                currency: r.currency,
                payment_method: r.payment_method,
                payment_status: parse_payment_status(&r.payment_status)?,
                reservation_id: r.reservation_id,
                next_action: parse_next_action(r.next_action.as_deref())?,
                fingerprint: r.request_fingerprint,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Runs `found_or_primary` over named "pools" holding `rows`; the answer and the pools
    /// asked, in order.
    async fn read_from(
        first: &'static str,
        replica: bool,
        rows: &[(&'static str, u32)],
    ) -> (Option<u32>, Vec<&'static str>) {
        let asked = RefCell::new(Vec::new());
        let found = found_or_primary(
            (first, replica),
            || "primary",
            |pool| {
                asked.borrow_mut().push(pool);
                let row = rows.iter().find(|(p, _)| *p == pool).map(|(_, v)| *v);
                async move { Ok(row) }
            },
        )
        .await;
        (found.ok().flatten(), asked.into_inner())
    }

    #[tokio::test]
    async fn a_replica_miss_asks_the_primary() {
        let got = read_from("replica", true, &[("primary", 7)]).await;
        assert_eq!(got, (Some(7), vec!["replica", "primary"]));
    }

    #[tokio::test]
    async fn a_replica_hit_answers_alone() {
        let got = read_from("replica", true, &[("replica", 6), ("primary", 7)]).await;
        assert_eq!(got, (Some(6), vec!["replica"]));
    }

    #[tokio::test]
    async fn a_primary_miss_is_final() {
        assert_eq!(read_from("primary", false, &[]).await, (None, vec!["primary"]));
        // Neither has it: asked both, then none.
        assert_eq!(read_from("replica", true, &[]).await, (None, vec!["replica", "primary"]));
    }
}
