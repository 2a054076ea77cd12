//! Statements that move stock and write the ledger, shared by commit, cancel, expiry and the
//! admin writes (reserve does its writes inside `inventory.reserve_many`). Each writes its
//! movement rows in the same statement as the change.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ReservationStatus;

/// Ledger kinds, as the `movements.kind` CHECK allows them. `RESERVE` rows are written by the
/// SQL function `inventory.reserve_many` (migration `20261124000002_reserve_function.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MovementKind {
    Set,
    Adjust,
    Commit,
    Cancel,
    Expire,
}

impl MovementKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Set => "SET",
            Self::Adjust => "ADJUST",
            Self::Commit => "COMMIT",
            Self::Cancel => "CANCEL",
            Self::Expire => "EXPIRE",
        }
    }
}

/// Locks stock rows in id order: the one global order that keeps concurrent multi-row
/// statements (reserve, commit, cancel, expiry) from deadlocking each other.
pub(super) async fn lock_levels(conn: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("select id from inventory.stock_levels where id = any($1) order by id for update")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Changes one stock row's on_hand by `delta` and records why. The caller holds the row lock
/// and has checked the result stays within `reserved - backorder_limit..=i32::MAX`.
pub(super) async fn move_on_hand(
    conn: &mut PgConnection,
    level_id: i64,
    delta: i32,
    kind: MovementKind,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    if delta == 0 {
        return Ok(());
    }
    sqlx::query(
        "with u as (
             update inventory.stock_levels set on_hand = on_hand + $2, updated_at = now()
              where id = $1)
         insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reason)
         values ($1, $3, $2, 0, $4)",
    )
    .bind(level_id)
    .bind(delta)
    .bind(kind.as_str())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends pending holds: their units leave `reserved`, and, when committed, `on_hand` too.
/// Locks the rows they touch in the global order first, so it is safe beside any other writer.
pub(super) async fn settle(
    conn: &mut PgConnection,
    reservations: &[Uuid],
    to: ReservationStatus,
) -> Result<(), sqlx::Error> {
    let (kind, consumes) = match to {
        ReservationStatus::Committed => (MovementKind::Commit, 1),
        ReservationStatus::Cancelled => (MovementKind::Cancel, 0),
        ReservationStatus::Expired | ReservationStatus::Pending => (MovementKind::Expire, 0),
    };
    let level_ids: Vec<i64> = sqlx::query_scalar(
        "select distinct stock_level_id from inventory.reservation_items
          where reservation_id = any($1)",
    )
    .bind(reservations)
    .fetch_all(&mut *conn)
    .await?;
    lock_levels(conn, &level_ids).await?;
    sqlx::query(
        "with ri as (select reservation_id, stock_level_id, quantity
                       from inventory.reservation_items where reservation_id = any($1)),
              s as (select stock_level_id, sum(quantity)::int as q from ri group by stock_level_id),
              u as (update inventory.stock_levels sl
                       set on_hand = sl.on_hand - $2 * s.q, reserved = sl.reserved - s.q,
                           updated_at = now()
                      from s where sl.id = s.stock_level_id),
              r as (update inventory.reservations set status = $3, updated_at = now()
                     where id = any($1))
         insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reservation_id)
         select stock_level_id, $4, -($2 * quantity), -quantity, reservation_id from ri",
    )
    .bind(reservations)
    .bind(consumes)
    .bind(to.as_str())
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}
