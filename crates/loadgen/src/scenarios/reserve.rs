//! `reserve-uniform`, `reserve-hot`, `reserve-hot-only`: ReserveInventory with a fresh
//! reference per request, quantities 1-5 (the work of `A_fn_reserve`, `B_fn_reserve`,
//! `B2_fn_single`). Stock is huge, so every hold must succeed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fastrand::Rng;
use proto::inventory::v1 as pb;

use super::Workload;
use crate::conn::{Channels, with_deadline};
use crate::histogram::Outcome;
use crate::skus;

/// Which SKUs a hold takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// 3 distinct random SKUs.
    Uniform,
    /// The hot SKU + one of each half of the catalogue.
    HotPlusTwo,
    /// Only the hot SKU.
    HotOnly,
}

/// Unique references for the holds of one run: `<run>-<n>`.
#[derive(Debug)]
pub struct References {
    run: String,
    next: AtomicU64,
}

impl References {
    /// References prefixed with `run` (unique per loadgen invocation).
    pub fn new(run: &str) -> Self {
        Self { run: run.to_owned(), next: AtomicU64::new(0) }
    }

    /// The next unused reference.
    pub fn next(&self) -> String {
        format!("{}-{}", self.run, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// The reserve workload.
#[derive(Debug, Clone)]
pub struct Reserve {
    pub inventory: Channels,
    pub nskus: u32,
    pub pick: Pick,
    pub references: Arc<References>,
    pub deadline: Duration,
}

/// The SKU numbers and quantities of one hold.
pub fn lines(rng: &mut Rng, nskus: u32, pick: Pick) -> Vec<(u32, i32)> {
    let numbers: Vec<u32> = match pick {
        Pick::Uniform => skus::uniform_distinct(rng, nskus).to_vec(),
        Pick::HotPlusTwo => skus::hot_plus_two(rng, nskus).to_vec(),
        Pick::HotOnly => vec![skus::HOT],
    };
    numbers.into_iter().map(|n| (n, skus::quantity(rng))).collect()
}

/// A reserve request for `lines` under `reference` (type `BENCH`, any warehouse, 30 min).
pub fn request(reference: String, lines: &[(u32, i32)]) -> pb::ReserveInventoryRequest {
    pb::ReserveInventoryRequest {
        items: lines
            .iter()
            .map(|&(n, quantity)| pb::ReservationItem {
                inventory_item_id: skus::sku(n),
                warehouse_id: String::new(),
                quantity,
            })
            .collect(),
        reference_id: reference,
        reference_type: "BENCH".into(),
        expiration_minutes: 30,
    }
}

/// A one-line reserve request: `quantity` units of `sku` under `reference`.
pub fn request_for_sku(reference: String, sku: &str, quantity: i32) -> pb::ReserveInventoryRequest {
    pb::ReserveInventoryRequest {
        items: vec![pb::ReservationItem {
            inventory_item_id: sku.to_owned(),
            warehouse_id: String::new(),
            quantity,
        }],
        reference_id: reference,
        reference_type: "BENCH".into(),
        expiration_minutes: 30,
    }
}

/// Sends a reserve; `Ok(Some(id))` for a hold, `Ok(None)` for a clean refusal.
pub async fn send(
    client: &mut pb::inventory_service_client::InventoryServiceClient<crate::conn::Conn>,
    req: pb::ReserveInventoryRequest,
    deadline: Duration,
) -> Result<Option<String>, tonic::Status> {
    let resp = client.reserve_inventory(with_deadline(req, deadline)).await?.into_inner();
    Ok(resp.success.then_some(resp.reservation_id))
}

impl Workload for Reserve {
    fn call(&self, slot: usize, rng: &mut Rng) -> impl Future<Output = Outcome> + Send + 'static {
        let req = request(self.references.next(), &lines(rng, self.nskus, self.pick));
        let mut client = self.inventory.inventory(slot);
        let deadline = self.deadline;
        async move {
            match send(&mut client, req, deadline).await {
                Ok(Some(_)) => Outcome::Ok,
                Ok(None) => Outcome::Error("unexpected refusal (stock should be plenty)".into()),
                Err(status) => Outcome::grpc(&status),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_pick() {
        let mut rng = Rng::with_seed(1);
        let uniform = lines(&mut rng, 10_000, Pick::Uniform);
        assert_eq!(uniform.len(), 3);
        let hot = lines(&mut rng, 10_000, Pick::HotPlusTwo);
        assert_eq!(hot[0].0, skus::HOT);
        let only = lines(&mut rng, 10_000, Pick::HotOnly);
        assert_eq!(only.len(), 1);
        assert!((1..=5).contains(&only[0].1));
    }

    #[test]
    fn references_are_unique() {
        let refs = References::new("run1");
        assert_eq!(refs.next(), "run1-0");
        assert_eq!(refs.next(), "run1-1");
        let req = request(refs.next(), &[(7, 2)]);
        assert_eq!(req.reference_id, "run1-2");
        assert_eq!(req.items[0].inventory_item_id, "SKU-000007");
        assert_eq!(req.items[0].quantity, 2);
    }
}
