//! The workloads. Each draws its request data synchronously from the caller's random number
//! generator, then returns the future that sends it, so the drivers can run any of them.

use std::future::Future;

use fastrand::Rng;

use crate::histogram::Outcome;

/// CheckInventoryAvailability of 3 random SKUs.
pub mod check;
/// The flash sale through CreateOrder: 1,000 units, 256 buyers, until sold out.
pub mod flash_sale;
/// 90% checks, 10% reserve then commit or cancel.
pub mod mixed;
/// CreateOrder end to end through the order server.
pub mod order;
/// ReserveInventory: uniform, hot SKU + 2, hot SKU only.
pub mod reserve;
/// The flash-sale correctness check: 1,000 units, 64 buyers.
pub mod sellout;

/// One kind of operation the drivers repeat.
pub trait Workload: Send + Sync + 'static {
    /// Builds one operation from `rng` and returns the future that performs it on the
    /// connection of `slot`.
    fn call(&self, slot: usize, rng: &mut Rng) -> impl Future<Output = Outcome> + Send + 'static;
}

/// The scenarios `loadgen run` knows, as issue 5 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Check,
    /// `check`'s request replayed by h2load (a cross-check of this load generator).
    CheckH2load,
    ReserveUniform,
    ReserveHot,
    ReserveHotOnly,
    Mixed,
    CreateOrder,
    SellOut,
    FlashSale,
}

impl Scenario {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::CheckH2load => "check/h2load",
            Self::ReserveUniform => "reserve-uniform",
            Self::ReserveHot => "reserve-hot",
            Self::ReserveHotOnly => "reserve-hot-only",
            Self::Mixed => "mixed",
            Self::CreateOrder => "create-order",
            Self::SellOut => "sell-out",
            Self::FlashSale => "flash-sale",
        }
    }
}
