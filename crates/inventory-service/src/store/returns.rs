//! ReturnStock: units of a committed hold back on hand (or recorded as not restocked), once
//! per idempotency key, in one transaction.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::reservations::{not_theirs, parse_status};
use super::{ReturnView, ReturnedLine, Store};
use crate::domain::{
    ReservationId, ReservationStatus,
    returns::{HeldRow, OverReturn, ReturnStock, Taken, take_back},
};
use crate::error::InventoryError;

/// The hold's stock rows with what earlier returns took back of each.
const HELD_ROWS: &str = "
    select ri.stock_level_id, i.sku, sl.warehouse_id, ri.quantity,
           coalesce((select sum(l.quantity)
                       from inventory.stock_returns sr
                       join inventory.stock_return_lines l on l.return_id = sr.id
                      where sr.reservation_id = ri.reservation_id
                        and l.stock_level_id = ri.stock_level_id), 0)::int as returned
      from inventory.reservation_items ri
      join inventory.stock_levels sl on sl.id = ri.stock_level_id
      join inventory.items i on i.id = sl.item_id
     where ri.reservation_id = $1";

/// Writes the lines, puts the restocked units on hand and records a movement per line, in
/// one statement. The stock rows were locked in id order just before.
const APPLY: &str = "
    with taken as (
        select * from unnest($2::bigint[], $3::int[], $4::bool[]) as t (stock_level_id, quantity, restock)),
    lines as (
        insert into inventory.stock_return_lines (return_id, stock_level_id, quantity, restock)
        select $1, stock_level_id, quantity, restock from taken),
    stock as (
        update inventory.stock_levels sl
           set on_hand = sl.on_hand + r.quantity, updated_at = now()
          from (select stock_level_id, sum(quantity)::int as quantity
                  from taken where restock group by stock_level_id) r
         where sl.id = r.stock_level_id),
    moved as (
        insert into inventory.movements
               (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id, reason)
        select stock_level_id, case when restock then 'RETURN' else 'RETURN_NO_RESTOCK' end,
               case when restock then quantity else 0 end, 0, $5, $6
          from taken)
    update inventory.reservations set updated_at = now() where id = $5";

impl Store {
    /// Applies `req` once: the hold is locked first (the global order: holds before stock
    /// rows), then its key claimed; a key already used answers the stored return (same
    /// request) or is refused (another one), with nothing written.
    #[tracing::instrument(skip_all, fields(reservation_id = %req.reservation, key = req.key.as_str()))]
    pub async fn return_stock(&self, req: &ReturnStock) -> Result<ReturnView, InventoryError> {
        let mut tx = self.pool.begin().await?;
        let hold = sqlx::query(
            "select status, owner from inventory.reservations where id = $1 for update",
        )
        .bind(req.reservation.uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| InventoryError::NotFound {
            what: "reservation",
            key: req.reservation.to_string(),
        })?;
        if !req.caller.may_touch(hold.try_get::<Option<String>, _>("owner")?.as_deref()) {
            return Err(not_theirs(req.reservation, "return stock of"));
        }
        let fingerprint = req.fingerprint();
        let id = Uuid::now_v7();
        let claimed = sqlx::query(
            "insert into inventory.stock_returns
                    (id, reservation_id, idempotency_key, request_fingerprint, reason)
             values ($1, $2, $3, $4, $5)
             on conflict (idempotency_key) do nothing",
        )
        .bind(id)
        .bind(req.reservation.uuid())
        .bind(req.key.as_str())
        .bind(&fingerprint)
        .bind(req.reason.as_ref().map(|r| r.as_str()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            // The key's return committed before this claim (the insert waited for it).
            tx.rollback().await?;
            return self.stored_return(req, &fingerprint).await;
        }
        let status = parse_status(&hold.try_get::<String, _>("status")?)?;
        if status != ReservationStatus::Committed {
            return Err(InventoryError::FailedPrecondition(format!(
                "reservation {} is {}: only the stock of a COMMITTED hold can be returned",
                req.reservation,
                status.as_str()
            )));
        }
        let rows = held_rows(&mut tx, req.reservation).await?;
        let taken = take_back(&rows, &req.lines).map_err(|over| over_return(req, &over))?;
        let restocked: Vec<i64> =
            taken.iter().filter(|t| t.restock).map(|t| t.stock_level_id).collect();
        sqlx::query(
            "select 1 from inventory.stock_levels where id = any($1) order by id for no key update",
        )
        .bind(&restocked)
        .execute(&mut *tx)
        .await?;
        sqlx::query(APPLY)
            .bind(id)
            .bind(taken.iter().map(|t| t.stock_level_id).collect::<Vec<_>>())
            .bind(taken.iter().map(|t| t.quantity).collect::<Vec<_>>())
            .bind(taken.iter().map(|t| t.restock).collect::<Vec<_>>())
            .bind(req.reservation.uuid())
            .bind(req.reason.as_ref().map(|r| r.as_str()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(units = taken.iter().map(|t| t.quantity).sum::<i32>(), "stock returned");
        Ok(ReturnView {
            id,
            reservation_id: req.reservation,
            lines: named(&rows, &taken),
            replayed: false,
        })
    }

    /// The return stored under `req`'s key: the same request gets it back, another is refused.
    async fn stored_return(
        &self,
        req: &ReturnStock,
        fingerprint: &str,
    ) -> Result<ReturnView, InventoryError> {
        let stored = sqlx::query(
            "select id, request_fingerprint from inventory.stock_returns where idempotency_key = $1",
        )
        .bind(req.key.as_str())
        .fetch_optional(&self.pool)
        .await?
        // Gone again (retention removed it since the claim): it was applied once, so refuse
        // rather than apply it a second time.
        .ok_or_else(|| InventoryError::ReturnKeyInUse(req.key.as_str().to_owned()))?;
        if stored.try_get::<String, _>("request_fingerprint")? != fingerprint {
            return Err(InventoryError::ReturnKeyInUse(req.key.as_str().to_owned()));
        }
        let id: Uuid = stored.try_get("id")?;
        let lines = sqlx::query_as::<_, (String, String, i32, bool)>(
            "select i.sku, sl.warehouse_id, l.quantity, l.restock
               from inventory.stock_return_lines l
               join inventory.stock_levels sl on sl.id = l.stock_level_id
               join inventory.items i on i.id = sl.item_id
              where l.return_id = $1
              order by l.stock_level_id, l.restock desc",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(sku, warehouse_id, quantity, restock)| ReturnedLine {
            sku,
            warehouse_id,
            quantity,
            restock,
        })
        .collect();
        Ok(ReturnView { id, reservation_id: req.reservation, lines, replayed: true })
    }
}

async fn held_rows(
    conn: &mut PgConnection,
    reservation: ReservationId,
) -> Result<Vec<HeldRow>, sqlx::Error> {
    let rows = sqlx::query_as::<_, (i64, String, String, i32, i32)>(HELD_ROWS)
        .bind(reservation.uuid())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(stock_level_id, sku, warehouse_id, committed, returned)| HeldRow {
            stock_level_id,
            sku,
            warehouse_id,
            committed,
            returned,
        })
        .collect())
}

/// The takes with their SKU and warehouse, for the answer.
fn named(rows: &[HeldRow], taken: &[Taken]) -> Vec<ReturnedLine> {
    taken
        .iter()
        .filter_map(|t| {
            let row = rows.iter().find(|r| r.stock_level_id == t.stock_level_id)?;
            Some(ReturnedLine {
                sku: row.sku.clone(),
                warehouse_id: row.warehouse_id.clone(),
                quantity: t.quantity,
                restock: t.restock,
            })
        })
        .collect()
}

fn over_return(req: &ReturnStock, over: &OverReturn) -> InventoryError {
    let sku = req.lines.get(over.line).map_or("", |l| l.sku.as_str());
    InventoryError::FailedPrecondition(format!(
        "lines[{}].quantity: returns {} of SKU {sku} but reservation {} has {} committed units of \
         it left to return; nothing was returned",
        over.line, over.requested, req.reservation, over.returnable
    ))
}
