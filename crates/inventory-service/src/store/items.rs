//! Items and their stock: availability, the admin writes, and reads.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    ItemView, LevelRow, LevelView, SkuAvailability, Store,
    ledger::{MovementKind, move_on_hand},
};
use crate::domain::{
    Sku, WarehouseId,
    commands::{Adjust, ListPage, Upsert},
};
use crate::error::InventoryError;

/// A locked stock row's numbers.
struct LockedLevel {
    id: i64,
    on_hand: i32,
    reserved: i32,
    backorder_limit: i32,
}

impl LockedLevel {
    /// Whether the row may have `on_hand`: its reserved units covered, but for what its
    /// backorder limit lets it owe (the rule of the row's CHECK constraint).
    fn allows(&self, on_hand: i64) -> bool {
        on_hand - i64::from(self.reserved) >= -i64::from(self.backorder_limit)
    }

    /// What a refusal adds about the backorder limit, when the row has one.
    fn beyond_note(&self) -> String {
        if self.backorder_limit > 0 {
            format!(" beyond its backorder limit of {}", self.backorder_limit)
        } else {
            String::new()
        }
    }
}

impl Store {
    /// Available units (summed over warehouses) of each known SKU among `skus`.
    pub async fn availability(
        &self,
        skus: &[&str],
    ) -> Result<Vec<SkuAvailability>, InventoryError> {
        match &self.check_batcher {
            Some(batcher) => batcher.submit(skus.iter().map(|s| (*s).to_owned()).collect()).await,
            None => Ok(self.availability_now(skus).await?),
        }
    }

    /// [`Store::availability`] in a query of its own.
    pub(super) async fn availability_now(
        &self,
        skus: &[&str],
    ) -> Result<Vec<SkuAvailability>, sqlx::Error> {
        type Row = (String, String, Option<String>, i64, i64, Option<NaiveDate>);
        let rows = sqlx::query_as::<_, Row>(
            "select i.sku, i.product_id, i.variant_id,
                    coalesce(sum(greatest(
                        sl.on_hand - sl.reserved - sl.safety_stock + sl.backorder_limit, 0)), 0)
                        ::bigint,
                    coalesce(sum(greatest(sl.on_hand - sl.reserved - sl.safety_stock, 0)), 0)
                        ::bigint,
                    min(sl.restock_date) filter (where sl.backorder_limit > 0)
               from inventory.items i
               left join inventory.stock_levels sl on sl.item_id = i.id
              where i.sku = any($1)
              group by i.id",
        )
        .bind(skus)
        .fetch_all(self.reads.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sku, product_id, variant_id, available, in_stock, restock_date)| {
                SkuAvailability { sku, product_id, variant_id, available, in_stock, restock_date }
            })
            .collect())
    }

    /// Sets on_hand of (sku, warehouse), creating the item and the level as needed.
    #[tracing::instrument(skip_all, fields(sku = %req.sku, warehouse_id = %req.warehouse))]
    pub async fn upsert(&self, req: &Upsert) -> Result<ItemView, InventoryError> {
        let mut tx = self.pool.begin().await?;
        let item_id: Uuid = sqlx::query_scalar(
            "insert into inventory.items (id, sku, product_id, variant_id) values ($1, $2, $3, $4)
             on conflict (sku) do update
                set product_id = excluded.product_id, variant_id = excluded.variant_id,
                    updated_at = now()
             returning id",
        )
        .bind(Uuid::now_v7())
        .bind(req.sku.as_str())
        .bind(&req.product_id)
        .bind(&req.variant_id)
        .fetch_one(&mut *tx)
        .await?;
        let level = lock_level(&mut tx, item_id, &req.warehouse).await?;
        if !level.allows(i64::from(req.on_hand)) {
            return Err(InventoryError::FailedPrecondition(format!(
                "on_hand {} for {} in {} is below the {} units currently reserved{}",
                req.on_hand,
                req.sku,
                req.warehouse,
                level.reserved,
                level.beyond_note()
            )));
        }
        // A row sold on backorder is below zero: the step up may not fit an i32.
        let delta =
            i32::try_from(i64::from(req.on_hand) - i64::from(level.on_hand)).map_err(|_| {
                InventoryError::invalid(
                    "on_hand",
                    format!("is too far from the current {} to apply in one step", level.on_hand),
                )
            })?;
        move_on_hand(&mut tx, level.id, delta, MovementKind::Set, Some("set by upsert")).await?;
        let item = load_item(&mut tx, &req.sku).await?;
        tx.commit().await?;
        Ok(item)
    }

    /// Applies a relative change of on_hand once per idempotency key.
    #[tracing::instrument(skip_all, fields(sku = %req.sku, warehouse_id = %req.warehouse, delta = req.delta))]
    pub async fn adjust(&self, req: &Adjust) -> Result<ItemView, InventoryError> {
        let mut tx = self.pool.begin().await?;
        let item_id: Uuid = sqlx::query_scalar("select id from inventory.items where sku = $1")
            .bind(req.sku.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| InventoryError::NotFound {
                what: "inventory item",
                key: req.sku.to_string(),
            })?;
        let level = lock_level(&mut tx, item_id, &req.warehouse).await?;

        if let Some(key) = &req.key {
            // Inserting the key first serialises racing retries on its unique index; the loser
            // then finds the winner's row and replays its result instead of applying twice.
            let fresh = sqlx::query(
                "insert into inventory.adjustments (idempotency_key, stock_level_id, delta, reason)
                 values ($1, $2, $3, $4) on conflict (idempotency_key) do nothing",
            )
            .bind(key.as_str())
            .bind(level.id)
            .bind(req.delta)
            .bind(req.reason.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !fresh {
                let (prior_level, prior_delta): (i64, i32) = sqlx::query_as(
                    "select stock_level_id, delta from inventory.adjustments where idempotency_key = $1",
                )
                .bind(key.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if prior_level != level.id || prior_delta != req.delta {
                    return Err(InventoryError::invalid(
                        "idempotency_key",
                        "was already used for a different adjustment (sku, warehouse_id or delta differ)",
                    ));
                }
                let item = load_item(&mut tx, &req.sku).await?;
                tx.commit().await?;
                return Ok(item);
            }
        }

        let new_on_hand = i64::from(level.on_hand) + i64::from(req.delta);
        if new_on_hand > i64::from(i32::MAX) {
            return Err(InventoryError::invalid(
                "delta",
                format!("would take on_hand past {} (now {})", i32::MAX, level.on_hand),
            ));
        }
        if !level.allows(new_on_hand) {
            return Err(InventoryError::FailedPrecondition(format!(
                "adjusting {} in {} by {} would leave on_hand {new_on_hand}, below the {} units reserved{}",
                req.sku,
                req.warehouse,
                req.delta,
                level.reserved,
                level.beyond_note()
            )));
        }
        move_on_hand(&mut tx, level.id, req.delta, MovementKind::Adjust, Some(req.reason.as_str()))
            .await?;
        let item = load_item(&mut tx, &req.sku).await?;
        tx.commit().await?;
        Ok(item)
    }

    /// One item by SKU with its levels.
    pub async fn item(&self, sku: &Sku) -> Result<ItemView, InventoryError> {
        let mut conn = self.reads.pool().acquire().await?;
        load_item(&mut conn, sku).await
    }

    /// A page of items ordered by SKU, and whether more follow.
    pub async fn list(&self, page: &ListPage) -> Result<(Vec<ItemView>, bool), InventoryError> {
        let limit = i64::from(page.size.get());
        // One pool for both statements of the page.
        let pool = self.reads.pool();
        let mut rows = sqlx::query_as::<_, (Uuid, String, String, Option<String>)>(
            "select id, sku, product_id, variant_id from inventory.items
              where $1::text is null or sku > $1
              order by sku
              limit $2",
        )
        .bind(page.after.as_deref())
        .bind(limit + 1)
        .fetch_all(pool)
        .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(page.size.get() as usize);

        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let mut levels = levels_of(pool, &ids).await?;
        let items = rows
            .into_iter()
            .map(|(id, sku, product_id, variant_id)| ItemView {
                id,
                sku,
                product_id,
                variant_id,
                levels: levels.remove(&id).unwrap_or_default(),
            })
            .collect();
        Ok((items, more))
    }
}

/// Finds or creates (at zero) the level of (item, warehouse) and locks it.
async fn lock_level(
    conn: &mut PgConnection,
    item_id: Uuid,
    warehouse: &WarehouseId,
) -> Result<LockedLevel, sqlx::Error> {
    sqlx::query(
        "insert into inventory.stock_levels (item_id, warehouse_id, on_hand) values ($1, $2, 0)
         on conflict (item_id, warehouse_id) do nothing",
    )
    .bind(item_id)
    .bind(warehouse.as_str())
    .execute(&mut *conn)
    .await?;
    let (id, on_hand, reserved, backorder_limit) = sqlx::query_as::<_, (i64, i32, i32, i32)>(
        "select id, on_hand, reserved, backorder_limit from inventory.stock_levels
          where item_id = $1 and warehouse_id = $2 for update",
    )
    .bind(item_id)
    .bind(warehouse.as_str())
    .fetch_one(conn)
    .await?;
    Ok(LockedLevel { id, on_hand, reserved, backorder_limit })
}

pub(super) async fn load_item(
    conn: &mut PgConnection,
    sku: &Sku,
) -> Result<ItemView, InventoryError> {
    let (id, sku, product_id, variant_id) =
        sqlx::query_as::<_, (Uuid, String, String, Option<String>)>(
            "select id, sku, product_id, variant_id from inventory.items where sku = $1",
        )
        .bind(sku.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| InventoryError::NotFound { what: "inventory item", key: sku.to_string() })?;
    let mut levels = levels_of(conn, &[id]).await?;
    Ok(ItemView { id, sku, product_id, variant_id, levels: levels.remove(&id).unwrap_or_default() })
}

async fn levels_of<'c, E>(
    conn: E,
    items: &[Uuid],
) -> Result<HashMap<Uuid, Vec<LevelView>>, sqlx::Error>
where
    E: sqlx::PgExecutor<'c>,
{
    #[derive(sqlx::FromRow)]
    struct Row {
        item_id: Uuid,
        #[sqlx(flatten)]
        level: LevelRow,
    }
    let rows = sqlx::query_as::<_, Row>(
        "select item_id, warehouse_id, on_hand, reserved, safety_stock, low_stock_threshold,
                backorder_limit, restock_date
           from inventory.stock_levels
          where item_id = any($1) order by item_id, warehouse_id",
    )
    .bind(items)
    .fetch_all(conn)
    .await?;
    let mut by_item: HashMap<Uuid, Vec<LevelView>> = HashMap::new();
    for row in rows {
        by_item.entry(row.item_id).or_default().push(row.level.into());
    }
    Ok(by_item)
}
