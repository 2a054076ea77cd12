//! Overload protection, end to end: the concurrency limit sheds excess calls at once while
//! health keeps answering, deadlines end calls (and roll back their writes), and message-size
//! and items-per-request limits refuse what is too large.

mod deadlines;
mod limits;
mod shedding;

use std::time::Duration;

use system_tests::TestDb;

/// Holds the row lock of `sku`'s stock rows until the returned transaction ends, so a
/// reservation of `sku` waits in the database.
async fn lock_stock(
    db: &TestDb,
    sku: &str,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut lock = db.pool.begin().await?;
    sqlx::query(
        "select 1 from inventory.stock_levels
          where item_id = (select id from inventory.items where sku = $1) for update",
    )
    .bind(sku)
    .execute(&mut *lock)
    .await?;
    Ok(lock)
}

/// Generous bound for "answered at once": the calls it is compared with are held for
/// several seconds.
const FAST: Duration = Duration::from_secs(2);
