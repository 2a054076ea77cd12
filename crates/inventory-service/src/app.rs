//! Builds the inventory server from its settings and runs it until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use common::auth::AdminGuard;
use common::proto::inventory::v1::inventory_service_server::InventoryServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::ServerTlsConfig;

use crate::access::{Access, Policy};
use crate::grpc::{InventoryApi, convert::Limits};
use crate::reconciler::{self, ReconcileConfig};
use crate::settings::Settings;
use crate::store::{CheckBatching, ReserveBatching, Store};
use crate::sweeper;

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "inventory.v1.InventoryService";

/// A bound, not yet running inventory server. Binding in `build` lets tests ask for port 0
/// and read the real ports before running.
pub struct App {
    settings: Settings,
    grpc: TcpListener,
    metrics: TcpListener,
    tls: Option<ServerTlsConfig>,
    admin: AdminGuard,
    access: Access,
}

impl App {
    /// Reads the TLS, admin and caller-policy settings (failing on a bad file, or on admin
    /// RPCs left open by accident, at once), then binds the gRPC and metrics listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tls = settings.tls.server_config()?;
        let admin = settings.admin.guard(&settings.tls)?;
        let policy = settings.authz_policy_file.as_deref().map(Policy::load).transpose()?;
        let access = Access::new(settings.tls.is_mutual(), policy)?;
        let grpc = TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC address {}", settings.grpc_addr))?;
        let metrics = TcpListener::bind(settings.metrics_addr)
            .await
            .with_context(|| format!("binding metrics address {}", settings.metrics_addr))?;
        Ok(Self { settings, grpc, metrics, tls, admin, access })
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

    /// Runs until `shutdown` resolves, then stops taking calls, finishes the ones in flight
    /// and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { settings, grpc, metrics, tls, admin, access } = self;
        crate::metrics::init();
        let pool = common::db::connect_lazy(&settings.database)
            .context("configuring the database pool")?;
        let mut store = Store::new(pool.clone());
        if settings.reserve_batching {
            store = store.with_reserve_batching(ReserveBatching {
                workers: settings.reserve_batch_workers.max(1),
                max_batch: settings.reserve_batch_max.max(1),
            });
        }
        if settings.check_batching {
            store = store.with_check_batching(CheckBatching {
                workers: settings.check_batch_workers.max(1),
                max_skus: settings.check_batch_max_skus.max(1),
            });
        }

        let (readiness, health) = common::server::health(&[SERVICE_NAME]);
        let migrate = settings.database.run_migrations.then(|| {
            common::db::migrate_fn(
                pool.clone(),
                || sqlx::migrate!("../../migrations/inventory"),
                "inventory",
            )
        });
        let watcher = tokio::spawn(common::server::watch_database(
            pool.clone(),
            readiness.clone(),
            migrate,
            Duration::from_secs(2),
        ));
        let watcher_abort = watcher.abort_handle();

        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = tokio::spawn(sweeper::run(
            store.clone(),
            Duration::from_millis(settings.sweep_interval_ms.max(10)),
            settings.sweep_batch_size.max(1),
            stop_rx.clone(),
        ));
        let reconciler = tokio::spawn(reconciler::run(
            store.clone(),
            ReconcileConfig {
                // Zero stays zero (disabled); anything else is at least 10 ms, as the sweeper.
                interval: Duration::from_millis(match settings.reconcile_interval_ms {
                    0 => 0,
                    ms => ms.max(10),
                }),
                lapse_grace: Duration::from_millis(settings.reconcile_lapse_grace_ms),
            },
            readiness.clone(),
            stop_rx.clone(),
        ));
        let metrics_addr = metrics.local_addr()?;
        let mut metrics_stop = stop_rx.clone();
        let metrics_server = tokio::spawn(common::metrics::serve(metrics, async move {
            let _ = metrics_stop.changed().await;
        }));

        let api = InventoryApi::new(
            store,
            Limits {
                max_items: settings.max_items_per_request.max(1),
                default_expiry_minutes: settings.default_expiry_minutes.max(1),
                max_expiry_minutes: settings.max_expiry_minutes.max(1),
            },
        )
        .with_admin_guard(admin.clone())
        .with_access(access.clone());
        admin.log_startup("UpsertInventoryItem, AdjustStock", tls.is_some());
        tracing::info!(
            grpc_addr = %grpc.local_addr()?,
            tls = tls.is_some(),
            mutual_tls = settings.tls.is_mutual(),
            caller_policy = access.has_policy(),
            %metrics_addr,
            "inventory server listening"
        );

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
                InventoryServiceServer::new(api)
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

        let _ = stop_tx.send(true);
        watcher.abort();
        let _ = sweeper.await;
        let _ = reconciler.await;
        let _ = metrics_server.await;
        pool.close().await;
        result.context("serving gRPC")?;
        tracing::info!("inventory server stopped");
        Ok(())
    }
}
