//! Returns of confirmed orders, as tests ask for them and check them: ReturnOrder requests,
//! the return rows, the stand-in payment's refunds of a return.

use std::time::Duration;

use proto::order::v1 as pb;

use crate::{SETTLE_TIMEOUT, TestSystem};

/// One line of a return request: `(sku, quantity, do_not_restock)`.
pub type ReturnLine<'a> = (&'a str, i32, bool);

/// A ReturnOrder request for `lines` of order `id` under `key` (no lines: everything left).
pub fn return_request(id: &str, key: &str, lines: &[ReturnLine<'_>]) -> pb::ReturnOrderRequest {
    pb::ReturnOrderRequest {
        order_id: id.to_owned(),
        items: lines
            .iter()
            .map(|(sku, quantity, do_not_restock)| pb::ReturnItemInput {
                sku: (*sku).to_owned(),
                quantity: *quantity,
                do_not_restock: *do_not_restock,
            })
            .collect(),
        reason: "arrived damaged".to_owned(),
        idempotency_key: key.to_owned(),
    }
}

impl TestSystem {
    /// Sends a ReturnOrder for `lines` of order `id` under `key` to the first order server.
    pub async fn return_order(
        &self,
        id: &str,
        key: &str,
        lines: &[ReturnLine<'_>],
    ) -> anyhow::Result<Result<pb::OrderReturn, tonic::Status>> {
        let req = return_request(id, key, lines);
        Ok(self.client()?.return_order(req).await.map(|r| r.into_inner()))
    }

    /// How many returns order `id` has (any status).
    pub async fn return_count(&self, id: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from orders.order_returns where order_id = $1")
            .bind(uuid::Uuid::parse_str(id)?)
            .fetch_one(&self.db.pool)
            .await?)
    }

    /// Polls until return `id` has `status` (fails after [`SETTLE_TIMEOUT`]).
    pub async fn wait_return_status(&self, id: &str, status: &str) -> anyhow::Result<()> {
        let id = uuid::Uuid::parse_str(id)?;
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let now: String =
                sqlx::query_scalar("select status from orders.order_returns where id = $1")
                    .bind(id)
                    .fetch_one(&self.db.pool)
                    .await?;
            if now == status {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "return {id} is {now}, never {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The stand-in's refunds of return `id`, as `(payment_id, amount_minor)`.
    pub fn refunds_of_return(&self, id: &str) -> Vec<(String, i64)> {
        let key = format!("order-return-refund:{id}");
        self.ledger
            .refunds()
            .into_iter()
            .filter(|r| r.idempotency_key == key)
            .map(|r| (r.payment_id, r.amount_minor))
            .collect()
    }

    /// The inventory's ledger movements of `kind` for `sku`, summed (on_hand delta).
    pub async fn movements(&self, sku: &str, kind: &str) -> anyhow::Result<(i64, i64)> {
        let (count, on_hand): (i64, Option<i64>) = sqlx::query_as(
            "select count(*), sum(m.on_hand_delta)::int8
               from inventory.movements m
               join inventory.stock_levels sl on sl.id = m.stock_level_id
               join inventory.items i on i.id = sl.item_id
              where i.sku = $1 and upper(m.kind) = upper($2)",
        )
        .bind(sku)
        .bind(kind)
        .fetch_one(&self.db.pool)
        .await?;
        Ok((count, on_hand.unwrap_or(0)))
    }
}
