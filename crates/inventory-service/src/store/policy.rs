//! Stock policies: SetStockPolicy's write and the low-stock reads (ListLowStock, the gauge).

use chrono::NaiveDate;

use super::{ItemView, LevelRow, LowStockView, Store, items::load_item};
use crate::domain::{
    StockPolicy,
    commands::{LowStockPage, SetPolicy},
};
use crate::error::InventoryError;

/// The rule "below its threshold" as SQL over a `stock_levels` row named `sl` (a macro, so the
/// statements stay string literals).
macro_rules! is_low {
    () => {
        "sl.low_stock_threshold > 0
         and sl.on_hand - sl.reserved - sl.safety_stock < sl.low_stock_threshold"
    };
}

impl Store {
    /// Sets the policy of (sku, warehouse) and records the change with what it replaced; the
    /// same values again write nothing.
    #[tracing::instrument(skip_all, fields(sku = %req.sku, warehouse_id = %req.warehouse))]
    pub async fn set_policy(&self, req: &SetPolicy) -> Result<ItemView, InventoryError> {
        let mut tx = self.pool.begin().await?;
        type Row = (i64, i32, i32, i32, Option<NaiveDate>, i32, i32);
        let row = sqlx::query_as::<_, Row>(
            "select sl.id, sl.safety_stock, sl.low_stock_threshold, sl.backorder_limit,
                    sl.restock_date, sl.on_hand, sl.reserved
               from inventory.stock_levels sl
               join inventory.items i on i.id = sl.item_id
              where i.sku = $1 and sl.warehouse_id = $2
                for no key update of sl",
        )
        .bind(req.sku.as_str())
        .bind(req.warehouse.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((
            level_id,
            safety_stock,
            threshold,
            backorder_limit,
            restock_date,
            on_hand,
            reserved,
        )) = row
        else {
            return Err(InventoryError::NotFound {
                what: "stock row",
                key: format!("{} in {}", req.sku, req.warehouse),
            });
        };
        let before = StockPolicy {
            safety_stock,
            low_stock_threshold: threshold,
            backorder_limit,
            restock_date,
        };
        let after = StockPolicy {
            safety_stock: req.safety_stock.unwrap_or(safety_stock),
            low_stock_threshold: req.low_stock_threshold.unwrap_or(threshold),
            backorder_limit: req.backorder_limit.unwrap_or(backorder_limit),
            restock_date: req.restock_date.unwrap_or(restock_date),
        };
        // Units already sold or held beyond on_hand stay sold: the limit cannot go below them.
        let owed = i64::from(reserved) - i64::from(on_hand);
        if i64::from(after.backorder_limit) < owed {
            return Err(InventoryError::FailedPrecondition(format!(
                "backorder_limit {} for {} in {} is below the {owed} units already sold or held \
                 beyond on_hand",
                after.backorder_limit, req.sku, req.warehouse
            )));
        }
        if after != before {
            sqlx::query(
                "with changed as (
                     update inventory.stock_levels
                        set safety_stock = $2, low_stock_threshold = $3, backorder_limit = $4,
                            restock_date = $5, updated_at = now()
                      where id = $1)
                 insert into inventory.stock_policy_changes
                        (stock_level_id, safety_stock, low_stock_threshold, backorder_limit,
                         restock_date, previous_safety_stock, previous_low_stock_threshold,
                         previous_backorder_limit, previous_restock_date, reason, changed_by)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(level_id)
            .bind(after.safety_stock)
            .bind(after.low_stock_threshold)
            .bind(after.backorder_limit)
            .bind(after.restock_date)
            .bind(before.safety_stock)
            .bind(before.low_stock_threshold)
            .bind(before.backorder_limit)
            .bind(before.restock_date)
            .bind(req.reason.as_str())
            .bind(req.changed_by.as_deref())
            .execute(&mut *tx)
            .await?;
            tracing::info!(?before, ?after, "stock policy changed");
        }
        let item = load_item(&mut tx, &req.sku).await?;
        tx.commit().await?;
        Ok(item)
    }

    /// A page of the rows below their threshold, by (SKU, warehouse), and whether more follow.
    pub async fn low_stock(
        &self,
        page: &LowStockPage,
    ) -> Result<(Vec<LowStockView>, bool), InventoryError> {
        let limit = i64::from(page.size.get());
        let (after_sku, after_wh) = match &page.after {
            Some((sku, wh)) => (Some(sku.as_str()), Some(wh.as_str())),
            None => (None, None),
        };
        let sql = concat!(
            "select i.sku, sl.warehouse_id, sl.on_hand, sl.reserved, sl.safety_stock,
                    sl.low_stock_threshold, sl.backorder_limit, sl.restock_date
               from inventory.stock_levels sl
               join inventory.items i on i.id = sl.item_id
              where ",
            is_low!(),
            " and ($1::text is null or sl.warehouse_id = $1)
                and ($2::text is null or (i.sku, sl.warehouse_id) > ($2, $3::text))
              order by i.sku, sl.warehouse_id
              limit $4"
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            sku: String,
            #[sqlx(flatten)]
            level: LevelRow,
        }
        let mut rows = sqlx::query_as::<_, Row>(sql)
            .bind(page.warehouse.as_ref().map(|w| w.as_str()))
            .bind(after_sku)
            .bind(after_wh)
            .bind(limit + 1)
            .fetch_all(self.reads.pool())
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(page.size.get() as usize);
        let rows = rows
            .into_iter()
            .map(|row| LowStockView { sku: row.sku, level: row.level.into() })
            .collect();
        Ok((rows, more))
    }

    /// How many rows are below their threshold, per warehouse (warehouses with none left out).
    pub async fn low_stock_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = concat!(
            "select sl.warehouse_id, count(*) from inventory.stock_levels sl where ",
            is_low!(),
            " group by sl.warehouse_id order by sl.warehouse_id"
        );
        sqlx::query_as::<_, (String, i64)>(sql).fetch_all(self.reads.pool()).await
    }
}
