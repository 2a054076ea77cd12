//! Test-only support shared by both servers' tests and the system tests: running a server's
//! executable ([`binary`]: free ports, refused starts, SIGTERM) and the request fuzzing over
//! the proto-to-domain conversions ([`fuzz`]). A dev-dependency of the servers (and a
//! dependency of the test-only `system-tests`): no server links it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod binary;
pub mod fuzz;

// For the macros: a test names neither crate.
#[doc(hidden)]
pub use proptest;
#[doc(hidden)]
pub use prost;
