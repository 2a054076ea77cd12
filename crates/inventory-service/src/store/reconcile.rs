//! The reconciler's read-only checks of the stock invariants (see ARCHITECTURE.md
//! "Invariants"): one aggregate query per kind of mismatch, all in one snapshot.

use std::time::Duration;

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::Store;
use crate::domain::InconsistencyKind;
use crate::error::InventoryError;

/// One mismatching stock row (or, for a lapsed hold, the hold and its rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The row's SKU (a lapsed hold: its SKUs, comma-separated).
    pub sku: String,
    /// The row's warehouse (a lapsed hold: its warehouses, comma-separated).
    pub warehouse_id: String,
    /// The lapsed hold, for that kind.
    pub reservation_id: Option<Uuid>,
    /// What differs, with the numbers.
    pub detail: String,
}

/// How many mismatches of one kind exist, with the first few of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindReport {
    pub kind: InconsistencyKind,
    /// Every mismatch of this kind, not only the sampled ones.
    pub count: u64,
    /// At most the requested sample size, ordered by SKU and warehouse (holds: by expiry).
    pub samples: Vec<Mismatch>,
}

/// One reconciliation pass: a report per kind, in [`InconsistencyKind::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistencies {
    pub kinds: Vec<KindReport>,
}

impl Inconsistencies {
    /// The count of `kind` (0 when absent).
    pub fn count(&self, kind: InconsistencyKind) -> u64 {
        self.kinds.iter().find(|k| k.kind == kind).map_or(0, |k| k.count)
    }

    /// The count over every kind.
    pub fn total(&self) -> u64 {
        self.kinds.iter().map(|k| k.count).sum()
    }
}

// Each query returns at most `$1` sample rows plus, on every row, the total count of
// mismatches (`count(*) over ()` is computed before the limit applies). No row means none.

/// Rows whose `reserved` differs from their PENDING holds. The pending holds are found
/// through the partial index `reservations_pending_expiry`, their lines by primary key.
const RESERVED_MISMATCH: &str = "
    select i.sku, sl.warehouse_id, null::uuid as reservation_id,
           format('reserved %s, pending holds %s', sl.reserved, coalesce(h.held, 0)) as detail,
           count(*) over () as total
      from inventory.stock_levels sl
      join inventory.items i on i.id = sl.item_id
      left join (select ri.stock_level_id, sum(ri.quantity) as held
                   from inventory.reservations r
                   join inventory.reservation_items ri on ri.reservation_id = r.id
                  where r.status = 'PENDING'
                  group by ri.stock_level_id) h on h.stock_level_id = sl.id
     where sl.reserved <> coalesce(h.held, 0)
     order by i.sku, sl.warehouse_id
     limit $1";

/// Rows whose levels differ from their ledger: the one pass over `movements` per tick.
const LEDGER_MISMATCH: &str = "
    select i.sku, sl.warehouse_id, null::uuid as reservation_id,
           format('on_hand %s, ledger %s; reserved %s, ledger %s',
                  sl.on_hand, coalesce(m.on_hand, 0), sl.reserved, coalesce(m.reserved, 0)) as detail,
           count(*) over () as total
      from inventory.stock_levels sl
      join inventory.items i on i.id = sl.item_id
      left join (select stock_level_id, sum(on_hand_delta) as on_hand,
                        sum(reserved_delta) as reserved
                   from inventory.movements
                  group by stock_level_id) m on m.stock_level_id = sl.id
     where sl.on_hand <> coalesce(m.on_hand, 0) or sl.reserved <> coalesce(m.reserved, 0)
     order by i.sku, sl.warehouse_id
     limit $1";

/// Rows the CHECK constraint should make impossible; measured anyway, because a constraint
/// can be dropped or bypassed (a restore, a manual fix) and the alert must still see it.
const IMPOSSIBLE_LEVEL: &str = "
    select i.sku, sl.warehouse_id, null::uuid as reservation_id,
           format('on_hand %s, reserved %s', sl.on_hand, sl.reserved) as detail,
           count(*) over () as total
      from inventory.stock_levels sl
      join inventory.items i on i.id = sl.item_id
     where sl.on_hand < 0 or sl.reserved < 0 or sl.reserved > sl.on_hand
     order by i.sku, sl.warehouse_id
     limit $1";

/// PENDING holds lapsed for longer than the grace (`$2` ms): the sweeper should have
/// released them. One row per hold (the window counts groups), via the partial index.
const LAPSED_PENDING_HOLD: &str = "
    select coalesce(string_agg(distinct i.sku, ','), '') as sku,
           coalesce(string_agg(distinct sl.warehouse_id, ','), '') as warehouse_id,
           r.id as reservation_id,
           format('expired at %s, still PENDING', r.expires_at) as detail,
           count(*) over () as total
      from inventory.reservations r
      left join inventory.reservation_items ri on ri.reservation_id = r.id
      left join inventory.stock_levels sl on sl.id = ri.stock_level_id
      left join inventory.items i on i.id = sl.item_id
     where r.status = 'PENDING' and r.expires_at < now() - $2 * interval '1 millisecond'
     group by r.id, r.expires_at
     order by r.expires_at, r.id
     limit $1";

impl Store {
    /// Measures every kind of inconsistency, keeping at most `samples` examples of each.
    /// Reads only, in one REPEATABLE READ snapshot: a hold or commit landing between two
    /// queries cannot make the counts disagree with each other (and since every change
    /// writes its row, its lines and its movement in one transaction, a snapshot never shows
    /// half of one, so live traffic produces no false positives).
    pub async fn inconsistencies(
        &self,
        lapse_grace: Duration,
        samples: u32,
    ) -> Result<Inconsistencies, InventoryError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only")
            .execute(&mut *tx)
            .await?;
        let grace_ms = i64::try_from(lapse_grace.as_millis()).unwrap_or(i64::MAX);
        let mut kinds = Vec::with_capacity(InconsistencyKind::ALL.len());
        for kind in InconsistencyKind::ALL {
            let sql = match kind {
                InconsistencyKind::ReservedMismatch => RESERVED_MISMATCH,
                InconsistencyKind::LedgerMismatch => LEDGER_MISMATCH,
                InconsistencyKind::ImpossibleLevel => IMPOSSIBLE_LEVEL,
                InconsistencyKind::LapsedPendingHold => LAPSED_PENDING_HOLD,
            };
            kinds.push(measure(&mut tx, kind, sql, i64::from(samples), grace_ms).await?);
        }
        tx.commit().await?;
        Ok(Inconsistencies { kinds })
    }
}

async fn measure(
    conn: &mut PgConnection,
    kind: InconsistencyKind,
    sql: &'static str,
    samples: i64,
    grace_ms: i64,
) -> Result<KindReport, sqlx::Error> {
    let mut query = sqlx::query(sql).bind(samples);
    if kind == InconsistencyKind::LapsedPendingHold {
        query = query.bind(grace_ms);
    }
    let rows = query.fetch_all(conn).await?;
    let count = match rows.first() {
        Some(row) => u64::try_from(row.try_get::<i64, _>("total")?).unwrap_or(0),
        None => 0,
    };
    let samples = rows
        .iter()
        .map(|row| {
            Ok(Mismatch {
                sku: row.try_get("sku")?,
                warehouse_id: row.try_get("warehouse_id")?,
                reservation_id: row.try_get("reservation_id")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(KindReport { kind, count, samples })
}
