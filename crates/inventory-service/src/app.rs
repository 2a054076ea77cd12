//! Builds the inventory server from its settings and runs it until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use common::auth::AdminGuard;
use common::events::EventKinds;
use common::host::{Host, HostSpec};
use common::retention::{self, RetentionConfig};
use proto::inventory::v1::inventory_service_server::InventoryServiceServer;
use tonic::service::Routes;

use crate::access::{Access, Policy};
use crate::error::ERROR_DOMAIN;
use crate::grpc::{InventoryApi, convert::Limits};
use crate::low_stock;
use crate::metrics;
use crate::reconciler::{self, ReconcileConfig};
use crate::settings::Settings;
use crate::store::{CheckBatching, ReserveBatching, Retained, Store};
use crate::sweeper;

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "inventory.v1.InventoryService";

/// The schema this server owns (and keeps its migration history in).
pub use crate::store::SCHEMA;

/// The migrations of schema `inventory`.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../../migrations/inventory")
}

/// `inventory-service migrate`: applies the migrations once and returns.
pub async fn migrate(settings: &Settings) -> Result<(), sqlx::migrate::MigrateError> {
    common::db::migrate_once(&settings.database, migrator(), SCHEMA).await
}

/// A bound, not yet running inventory server. Binding in `build` lets tests ask for port 0
/// and read the real ports before running.
pub struct App {
    settings: Settings,
    host: Host,
    admin: AdminGuard,
    access: Access,
}

impl App {
    /// Reads the TLS, admin and caller-policy settings (failing on a bad file, or on admin
    /// RPCs left open by accident, at once), then binds the gRPC and metrics listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let admin = settings.admin.guard(&settings.tls)?;
        let policy = settings.authz_policy_file.as_deref().map(Policy::load).transpose()?;
        let access = Access::new(settings.tls.is_mutual(), policy)?;
        let host = Host::bind(HostSpec {
            name: "inventory",
            services: &[SERVICE_NAME],
            grpc_addr: settings.grpc_addr,
            metrics_addr: Some(settings.metrics_addr),
            tls: &settings.tls,
            overload: &settings.overload,
            shutdown: &settings.shutdown,
        })
        .await?;
        Ok(Self { settings, host, admin, access })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        self.host.grpc_addr()
    }

    /// The address of `/metrics`.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        self.host.metrics_addr()?.context("no metrics endpoint")
    }

    /// Runs until `shutdown` resolves, then shuts down as `common::host` says: NOT_SERVING,
    /// drain delay, streams ended, calls in flight finished within the grace, sweeper and
    /// reconciler stopped.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { settings, mut host, admin, access } = self;
        crate::metrics::init();
        let pool = common::db::connect_lazy(&settings.database)
            .context("configuring the database pool")?;
        let reads = common::replica::ReadPools::from_settings(&settings.database, pool.clone())
            .context("configuring the read replica pool")?;
        host.spawn(reads.clone().watch(host.stop_token()));
        let mut store = Store::new(pool.clone()).with_read_pools(reads);
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

        let migrate = settings
            .database
            .run_migrations
            .then(|| common::db::migrate_fn(pool.clone(), migrator, SCHEMA));
        host.watch_database(pool.clone(), migrate);
        host.spawn(sweeper::run(
            store.clone(),
            Duration::from_millis(settings.sweep_interval_ms.max(10)),
            settings.sweep_batch_size.max(1),
            host.stop_token(),
        ));
        if settings.low_stock_interval_ms > 0 {
            host.spawn(low_stock::run(
                store.clone(),
                background_interval(settings.low_stock_interval_ms),
                host.stop_token(),
            ));
        }
        host.spawn(reconciler::run(
            store.clone(),
            ReconcileConfig {
                interval: background_interval(settings.reconcile_interval_ms),
                lapse_grace: Duration::from_millis(settings.reconcile_lapse_grace_ms),
                full_every: match settings.reconcile_full_every_hours {
                    0 => None,
                    hours => Some(Duration::from_secs(hours.saturating_mul(3600))),
                },
            },
            host.readiness(),
            host.stop_token(),
        ));

        let keep = [
            (Retained::Movements, days(settings.movement_retention_days)),
            (Retained::SettledHolds, days(settings.hold_retention_days)),
            // A key kept for less than a day would break retries within the documented window.
            (
                Retained::AdjustmentKeys,
                days(settings.adjustment_key_retention_days)
                    .map(|d| d.max(Duration::from_secs(86_400))),
            ),
            (Retained::Events, settings.events.retention()),
        ];
        host.spawn(retention::run(
            store.clone(),
            RetentionConfig {
                interval: background_interval(settings.retention_interval_ms),
                batch: settings.retention_batch_size.max(1),
                keep: keep.into_iter().filter_map(|(kind, keep)| Some((kind, keep?))).collect(),
            },
            &metrics::RETENTION_REMOVED,
            host.stop_token(),
        ));

        let events = common::events::start(
            &host,
            pool.clone(),
            SCHEMA,
            &settings.events,
            EventKinds {
                metrics: &common::events::INVENTORY_METRICS,
                types: common::events::INVENTORY_TYPES,
                domain: ERROR_DOMAIN,
                rows: crate::store::EVENT_ROWS,
            },
        );
        let api = InventoryApi::new(
            store,
            Limits {
                max_items: settings.max_items_per_request.max(1),
                default_expiry_minutes: settings.default_expiry_minutes.max(1),
                max_expiry_minutes: settings.max_expiry_minutes.max(1),
            },
        )
        .with_admin_guard(admin.clone())
        .with_lapse_grace(Duration::from_millis(settings.reconcile_lapse_grace_ms))
        .with_access(access.clone())
        .with_events(events);
        admin.log_startup("UpsertInventoryItem, AdjustStock, VerifyLedger", host.tls_enabled());
        tracing::info!(
            grpc_addr = %host.grpc_addr()?,
            tls = host.tls_enabled(),
            mutual_tls = settings.tls.is_mutual(),
            caller_policy = access.has_policy(),
            metrics_addr = ?host.metrics_addr()?,
            "inventory server listening"
        );

        let routes = Routes::new(
            InventoryServiceServer::new(api)
                .max_decoding_message_size(settings.overload.max_request_bytes())
                .max_encoding_message_size(settings.overload.max_response_bytes()),
        );
        let served = host.serve(routes, shutdown).await;
        pool.close().await;
        served
    }
}

/// A background task's pause: zero stays zero (disabled); anything else is at least 10 ms,
/// as the sweeper's.
fn background_interval(ms: u64) -> Duration {
    Duration::from_millis(if ms == 0 { 0 } else { ms.max(10) })
}

/// A keep period in days; 0 keeps forever.
fn days(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400))
}
