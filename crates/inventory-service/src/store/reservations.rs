//! Holds: reserve, commit, cancel, read, and the expiry sweep.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{
    ReservationView, ReserveOutcome, ReservedLine, SettleOutcome, Store,
    ledger::{hold, settle},
};
use crate::domain::{
    ReservationId, ReservationStatus,
    allocation::{LevelSnapshot, Refusal, allocate},
    commands::{Reserve, Settle},
};
use crate::error::InventoryError;

/// What one sweep released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: u64,
}

impl Store {
    /// Takes an all-or-nothing hold for `req`, or returns the reference's live hold.
    #[tracing::instrument(skip_all, fields(reference_type = %req.reference.kind, reference_id = %req.reference.id, reservation_id))]
    pub async fn reserve(&self, req: &Reserve) -> Result<ReserveOutcome, InventoryError> {
        let id = ReservationId::new();
        let mut tx = self.pool.begin().await?;

        // Claiming the reference first makes a concurrent retry of the same reference wait
        // here for this transaction, then find its hold instead of taking a second one.
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
             values ($1, $2, $3, 'PENDING', now() + make_interval(mins => $4))
             on conflict (reference_type, reference_id) where status in ('PENDING', 'COMMITTED')
             do nothing
             returning id",
        )
        .bind(id.uuid())
        .bind(&req.reference.kind)
        .bind(&req.reference.id)
        .bind(i32::try_from(req.expires_in_minutes).unwrap_or(i32::MAX))
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            tx.rollback().await?;
            return self.live_hold(&req.reference.kind, &req.reference.id).await;
        }
        tracing::Span::current().record("reservation_id", tracing::field::display(id));

        let levels = lock_candidate_levels(&mut tx, req).await?;
        let allocation = match allocate(&req.lines, &levels) {
            Ok(a) => a,
            Err(Refusal::UnknownItems(refs)) => {
                tx.rollback().await?;
                return Err(InventoryError::NotFound {
                    what: "inventory item",
                    key: refs.join(", "),
                });
            }
            Err(Refusal::Short(shortages)) => {
                tx.rollback().await?;
                return Ok(ReserveOutcome::Short(shortages));
            }
        };
        let (level_ids, quantities): (Vec<i64>, Vec<i32>) = allocation.into_iter().unzip();
        hold(&mut tx, id.uuid(), &level_ids, &quantities).await?;
        tx.commit().await?;
        Ok(ReserveOutcome::Reserved(id))
    }

    /// The live (pending or committed) hold of a reference, after a claim found one.
    async fn live_hold(
        &self,
        kind: &str,
        reference: &str,
    ) -> Result<ReserveOutcome, InventoryError> {
        let row = sqlx::query(
            "select id, status from inventory.reservations
              where reference_type = $1 and reference_id = $2 and status in ('PENDING', 'COMMITTED')",
        )
        .bind(kind)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // The live hold ended between our claim and this read: the client may retry.
            return Err(InventoryError::FailedPrecondition(format!(
                "the hold for {kind} {reference} changed concurrently; retry"
            )));
        };
        let status = parse_status(&row.try_get::<String, _>("status")?)?;
        Ok(ReserveOutcome::Existing(ReservationId::from(row.try_get::<Uuid, _>("id")?), status))
    }

    /// Commits or cancels a hold, idempotently.
    #[tracing::instrument(skip_all, fields(reservation_id = %op.reservation()))]
    pub async fn settle(&self, op: Settle) -> Result<SettleOutcome, InventoryError> {
        let id = op.reservation();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "select status, expires_at <= now() as lapsed from inventory.reservations
              where id = $1 for update",
        )
        .bind(id.uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(InventoryError::NotFound { what: "reservation", key: id.to_string() });
        };
        let status = parse_status(&row.try_get::<String, _>("status")?)?;
        let lapsed: bool = row.try_get("lapsed")?;

        use ReservationStatus as S;
        let outcome = match (op, status) {
            (Settle::Commit(_), S::Committed) => SettleOutcome::AlreadyDone(status),
            (Settle::Commit(_), S::Cancelled | S::Expired) => SettleOutcome::Refused(status),
            // Past its expiry the hold is gone even if the sweeper has not run yet: expire it
            // now rather than sell units another buyer may already have been told are free.
            (Settle::Commit(_), S::Pending) if lapsed => {
                settle(&mut tx, &[id.uuid()], S::Expired).await?;
                SettleOutcome::Refused(S::Expired)
            }
            (Settle::Commit(_), S::Pending) => {
                settle(&mut tx, &[id.uuid()], S::Committed).await?;
                SettleOutcome::Applied
            }
            (Settle::Cancel(_), S::Cancelled | S::Expired) => SettleOutcome::AlreadyDone(status),
            (Settle::Cancel(_), S::Committed) => SettleOutcome::Refused(status),
            (Settle::Cancel(_), S::Pending) => {
                settle(&mut tx, &[id.uuid()], S::Cancelled).await?;
                SettleOutcome::Applied
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// A hold with its lines.
    pub async fn reservation(&self, id: ReservationId) -> Result<ReservationView, InventoryError> {
        let row = sqlx::query(
            "select reference_type, reference_id, status, expires_at
               from inventory.reservations where id = $1",
        )
        .bind(id.uuid())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| InventoryError::NotFound { what: "reservation", key: id.to_string() })?;
        let items = sqlx::query_as::<_, (String, String, i32)>(
            "select i.sku, sl.warehouse_id, ri.quantity
               from inventory.reservation_items ri
               join inventory.stock_levels sl on sl.id = ri.stock_level_id
               join inventory.items i on i.id = sl.item_id
              where ri.reservation_id = $1
              order by i.sku, sl.warehouse_id",
        )
        .bind(id.uuid())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(sku, warehouse_id, quantity)| ReservedLine { sku, warehouse_id, quantity })
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

/// Locks, in the global id order, every stock row of every item the request names.
async fn lock_candidate_levels(
    conn: &mut PgConnection,
    req: &Reserve,
) -> Result<Vec<LevelSnapshot>, sqlx::Error> {
    let skus: Vec<&str> = req.lines.iter().map(|l| l.item.as_str()).collect();
    let ids: Vec<Uuid> = req.lines.iter().filter_map(|l| l.item.id()).collect();
    let rows = sqlx::query_as::<_, (i64, Uuid, String, String, i32)>(
        "select sl.id, i.id, i.sku, sl.warehouse_id, sl.on_hand - sl.reserved
           from inventory.stock_levels sl
           join inventory.items i on i.id = sl.item_id
          where i.sku = any($1) or i.id = any($2)
          order by sl.id
            for update of sl",
    )
    .bind(&skus)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(level_id, item_id, sku, warehouse_id, available)| LevelSnapshot {
            level_id,
            item_id,
            sku,
            warehouse_id,
            available,
        })
        .collect())
}

fn parse_status(value: &str) -> Result<ReservationStatus, InventoryError> {
    ReservationStatus::from_db(value).ok_or_else(|| {
        InventoryError::Internal(anyhow::anyhow!(
            "unknown reservation status {value:?} in the database"
        ))
    })
}
