//! Validated requests, as the store receives them.

use sha2::{Digest, Sha256};

use super::allocation::Line;
use super::{
    HoldCaller, IdempotencyKey, PageSize, Quantity, Reason, Reference, ReservationId,
    ReservationStatus, Sku, WarehouseId,
};

/// One line of an availability check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A request to hold stock for a reference until it is committed, cancelled or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    pub lines: Vec<Line>,
    pub reference: Reference,
    pub expires_in_minutes: u32,
    /// Who asks: recorded with the hold, and checked against the reference's live hold.
    pub caller: HoldCaller,
}

impl Reserve {
    /// A hash of the request's lines (item as given, warehouse, quantity), the same whatever
    /// their order: a retry under the reference must carry the same lines to get the hold
    /// back; different lines under a live reference are another request, refused.
    pub fn fingerprint(&self) -> String {
        let mut lines: Vec<(&str, &str, i32)> = self
            .lines
            .iter()
            .map(|l| {
                (l.item.as_str(), l.warehouse.as_ref().map_or("", |w| w.as_str()), l.quantity.get())
            })
            .collect();
        lines.sort_unstable();
        let mut hash = Fingerprint::new(b"reserve-v1");
        for (item, warehouse, quantity) in lines {
            hash.field(item.as_bytes()).field(warehouse.as_bytes()).field(&quantity.to_be_bytes());
        }
        hash.finish()
    }
}

/// A SHA-256 over length-prefixed fields, so that no two different field lists encode the
/// same bytes (an empty warehouse, "any", is no valid warehouse id). Hex.
pub(crate) struct Fingerprint(Sha256);

impl Fingerprint {
    /// A fingerprint of the kind `tag` (a request type and its version).
    pub(crate) fn new(tag: &[u8]) -> Self {
        let mut hash = Self(Sha256::new());
        hash.field(tag);
        hash
    }

    /// Adds one field.
    pub(crate) fn field(&mut self, value: &[u8]) -> &mut Self {
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value);
        self
    }

    /// The hex digest.
    pub(crate) fn finish(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Sets a warehouse's on_hand for an item, creating the item and its level as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub sku: Sku,
    pub product_id: String,
    pub variant_id: Option<String>,
    pub warehouse: WarehouseId,
    pub on_hand: i32,
}

/// A relative change of on_hand, applied once per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjust {
    pub sku: Sku,
    pub warehouse: WarehouseId,
    pub delta: i32,
    pub reason: Reason,
    pub key: Option<IdempotencyKey>,
}

/// Sets a stock row's policy; a `None` keeps that value as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPolicy {
    pub sku: Sku,
    pub warehouse: WarehouseId,
    pub safety_stock: Option<i32>,
    pub low_stock_threshold: Option<i32>,
    pub backorder_limit: Option<i32>,
    /// `Some(None)` clears the date.
    pub restock_date: Option<Option<chrono::NaiveDate>>,
    pub reason: Reason,
    /// The identity the change is recorded under (mutual TLS), if any.
    pub changed_by: Option<String>,
}

/// One page of low-stock rows ordered by (SKU, warehouse), after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowStockPage {
    pub warehouse: Option<WarehouseId>,
    pub size: PageSize,
    /// The (SKU, warehouse) of the previous page's last row.
    pub after: Option<(String, String)>,
}

/// One page of items ordered by SKU, starting after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub size: PageSize,
    pub after: Option<String>,
}

/// What a commit, cancel or expiry does to a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Commit(ReservationId),
    Cancel(ReservationId),
}

impl Settle {
    /// The hold this applies to.
    pub fn reservation(self) -> ReservationId {
        match self {
            Self::Commit(id) | Self::Cancel(id) => id,
        }
    }

    /// The verb, for messages: "commit" or "cancel".
    pub fn verb(self) -> &'static str {
        match self {
            Self::Commit(_) => "commit",
            Self::Cancel(_) => "cancel",
        }
    }

    /// The state it leads to, for messages and metric labels: "committed" or "cancelled".
    pub fn done(self) -> &'static str {
        match self {
            Self::Commit(_) => "committed",
            Self::Cancel(_) => "cancelled",
        }
    }

    /// The status a hold has once this applied.
    pub fn applied(self) -> ReservationStatus {
        match self {
            Self::Commit(_) => ReservationStatus::Committed,
            Self::Cancel(_) => ReservationStatus::Cancelled,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{ItemRef, WarehouseId};

    fn reserve(lines: &[(&str, &str, i32)]) -> Reserve {
        Reserve {
            lines: lines
                .iter()
                .map(|(item, warehouse, quantity)| Line {
                    item: ItemRef::parse("item", item).unwrap(),
                    warehouse: WarehouseId::parse_optional("warehouse", warehouse).unwrap(),
                    quantity: Quantity::parse("quantity", *quantity).unwrap(),
                })
                .collect(),
            reference: Reference::parse("ORDER", "o-1").unwrap(),
            expires_in_minutes: 30,
            caller: HoldCaller::anonymous(),
        }
    }

    #[test]
    fn the_fingerprint_is_the_lines_in_any_order() {
        let first = reserve(&[("A", "", 1), ("B", "east", 2)]);
        assert_eq!(first.fingerprint(), reserve(&[("B", "east", 2), ("A", "", 1)]).fingerprint());
        let mut later = reserve(&[("A", "", 1), ("B", "east", 2)]);
        later.expires_in_minutes = 5;
        later.caller = HoldCaller::identified("other", false);
        assert_eq!(first.fingerprint(), later.fingerprint(), "only the lines count");
        for other in [
            reserve(&[("A", "", 1)]),
            reserve(&[("A", "", 1), ("B", "east", 3)]),
            reserve(&[("A", "", 1), ("B", "", 2)]),
            reserve(&[("A", "", 1), ("C", "east", 2)]),
            reserve(&[("A", "", 1), ("B", "east", 2), ("A", "", 1)]),
        ] {
            assert_ne!(first.fingerprint(), other.fingerprint(), "{:?}", other.lines);
        }
        // Field boundaries cannot move: "A" in warehouse "B" is not "AB" in any warehouse.
        assert_ne!(
            reserve(&[("A", "B", 1)]).fingerprint(),
            reserve(&[("AB", "", 1)]).fingerprint()
        );
    }
}
