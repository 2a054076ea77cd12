//! What the three stand-in servers share: binding, health, reflection, metrics, shutdown.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use common::tls::ServerTlsSettings;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::ServerTlsConfig;

/// Which stand-in a server is, for health and logs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StandIn {
    /// The gRPC service name health reports on, e.g. `product.v1.ProductService`.
    pub(crate) service: &'static str,
    /// Short name for log lines, e.g. `product`.
    pub(crate) label: &'static str,
}

/// A bound, not yet serving gRPC listener. Binding before running lets tests ask for port 0
/// and read the real port first.
#[derive(Debug)]
pub(crate) struct Bound {
    stand_in: StandIn,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
}

impl Bound {
    /// Reads `tls` (failing on a bad file at once) and binds `addr` for `stand_in`.
    pub(crate) async fn bind(
        stand_in: StandIn,
        addr: SocketAddr,
        tls: &ServerTlsSettings,
    ) -> anyhow::Result<Self> {
        let tls = tls.server_config()?;
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("binding the {} stand-in's gRPC address {addr}", stand_in.label)
        })?;
        Ok(Self { stand_in, listener, tls })
    }

    /// The address gRPC clients connect to.
    pub(crate) fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves `routes` plus health and reflection until `shutdown` resolves, then finishes
    /// the calls in flight.
    pub(crate) async fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { stand_in, listener, tls } = self;
        let (readiness, health) = common::server::health(&[stand_in.service]);
        // No database and nothing to warm up: ready as soon as it listens.
        readiness.set_serving().await;
        let routes = routes.add_service(health).add_service(common::server::reflection()?);
        tracing::warn!(
            grpc_addr = %listener.local_addr()?,
            service = stand_in.service,
            tls = tls.is_some(),
            "{} DEVELOPMENT STAND-IN listening: in-memory fake, not for production",
            stand_in.label,
        );
        let drain_readiness = readiness.clone();
        common::tls::server_builder(tls)?
            .layer(common::metrics::GrpcMetricsLayer::new(&[stand_in.service]))
            .add_routes(routes)
            .serve_with_incoming_shutdown(common::server::incoming(listener), async move {
                shutdown.await;
                tracing::info!("shutting down: finishing calls in flight");
                drain_readiness.set_not_serving().await;
            })
            .await
            .with_context(|| format!("serving the {} stand-in", stand_in.label))?;
        tracing::info!("{} stand-in stopped", stand_in.label);
        Ok(())
    }
}
