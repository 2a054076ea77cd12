//! Builds the order server from its settings and runs it until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use common::proto::order::v1::order_service_server::OrderServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::ServerTlsConfig;

use crate::authz::CallerPolicy;
use crate::clients::Peers;
use crate::grpc::OrderApi;
use crate::orders::{Orders, OrdersConfig};
use crate::reconciler::{self, ReconcileConfig};
use crate::saga::recovery::{self, RecoveryConfig};
use crate::saga::{Engine, EngineConfig};
use crate::settings::Settings;
use crate::store::Store;

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "order.v1.OrderService";

/// The schema this server owns (and keeps its migration history in).
pub const SCHEMA: &str = "orders";

/// The migrations of schema `orders`.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../../migrations/order")
}

/// How long shutdown waits for sagas in flight to reach a step boundary.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet running order server. Binding in `build` lets tests ask for port 0 and
/// read the real ports before running.
pub struct App {
    settings: Settings,
    grpc: TcpListener,
    metrics: TcpListener,
    tls: Option<ServerTlsConfig>,
    callers: CallerPolicy,
}

impl App {
    /// Reads the TLS and user binding settings (failing on a bad file or a binding without
    /// mutual TLS at once), then binds the gRPC and metrics listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tls = settings.tls.server_config()?;
        let callers = CallerPolicy::from_settings(&settings.user_binding, &settings.tls)?;
        let grpc = TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC address {}", settings.grpc_addr))?;
        let metrics = TcpListener::bind(settings.metrics_addr)
            .await
            .with_context(|| format!("binding metrics address {}", settings.metrics_addr))?;
        Ok(Self { settings, grpc, metrics, tls, callers })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.grpc.local_addr()?)
    }

    /// The address of `/metrics`.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.metrics.local_addr()?)
    }

    /// Runs until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal()).await
    }

    /// Runs until `shutdown` resolves, then stops taking calls, finishes the ones in flight,
    /// lets running sagas reach a step boundary (giving up their leases) and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { settings, grpc, metrics, tls, callers } = self;
        crate::metrics::init();
        let pool = common::db::connect_lazy(&settings.database)
            .context("configuring the database pool")?;
        let store = Store::new(pool.clone());
        let peers = Peers::connect_lazy(&settings).context("configuring the peer clients")?;

        let (readiness, health) = common::server::health(&[SERVICE_NAME]);
        let migrate = settings.database.run_migrations.then(|| {
            common::db::migrate_fn(
                pool.clone(),
                || sqlx::migrate!("../../migrations/order"),
                "orders",
            )
        });
        let watcher = tokio::spawn(common::server::watch_database(
            pool.clone(),
            readiness.clone(),
            migrate,
            Duration::from_secs(2),
        ));
        let watcher_abort = watcher.abort_handle();

        let stop = CancellationToken::new();
        let sagas = TaskTracker::new();
        let engine = Engine::new(
            store.clone(),
            peers.clone(),
            EngineConfig {
                lease: settings.saga_lease(),
                hold_minutes: settings.order_hold_minutes.max(1),
                max_backoff: Duration::from_millis(settings.retry_backoff_max_ms.max(1)),
            },
            stop.clone(),
        );
        let recovery = tokio::spawn(recovery::run(
            engine.clone(),
            store.clone(),
            RecoveryConfig {
                interval: Duration::from_millis(settings.recovery_interval_ms.max(10)),
                batch: settings.recovery_batch,
                lease: settings.saga_lease(),
            },
            readiness.clone(),
            sagas.clone(),
            stop.clone(),
        ));
        let reconciler = tokio::spawn(reconciler::run(
            store.clone(),
            peers.inventory.clone(),
            ReconcileConfig {
                // Zero stays zero (disabled); anything else is at least 10 ms, as recovery.
                interval: Duration::from_millis(match settings.reconcile_interval_ms {
                    0 => 0,
                    ms => ms.max(10),
                }),
                grace: Duration::from_millis(settings.reconcile_grace_ms),
                batch: settings.reconcile_batch.max(1),
            },
            readiness.clone(),
            stop.clone(),
        ));
        let metrics_addr = metrics.local_addr()?;
        let metrics_stop = stop.clone();
        let metrics_server = tokio::spawn(common::metrics::serve(metrics, async move {
            metrics_stop.cancelled().await;
        }));

        let orders = Orders::new(
            store,
            peers,
            engine,
            sagas.clone(),
            OrdersConfig { lease: settings.saga_lease(), budget: settings.request_budget() },
        );
        tracing::info!(
            grpc_addr = %grpc.local_addr()?,
            tls = tls.is_some(),
            mutual_tls = settings.tls.requires_client_certs(),
            %metrics_addr,
            inventory = %settings.inventory_service_url,
            product = %settings.product_service_url,
            payment = %settings.payment_service_url,
            user = settings.user_service_url.as_deref().unwrap_or("(not checked)"),
            "order server listening"
        );
        callers.log_startup();

        let drain_readiness = readiness.clone();
        let result = settings
            .overload
            .configure(common::tls::server_builder(tls)?)
            .layer(common::metrics::GrpcMetricsLayer::new(&[SERVICE_NAME]))
            // Inside the metrics layer, so refused and timed-out calls are counted by code.
            .layer(settings.overload.layer())
            .add_service(health)
            .add_service(common::server::reflection()?)
            .add_service(
                OrderServiceServer::new(
                    OrderApi::new(orders)
                        .with_max_items(settings.max_items_per_request)
                        .with_callers(callers),
                )
                .max_decoding_message_size(settings.overload.max_request_bytes())
                .max_encoding_message_size(settings.overload.max_response_bytes()),
            )
            .serve_with_incoming_shutdown(common::server::incoming(grpc), async move {
                shutdown.await;
                tracing::info!("shutting down: finishing calls in flight");
                // Stop the watcher first so it cannot flip health back to SERVING.
                watcher_abort.abort();
                drain_readiness.set_not_serving().await;
            })
            .await;

        // Sagas stop at their next step boundary and give up their leases, so another
        // replica (or this one, restarted) resumes them at once instead of after a lapse.
        stop.cancel();
        watcher.abort();
        let _ = recovery.await;
        let _ = reconciler.await;
        sagas.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, sagas.wait()).await.is_err() {
            tracing::warn!(
                "sagas still running at shutdown; their leases lapse and they resume later"
            );
        }
        let _ = metrics_server.await;
        pool.close().await;
        result.context("serving gRPC")?;
        tracing::info!("order server stopped");
        Ok(())
    }
}
