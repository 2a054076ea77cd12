//! The payment stand-in: `payment.v1.PaymentService`, an in-memory simulator with idempotency
//! keys, deterministic declines and refunds.

pub mod ledger;
mod service;

use std::future::Future;
use std::net::SocketAddr;

use proto::payment::v1::payment_service_server::PaymentServiceServer;
use tonic::service::Routes;

use crate::app::{Bound, StandIn};
use crate::faults::Faults;
use crate::settings::PaymentSettings;
use ledger::Ledger;
use service::{PaymentApi, Rules};

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "payment.v1.PaymentService";

const STAND_IN: StandIn = StandIn { service: SERVICE_NAME, label: "payment" };

/// A bound, not yet running payment stand-in.
#[derive(Debug)]
pub struct PaymentApp {
    bound: Bound,
    ledger: Ledger,
    faults: Faults,
    rules: Rules,
}

impl PaymentApp {
    /// Binds the gRPC listener, with empty books.
    pub async fn build(settings: PaymentSettings) -> anyhow::Result<Self> {
        Self::build_with_ledger(settings, Ledger::new()).await
    }

    /// Binds the gRPC listener keeping `ledger`'s books, e.g. to restart a stand-in in a test
    /// without it forgetting the payments it took.
    pub async fn build_with_ledger(
        settings: PaymentSettings,
        ledger: Ledger,
    ) -> anyhow::Result<Self> {
        let bound = Bound::bind(STAND_IN, settings.grpc_addr, &settings.tls).await?;
        Ok(Self {
            bound,
            ledger,
            faults: Faults::with_latency_ms(settings.latency_ms),
            rules: Rules { decline_over_minor: settings.decline_over_minor },
        })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        self.bound.addr()
    }

    /// The fault switchboard of this server; clone it before running.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The books of this server (shared, live); clone it before running.
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }

    /// Runs until `shutdown` resolves, then finishes the calls in flight and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let api = PaymentApi::new(self.ledger, self.faults, self.rules);
        self.bound.serve(Routes::new(PaymentServiceServer::new(api)), shutdown).await
    }
}
