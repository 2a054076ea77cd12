//! Test-only support shared by both servers' tests and the system tests: running a server's
//! executable ([`binary`]: free ports, refused starts, SIGTERM), the request fuzzing over the
//! proto-to-domain conversions ([`fuzz`]), the case counts and field generators of the
//! properties ([`properties`]), and INVALID_ARGUMENT read through a service's error mapping
//! ([`violations`]). A dev-dependency of the servers (and a dependency of the test-only
//! `system-tests`): no server links it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod binary;
pub mod fuzz;
pub mod properties;
pub mod violations;

// For the macros: a test names neither crate.
#[doc(hidden)]
pub use proptest;
#[doc(hidden)]
pub use prost;
