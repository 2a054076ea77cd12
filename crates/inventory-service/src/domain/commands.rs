//! Validated requests, as the store receives them.

use super::allocation::Line;
use super::{
    AdjustmentKey, PageSize, Quantity, Reason, Reference, ReservationId, ReservationStatus, Sku,
    WarehouseId,
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
    pub key: Option<AdjustmentKey>,
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
