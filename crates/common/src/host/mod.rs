//! One server host for every binary of the pair (both servers and the stand-ins): the
//! listeners, health (readiness and liveness), the readiness watcher, reflection, the metrics
//! endpoint, the layers (tracing, metrics, shutdown, overload), the one stop signal of background
//! work, and a shutdown that is bounded whatever clients hold open.
//!
//! A binary binds a [`Host`], starts its background work with [`Host::stop_token`] and
//! [`Host::spawn`], then hands its routes to [`Host::serve`]:
//!
//! ```ignore
//! let mut host = Host::bind(HostSpec { name: "inventory", services: &[SERVICE_NAME], .. }).await?;
//! host.watch_database(pool.clone(), migrate);
//! host.spawn(sweeper::run(store.clone(), host.stop_token()));
//! host.serve(Routes::new(InventoryServiceServer::new(api)), shutdown).await?;
//! ```
//!
//! Shutdown, once `shutdown` resolves: readiness goes NOT_SERVING (the database watcher is
//! stopped first, so it cannot turn it back); for `SHUTDOWN_DRAIN_DELAY_MS` the server keeps
//! serving while load balancers notice; then it stops accepting connections, ends open streams
//! (health Watch) with UNAVAILABLE and gives calls in flight `SHUTDOWN_GRACE_MS` to finish;
//! calls still running then are answered UNAVAILABLE. Background work is told to stop and
//! waited for (at most [`BACKGROUND_STOP_TIMEOUT`]), the metrics endpoint last.

mod ending;
mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;
use tonic::transport::ServerTlsConfig;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

use crate::db::MigrateFn;
use crate::overload::OverloadSettings;
use crate::server::Readiness;
use security::tls::ServerTlsSettings;

pub use ending::{Ending, EndingBody, EndingLayer, EndingService};
pub use settings::ShutdownSettings;

/// How often the readiness watcher checks the database.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Longest shutdown waits for background work (sweeper, recovery, sagas) to stop.
pub const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// After the grace, how long the calls just answered UNAVAILABLE get to leave the wire.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// What a binary tells the host about itself.
#[derive(Debug, Clone, Copy)]
pub struct HostSpec<'a> {
    /// Short name for log lines, e.g. `inventory`.
    pub name: &'static str,
    /// The gRPC services the binary serves: health reports on them, metrics label them.
    pub services: &'a [&'static str],
    /// Where gRPC is served.
    pub grpc_addr: SocketAddr,
    /// Where `/metrics` is served; `None` for no endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// TLS of the gRPC server.
    pub tls: &'a ServerTlsSettings,
    /// Concurrency, deadline, HTTP/2 and message-size limits.
    pub overload: &'a OverloadSettings,
    /// How the server stops and how long connections live.
    pub shutdown: &'a ShutdownSettings,
}

/// A bound, not yet serving server. Binding first lets tests ask for port 0 and read the real
/// ports before serving.
pub struct Host {
    name: &'static str,
    services: Vec<&'static str>,
    grpc: TcpListener,
    metrics: Option<TcpListener>,
    tls: Option<ServerTlsConfig>,
    overload: OverloadSettings,
    shutdown: ShutdownSettings,
    readiness: Readiness,
    health: HealthServer<HealthService>,
    stop: CancellationToken,
    background: TaskTracker,
    watcher: Option<JoinHandle<()>>,
}

// Manual impl: the health service and listeners say nothing useful, the addresses do.
impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("grpc", &self.grpc.local_addr().ok())
            .field("metrics", &self.metrics.as_ref().and_then(|l| l.local_addr().ok()))
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Reads the TLS files (failing on a bad one at once) and binds the listeners.
    pub async fn bind(spec: HostSpec<'_>) -> anyhow::Result<Self> {
        let tls = spec.tls.server_config()?;
        let grpc = TcpListener::bind(spec.grpc_addr).await.with_context(|| {
            format!("binding the {} gRPC address {}", spec.name, spec.grpc_addr)
        })?;
        let metrics =
            match spec.metrics_addr {
                Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                    format!("binding the {} metrics address {addr}", spec.name)
                })?),
                None => None,
            };
        let (readiness, health) = crate::server::health(spec.services);
        Ok(Self {
            name: spec.name,
            services: spec.services.to_vec(),
            grpc,
            metrics,
            tls,
            overload: spec.overload.clone(),
            shutdown: spec.shutdown.clone(),
            readiness,
            health,
            stop: CancellationToken::new(),
            background: TaskTracker::new(),
            watcher: None,
        })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.grpc.local_addr()?)
    }

    /// The address of `/metrics`, when served.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        Ok(self.metrics.as_ref().map(TcpListener::local_addr).transpose()?)
    }

    /// Whether the server speaks TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The readiness every served service reports.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The one stop signal of background work: cancelled once no call is served any more.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` in the background; shutdown waits for it after cancelling
    /// [`stop_token`](Self::stop_token), so the task must return soon after that.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.spawn(task);
    }

    /// Drives readiness from the database (see [`crate::server::watch_database`]): without
    /// it, the server is ready as soon as it serves.
    pub fn watch_database(&mut self, pool: PgPool, migrate: Option<MigrateFn>) {
        let readiness = self.readiness.clone();
        self.watcher = Some(tokio::spawn(crate::server::watch_database(
            pool,
            readiness,
            migrate,
            WATCH_INTERVAL,
        )));
    }

    /// Serves `routes` with health and reflection until `shutdown` resolves, then shuts down
    /// as the module docs say and returns.
    pub async fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            name,
            services,
            grpc,
            metrics,
            tls,
            overload,
            shutdown: timing,
            readiness,
            health,
            stop,
            background,
            watcher,
        } = self;
        let metrics_stop = CancellationToken::new();
        let metrics_task = metrics.map(|listener| {
            tokio::spawn(crate::metrics::serve(listener, metrics_stop.clone().cancelled_owned()))
        });
        let watcher_abort = match &watcher {
            Some(watcher) => Some(watcher.abort_handle()),
            None => {
                readiness.set_serving().await;
                None
            }
        };

        let ending = Ending::default();
        let draining = CancellationToken::new();
        let signal = {
            let (readiness, ending, draining) =
                (readiness.clone(), ending.clone(), draining.clone());
            let delay = timing.drain_delay();
            async move {
                shutdown.await;
                tracing::info!(drain_delay_ms = delay.as_millis(), "shutting down: not serving");
                // The watcher first, so it cannot turn readiness back on.
                if let Some(watcher) = watcher_abort {
                    watcher.abort();
                }
                readiness.set_not_serving().await;
                tokio::time::sleep(delay).await;
                tracing::info!("no longer accepting connections; ending streams, finishing calls");
                ending.streams.cancel();
                draining.cancel();
            }
        };
        let metrics_layer = crate::metrics::GrpcMetricsLayer::new(&services);
        let server = timing
            .configure(overload.configure(security::tls::server_builder(tls)?))
            // Outermost: a span for every call, refused ones too, named as metrics label it.
            .layer(crate::telemetry::ServerTraceLayer::new(metrics_layer.methods().clone()))
            .layer(metrics_layer)
            // Inside the metrics layer, so calls ended at shutdown are counted by code.
            .layer(EndingLayer::new(ending.clone()))
            // Inside both: refused and timed-out calls are counted, and ended at shutdown.
            .layer(overload.layer())
            .add_routes(crate::server::with_reflection(routes.add_service(health), &services)?)
            .serve_with_incoming_shutdown(crate::server::incoming(grpc), signal);
        tokio::pin!(server);

        let served = tokio::select! {
            served = &mut server => served,
            () = draining.cancelled() => {
                match tokio::time::timeout(timing.grace(), &mut server).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!(
                            grace_ms = timing.shutdown_grace_ms,
                            "calls still in flight after the grace; answering them UNAVAILABLE"
                        );
                        ending.calls.cancel();
                        // Answered calls end their streams, and connections close with them;
                        // a client that keeps its connection open does not hold the exit.
                        tokio::time::timeout(LAST_WORDS, &mut server).await.unwrap_or(Ok(()))
                    }
                }
            }
        };

        stop.cancel();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        background.close();
        if tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, background.wait()).await.is_err() {
            tracing::warn!("background work still running at shutdown; it stops with the process");
        }
        metrics_stop.cancel();
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        // The spans of the last calls and of background work, before the process ends.
        crate::telemetry::flush().await;
        served.with_context(|| format!("serving {name} gRPC"))?;
        tracing::info!("{name} server stopped");
        Ok(())
    }
}
