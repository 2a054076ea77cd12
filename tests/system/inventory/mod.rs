//! The inventory server, driven through its gRPC contract only.

mod admin;
mod check;
mod concurrency;
mod expiry;
mod operations;
mod reserve;
mod settle;
mod validation;
