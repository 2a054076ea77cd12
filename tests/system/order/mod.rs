//! The order server, driven through its gRPC contract against the real inventory server and
//! the development stand-ins for product, payment and user services.

mod cancel;
mod concurrency;
mod crash;
mod foreign;
mod idempotency;
mod kill;
mod parked;
mod payment;
mod place;
mod reconcile;
mod recovery;
mod refusals;
mod retention;
mod returns;
mod validation;
