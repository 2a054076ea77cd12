//! The order saga: one step engine, driven inline by the request that holds an order's lease
//! and by the recovery worker for orders whose lease lapsed or whose retry is due.

pub mod engine;
pub mod reasons;
pub mod recovery;
mod steps;

pub use engine::{Drive, DriveEnd, Engine, EngineConfig, Prior, Refusal, Withdrawal};
