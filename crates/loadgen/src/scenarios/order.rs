//! `create-order`: CreateOrder end to end (product lookups, availability, order row, reserve,
//! payment, commit) for 3 random products of the bench catalogue, quantities 1-5, a fresh
//! idempotency key each. An operation succeeds when the answer is a CONFIRMED order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fastrand::Rng;
use proto::order::v1 as pb;

use super::Workload;
use super::reserve::References;
use crate::conn::{Channels, with_deadline};
use crate::histogram::Outcome;
use crate::skus;

/// Distinct users the orders are spread over.
pub const USERS: u32 = 1_000;

/// The create-order workload.
#[derive(Debug, Clone)]
pub struct CreateOrder {
    pub orders: Channels,
    pub nskus: u32,
    pub keys: Arc<References>,
    pub deadline: Duration,
}

/// An order of 3 distinct random products of the bench catalogue under key `key`.
pub fn request(rng: &mut Rng, nskus: u32, key: String) -> pb::CreateOrderRequest {
    let items = skus::uniform_distinct(rng, nskus)
        .into_iter()
        .map(|n| pb::OrderItemInput {
            product_id: skus::product(n),
            variant_id: None,
            quantity: skus::quantity(rng),
        })
        .collect();
    pb::CreateOrderRequest {
        user_id: format!("bench-user-{}", rng.u32(0..USERS)),
        items,
        currency: "EUR".into(),
        payment_method: "card".into(),
        idempotency_key: key,
    }
}

impl Workload for CreateOrder {
    fn call(&self, slot: usize, rng: &mut Rng) -> impl Future<Output = Outcome> + Send + 'static {
        let req = request(rng, self.nskus, self.keys.next());
        let mut client = self.orders.order(slot);
        let deadline = self.deadline;
        async move {
            match client.create_order(with_deadline(req, deadline)).await {
                Ok(resp) if resp.get_ref().status == "CONFIRMED" => Outcome::Ok,
                Ok(resp) => Outcome::Error(format!("order answered {}", resp.get_ref().status)),
                Err(status) => Outcome::grpc(&status),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_name_catalogue_products() {
        let mut rng = Rng::with_seed(9);
        let req = request(&mut rng, 10_000, "k-1".into());
        assert_eq!(req.items.len(), 3);
        assert!(req.items.iter().all(|i| i.product_id.starts_with("prod-0")));
        assert!(req.user_id.starts_with("bench-user-"));
        assert_eq!((req.currency.as_str(), req.idempotency_key.as_str()), ("EUR", "k-1"));
    }
}
