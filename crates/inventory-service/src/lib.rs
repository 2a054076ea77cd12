//! The inventory gRPC server: stock per warehouse, all-or-nothing holds, commits, expiry, and
//! an append-only movement ledger, over PostgreSQL schema `inventory`.

pub mod access;
pub mod app;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod low_stock;
pub mod metrics;
pub mod reconciler;
pub mod settings;
pub mod store;
pub mod sweeper;

pub use app::App;
pub use settings::Settings;
