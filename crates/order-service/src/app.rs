//! Builds the order server from its settings and runs it until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use common::auth::{AdminGuard, AuthSettingsError};
use common::events::EventKinds;

use crate::event_watchers::EventWatchers;
use common::host::{Host, HostSpec};
use common::retention::{self, RetentionConfig};
use proto::order::v1::order_service_server::OrderServiceServer;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;

use crate::authz::CallerPolicy;
use crate::clients::Peers;
use crate::grpc::OrderApi;
use crate::metrics;
use crate::orders::{Orders, OrdersConfig};
use crate::reconciler::{self, ReconcileConfig};
use crate::saga::recovery::{self, RecoveryConfig};
use crate::saga::{Engine, EngineConfig};
use crate::settings::Settings;
use crate::store::{Retained, Store};

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "order.v1.OrderService";

/// The schema this server owns (and keeps its migration history in).
pub use crate::store::SCHEMA;

/// The migrations of schema `orders`.
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../../migrations/order")
}

/// `order-service migrate`: applies the migrations once and returns.
pub async fn migrate(settings: &Settings) -> Result<(), sqlx::migrate::MigrateError> {
    common::db::migrate_once(&settings.database, migrator(), SCHEMA).await
}

/// A bound, not yet running order server. Binding in `build` lets tests ask for port 0 and
/// read the real ports before running.
pub struct App {
    settings: Settings,
    host: Host,
    callers: CallerPolicy,
    operators: Option<AdminGuard>,
    watchers: EventWatchers,
}

impl App {
    /// Reads the TLS and user binding settings (failing on a bad file or a binding without
    /// mutual TLS at once), then binds the gRPC and metrics listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let callers = CallerPolicy::from_settings(&settings.user_binding, &settings.tls)?;
        let operators = match settings.admin.guard(&settings.tls) {
            Ok(guard) => Some(guard),
            // Nothing configured: the operator RPCs stay closed rather than stop the server.
            Err(AuthSettingsError::Unguarded) => None,
            Err(err) => return Err(err.into()),
        };
        let watchers =
            EventWatchers::parse(&settings.event_watchers).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            watchers.is_empty() || settings.tls.is_mutual(),
            "EVENT_WATCHERS needs mutual TLS (TLS_CERT_PATH, TLS_KEY_PATH and TLS_CLIENT_CA_PATH): \
             without it no client presents a certificate to be named by"
        );
        let host = Host::bind(HostSpec {
            name: "order",
            services: &[SERVICE_NAME],
            grpc_addr: settings.grpc_addr,
            metrics_addr: Some(settings.metrics_addr),
            tls: &settings.tls,
            overload: &settings.overload,
            shutdown: &settings.shutdown,
        })
        .await?;
        Ok(Self { settings, host, callers, operators, watchers })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        self.host.grpc_addr()
    }

    /// The address of `/metrics`.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        self.host.metrics_addr()?.context("no metrics endpoint")
    }

    /// Runs until `shutdown` resolves, then shuts down as `common::host` says (NOT_SERVING,
    /// drain delay, streams ended, calls in flight finished within the grace); then running
    /// sagas reach a step boundary and give up their leases, so another replica (or this one,
    /// restarted) resumes them at once instead of after a lapse.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self { settings, mut host, callers, operators, watchers } = self;
        crate::metrics::init();
        let pool = common::db::connect_lazy(&settings.database)
            .context("configuring the database pool")?;
        let reads = common::replica::ReadPools::from_settings(&settings.database, pool.clone())
            .context("configuring the read replica pool")?;
        host.spawn(reads.clone().watch(host.stop_token()));
        let store = Store::new(pool.clone()).with_read_pools(reads);
        let peers = Peers::connect_lazy(&settings).context("configuring the peer clients")?;

        let migrate = settings
            .database
            .run_migrations
            .then(|| common::db::migrate_fn(pool.clone(), migrator, SCHEMA));
        host.watch_database(pool.clone(), migrate);

        let stop = host.stop_token();
        let sagas = TaskTracker::new();
        let engine = Engine::new(
            store.clone(),
            peers.clone(),
            EngineConfig {
                lease: settings.saga_lease(),
                step_limit: settings.call_policy().worst_case(),
                hold_minutes: settings.order_hold_minutes.max(1),
                max_backoff: Duration::from_millis(settings.retry_backoff_max_ms.max(1)),
                park_after: millis(settings.saga_park_after_ms),
                payment_deadline: millis(settings.order_payment_deadline_ms),
                payment_key_window: Duration::from_secs(
                    u64::from(settings.payment_key_window_hours.max(1)) * 3600,
                ),
            },
            stop.clone(),
        );
        host.spawn(recovery::run(
            engine.clone(),
            store.clone(),
            RecoveryConfig {
                interval: Duration::from_millis(settings.recovery_interval_ms.max(10)),
                batch: settings.recovery_batch,
                lease: settings.saga_lease(),
            },
            host.readiness(),
            sagas.clone(),
            stop.clone(),
        ));
        let keep = [
            (Retained::SagaSteps, days(settings.saga_step_retention_days)),
            // A key kept for less than a day would break retries within the documented window.
            (
                Retained::IdempotencyKeys,
                days(settings.idempotency_key_retention_days)
                    .map(|d| d.max(Duration::from_secs(86_400))),
            ),
            (Retained::Events, settings.events.retention()),
        ];
        host.spawn(retention::run(
            store.clone(),
            RetentionConfig {
                interval: match settings.retention_interval_ms {
                    0 => Duration::ZERO,
                    ms => Duration::from_millis(ms.max(10)),
                },
                batch: settings.retention_batch_size.max(1),
                keep: keep.into_iter().filter_map(|(kind, keep)| Some((kind, keep?))).collect(),
            },
            &metrics::RETENTION_REMOVED,
            stop.clone(),
        ));
        host.spawn(reconciler::run(
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
            host.readiness(),
            stop.clone(),
        ));
        // Sagas run on their own tracker (they outlive the calls that start them); at a stop
        // each reaches its next step boundary and gives up its lease.
        let drained = sagas.clone();
        host.spawn(async move {
            stop.cancelled().await;
            drained.close();
            drained.wait().await;
        });

        let events = common::events::start(
            &host,
            pool.clone(),
            SCHEMA,
            &settings.events,
            EventKinds {
                metrics: &common::events::ORDER_METRICS,
                types: common::events::ORDER_TYPES,
                domain: crate::error::ERROR_DOMAIN,
                rows: crate::store::EVENT_ROWS,
            },
        );
        let orders = Orders::new(
            store,
            peers,
            engine,
            sagas,
            OrdersConfig { lease: settings.saga_lease(), budget: settings.request_budget() },
        );
        tracing::info!(
            grpc_addr = %host.grpc_addr()?,
            tls = host.tls_enabled(),
            mutual_tls = settings.tls.is_mutual(),
            metrics_addr = ?host.metrics_addr()?,
            inventory = %settings.inventory_service_url,
            product = %settings.product_service_url,
            payment = %settings.payment_service_url,
            user = settings.user_service_url.as_deref().unwrap_or("(not checked)"),
            "order server listening"
        );
        callers.log_startup();
        if !watchers.is_empty() {
            tracing::info!(identities = ?watchers.identities(), "event watchers (EVENT_WATCHERS)");
        }
        match &operators {
            Some(guard) => guard.log_startup(
                "ListParkedOrders, ResolveParkedOrder, WatchEvents",
                host.tls_enabled(),
            ),
            None => tracing::warn!(
                "operator RPCs (ListParkedOrders, ResolveParkedOrder, WatchEvents) are off: set ADMIN_TOKEN, \
                 ADMIN_TOKEN_FILE or ADMIN_ALLOWED_IDENTITIES to resolve parked orders"
            ),
        }

        let routes = Routes::new(
            OrderServiceServer::new(
                OrderApi::new(orders)
                    .with_max_items(settings.max_items_per_request)
                    .with_callers(callers)
                    .with_operators(operators)
                    .with_events(events, watchers.clone()),
            )
            .max_decoding_message_size(settings.overload.max_request_bytes())
            .max_encoding_message_size(settings.overload.max_response_bytes()),
        );
        let served = host.serve(routes, shutdown).await;
        pool.close().await;
        served
    }
}

/// A keep period in days; 0 keeps forever.
fn days(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400))
}

/// A limit in milliseconds; 0 is no limit.
fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}
