//! The SQL of returns: the one transaction that writes a return (under its order's row lock,
//! after checking what is left), the return saga's guarded write and claim, and the reads that
//! list an order's returns.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{Store, lease_ms, parse_next_action, parse_payment_status, parse_status};
use crate::domain::returns::{
    BoughtLine, ReturnAction, ReturnItem, ReturnOrder, ReturnStatus, plan, refund_amount,
};
use crate::domain::{OrderId, OrderStatus, PaymentStatus};
use crate::error::{ORDER_NOT_RETURNABLE, OrderError};

/// A return as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnView {
    pub id: Uuid,
    pub order_id: OrderId,
    pub status: ReturnStatus,
    pub next_action: Option<ReturnAction>,
    pub items: Vec<ReturnItem>,
    pub refund_amount_minor: i64,
    pub currency: String,
    pub reason: String,
    pub status_reason: String,
    pub refund_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the return saga needs beyond the view: the row's version and attempts, and the
/// order's hold and payment the steps act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnState {
    pub view: ReturnView,
    pub version: i64,
    pub attempts: i32,
    /// The order's recorded hold (None: the steps name it by the order's reference).
    pub reservation_id: Option<Uuid>,
    pub payment_id: Option<String>,
}

/// A ReturnOrder request about to be written, leased to the request.
#[derive(Debug, Clone)]
pub struct NewReturn<'a> {
    pub cmd: &'a ReturnOrder,
    pub id: Uuid,
    pub owner: Uuid,
    pub lease: Duration,
}

/// What ReturnOrder's write found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnWrite {
    /// A new return, leased to the request: its state.
    Created(Box<ReturnState>),
    /// The same request under the key already wrote return `id`; `rearmed` when it needed an
    /// operator and is now due again, leased to the request.
    Existing { id: Uuid, rearmed: bool },
}

/// One guarded write of a return's progress.
#[derive(Debug, Clone)]
pub struct ReturnSave<'a> {
    /// The return to write, at the version last read or written.
    pub state: &'a ReturnState,
    /// Attempts of its next action so far.
    pub attempts: i32,
    /// What becomes of `last_error`: Some sets it, None clears it.
    pub last_error: Option<&'a str>,
    /// `next_attempt_at` = now + this.
    pub retry_in: Duration,
    /// Keep the lease for `owner` this long; None gives it up.
    pub lease: Option<(Uuid, Duration)>,
}

/// The order a return is written for, as its row lock read it.
#[derive(sqlx::FromRow)]
struct LockedOrder {
    status: String,
    next_action: Option<String>,
    parked: bool,
    payment_status: String,
    payment_id: Option<String>,
    currency: String,
    reservation_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct ReturnRow {
    id: Uuid,
    order_id: Uuid,
    status: String,
    next_action: Option<String>,
    refund_amount_minor: i64,
    currency: String,
    reason: String,
    status_reason: String,
    refund_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    return_id: Uuid,
    order_line: i32,
    sku: String,
    quantity: i32,
    do_not_restock: bool,
    unit_price_minor: i64,
}

const RETURN_COLUMNS: &str = "r.id, r.order_id, r.status, r.next_action, r.refund_amount_minor, \
     r.currency, r.reason, r.status_reason, r.refund_id, r.created_at, r.updated_at";

fn parse_return_status(value: &str) -> Result<ReturnStatus, OrderError> {
    ReturnStatus::from_db(value).ok_or_else(|| {
        OrderError::internal(format!("unknown return status {value:?} in the database"))
    })
}

fn parse_return_action(value: Option<&str>) -> Result<Option<ReturnAction>, OrderError> {
    value
        .map(|v| {
            ReturnAction::from_db(v).ok_or_else(|| {
                OrderError::internal(format!("unknown return action {v:?} in the database"))
            })
        })
        .transpose()
}

/// `rows` with their items (`items` ordered by return, then order line).
fn assemble(rows: Vec<ReturnRow>, items: Vec<ItemRow>) -> Result<Vec<ReturnView>, OrderError> {
    let mut by_return: HashMap<Uuid, Vec<ReturnItem>> = HashMap::new();
    for item in items {
        by_return.entry(item.return_id).or_default().push(ReturnItem {
            order_line: item.order_line,
            sku: item.sku,
            quantity: item.quantity,
            do_not_restock: item.do_not_restock,
            unit_price_minor: item.unit_price_minor,
        });
    }
    rows.into_iter()
        .map(|r| {
            Ok(ReturnView {
                items: by_return.remove(&r.id).unwrap_or_default(),
                id: r.id,
                order_id: OrderId::from(r.order_id),
                status: parse_return_status(&r.status)?,
                next_action: parse_return_action(r.next_action.as_deref())?,
                refund_amount_minor: r.refund_amount_minor,
                currency: r.currency,
                reason: r.reason,
                status_reason: r.status_reason,
                refund_id: r.refund_id,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .collect()
}

/// Refuses a return of an order that is not confirmed, or whose own saga has not finished.
fn returnable(
    status: &str,
    next_action: Option<&str>,
    parked: bool,
    payment_status: &str,
) -> Result<(), OrderError> {
    let refuse = |message: String| OrderError::Refused {
        reason: ORDER_NOT_RETURNABLE,
        field: Some("order_id".to_owned()),
        message,
    };
    let status = parse_status(status)?;
    if status != OrderStatus::Confirmed {
        return Err(refuse(format!(
            "order is {}; only a CONFIRMED order can be returned",
            status.as_str()
        )));
    }
    if parked {
        return Err(refuse(
            "order is waiting for an operator (a saga step failed for good); it cannot be \
             returned until that is resolved"
                .to_owned(),
        ));
    }
    if parse_next_action(next_action)?.is_some() {
        return Err(refuse(
            "the order's inventory commit is still in progress; try the return again later"
                .to_owned(),
        ));
    }
    if parse_payment_status(payment_status)? != PaymentStatus::Succeeded {
        return Err(refuse(format!(
            "order's payment is {}; only a paid order can be returned",
            parse_payment_status(payment_status)?.as_str()
        )));
    }
    Ok(())
}

impl Store {
    /// Writes a return in one transaction under its order's row lock (`FOR UPDATE`): the same
    /// request under the key answers the return it wrote (re-arming one that needs an
    /// operator), a different one is refused; otherwise the order must be confirmed with its
    /// saga finished, and the return may take no more than bought minus every earlier return.
    /// Any refusal writes nothing.
    #[tracing::instrument(skip_all, fields(order_id = %new.cmd.order_id))]
    pub async fn insert_return(&self, new: &NewReturn<'_>) -> Result<ReturnWrite, OrderError> {
        let cmd = new.cmd;
        let fingerprint = cmd.fingerprint();
        let mut tx = self.pool.begin().await?;
        let order: Option<LockedOrder> = sqlx::query_as(
            "select status, next_action, parked_at is not null as parked, payment_status,
                    payment_id, currency, reservation_id
               from orders.orders where id = $1 for update",
        )
        .bind(cmd.order_id.uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(order) = order else {
            return Err(OrderError::order_not_found(cmd.order_id));
        };
        if let Some(existing) = self.existing_return(&mut tx, new, &fingerprint).await? {
            tx.commit().await?;
            return Ok(existing);
        }
        returnable(
            &order.status,
            order.next_action.as_deref(),
            order.parked,
            &order.payment_status,
        )?;
        let bought: Vec<BoughtLine> = sqlx::query_as(
            "select line, sku, quantity, unit_price_minor
               from orders.order_items where order_id = $1 order by line",
        )
        .bind(cmd.order_id.uuid())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(line, sku, quantity, unit_price_minor)| BoughtLine {
            line,
            sku,
            quantity,
            unit_price_minor,
        })
        .collect();
        // Every earlier return counts, whatever its status: its units are on their way back.
        let returned: HashMap<i32, i64> = sqlx::query_as(
            "select i.order_line, sum(i.quantity)::int8
               from orders.order_return_items i
               join orders.order_returns r on r.id = i.return_id
              where r.order_id = $1
              group by i.order_line",
        )
        .bind(cmd.order_id.uuid())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let items = plan(&bought, &returned, &cmd.lines)?;
        let amount = refund_amount(&items)
            .ok_or_else(|| OrderError::internal("a return's refund overflows 64 bits"))?;
        let written =
            self.write_return(&mut tx, new, &fingerprint, &items, amount, &order.currency).await?;
        let Some((version, created_at)) = written else {
            // Cannot happen under the order's row lock; a retry gets a definite answer.
            return Err(OrderError::Aborted(
                "a concurrent return used this idempotency_key; retry".to_owned(),
            ));
        };
        tx.commit().await?;
        let view = ReturnView {
            id: new.id,
            order_id: cmd.order_id,
            status: ReturnStatus::Requested,
            next_action: Some(ReturnAction::Restock),
            items,
            refund_amount_minor: amount,
            currency: order.currency,
            reason: cmd.reason.clone(),
            status_reason: String::new(),
            refund_id: None,
            created_at,
            updated_at: created_at,
        };
        Ok(ReturnWrite::Created(Box::new(ReturnState {
            view,
            version,
            attempts: 0,
            reservation_id: order.reservation_id,
            payment_id: order.payment_id,
        })))
    }

    /// The return the request's key already names, re-armed if it needs an operator (a
    /// refused step is tried again now, leased to this request); ReturnKeyInUse when the key
    /// names a different request.
    async fn existing_return(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        new: &NewReturn<'_>,
        fingerprint: &[u8],
    ) -> Result<Option<ReturnWrite>, OrderError> {
        let found: Option<(Uuid, Vec<u8>, String)> = sqlx::query_as(
            "select id, request_fingerprint, status from orders.order_returns
              where order_id = $1 and idempotency_key = $2",
        )
        .bind(new.cmd.order_id.uuid())
        .bind(new.cmd.idempotency_key.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let Some((id, stored, status)) = found else { return Ok(None) };
        if stored != fingerprint {
            return Err(OrderError::ReturnKeyInUse);
        }
        if parse_return_status(&status)? != ReturnStatus::NeedsOperator {
            return Ok(Some(ReturnWrite::Existing { id, rearmed: false }));
        }
        sqlx::query(
            "update orders.order_returns
                set status = case next_action when 'restock' then 'REQUESTED' else 'RESTOCKED' end,
                    status_reason = '', attempts = 0, next_attempt_at = now(),
                    lease_owner = $2, leased_until = now() + $3 * interval '1 millisecond',
                    version = version + 1, updated_at = now()
              where id = $1",
        )
        .bind(id)
        .bind(new.owner)
        .bind(lease_ms(new.lease))
        .execute(&mut **tx)
        .await?;
        tracing::warn!(return_id = %id, "return needing an operator re-armed by its request");
        Ok(Some(ReturnWrite::Existing { id, rearmed: true }))
    }

    /// Inserts the return and its items, leased to the request; its version and creation time,
    /// or None if the key was taken meanwhile.
    async fn write_return(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        new: &NewReturn<'_>,
        fingerprint: &[u8],
        items: &[ReturnItem],
        amount: i64,
        currency: &str,
    ) -> Result<Option<(i64, DateTime<Utc>)>, OrderError> {
        let lines: Vec<i32> = items.iter().map(|i| i.order_line).collect();
        let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
        let quantities: Vec<i32> = items.iter().map(|i| i.quantity).collect();
        let flags: Vec<bool> = items.iter().map(|i| i.do_not_restock).collect();
        let prices: Vec<i64> = items.iter().map(|i| i.unit_price_minor).collect();
        Ok(sqlx::query_as(
            "with written as (
                 insert into orders.order_returns
                     (id, order_id, idempotency_key, request_fingerprint, reason, status,
                      next_action, refund_amount_minor, currency, lease_owner, leased_until)
                 values ($1, $2, $3, $4, $5, 'REQUESTED', 'restock', $6, $7, $8,
                         now() + $9 * interval '1 millisecond')
                 on conflict (order_id, idempotency_key) do nothing
                 returning id, version, created_at),
             items as (
                 insert into orders.order_return_items
                     (return_id, order_line, sku, quantity, do_not_restock, unit_price_minor)
                 select written.id, i.*
                   from written,
                        unnest($10::int4[], $11::text[], $12::int4[], $13::bool[], $14::int8[])
                            as i)
             select version, created_at from written",
        )
        .bind(new.id)
        .bind(new.cmd.order_id.uuid())
        .bind(new.cmd.idempotency_key.as_str())
        .bind(fingerprint)
        .bind(&new.cmd.reason)
        .bind(amount)
        .bind(currency)
        .bind(new.owner)
        .bind(lease_ms(new.lease))
        .bind(&lines)
        .bind(&skus)
        .bind(&quantities)
        .bind(&flags)
        .bind(&prices)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Return `id` with what its saga needs.
    pub async fn return_state(&self, id: Uuid) -> Result<Option<ReturnState>, OrderError> {
        let row: Option<(i64, i32, Option<Uuid>, Option<String>)> = sqlx::query_as(
            "select r.version, r.attempts, o.reservation_id, o.payment_id
               from orders.order_returns r join orders.orders o on o.id = r.order_id
              where r.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((version, attempts, reservation_id, payment_id)) = row else { return Ok(None) };
        let Some(view) = self.return_view(id).await? else { return Ok(None) };
        Ok(Some(ReturnState { view, version, attempts, reservation_id, payment_id }))
    }

    /// Return `id` as the API shows it.
    pub async fn return_view(&self, id: Uuid) -> Result<Option<ReturnView>, OrderError> {
        let rows: Vec<ReturnRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RETURN_COLUMNS} from orders.order_returns r where r.id = $1"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let items: Vec<ItemRow> = sqlx::query_as(
            "select return_id, order_line, sku, quantity, do_not_restock, unit_price_minor
               from orders.order_return_items where return_id = $1 order by order_line",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(assemble(rows, items)?.pop())
    }

    /// The returns of `orders` as `pool` has them (the pool their orders were read on),
    /// oldest first per order, in one query.
    pub(super) async fn returns_of(
        pool: &PgPool,
        orders: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<ReturnView>>, OrderError> {
        #[derive(sqlx::FromRow)]
        struct Joined {
            #[sqlx(flatten)]
            r: ReturnRow,
            order_line: i32,
            sku: String,
            quantity: i32,
            do_not_restock: bool,
            unit_price_minor: i64,
        }
        let joined: Vec<Joined> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {RETURN_COLUMNS}, i.order_line, i.sku, i.quantity, i.do_not_restock,
                    i.unit_price_minor
               from orders.order_returns r
               join orders.order_return_items i on i.return_id = r.id
              where r.order_id = any($1)
              order by r.order_id, r.created_at, r.id, i.order_line"
        )))
        .bind(orders)
        .fetch_all(pool)
        .await?;
        let mut rows = Vec::new();
        let mut items = Vec::new();
        for j in joined {
            items.push(ItemRow {
                return_id: j.r.id,
                order_line: j.order_line,
                sku: j.sku,
                quantity: j.quantity,
                do_not_restock: j.do_not_restock,
                unit_price_minor: j.unit_price_minor,
            });
            if rows.last().is_none_or(|last: &ReturnRow| last.id != j.r.id) {
                rows.push(j.r);
            }
        }
        let mut by_order: HashMap<Uuid, Vec<ReturnView>> = HashMap::new();
        for view in assemble(rows, items)? {
            by_order.entry(view.order_id.uuid()).or_default().push(view);
        }
        Ok(by_order)
    }

    /// Writes a return's progress if it is still at the version its driver last saw; the new
    /// version and write time, or None when someone took the return over meanwhile.
    pub async fn save_return(
        &self,
        save: &ReturnSave<'_>,
    ) -> Result<Option<(i64, DateTime<Utc>)>, OrderError> {
        let view = &save.state.view;
        let (owner, lease) = match save.lease {
            Some((owner, lease)) => (Some(owner), Some(lease_ms(lease))),
            None => (None, None),
        };
        Ok(sqlx::query_as(
            "update orders.order_returns
                set status = $3, next_action = $4, refund_id = $5, status_reason = $6,
                    attempts = $7, last_error = $8,
                    next_attempt_at = now() + $9 * interval '1 millisecond',
                    lease_owner = $10, leased_until = now() + $11 * interval '1 millisecond',
                    version = version + 1, updated_at = now()
              where id = $1 and version = $2
              returning version, updated_at",
        )
        .bind(view.id)
        .bind(save.state.version)
        .bind(view.status.as_str())
        .bind(view.next_action.map(ReturnAction::as_str))
        .bind(&view.refund_id)
        .bind(&view.status_reason)
        .bind(save.attempts)
        .bind(save.last_error.map(super::saga::clip))
        .bind(lease_ms(save.retry_in))
        .bind(owner)
        .bind(lease)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Claims up to `limit` due returns whose lease is free or lapsed (none needing an
    /// operator), leasing them to `owner`; replicas skip each other's rows.
    pub async fn claim_due_returns(
        &self,
        owner: Uuid,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Uuid>, OrderError> {
        Ok(sqlx::query_scalar(
            "with due as (
                 select id from orders.order_returns
                  where next_action is not null and status <> 'NEEDS_OPERATOR'
                    and next_attempt_at <= now()
                    and (leased_until is null or leased_until < now())
                  order by next_attempt_at
                  limit $3
                    for update skip locked)
             update orders.order_returns r
                set lease_owner = $1, leased_until = now() + $2 * interval '1 millisecond',
                    version = version + 1
               from due where r.id = due.id
             returning r.id",
        )
        .bind(owner)
        .bind(lease_ms(lease))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many returns wait for an operator.
    pub async fn returns_needing_operator(&self) -> Result<i64, OrderError> {
        Ok(sqlx::query_scalar(
            "select count(*) from orders.order_returns where status = 'NEEDS_OPERATOR'",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
