//! The stand-ins as their clients see them: real servers on loopback, generated clients.

// Test helpers (not only #[test] fns) should fail loudly on a broken setup.
#![allow(clippy::unwrap_used)]

mod binaries;
mod helpers;
mod payment;
mod product;
mod user;
