//! Stock and history for a benchmark database.
//!
//! - Items: `SKU-000001` .. through the inventory API (UpsertInventoryItem), concurrently, so
//!   every item, level and ledger row is written by the service itself.
//! - History: the anchors' README explains the trap of an empty, freshly analysed
//!   `reservations` table (the foreign-key check from `reservation_items` turns into a
//!   sequential scan and throughput decays within one run). So the bench starts from 100k
//!   old holds. Through the API (reserve + cancel) that costs two RPCs and two transactions
//!   each; the default writes them in SQL instead (`sql/history.sql`): CANCELLED holds with
//!   their lines and both RESERVE and CANCEL movements, which sum to zero, so every inventory
//!   invariant holds. Then ANALYZE, like a production database has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fastrand::Rng;
use futures::{StreamExt, TryStreamExt, stream};
use proto::inventory::v1 as pb;
use sqlx::postgres::PgPoolOptions;

use crate::conn::{Channels, with_deadline};
use crate::scenarios::flash_sale;
use crate::scenarios::reserve::{self, Pick, References};
use crate::skus;

const HISTORY_SQL: &str = include_str!("../sql/history.sql");
/// Deadline of every seeding call.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Sets `on_hand` of `SKU-000001..=nskus` (product `prod-…`) in the default warehouse.
pub async fn items(
    inventory: &Channels,
    nskus: u32,
    on_hand: i32,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    stream::iter(1..=nskus)
        .map(|n| {
            let mut client = inventory.inventory(n as usize);
            async move {
                let req = pb::UpsertInventoryItemRequest {
                    sku: skus::sku(n),
                    product_id: skus::product(n),
                    variant_id: None,
                    warehouse_id: String::new(),
                    on_hand,
                };
                client
                    .upsert_inventory_item(with_deadline(req, DEADLINE))
                    .await
                    .map(drop)
                    .map_err(|s| anyhow::anyhow!("upserting {}: {s}", skus::sku(n)))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}

/// Writes `count` old cancelled holds over the first `nskus` SKUs in SQL and analyses the
/// tables; does nothing when the database already has bench history. Returns the holds
/// written.
pub async fn history_sql(database_url: &str, count: u32, nskus: u32) -> anyhow::Result<u64> {
    let pool = PgPoolOptions::new().max_connections(1).connect(database_url).await?;
    let existing: i64 = sqlx::query_scalar(
        "select count(*) from inventory.reservations where reference_type = 'BENCH-HISTORY'",
    )
    .fetch_one(&pool)
    .await?;
    if existing > 0 {
        pool.close().await;
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    sqlx::query(HISTORY_SQL)
        .bind(i64::from(count))
        .bind(i64::from(nskus))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    analyze(&pool).await?;
    pool.close().await;
    Ok(u64::from(count))
}

/// Refreshes the planner statistics of the inventory tables (the server's autovacuum would
/// get there too, later).
pub async fn analyze(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "vacuum analyze inventory.items, inventory.stock_levels, inventory.reservations,
                        inventory.reservation_items, inventory.movements",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes `count` old holds through the API instead: reserve 3 random SKUs, then cancel.
/// Slower (two RPCs, two transactions each), but touches no SQL; used to measure that cost.
pub async fn history_api(
    inventory: &Channels,
    count: u32,
    nskus: u32,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let references = Arc::new(References::new(&format!("history-{}", uuid::Uuid::new_v4())));
    stream::iter(0..count)
        .map(|i| {
            let mut client = inventory.inventory(i as usize);
            let mut rng = Rng::with_seed(u64::from(i));
            let req = reserve::request(
                references.next(),
                &reserve::lines(&mut rng, nskus, Pick::Uniform),
            );
            async move {
                let id = reserve::send(&mut client, req, DEADLINE)
                    .await
                    .map_err(|s| anyhow::anyhow!("history reserve: {s}"))?
                    .ok_or_else(|| anyhow::anyhow!("history reserve refused: stock too low?"))?;
                let cancel = pb::CancelReservationRequest::by_id(id);
                client
                    .cancel_reservation(with_deadline(cancel, DEADLINE))
                    .await
                    .map_err(|s| anyhow::anyhow!("history cancel: {s}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}

/// The product stand-in's catalogue for the bench: `prod-000001` sells `SKU-000001`, …,
/// priced 10.00 to 19.99 EUR, and the flash sale's own product (`prod-flash-sale` sells
/// `FLASH-SALE`, 10.00 EUR).
pub fn catalog_json(nskus: u32) -> anyhow::Result<String> {
    let flash = serde_json::json!({
        "id": flash_sale::PRODUCT,
        "sku": flash_sale::SKU,
        "name": "Flash sale product",
        "price_minor": 1000,
        "currency": "EUR",
        "variants": [],
    });
    let products: Vec<serde_json::Value> = (1..=nskus)
        .map(|n| {
            serde_json::json!({
                "id": skus::product(n),
                "sku": skus::sku(n),
                "name": format!("Bench product {n}"),
                "price_minor": 1000 + i64::from(n % 1000),
                "currency": "EUR",
                "variants": [],
            })
        })
        .chain(std::iter::once(flash))
        .collect();
    Ok(serde_json::to_string(&products)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn catalog_sells_every_sku() {
        let v: serde_json::Value = serde_json::from_str(&catalog_json(3).unwrap()).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list[2]["id"], "prod-000003");
        assert_eq!(list[3]["id"], flash_sale::PRODUCT);
        assert_eq!(list[3]["sku"], flash_sale::SKU);
        assert_eq!(list[2]["sku"], "SKU-000003");
        assert_eq!(list[2]["price_minor"], 1003);
        assert_eq!(list[0]["currency"], "EUR");
    }
}
