//! Validated requests, as the order workflows receive them.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    Currency, IdempotencyKey, OrderId, PageSize, PaymentMethod, ProductId, Quantity, UserId,
    VariantId,
};

/// One requested line: a product (or one of its variants) and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub quantity: Quantity,
}

/// A validated CreateOrder request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOrder {
    pub user_id: UserId,
    pub lines: Vec<OrderLine>,
    pub currency: Currency,
    pub payment_method: PaymentMethod,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl CreateOrder {
    /// A hash of the normalised request (everything but the key itself): a reused key with a
    /// different fingerprint is a client bug, refused rather than answered with the old order.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        // Length-prefixed fields, so that no two different requests encode the same bytes.
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        };
        field("v1");
        field(self.user_id.as_str());
        field(self.currency.as_str());
        field(self.payment_method.as_str());
        for line in &self.lines {
            field(line.product_id.as_str());
            field(line.variant_id.as_ref().map_or("\u{0}none", |v| v.as_str()));
            field(&line.quantity.get().to_string());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where a ListOrders page starts: after this (created_at, id), newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of a user's orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub user_id: UserId,
    pub size: PageSize,
    pub after: Option<Cursor>,
}

/// A validated CancelOrder request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOrder {
    pub order_id: OrderId,
    pub reason: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(qty: i32, key: Option<&str>) -> CreateOrder {
        CreateOrder {
            user_id: UserId::parse("user_id", "u1").unwrap(),
            lines: vec![OrderLine {
                product_id: ProductId::parse("p", "p1").unwrap(),
                variant_id: None,
                quantity: Quantity::parse("q", qty).unwrap(),
            }],
            currency: Currency::parse("currency", "EUR").unwrap(),
            payment_method: PaymentMethod::parse("payment_method", "card").unwrap(),
            idempotency_key: key.map(|k| IdempotencyKey::parse("k", k).unwrap()),
        }
    }

    #[test]
    fn fingerprint_ignores_the_key_and_sees_the_request() {
        assert_eq!(request(1, Some("a")).fingerprint(), request(1, Some("b")).fingerprint());
        assert_ne!(request(1, None).fingerprint(), request(2, None).fingerprint());
        assert_eq!(request(1, None).fingerprint().len(), 64);
    }
}
