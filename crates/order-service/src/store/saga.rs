//! The saga's reads and its one guarded write (state, audit rows and lease together), and
//! the recovery worker's claim.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::telemetry::W3cTraceContext;
use uuid::Uuid;

use super::{
    Backlog, OrderItemView, SagaState, StepRecord, Store, lease_ms, parse_next_action,
    parse_payment_status, parse_status,
};
use crate::domain::OrderId;
use crate::error::OrderError;

/// One guarded write of the saga's progress (see [`Store::save`]).
#[derive(Debug, Clone)]
pub struct Save<'a> {
    /// The order's state to write; the write lands only if the row is still at its
    /// `version` (the one its writer last read or wrote).
    pub state: &'a SagaState,
    /// Attempts of the state's next action so far.
    pub attempts: i32,
    /// What becomes of `last_error`.
    pub last_error: LastError<'a>,
    /// `next_attempt_at` = now + this.
    pub retry_in: Duration,
    /// What becomes of the lease.
    pub lease: LeaseAfter,
    /// The steps done since the last write, in order, for the audit.
    pub steps: &'a [StepRecord],
    /// Whether the write parks the order for an operator.
    pub park: Park,
}

/// When a save parks its order (no more automatic retries until an operator resolves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Park {
    /// Not by this write.
    No,
    /// Now: the step failed in a way that cannot heal.
    Now,
    /// If the current step (failing again: attempts > 0) first failed longer ago than this.
    FailingFor(Duration),
}

/// What a save does to `last_error`.
#[derive(Debug, Clone, Copy)]
pub enum LastError<'a> {
    /// Leaves it.
    Keep,
    /// Clears it (a step went through).
    Clear,
    /// Sets it (a step failed and waits for its retry).
    Set(&'a str),
}

/// What a save does to the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAfter {
    /// `owner` keeps driving: held for `lease` from now.
    Renew { owner: Uuid, lease: Duration },
    /// Given up: the row records everything its driver did, anyone may drive it.
    Release,
    /// Given up, but left in `owner`'s name, lapsing after `after`: the row may not record
    /// everything a previous driver did, and whoever claims it next must know.
    Lapse { owner: Uuid, after: Duration },
}

/// What a save that landed wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// The write parked the order.
    pub parked: bool,
}

/// An order the recovery worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: OrderId,
    /// Its previous driver's lease had lapsed (rather than been given up): that driver may
    /// have made calls its row does not record.
    pub lapsed: bool,
    /// The trace context of the request that created it, if it was traced.
    pub origin: Option<W3cTraceContext>,
}

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
    lease_left_ms: Option<i64>,
    age_ms: i64,
    parked: bool,
}

/// Longest `last_error` / audit detail kept: peers' messages are not ours to store unbounded.
const MAX_DETAIL: usize = 500;

pub(super) fn clip(text: &str) -> String {
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
                    lease_owner,
                    (extract(epoch from leased_until - now()) * 1000)::int8 as lease_left_ms,
                    (extract(epoch from now() - created_at) * 1000)::int8 as age_ms,
                    parked_at is not null as parked
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
                lease_left: r
                    .lease_left_ms
                    .and_then(|ms| u64::try_from(ms).ok())
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
                age: Duration::from_millis(u64::try_from(r.age_ms).unwrap_or(0)),
                parked: r.parked,
                // Written already: only a reserve's answer replaces them.
                backordered: None,
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

    /// Writes the saga's progress in one statement, if the order is still at the version it was read at:
    /// its state, the audit rows of the steps done since the last write, and what becomes of
    /// the lease. None when someone changed the order meanwhile (a driver that took over after
    /// the lease lapsed).
    pub async fn save(&self, save: &Save<'_>) -> Result<Option<Saved>, OrderError> {
        let (owner, lease_for) = match save.lease {
            LeaseAfter::Renew { owner, lease } => (Some(owner), Some(lease_ms(lease))),
            LeaseAfter::Release => (None, None),
            LeaseAfter::Lapse { owner, after } => (Some(owner), Some(lease_ms(after))),
        };
        let actions: Vec<&str> = save.steps.iter().map(|s| s.action).collect();
        let outcomes: Vec<&str> = save.steps.iter().map(|s| s.outcome).collect();
        let details: Vec<String> = save.steps.iter().map(|s| clip(&s.detail)).collect();
        let state = save.state;
        let backordered = state.backordered.as_deref().unwrap_or_default();
        let (park_now, park_after) = match save.park {
            Park::No => (false, None),
            Park::Now => (true, None),
            Park::FailingFor(after) => (false, Some(lease_ms(after))),
        };
        let row: Option<(i64, DateTime<Utc>, bool)> = sqlx::query_as(
            "with saved as (
                 update orders.orders
                    set status = $3, status_reason = $4, payment_status = $5, payment_id = $6,
                        reservation_id = $7, next_action = $8, attempts = $9,
                        last_error = case when $10 then last_error else $11 end,
                        next_attempt_at = now() + $12 * interval '1 millisecond',
                        lease_owner = $13,
                        leased_until = now() + $14 * interval '1 millisecond',
                        failing_since = case when $9 = 0 then null
                                             else coalesce(failing_since, now()) end,
                        parked_at = case
                            when $8 is null then null
                            when $18 then now()
                            when $9 > 0 and failing_since
                                 <= now() - $19 * interval '1 millisecond' then now()
                        end,
                        version = version + 1, updated_at = now()
                  where id = $1 and version = $2
                  returning version, updated_at, parked_at is not null as parked),
             audit as (
                 insert into orders.saga_steps (order_id, action, outcome, detail)
                 select $1, s.action, s.outcome, s.detail
                   from saved,
                        unnest($15::text[], $16::text[], $17::text[]) with ordinality
                            as s(action, outcome, detail, n)
                  order by s.n),
             stale_backorders as (
                 delete from orders.order_backorders
                  where $23 and order_id = $1 and exists (select 1 from saved)
                    and sku <> all($20::text[])),
             backorders as (
                 insert into orders.order_backorders (order_id, sku, quantity, expected_restock_date)
                 select $1, b.sku, b.quantity, b.restock
                   from saved, unnest($20::text[], $21::int[], $22::text[]) as b(sku, quantity, restock)
                 on conflict (order_id, sku) do update
                    set quantity = excluded.quantity,
                        expected_restock_date = excluded.expected_restock_date)
             select version, updated_at, parked from saved",
        )
        .bind(state.id.uuid())
        .bind(state.version)
        .bind(state.status.as_str())
        .bind(&state.status_reason)
        .bind(state.payment_status.as_str())
        .bind(&state.payment_id)
        .bind(state.reservation_id)
        .bind(state.next_action.map(|a| a.as_str()))
        .bind(save.attempts)
        .bind(matches!(save.last_error, LastError::Keep))
        .bind(match save.last_error {
            LastError::Set(text) => Some(clip(text)),
            LastError::Keep | LastError::Clear => None,
        })
        .bind(lease_ms(save.retry_in))
        .bind(owner)
        .bind(lease_for)
        .bind(&actions)
        .bind(&outcomes)
        .bind(&details)
        .bind(park_now)
        .bind(park_after)
        .bind(backordered.iter().map(|b| b.sku.as_str()).collect::<Vec<_>>())
        .bind(backordered.iter().map(|b| b.quantity).collect::<Vec<_>>())
        .bind(backordered.iter().map(|b| b.expected_restock_date.as_str()).collect::<Vec<_>>())
        .bind(state.backordered.is_some())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(version, updated_at, parked)| Saved { version, updated_at, parked }))
    }

    /// Hands back an order claimed but not driven, as it was: free, or (when the previous
    /// driver's lease had lapsed) lapsed, so the next claimer still knows its row may be
    /// behind.
    pub async fn give_back(&self, claimed: Claimed, owner: Uuid) -> Result<(), OrderError> {
        sqlx::query(
            "update orders.orders
                set lease_owner = case when $3 then lease_owner end,
                    leased_until = case when $3 then now() end
              where id = $1 and lease_owner = $2",
        )
        .bind(claimed.id.uuid())
        .bind(owner)
        .bind(claimed.lapsed)
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
    ) -> Result<Vec<Claimed>, OrderError> {
        let rows: Vec<(Uuid, bool, Option<String>, Option<String>)> = sqlx::query_as(
            "with due as (
                 select id, lease_owner is not null as lapsed, trace_parent, trace_state
                   from orders.orders
                  where next_action is not null and next_attempt_at <= now()
                    and parked_at is null
                    and (leased_until is null or leased_until < now())
                  order by next_attempt_at
                  limit $3
                    for update skip locked)
             update orders.orders o
                set lease_owner = $1, leased_until = now() + $2 * interval '1 millisecond',
                    version = version + 1
               from due
              where o.id = due.id
             returning o.id, due.lapsed, due.trace_parent, due.trace_state",
        )
        .bind(owner)
        .bind(lease_ms(lease))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, lapsed, parent, state)| Claimed {
                id: OrderId::from(id),
                lapsed,
                origin: W3cTraceContext::from_parts(parent, state),
            })
            .collect())
    }

    /// How many orders still have a saga step to do (and the age of the oldest), and how
    /// many of those are parked for an operator (counted apart: nothing retries them).
    pub async fn backlog(&self) -> Result<Backlog, OrderError> {
        let (count, oldest, parked): (i64, Option<f64>, i64) = sqlx::query_as(
            "select count(*) filter (where parked_at is null),
                    extract(epoch from now() - min(created_at) filter (where parked_at is null))::float8,
                    count(*) filter (where parked_at is not null)
               from orders.orders where next_action is not null",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Backlog { count, oldest_seconds: oldest.map_or(0, |s| s.max(0.0) as i64), parked })
    }
}
