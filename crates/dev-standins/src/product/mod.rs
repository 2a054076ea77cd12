//! The product stand-in: `product.v1.ProductService/GetProduct` over an in-memory catalog.

pub mod catalog;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use proto::product::v1::product_service_server::ProductServiceServer;
use tonic::service::Routes;

use crate::app::{Bound, StandIn};
use crate::faults::Faults;
use crate::settings::ProductSettings;
use catalog::Catalog;
use service::ProductApi;

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "product.v1.ProductService";

const STAND_IN: StandIn = StandIn { service: SERVICE_NAME, label: "product" };

/// A bound, not yet running product stand-in.
#[derive(Debug)]
pub struct ProductApp {
    bound: Bound,
    catalog: Arc<Catalog>,
    faults: Faults,
}

impl ProductApp {
    /// Loads the catalog (`catalog_path`, else the demo) and binds the gRPC listener.
    pub async fn build(settings: ProductSettings) -> anyhow::Result<Self> {
        let catalog = match &settings.catalog_path {
            Some(path) => Catalog::load(path)?,
            None => Catalog::demo().context("the built-in demo catalog")?,
        };
        Self::build_with_catalog(settings, catalog).await
    }

    /// Binds the gRPC listener serving `catalog` (`catalog_path` is ignored).
    pub async fn build_with_catalog(
        settings: ProductSettings,
        catalog: Catalog,
    ) -> anyhow::Result<Self> {
        let bound = Bound::bind(STAND_IN, settings.grpc_addr, &settings.tls).await?;
        let faults = Faults::with_latency_ms(settings.latency_ms);
        tracing::debug!(products = catalog.products().len(), "catalog loaded");
        Ok(Self { bound, catalog: Arc::new(catalog), faults })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        self.bound.addr()
    }

    /// The fault switchboard of this server; clone it before running.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The catalog served.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    /// Runs until `shutdown` resolves, then finishes the calls in flight and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let api = ProductApi::new(self.catalog, self.faults);
        self.bound.serve(Routes::new(ProductServiceServer::new(api)), shutdown).await
    }
}
