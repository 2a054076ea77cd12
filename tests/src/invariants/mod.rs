//! The invariants the order/inventory pair promises, checked straight in the database and the
//! payment stand-in's books once the system is quiet. [`check`] returns every violation it
//! finds, never only the first, so one run shows the whole damage.
//!
//! ```ignore
//! let baseline = Baseline::capture(&db.pool).await?;   // after stocking, before the run
//! // ... run the workload, then let every order settle ...
//! let violations = invariants::check(&db.pool, &baseline, &ledger, sweep).await?;
//! assert!(violations.is_empty(), "{}", invariants::report(&violations));
//! ```

mod checks;
pub mod replay;
mod snapshot;
#[cfg(test)]
mod tests;
mod violation;

use std::collections::BTreeMap;
use std::time::Duration;

use dev_standins::Ledger;
use sqlx::PgPool;

use snapshot::{Index, Snapshot};
pub use violation::Violation;

/// The statuses an order may rest in.
pub const TERMINAL_STATUSES: [&str; 4] = ["CONFIRMED", "REJECTED", "PAYMENT_FAILED", "CANCELLED"];

/// The stock before the run: on_hand per SKU (over its warehouses), and the last ledger
/// movement then, so that later admin changes (ADJUST/SET movements) are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// on_hand per SKU, summed over warehouses.
    pub on_hand: BTreeMap<String, i64>,
    /// Movements with a greater id happened during the run.
    pub last_movement_id: i64,
}

impl Baseline {
    /// The stock as it is now (take it with the system quiet, after stocking).
    pub async fn capture(pool: &PgPool) -> anyhow::Result<Self> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select i.sku, coalesce(sum(sl.on_hand), 0)::bigint
               from inventory.items i
               left join inventory.stock_levels sl on sl.item_id = i.id
              group by i.sku",
        )
        .fetch_all(pool)
        .await?;
        let last_movement_id: i64 =
            sqlx::query_scalar("select coalesce(max(id), 0)::bigint from inventory.movements")
                .fetch_one(pool)
                .await?;
        Ok(Self { on_hand: rows.into_iter().collect(), last_movement_id })
    }
}

/// Checks every invariant with the system quiet. `baseline` is the stock before the run,
/// `ledger` the payment stand-in's books, `sweep` the inventory's sweep interval (a PENDING
/// hold may outlive its expiry by that much). Errors only when the database cannot be read.
pub async fn check(
    pool: &PgPool,
    baseline: &Baseline,
    ledger: &Ledger,
    sweep: Duration,
) -> anyhow::Result<Vec<Violation>> {
    let db = Snapshot::read(pool, baseline.last_movement_id, sweep).await?;
    let charges = ledger.charges();
    let index = Index::new(&db, &charges);
    let families = [
        checks::orders_are_terminal(&db),
        checks::stock_adds_up(baseline, &db),
        checks::stock_rows_agree(&db),
        checks::safety_stock_kept(&db),
        checks::no_hold_outlives_its_expiry(&db),
        checks::confirmed_orders_are_paid_and_held(&db, &index),
        checks::settled_orders_keep_nothing(&db, &index),
        checks::no_hold_after_its_order_settled(&db),
        checks::nothing_for_missing_orders(&db, &index),
        checks::returns_are_finished(&db),
        checks::returns_agree(&db),
        checks::money_adds_up(&db, &index),
    ];
    Ok(families.into_iter().flatten().collect())
}

/// Every violation on its own line, then a count per kind.
pub fn report(violations: &[Violation]) -> String {
    let mut out = String::new();
    for v in violations {
        out.push_str(&format!("  - [{}] {v}\n", v.kind()));
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for v in violations {
        *by_kind.entry(v.kind()).or_default() += 1;
    }
    out.push_str(&format!("{} violation(s)", violations.len()));
    for (kind, n) in by_kind {
        out.push_str(&format!(", {kind}: {n}"));
    }
    out
}
