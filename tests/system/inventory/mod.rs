//! The inventory server, driven through its gRPC contract only.

mod admin;
mod backorders;
mod batching;
mod check;
mod concurrency;
mod differential;
mod expiry;
mod history;
mod operations;
mod policy;
mod reconcile;
mod reserve;
mod returns;
mod settle;
mod validation;
