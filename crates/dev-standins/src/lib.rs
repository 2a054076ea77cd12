//! DEVELOPMENT STAND-INS for the Product, Payment and User services that other teams own.
//!
//! Small but honest implementations of `product.v1`, `payment.v1` and `user.v1` for local runs
//! and tests: the order server talks to them exactly as it talks to the real ones. They keep
//! everything in memory and are not for production.

mod app;
mod error;
pub mod faults;
mod fields;
pub mod loading;
pub mod payment;
pub mod product;
pub mod settings;
pub mod user;

pub use faults::Faults;
pub use loading::LoadError;
pub use payment::PaymentApp;
pub use payment::ledger::{Charge, ChargeStatus, Ledger, Refund};
pub use product::ProductApp;
pub use product::catalog::{Catalog, Product, Variant};
pub use settings::{PaymentSettings, ProductSettings, UserSettings};
pub use user::UserApp;
pub use user::directory::{Directory, User, UserStatus};
