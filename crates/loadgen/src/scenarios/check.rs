//! `check`: CheckInventoryAvailability of 3 random SKUs of the catalogue, one unit each
//! (the work of the `C_availability` anchor).

use std::future::Future;
use std::time::Duration;

use fastrand::Rng;
use proto::inventory::v1 as pb;

use super::Workload;
use crate::conn::{Channels, with_deadline};
use crate::histogram::Outcome;
use crate::skus;

/// The check workload.
#[derive(Debug, Clone)]
pub struct Check {
    pub inventory: Channels,
    pub nskus: u32,
    pub deadline: Duration,
}

/// A check request for 3 random SKUs (repeats allowed, like the anchor).
pub fn request(rng: &mut Rng, nskus: u32) -> pb::CheckInventoryAvailabilityRequest {
    let items = skus::uniform_any(rng, nskus)
        .into_iter()
        .map(|n| pb::AvailabilityCheckItem {
            product_id: String::new(),
            variant_id: None,
            sku: skus::sku(n),
            quantity: 1,
        })
        .collect();
    pb::CheckInventoryAvailabilityRequest { items }
}

/// Sends `req` and judges the answer: one line per requested item, every SKU known.
pub async fn send(
    mut client: pb::inventory_service_client::InventoryServiceClient<crate::conn::Conn>,
    req: pb::CheckInventoryAvailabilityRequest,
    deadline: Duration,
) -> Outcome {
    let wanted = req.items.len();
    match client.check_inventory_availability(with_deadline(req, deadline)).await {
        Ok(resp) => {
            let resp = resp.into_inner();
            if resp.items.len() != wanted {
                Outcome::Error("check answered the wrong number of items".into())
            } else if resp.items.iter().any(|i| i.status == "UNKNOWN_SKU") {
                Outcome::Error("check: unknown SKU (not seeded?)".into())
            } else {
                Outcome::Ok
            }
        }
        Err(status) => Outcome::grpc(&status),
    }
}

impl Workload for Check {
    fn call(&self, slot: usize, rng: &mut Rng) -> impl Future<Output = Outcome> + Send + 'static {
        let req = request(rng, self.nskus);
        send(self.inventory.inventory(slot), req, self.deadline)
    }
}
