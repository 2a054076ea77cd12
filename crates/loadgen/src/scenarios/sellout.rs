//! `sell-out`: the flash-sale correctness check. One SKU with 1,000 units, 64 concurrent
//! buyers, each trying to buy one unit (reserve, then commit) a fixed number of times. Exactly
//! 1,000 units must be sold; every other attempt must be refused cleanly (`success=false`
//! with a message), never a gRPC error, never an oversell.

use std::time::{Duration, Instant};

use proto::inventory::v1 as pb;
use tokio::task::JoinSet;

use super::reserve;
use crate::conn::{Channels, with_deadline};
use crate::cpu::{CpuSample, CpuUse};
use crate::histogram::{Outcome, Stats};

/// The flash sale's shape.
#[derive(Debug, Clone)]
pub struct SellOut {
    pub inventory: Channels,
    pub buyers: usize,
    pub attempts_per_buyer: u32,
    pub stock: i32,
    pub deadline: Duration,
}

/// What the sale came to.
#[derive(Debug, Clone)]
pub struct SellOutResult {
    pub sku: String,
    pub stats: Stats,
    pub sold: u64,
    pub elapsed: Duration,
    pub cpu: CpuUse,
    pub on_hand_after: i32,
    pub reserved_after: i32,
    /// Every broken promise, in words; empty when the sale was correct.
    pub violations: Vec<String>,
}

/// Judges a finished sale: `attempts` tries, `sold` units sold out of `stock`, the stock
/// row's numbers afterwards and the outcome counts.
pub fn judge(
    stock: i32,
    attempts: u64,
    sold: u64,
    stats: &Stats,
    on_hand_after: i32,
    reserved_after: i32,
) -> Vec<String> {
    let mut violations = Vec::new();
    let stock_u = u64::try_from(stock).unwrap_or(0);
    if sold != stock_u {
        violations.push(format!("sold {sold} units of {stock}"));
    }
    if on_hand_after != 0 || reserved_after != 0 {
        violations.push(format!(
            "stock row after the sale: on_hand {on_hand_after}, reserved {reserved_after} (want 0, 0)"
        ));
    }
    let expected_refusals = attempts.saturating_sub(stock_u);
    if stats.refused != expected_refusals {
        violations.push(format!(
            "{} clean refusals, want {expected_refusals} ({attempts} attempts, {stock} units)",
            stats.refused
        ));
    }
    if stats.errors > 0 {
        violations.push(format!("{} attempts failed instead of a clean answer", stats.errors));
    }
    violations
}

impl SellOut {
    /// Stocks a fresh SKU (`SELLOUT-<run>`), runs the sale and checks it.
    pub async fn run(&self, run: &str) -> anyhow::Result<SellOutResult> {
        let sku = format!("SELLOUT-{run}");
        let upsert = pb::UpsertInventoryItemRequest {
            sku: sku.clone(),
            product_id: "prod-sellout".into(),
            variant_id: None,
            warehouse_id: String::new(),
            on_hand: self.stock,
        };
        self.inventory
            .inventory(0)
            .upsert_inventory_item(with_deadline(upsert, self.deadline))
            .await
            .map_err(|s| anyhow::anyhow!("stocking {sku}: {s}"))?;

        let cpu0 = CpuSample::now()?;
        let start = Instant::now();
        let mut buyers = JoinSet::new();
        for b in 0..self.buyers {
            let mut client = self.inventory.inventory(b);
            let (sku, deadline, attempts) = (sku.clone(), self.deadline, self.attempts_per_buyer);
            let run = run.to_owned();
            buyers.spawn(async move {
                let mut stats = Stats::new();
                let mut sold = 0u64;
                for k in 0..attempts {
                    let t0 = Instant::now();
                    let outcome = buy(&mut client, &sku, format!("{run}-b{b}-{k}"), deadline).await;
                    if outcome == Outcome::Ok {
                        sold += 1;
                    }
                    stats.record(outcome, t0.elapsed());
                }
                (stats, sold)
            });
        }
        let mut stats = Stats::new();
        let mut sold = 0;
        while let Some(done) = buyers.join_next().await {
            let (s, n) = done?;
            stats.merge(&s);
            sold += n;
        }
        let elapsed = start.elapsed();
        let cpu = cpu0.until(&CpuSample::now()?);

        let item = self
            .inventory
            .inventory(0)
            .get_inventory_item(with_deadline(
                pb::GetInventoryItemRequest { sku: sku.clone() },
                self.deadline,
            ))
            .await
            .map_err(|s| anyhow::anyhow!("reading {sku} after the sale: {s}"))?
            .into_inner();
        let attempts = self.buyers as u64 * u64::from(self.attempts_per_buyer);
        let violations = judge(self.stock, attempts, sold, &stats, item.on_hand, item.reserved);
        Ok(SellOutResult {
            sku,
            stats,
            sold,
            elapsed,
            cpu,
            on_hand_after: item.on_hand,
            reserved_after: item.reserved,
            violations,
        })
    }
}

/// One attempt to buy one unit: reserve, then commit. A refusal must say why.
async fn buy(
    client: &mut pb::inventory_service_client::InventoryServiceClient<crate::conn::Conn>,
    sku: &str,
    reference: String,
    deadline: Duration,
) -> Outcome {
    let req = reserve::request_for_sku(reference, sku, 1);
    let resp = match client.reserve_inventory(with_deadline(req, deadline)).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => return Outcome::grpc(&status),
    };
    if !resp.success {
        return if resp.message.contains(sku) {
            Outcome::Refused
        } else {
            Outcome::Error("refusal without a message naming the SKU".into())
        };
    }
    let commit = pb::CommitReservationRequest { reservation_id: resp.reservation_id };
    match client.commit_reservation(with_deadline(commit, deadline)).await {
        Ok(c) if c.get_ref().success => Outcome::Ok,
        Ok(_) => Outcome::Error("commit of a fresh hold refused".into()),
        Err(status) => Outcome::grpc(&status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ok: u64, refused: u64, errors: u64) -> Stats {
        let mut s = Stats::new();
        for _ in 0..ok {
            s.record(Outcome::Ok, Duration::from_millis(1));
        }
        for _ in 0..refused {
            s.record(Outcome::Refused, Duration::from_millis(1));
        }
        for _ in 0..errors {
            s.record(Outcome::Error("grpc Unavailable".into()), Duration::from_millis(1));
        }
        s
    }

    #[test]
    fn a_correct_sale_has_no_violations() {
        assert!(judge(1000, 2048, 1000, &stats(1000, 1048, 0), 0, 0).is_empty());
    }

    #[test]
    fn every_broken_promise_is_named() {
        let v = judge(1000, 2048, 1001, &stats(1001, 1040, 7), -1, 0);
        assert_eq!(v.len(), 4, "{v:?}");
        assert_eq!(v[0], "sold 1001 units of 1000");
        assert!(v[1].contains("on_hand -1"));
        assert!(v[2].starts_with("1040 clean refusals, want 1048"));
        assert!(v[3].starts_with("7 attempts failed"));
    }
}
