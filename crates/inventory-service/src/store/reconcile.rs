//! The reconciler's checks of the stock invariants (see ARCHITECTURE.md "Invariants"): one
//! aggregate query per kind of mismatch, all in one snapshot, and the ledger checkpoints
//! that keep a pass's cost flat as history grows.
//!
//! An incremental pass proves each stock row against its checkpoint plus the movements
//! recorded since the horizon (the tail), then advances the horizon to its snapshot's xmin.
//! A full verification proves each row against the sums of removed movements (the base)
//! plus every remaining movement, and each checkpoint against the same below the horizon.
//! Passes take turns (a transaction-level advisory lock); should two overlap anyway, the
//! horizon's row makes the later one fail to serialize instead of counting a tail twice.

use std::time::{Duration, Instant};

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
    /// Whether this was a full verification (else the checkpoint kind is the last full one's).
    pub full: bool,
    /// Movements read as the tail (recorded since the horizon the pass started from).
    pub tail_movements: u64,
    /// Movements still past the horizon after the pass advanced it (in-flight or recent).
    pub tail_after: u64,
    /// How long the pass's transaction took.
    pub elapsed: Duration,
}

/// How wide a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Checkpoints plus the tail; a full verification when the last one is older than this
    /// (`None`: never by age).
    Incremental { full_every: Option<Duration> },
    /// Base plus every movement, and every checkpoint checked.
    Full,
}

/// What a replica exports when another ran the pass: the counts of the last pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedResults {
    /// Count per kind, as the last pass (or full verification) stored it.
    pub counts: Vec<(InconsistencyKind, u64)>,
    /// When the last pass finished (Unix seconds), 0 when none has.
    pub finished_at: i64,
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
// The mismatching rows are found first, in a materialized CTE, and only they are sorted and
// named: with the sort and limit over the whole join, the planner walks the stock rows in SKU
// order expecting to stop after `$1` mismatches, with a nested loop into the sums, and when
// there are none (the usual case) that is rows x groups: ~1 s for 10k rows and a few thousand
// tail groups, against ~40 ms with hash joins.

/// Names the mismatching rows of `bad` (id, item_id, warehouse_id, detail), sorted, at most `$1`.
macro_rules! named_rows {
    ($bad:literal) => {
        concat!(
            "with bad as materialized (",
            $bad,
            ")
             select i.sku, b.warehouse_id, null::uuid as reservation_id, b.detail,
                    count(*) over () as total
               from bad b join inventory.items i on i.id = b.item_id
              order by i.sku, b.warehouse_id
              limit $1"
        )
    };
}

/// Rows whose `reserved` differs from their PENDING holds. The pending holds are found
/// through the partial index `reservations_pending_expiry`, their lines by primary key.
const RESERVED_MISMATCH: &str = named_rows!(
    "select sl.id, sl.item_id, sl.warehouse_id,
            format('reserved %s, pending holds %s', sl.reserved, coalesce(h.held, 0)) as detail
       from inventory.stock_levels sl
       left join (select ri.stock_level_id, sum(ri.quantity) as held
                    from inventory.reservations r
                    join inventory.reservation_items ri on ri.reservation_id = r.id
                   where r.status = 'PENDING'
                   group by ri.stock_level_id) h on h.stock_level_id = sl.id
      where sl.reserved <> coalesce(h.held, 0)"
);

/// Rows whose levels differ from their checkpoint plus the tail: reads the movements
/// recorded since the horizon only (`movements_txid`), whatever the ledger's size.
const LEDGER_MISMATCH: &str = named_rows!(
    "select sl.id, sl.item_id, sl.warehouse_id,
            format('on_hand %s, ledger %s; reserved %s, ledger %s',
                   sl.on_hand, coalesce(c.on_hand, 0) + coalesce(t.on_hand, 0),
                   sl.reserved, coalesce(c.reserved, 0) + coalesce(t.reserved, 0)) as detail
       from inventory.stock_levels sl
       left join inventory.ledger_checkpoints c on c.stock_level_id = sl.id
       left join (select stock_level_id, sum(on_hand_delta) as on_hand,
                         sum(reserved_delta) as reserved
                    from inventory.movements
                   where txid >= $2::text::xid8
                   group by stock_level_id) t on t.stock_level_id = sl.id
      where sl.on_hand <> coalesce(c.on_hand, 0) + coalesce(t.on_hand, 0)
         or sl.reserved <> coalesce(c.reserved, 0) + coalesce(t.reserved, 0)"
);

/// A full verification's ledger check: the removed movements' sums plus every movement.
const LEDGER_MISMATCH_FULL: &str = named_rows!(
    "select sl.id, sl.item_id, sl.warehouse_id,
            format('on_hand %s, ledger %s; reserved %s, ledger %s',
                   sl.on_hand, coalesce(b.on_hand, 0) + coalesce(m.on_hand, 0),
                   sl.reserved, coalesce(b.reserved, 0) + coalesce(m.reserved, 0)) as detail
       from inventory.stock_levels sl
       left join inventory.ledger_base b on b.stock_level_id = sl.id
       left join (select stock_level_id, sum(on_hand_delta) as on_hand,
                         sum(reserved_delta) as reserved
                    from inventory.movements
                   group by stock_level_id) m on m.stock_level_id = sl.id
      where sl.on_hand <> coalesce(b.on_hand, 0) + coalesce(m.on_hand, 0)
         or sl.reserved <> coalesce(b.reserved, 0) + coalesce(m.reserved, 0)"
);

/// Checkpoints that differ from the base plus the remaining movements below the horizon.
const CHECKPOINT_MISMATCH: &str = named_rows!(
    "select sl.id, sl.item_id, sl.warehouse_id,
            format('checkpoint on_hand %s, movements %s; reserved %s, movements %s',
                   coalesce(c.on_hand, 0), coalesce(b.on_hand, 0) + coalesce(m.on_hand, 0),
                   coalesce(c.reserved, 0), coalesce(b.reserved, 0) + coalesce(m.reserved, 0))
                as detail
       from inventory.stock_levels sl
       left join inventory.ledger_checkpoints c on c.stock_level_id = sl.id
       left join inventory.ledger_base b on b.stock_level_id = sl.id
       left join (select stock_level_id, sum(on_hand_delta) as on_hand,
                         sum(reserved_delta) as reserved
                    from inventory.movements
                   where txid is null
                      or txid < (select through_txid from inventory.ledger_horizon)
                   group by stock_level_id) m on m.stock_level_id = sl.id
      where coalesce(c.on_hand, 0) <> coalesce(b.on_hand, 0) + coalesce(m.on_hand, 0)
         or coalesce(c.reserved, 0) <> coalesce(b.reserved, 0) + coalesce(m.reserved, 0)"
);

/// Rows the CHECK constraint should make impossible (reserved below zero, or more sold and held
/// than on_hand plus the backorder limit: never below zero without a policy that allows it);
/// measured anyway, because a constraint
/// can be dropped or bypassed (a restore, a manual fix) and the alert must still see it.
const IMPOSSIBLE_LEVEL: &str = named_rows!(
    "select sl.id, sl.item_id, sl.warehouse_id,
            format('on_hand %s, reserved %s, backorder_limit %s',
                   sl.on_hand, sl.reserved, sl.backorder_limit) as detail
       from inventory.stock_levels sl
      where sl.reserved < 0 or sl.on_hand::bigint - sl.reserved < -sl.backorder_limit"
);

/// Folds the tail below this snapshot's xmin into the checkpoints and moves the horizon
/// there: every transaction below the xmin has ended, so no movement can join that range
/// later. Guarded by the horizon it started from (a concurrent pass fails to serialize).
/// Returns the tail rows read and those left past the new horizon.
const ADVANCE_HORIZON: &str = "
    with h as (select $2::text::xid8 as old, pg_snapshot_xmin(pg_current_snapshot()) as new),
    tail as (select m.stock_level_id, m.on_hand_delta, m.reserved_delta,
                    m.txid < (select new from h) as folded
               from inventory.movements m
              where m.txid >= $2::text::xid8),
    folded as (insert into inventory.ledger_checkpoints as c (stock_level_id, on_hand, reserved)
               select stock_level_id, sum(on_hand_delta), sum(reserved_delta)
                 from tail where folded group by stock_level_id
               on conflict (stock_level_id) do update
                  set on_hand = c.on_hand + excluded.on_hand,
                      reserved = c.reserved + excluded.reserved
               returning 1),
    moved as (update inventory.ledger_horizon l
                 set through_txid = h.new, advanced_at = now(),
                     full_at = case when $1 then now() else l.full_at end
                from h
               where l.through_txid = h.old
              returning 1)
    select (select count(*) from tail)::bigint,
           (select count(*) from tail where not folded)::bigint,
           (select count(*) from moved)::bigint";

/// Stores a pass's counts for every replica to export (kinds the pass did not measure keep
/// their row).
const STORE_RESULTS: &str = "
    insert into inventory.reconcile_results (kind, count, full_pass, finished_at)
    select kind, count, $3, now() from unnest($1::text[], $2::bigint[]) as r (kind, count)
    on conflict (kind) do update
       set count = excluded.count, full_pass = excluded.full_pass,
           finished_at = excluded.finished_at";

/// The transaction-level advisory lock a pass holds (any replica, one database): a session
/// holding it keeps every replica's passes waiting. 'inv-reco' in ASCII.
pub const PASS_LOCK: i64 = 0x696e_762d_7265_636f;

/// One try at a pass.
enum Attempt {
    Done(Inconsistencies),
    /// Another replica's pass holds the turn (or overlapped this one and won).
    Busy,
}

/// Whether a pass waits for another replica's to end or leaves the turn to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Try again until it is this pass's turn (an operator's verification, a test).
    Wait,
    /// Give up at once: the running pass will export what it finds.
    Skip,
}

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

/// Returned units a hold cannot account for: a stock row given back more than its committed
/// line, or given back by a hold that is not COMMITTED (or has no line on that row).
/// ReturnStock checks both under the hold's row lock; this sees a bypass or a bug.
const RETURN_MISMATCH: &str = "
    with returned as (
        select sr.reservation_id, l.stock_level_id, sum(l.quantity) as returned
          from inventory.stock_returns sr
          join inventory.stock_return_lines l on l.return_id = sr.id
         group by sr.reservation_id, l.stock_level_id),
    bad as materialized (
        select sl.item_id, sl.warehouse_id, r.reservation_id,
               format('hold %s: %s units returned of %s committed',
                      coalesce(h.status, 'missing'), r.returned, coalesce(ri.quantity, 0)) as detail
          from returned r
          join inventory.stock_levels sl on sl.id = r.stock_level_id
          left join inventory.reservations h on h.id = r.reservation_id
          left join inventory.reservation_items ri
                 on ri.reservation_id = r.reservation_id and ri.stock_level_id = r.stock_level_id
         where h.status is distinct from 'COMMITTED' or r.returned > coalesce(ri.quantity, 0))
    select i.sku, b.warehouse_id, b.reservation_id, b.detail, count(*) over () as total
      from bad b join inventory.items i on i.id = b.item_id
     order by i.sku, b.warehouse_id, b.reservation_id
     limit $1";

impl Store {
    /// Measures every kind of inconsistency in one REPEATABLE READ snapshot, keeping at most
    /// `samples` examples of each, advances the ledger horizon and stores the counts for the
    /// other replicas. A hold or commit landing between two queries cannot make the counts
    /// disagree with each other (every change writes its row, its lines and its movement in
    /// one transaction, so a snapshot never shows half of one and live traffic produces no
    /// false positives). `None`: another replica's pass had the turn (with [`Turn::Skip`]).
    pub async fn reconcile(
        &self,
        scope: Scope,
        lapse_grace: Duration,
        samples: u32,
        turn: Turn,
    ) -> Result<Option<Inconsistencies>, InventoryError> {
        loop {
            match self.attempt(scope, lapse_grace, samples).await {
                Ok(Attempt::Done(found)) => return Ok(Some(found)),
                Ok(Attempt::Busy) if turn == Turn::Skip => return Ok(None),
                Err(e) if serialization_failure(&e) && turn == Turn::Skip => return Ok(None),
                Ok(Attempt::Busy) => {}
                Err(e) if serialization_failure(&e) => {}
                Err(e) => return Err(e.into()),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn attempt(
        &self,
        scope: Scope,
        lapse_grace: Duration,
        samples: u32,
    ) -> Result<Attempt, sqlx::Error> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read").execute(&mut *tx).await?;
        let mine: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(PASS_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            tx.rollback().await?;
            return Ok(Attempt::Busy);
        }
        // The horizon goes into the tail's queries as a value, planned afresh each pass: behind
        // a subquery it is unknown at planning, the planner expects a third of the ledger past
        // it and scans the whole table (a pass then grows with history after all).
        sqlx::query("set local plan_cache_mode = force_custom_plan").execute(&mut *tx).await?;
        let horizon: String =
            sqlx::query_scalar("select through_txid::text from inventory.ledger_horizon")
                .fetch_one(&mut *tx)
                .await?;
        let full = match scope {
            Scope::Full => true,
            Scope::Incremental { full_every: None } => false,
            Scope::Incremental { full_every: Some(every) } => {
                sqlx::query_scalar(
                    "select full_at is null or full_at < now() - $1 * interval '1 millisecond'
                   from inventory.ledger_horizon",
                )
                .bind(millis(every))
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let kept = if full { Vec::new() } else { stored_counts(&mut tx).await? };
        let grace_ms = millis(lapse_grace);
        let mut kinds = Vec::with_capacity(InconsistencyKind::ALL.len());
        for kind in InconsistencyKind::ALL {
            if !full && !kind.incremental() {
                let count = kept.iter().find(|(k, _)| *k == kind).map_or(0, |(_, c)| *c);
                kinds.push(KindReport { kind, count, samples: Vec::new() });
                continue;
            }
            let sql = match kind {
                InconsistencyKind::ReservedMismatch => RESERVED_MISMATCH,
                InconsistencyKind::LedgerMismatch if full => LEDGER_MISMATCH_FULL,
                InconsistencyKind::LedgerMismatch => LEDGER_MISMATCH,
                InconsistencyKind::ImpossibleLevel => IMPOSSIBLE_LEVEL,
                InconsistencyKind::LapsedPendingHold => LAPSED_PENDING_HOLD,
                InconsistencyKind::CheckpointMismatch => CHECKPOINT_MISMATCH,
                InconsistencyKind::ReturnMismatch => RETURN_MISMATCH,
            };
            let second = match kind {
                InconsistencyKind::LapsedPendingHold => Second::Millis(grace_ms),
                _ if sql == LEDGER_MISMATCH => Second::Horizon(&horizon),
                _ => Second::None,
            };
            kinds.push(measure(&mut tx, kind, sql, i64::from(samples), second).await?);
        }
        let (tail, left, moved): (i64, i64, i64) =
            sqlx::query_as(ADVANCE_HORIZON).bind(full).bind(&horizon).fetch_one(&mut *tx).await?;
        if moved != 1 {
            tx.rollback().await?;
            return Ok(Attempt::Busy);
        }
        let measured = kinds.iter().filter(|k| full || k.kind.incremental());
        let (labels, counts): (Vec<&str>, Vec<i64>) =
            measured.map(|k| (k.kind.as_str(), i64::try_from(k.count).unwrap_or(i64::MAX))).unzip();
        sqlx::query(STORE_RESULTS).bind(labels).bind(counts).bind(full).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Attempt::Done(Inconsistencies {
            kinds,
            full,
            tail_movements: u64::try_from(tail).unwrap_or(0),
            tail_after: u64::try_from(left).unwrap_or(0),
            elapsed: started.elapsed(),
        }))
    }

    /// The counts the last pass stored (any replica's), for a replica that did not run it.
    pub async fn shared_results(&self) -> Result<SharedResults, InventoryError> {
        let mut conn = self.pool.acquire().await?;
        let counts = stored_counts(&mut conn).await?;
        let finished_at: Option<i64> = sqlx::query_scalar(
            "select extract(epoch from max(finished_at))::bigint from inventory.reconcile_results",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(SharedResults { counts, finished_at: finished_at.unwrap_or(0) })
    }
}

/// The stored count of every kind (0 for a kind no pass has stored).
async fn stored_counts(
    conn: &mut PgConnection,
) -> Result<Vec<(InconsistencyKind, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select kind, count from inventory.reconcile_results")
            .fetch_all(conn)
            .await?;
    Ok(InconsistencyKind::ALL
        .into_iter()
        .map(|kind| {
            let count =
                rows.iter().find(|(label, _)| InconsistencyKind::from_label(label) == Some(kind));
            (kind, count.map_or(0, |(_, c)| u64::try_from(*c).unwrap_or(0)))
        })
        .collect())
}

/// PostgreSQL's "could not serialize access": another pass moved the horizon first.
fn serialization_failure(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40001")
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A row query's parameter after the sample count, if it has one.
enum Second<'a> {
    None,
    /// The lapse grace, in milliseconds.
    Millis(i64),
    /// The ledger horizon (an xid8, as text).
    Horizon(&'a str),
}

async fn measure(
    conn: &mut PgConnection,
    kind: InconsistencyKind,
    sql: &'static str,
    samples: i64,
    second: Second<'_>,
) -> Result<KindReport, sqlx::Error> {
    let query = sqlx::query(sql).bind(samples);
    let query = match second {
        Second::None => query,
        Second::Millis(ms) => query.bind(ms),
        Second::Horizon(horizon) => query.bind(horizon),
    };
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
