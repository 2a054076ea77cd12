//! Test-only support shared by both servers' tests: the request fuzzing over their
//! proto-to-domain conversions ([`fuzz`]). A dev-dependency only: no server links it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fuzz;

// For the macros: a test names neither crate.
#[doc(hidden)]
pub use prost;
