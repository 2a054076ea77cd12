//! Holds: reserve, commit, cancel, read, and the expiry sweep.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{
    BackorderedView, ReservationView, ReserveOutcome, ReservedLine, SettleOutcome, Store,
    ledger::settle,
};
use crate::domain::{
    HoldCaller, Reference, ReservationId, ReservationStatus,
    allocation::Shortage,
    commands::{Reserve, Settle},
};
use crate::error::{HOLD_OF_ANOTHER_CALLER, InventoryError};

/// What one sweep released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: u64,
}

impl Store {
    /// Takes an all-or-nothing hold for `req`, or returns the reference's live hold.
    ///
    /// With batching on, the call waits in the batcher's queue and shares a transaction with
    /// the calls queued beside it; otherwise it runs alone. Either way it is one round trip
    /// to `inventory.reserve_holds`.
    #[tracing::instrument(skip_all, fields(reference_type = %req.reference.kind, reference_id = %req.reference.id, reservation_id))]
    pub async fn reserve(&self, req: &Reserve) -> Result<ReserveOutcome, InventoryError> {
        let outcome = match &self.batcher {
            Some(batcher) => batcher.submit(req.clone()).await,
            None => {
                let timeout = lock_timeout_for([common::overload::deadline::current()]);
                let answers = self.reserve_many(&[req], timeout).await?;
                answers.into_iter().next().unwrap_or_else(|| Err(missing_answer()))
            }
        }?;
        if let ReserveOutcome::Reserved(id)
        | ReserveOutcome::ReservedOnBackorder(id)
        | ReserveOutcome::Existing(id, _) = &outcome
        {
            tracing::Span::current().record("reservation_id", tracing::field::display(id));
        }
        Ok(outcome)
    }

    /// The hold's units still on backorder, per stock row (SKU, warehouse order).
    pub async fn backordered(
        &self,
        id: ReservationId,
    ) -> Result<Vec<BackorderedView>, InventoryError> {
        let rows = sqlx::query_as::<_, (String, String, i32, Option<NaiveDate>)>(
            "select i.sku, sl.warehouse_id, ri.backordered, sl.restock_date
               from inventory.reservation_items ri
               join inventory.stock_levels sl on sl.id = ri.stock_level_id
               join inventory.items i on i.id = sl.item_id
              where ri.reservation_id = $1 and ri.backordered > 0
              order by i.sku, sl.warehouse_id",
        )
        .bind(id.uuid())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sku, warehouse_id, quantity, restock_date)| BackorderedView {
                sku,
                warehouse_id,
                quantity,
                restock_date,
            })
            .collect())
    }

    /// Runs `reqs` as one batch, in this order, in one transaction: each gets its own
    /// all-or-nothing answer, as if they had run one after the other. The outer error is a
    /// failure of the whole batch (nothing was written).
    pub async fn reserve_batch(
        &self,
        reqs: &[Reserve],
    ) -> Result<Vec<Result<ReserveOutcome, InventoryError>>, InventoryError> {
        let reqs: Vec<&Reserve> = reqs.iter().collect();
        Ok(self.reserve_many(&reqs, None).await?)
    }

    /// [`reserve_many_on`] on a connection of the pool, in one autocommit round trip.
    pub(super) async fn reserve_many(
        &self,
        reqs: &[&Reserve],
        lock_timeout: Option<Duration>,
    ) -> Result<Vec<Result<ReserveOutcome, InventoryError>>, sqlx::Error> {
        reserve_many_on(&self.pool, reqs, lock_timeout).await
    }

    /// Commits or cancels a hold for `caller`, idempotently: one round trip to
    /// `inventory.settle_hold_as` (see its migration), which locks the hold and, when it is
    /// pending and the caller may touch it, moves it on.
    #[tracing::instrument(skip_all, fields(reservation_id = %op.reservation()))]
    pub async fn settle(
        &self,
        op: Settle,
        caller: &HoldCaller,
    ) -> Result<SettleOutcome, InventoryError> {
        let id = op.reservation();
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "select o_was, o_now, o_owner from inventory.settle_hold_as($1, $2, $3)",
        )
        .bind(id.uuid())
        .bind(matches!(op, Settle::Commit(_)))
        .bind(caller.restricted_to())
        .fetch_optional(&self.pool)
        .await?;
        let Some((was, now, owner)) = row else {
            return Err(InventoryError::NotFound { what: "reservation", key: id.to_string() });
        };
        if !caller.may_touch(owner.as_deref()) {
            return Err(not_theirs(id, op.verb()));
        }
        let was = parse_status(&was)?;
        let now = now.as_deref().map(parse_status).transpose()?;

        use ReservationStatus as S;
        Ok(match (op, was, now) {
            // Past its expiry the hold is gone even if the sweeper has not run yet: it was
            // expired now rather than sell units another buyer may have been told are free.
            (Settle::Commit(_), S::Pending, Some(S::Expired)) => SettleOutcome::Refused(S::Expired),
            (_, S::Pending, Some(_)) => SettleOutcome::Applied,
            (Settle::Commit(_), S::Committed, None) => SettleOutcome::AlreadyDone(was),
            (Settle::Commit(_), S::Cancelled | S::Expired, None) => SettleOutcome::Refused(was),
            (Settle::Cancel(_), S::Cancelled | S::Expired, None) => SettleOutcome::AlreadyDone(was),
            (Settle::Cancel(_), S::Committed, None) => SettleOutcome::Refused(was),
            (_, was, now) => {
                return Err(InventoryError::Internal(anyhow::anyhow!(
                    "inventory.settle_hold moved a {was:?} hold to {now:?}"
                )));
            }
        })
    }

    /// The hold a reference names: its live (PENDING or COMMITTED) hold, or else its latest
    /// settled one, so that repeating a cancel by reference answers like repeating it by id.
    /// NOT_FOUND when the reference never held anything.
    pub async fn live_hold(&self, reference: &Reference) -> Result<ReservationId, InventoryError> {
        let id: Option<Uuid> = sqlx::query_scalar(
            "select id from inventory.reservations
              where reference_type = $1 and reference_id = $2
              order by status in ('PENDING', 'COMMITTED') desc, created_at desc
              limit 1",
        )
        .bind(&reference.kind)
        .bind(&reference.id)
        .fetch_optional(&self.pool)
        .await?;
        id.map(ReservationId::from).ok_or_else(|| InventoryError::NotFound {
            what: "reservation of reference",
            key: format!("{}/{}", reference.kind, reference.id),
        })
    }

    /// A hold with its lines, if `caller` may read it.
    pub async fn reservation(
        &self,
        id: ReservationId,
        caller: &HoldCaller,
    ) -> Result<ReservationView, InventoryError> {
        let row = sqlx::query(
            "select reference_type, reference_id, status, expires_at, owner
               from inventory.reservations where id = $1",
        )
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| InventoryError::NotFound { what: "reservation", key: id.to_string() })?;
        if !caller.may_touch(row.try_get::<Option<String>, _>("owner")?.as_deref()) {
            return Err(not_theirs(id, "read"));
        }
        let items = sqlx::query_as::<_, (String, String, i32, i64, i64, i32, Option<NaiveDate>)>(
            "select i.sku, sl.warehouse_id, ri.quantity,
                    coalesce(sum(l.quantity), 0),
                    coalesce(sum(l.quantity) filter (where not l.restock), 0),
                    ri.backordered, sl.restock_date
               from inventory.reservation_items ri
               join inventory.stock_levels sl on sl.id = ri.stock_level_id
               join inventory.items i on i.id = sl.item_id
               left join inventory.stock_returns sr on sr.reservation_id = ri.reservation_id
               left join inventory.stock_return_lines l
                      on l.return_id = sr.id and l.stock_level_id = ri.stock_level_id
              where ri.reservation_id = $1
              group by i.sku, sl.warehouse_id, ri.quantity, ri.backordered, sl.restock_date
              order by i.sku, sl.warehouse_id",
        )
        .bind(id.uuid())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(sku, warehouse_id, quantity, returned, not_restocked, backordered, restock_date)| {
            ReservedLine {
                sku,
                warehouse_id,
                quantity,
                returned: i32::try_from(returned).unwrap_or(i32::MAX),
                not_restocked: i32::try_from(not_restocked).unwrap_or(i32::MAX),
                backordered,
                restock_date,
            }
        })
        .collect();
        Ok(ReservationView {
            id,
            reference_type: row.try_get("reference_type")?,
            reference_id: row.try_get("reference_id")?,
            status: parse_status(&row.try_get::<String, _>("status")?)?,
            expires_at: row.try_get::<DateTime<Utc>, _>("expires_at")?,
            items,
        })
    }

    /// Expires up to `batch` pending holds past their expiry. Replicas sweep side by side:
    /// each skips the holds another has locked.
    pub async fn sweep_expired(&self, batch: u32) -> Result<SweepReport, InventoryError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "select id from inventory.reservations
              where status = 'PENDING' and expires_at <= now()
              order by expires_at
              limit $1
              for update skip locked",
        )
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(SweepReport::default());
        }
        settle(&mut tx, &ids, ReservationStatus::Expired).await?;
        tx.commit().await?;
        for id in &ids {
            tracing::info!(reservation_id = %id, "expired hold released");
        }
        Ok(SweepReport { expired: ids.len() as u64 })
    }
}

/// How much before the latest of its calls' deadlines a reservation statement stops waiting
/// for locks: the server answers DEADLINE_EXCEEDED at the deadline, and a lock granted in the
/// moment between that answer and the database's own timeout would commit a hold the caller
/// was told it did not get. (An autocommit statement is not stopped by dropping its future.)
const LOCK_TIMEOUT_MARGIN: Duration = Duration::from_millis(25);

/// The `lock_timeout` of a reservation statement serving calls with `deadlines`: until
/// shortly before the latest of them; no limit when a call has no deadline.
pub(super) fn lock_timeout_for(
    deadlines: impl IntoIterator<Item = Option<tokio::time::Instant>>,
) -> Option<Duration> {
    let now = tokio::time::Instant::now();
    deadlines
        .into_iter()
        .map(|d| d.map(|d| d.saturating_duration_since(now)))
        .try_fold(Duration::ZERO, |latest, left| left.map(|left| latest.max(left)))
        .map(|left| left.saturating_sub(LOCK_TIMEOUT_MARGIN))
}

/// The answer to a caller touching a hold another client identity took.
pub(super) fn not_theirs(id: ReservationId, verb: &str) -> InventoryError {
    InventoryError::PermissionDenied {
        reason: HOLD_OF_ANOTHER_CALLER,
        message: format!(
            "reservation {id} was taken by another caller; this caller may not {verb} it"
        ),
    }
}

/// One call of `inventory.reserve_holds` (see its migration): claims, locks in the global
/// order, allocates as `domain::allocation::allocate` does, writes; one round trip, one
/// transaction (autocommit). The SQL text is constant, so the statement is prepared once per
/// connection. With `lock_timeout`, the statement waits no longer for any lock (it then fails
/// and writes nothing).
pub(super) async fn reserve_many_on<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    reqs: &[&Reserve],
    lock_timeout: Option<Duration>,
) -> Result<Vec<Result<ReserveOutcome, InventoryError>>, sqlx::Error> {
    let lines = reqs.iter().map(|r| r.lines.len()).sum();
    let mut ids = Vec::with_capacity(reqs.len());
    let mut ref_types = Vec::with_capacity(reqs.len());
    let mut ref_ids = Vec::with_capacity(reqs.len());
    let mut minutes = Vec::with_capacity(reqs.len());
    let mut fingerprints = Vec::with_capacity(reqs.len());
    let mut owners = Vec::with_capacity(reqs.len());
    let mut line_req = Vec::with_capacity(lines);
    let mut line_refs = Vec::with_capacity(lines);
    let mut line_ids = Vec::with_capacity(lines);
    let mut line_whs = Vec::with_capacity(lines);
    let mut line_qtys = Vec::with_capacity(lines);
    for (k, req) in (1_i32..).zip(reqs) {
        ids.push(ReservationId::new().uuid());
        ref_types.push(req.reference.kind.as_str());
        ref_ids.push(req.reference.id.as_str());
        minutes.push(i32::try_from(req.expires_in_minutes).unwrap_or(i32::MAX));
        fingerprints.push(req.fingerprint());
        owners.push(req.caller.principal.as_deref());
        for line in &req.lines {
            line_req.push(k);
            line_refs.push(line.item.as_str());
            line_ids.push(line.item.id());
            line_whs.push(line.warehouse.as_ref().map(|w| w.as_str()));
            line_qtys.push(line.quantity.get());
        }
    }
    let rows = sqlx::query_as::<_, ReserveRow>(
        "select o_req, o_outcome, o_hold, o_status, o_item, o_warehouse, o_requested, o_available,
                o_fingerprint, o_owner
           from inventory.reserve_holds($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&ids)
    .bind(&ref_types)
    .bind(&ref_ids)
    .bind(&minutes)
    .bind(&fingerprints)
    .bind(&owners)
    .bind(&line_req)
    .bind(&line_refs)
    .bind(&line_ids)
    .bind(&line_whs)
    .bind(&line_qtys)
    .bind(lock_timeout.map(|t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX)))
    .fetch_all(executor)
    .await?;
    Ok(answers(reqs, &fingerprints, rows))
}

/// One row of `inventory.reserve_holds`: request (1-based), outcome, hold id and status, for
/// refusals one unknown ref or one short line (SKU, warehouse, requested, available), and for
/// 'existing' the live hold's fingerprint and owner.
type ReserveRow = (
    i32,
    String,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// Groups the function's rows into one answer per request, in request order; `fingerprints`
/// are the requests' own.
fn answers(
    reqs: &[&Reserve],
    fingerprints: &[String],
    rows: Vec<ReserveRow>,
) -> Vec<Result<ReserveOutcome, InventoryError>> {
    let mut out: Vec<Option<Result<ReserveOutcome, InventoryError>>> =
        std::iter::repeat_with(|| None).take(reqs.len()).collect();
    let mut unknown: Vec<Vec<String>> = vec![Vec::new(); reqs.len()];
    let mut short: Vec<Vec<Shortage>> = vec![Vec::new(); reqs.len()];
    for (req, outcome, hold, status, item, warehouse, requested, available, fingerprint, owner) in
        rows
    {
        let Some(k) =
            usize::try_from(req).ok().and_then(|k| k.checked_sub(1)).filter(|k| *k < reqs.len())
        else {
            continue;
        };
        match outcome.as_str() {
            "unknown" => unknown[k].push(item.unwrap_or_default()),
            "short" => short[k].push(Shortage {
                sku: item.unwrap_or_default(),
                warehouse,
                requested: requested.unwrap_or_default(),
                available: available.unwrap_or_default(),
            }),
            "reserved" | "existing" => {
                out[k] = Some(match hold {
                    None => Err(missing_answer()),
                    // A reserved hold's o_requested: its backordered units (null or 0: none).
                    Some(id) if outcome == "reserved" && requested.unwrap_or(0) > 0 => {
                        Ok(ReserveOutcome::ReservedOnBackorder(id.into()))
                    }
                    Some(id) if outcome == "reserved" => Ok(ReserveOutcome::Reserved(id.into())),
                    Some(id) => existing(
                        reqs[k],
                        &fingerprints[k],
                        id.into(),
                        status.as_deref().unwrap_or_default(),
                        fingerprint.as_deref(),
                        owner.as_deref(),
                    ),
                });
            }
            _ => {
                // "vanished": the live hold our claim met ended before we could read it.
                let reference = &reqs[k].reference;
                out[k] = Some(Err(InventoryError::FailedPrecondition(format!(
                    "the hold for {} {} changed concurrently; retry",
                    reference.kind, reference.id
                ))));
            }
        }
    }
    out.into_iter()
        .zip(unknown.into_iter().zip(short))
        .map(|(answer, (unknown, short))| match answer {
            Some(answer) => answer,
            None if !unknown.is_empty() => {
                Err(InventoryError::NotFound { what: "inventory item", key: unknown.join(", ") })
            }
            None if !short.is_empty() => Ok(ReserveOutcome::Short(short)),
            None => Err(missing_answer()),
        })
        .collect()
}

/// The answer to `req` whose reference already holds hold `id`: the hold itself for a retry of
/// the same request by a caller that may touch it. Holds taken before fingerprints were kept
/// (none stored) match any request.
fn existing(
    req: &Reserve,
    mine: &str,
    id: ReservationId,
    status: &str,
    fingerprint: Option<&str>,
    owner: Option<&str>,
) -> Result<ReserveOutcome, InventoryError> {
    // Ownership first: another caller learns nothing about what its hold contains.
    if !req.caller.may_touch(owner) {
        return Err(InventoryError::PermissionDenied {
            reason: HOLD_OF_ANOTHER_CALLER,
            message: format!(
                "reference_id {:?} (reference_type {:?}) holds a reservation another caller took",
                req.reference.id, req.reference.kind
            ),
        });
    }
    if fingerprint.is_some_and(|theirs| theirs != mine) {
        return Err(InventoryError::ReferenceInUse(req.reference.clone()));
    }
    parse_status(status).map(|status| ReserveOutcome::Existing(id, status))
}

fn missing_answer() -> InventoryError {
    InventoryError::Internal(anyhow::anyhow!(
        "inventory.reserve_holds gave no answer for a request"
    ))
}

pub(super) fn parse_status(value: &str) -> Result<ReservationStatus, InventoryError> {
    ReservationStatus::from_db(value).ok_or_else(|| {
        InventoryError::Internal(anyhow::anyhow!(
            "unknown reservation status {value:?} in the database"
        ))
    })
}
