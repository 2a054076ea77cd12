//! Units of an order the inventory sold on backorder (beyond what it had in stock).

/// Units of one SKU a hold took on backorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backordered {
    pub sku: String,
    pub quantity: i32,
    /// When the inventory expects more (a pre-order), YYYY-MM-DD; empty for none.
    pub expected_restock_date: String,
}
