//! Inventory types and rules: no protobuf, no SQL. Values here are valid by construction.

pub mod allocation;
mod caller;
pub mod commands;
mod inconsistency;
mod outcomes;
mod policy;
pub mod returns;
mod values;

pub use caller::HoldCaller;
pub use inconsistency::InconsistencyKind;
pub use outcomes::{ReserveOutcome, SettleOutcome};
pub use policy::StockPolicy;

pub use values::{
    FieldViolation, IdempotencyKey, ItemRef, PageSize, Quantity, Reason, Reference, ReservationId,
    ReservationStatus, Sku, WarehouseId,
};

/// Availability of one requested line, as the check RPC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailabilityStatus {
    InStock,
    InsufficientStock,
    OutOfStock,
    UnknownSku,
    /// Enough can be sold, but only with units beyond what is in stock.
    AvailableOnBackorder,
}

impl AvailabilityStatus {
    /// Classifies a line from what is available (None: the SKU is unknown) and, of that, in
    /// stock (equal to it for rows without a backorder limit).
    pub fn classify(requested: i32, available: Option<i64>, in_stock: i64) -> Self {
        match available {
            None => Self::UnknownSku,
            Some(a) if a <= 0 => Self::OutOfStock,
            Some(a) if a < i64::from(requested) => Self::InsufficientStock,
            Some(_) if in_stock < i64::from(requested) => Self::AvailableOnBackorder,
            Some(_) => Self::InStock,
        }
    }

    /// The wire name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "IN_STOCK",
            Self::InsufficientStock => "INSUFFICIENT_STOCK",
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::UnknownSku => "UNKNOWN_SKU",
            Self::AvailableOnBackorder => "AVAILABLE_ON_BACKORDER",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AvailabilityStatus as S;

    #[test]
    fn classify_covers_each_status() {
        assert_eq!(S::classify(1, None, 0), S::UnknownSku);
        assert_eq!(S::classify(1, Some(0), 0), S::OutOfStock);
        assert_eq!(S::classify(5, Some(2), 2), S::InsufficientStock);
        assert_eq!(S::classify(5, Some(5), 5), S::InStock);
        assert_eq!(S::classify(5, Some(50), 50), S::InStock);
        assert_eq!(S::classify(5, Some(8), 3), S::AvailableOnBackorder);
        assert_eq!(S::classify(5, Some(4), 3), S::InsufficientStock);
    }
}
