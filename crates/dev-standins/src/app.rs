//! What the three stand-in servers share: the one server host of `common`, with no database,
//! no metrics endpoint, no drain delay and room for any load a test sends.

use std::future::Future;
use std::net::SocketAddr;

use common::host::{Host, HostSpec, ShutdownSettings};
use common::overload::OverloadSettings;
use security::tls::ServerTlsSettings;
use tonic::service::Routes;

/// Which stand-in a server is, for health and logs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StandIn {
    /// The gRPC service name health reports on, e.g. `product.v1.ProductService`.
    pub(crate) service: &'static str,
    /// Short name for log lines, e.g. `product`.
    pub(crate) label: &'static str,
}

/// A bound, not yet serving stand-in. Binding before running lets tests ask for port 0 and
/// read the real port first.
#[derive(Debug)]
pub(crate) struct Bound {
    stand_in: StandIn,
    host: Host,
}

impl Bound {
    /// Reads `tls` (failing on a bad file at once) and binds `addr` for `stand_in`.
    pub(crate) async fn bind(
        stand_in: StandIn,
        addr: SocketAddr,
        tls: &ServerTlsSettings,
    ) -> anyhow::Result<Self> {
        // The order server's own limits bound what reaches a stand-in; a stand-in shedding
        // calls would only make tests fail in ways no real peer does.
        let overload = OverloadSettings { max_concurrent_requests: 10_000, ..Default::default() };
        let host = Host::bind(HostSpec {
            name: stand_in.label,
            services: &[stand_in.service],
            grpc_addr: addr,
            metrics_addr: None,
            tls,
            overload: &overload,
            shutdown: &ShutdownSettings::immediate(),
        })
        .await?;
        Ok(Self { stand_in, host })
    }

    /// The address gRPC clients connect to.
    pub(crate) fn addr(&self) -> anyhow::Result<SocketAddr> {
        self.host.grpc_addr()
    }

    /// Serves `routes` plus health and reflection until `shutdown` resolves, then finishes
    /// the calls in flight. Ready as soon as it listens: no database, nothing to warm up.
    pub(crate) async fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { stand_in, host } = self;
        tracing::warn!(
            grpc_addr = %host.grpc_addr()?,
            service = stand_in.service,
            tls = host.tls_enabled(),
            "{} DEVELOPMENT STAND-IN listening: in-memory fake, not for production",
            stand_in.label,
        );
        host.serve(routes, shutdown).await
    }
}
