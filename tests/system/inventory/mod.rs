//! The inventory server, driven through its gRPC contract only.

mod admin;
mod batching;
mod check;
mod concurrency;
mod differential;
mod expiry;
mod history;
mod operations;
mod reconcile;
mod reserve;
mod returns;
mod settle;
mod validation;
