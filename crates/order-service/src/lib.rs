//! The order gRPC server: CreateOrder, GetOrder, ListOrders and CancelOrder over PostgreSQL
//! schema `orders`, placing each order through a persisted saga over the inventory, product
//! and payment services that a recovery worker resumes after any crash.

pub mod app;
pub mod authz;
pub mod backoff;
pub mod clients;
pub mod domain;
pub mod error;
pub mod event_watchers;
pub mod grpc;
pub mod metrics;
pub mod orders;
pub mod reconciler;
pub mod saga;
pub mod settings;
pub mod store;

pub use app::App;
pub use settings::Settings;
