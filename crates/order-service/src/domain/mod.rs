//! Order types and rules: no protobuf, no SQL. Values here are valid by construction.

mod backorder;
pub mod cancellation;
pub mod commands;
pub mod currency;
pub mod inconsistency;
pub mod pricing;
pub mod resolution;
pub mod returns;
mod status;
mod values;

pub use backorder::Backordered;
pub use status::{NextAction, OrderStatus, PaymentStatus};
pub use values::{
    Currency, FieldViolation, IdempotencyKey, OrderId, PageSize, PaymentMethod, ProductId,
    Quantity, UserId, VariantId,
};

/// One SKU the inventory cannot supply in full, as CreateOrder reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub product_id: String,
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}
