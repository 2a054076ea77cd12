//! The order saga: one step engine, driven inline by the request that holds an order's lease
//! and by the recovery worker for orders whose lease lapsed or whose retry is due; returns of
//! confirmed orders are sagas of their own on the same engine (`returns.rs`).

pub mod engine;
pub mod reasons;
pub mod recovery;
mod returns;
mod steps;

pub use engine::{Drive, DriveEnd, Engine, EngineConfig, Prior, Refusal, Withdrawal};
pub use returns::ReturnEnd;
