//! Health (readiness and liveness), reflection, and the watcher that drives readiness from the
//! database: NOT_SERVING until migrated, then exactly while the database takes writes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio::time::MissedTickBehavior;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::db::MigrateFn;

const MIGRATE_FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MIGRATE_MAX_BACKOFF: Duration = Duration::from_secs(10);
// A ping stuck behind a half-open connection must not freeze the readiness state.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The accepted connections of `listener`, with TCP_NODELAY on each.
///
/// Serving a bare `TcpListenerStream` skips tonic's nodelay setting; a response written in
/// two segments then waits for the client's delayed ACK (~40 ms on Linux) before its second
/// half goes out.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// gRPC reflection over every proto of the pair plus `grpc.health.v1`, for grpcurl: `routes`
/// with both versions of the reflection service, v1 and v1alpha (grpcurl before 1.8.8,
/// Postman, BloomRPC, Kreya and some evans builds speak only v1alpha; grpc-go serves both).
pub fn with_reflection(routes: Routes) -> Result<Routes, tonic_reflection::server::Error> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok(routes.add_service(builder().build_v1()?).add_service(builder().build_v1alpha()?))
}

/// The health service name of liveness: SERVING while the process serves at all, whatever
/// its database does, so an orchestrator restarts a wedged process but never a whole fleet
/// waiting out a database outage. Readiness is `""` and the server's own service names.
pub const LIVENESS: &str = "liveness";

/// The health service for `services` (and the whole server, `""`), all starting NOT_SERVING,
/// and [`LIVENESS`], SERVING from the start.
pub fn health(services: &[&str]) -> (Readiness, HealthServer<HealthService>) {
    let reporter = HealthReporter::new();
    let mut names: Vec<String> = vec![String::new()];
    names.extend(services.iter().filter(|name| !name.is_empty()).map(|name| (*name).to_owned()));
    // HealthReporter starts "" as SERVING and has no synchronous setter. Nothing else holds
    // its lock yet, so the updates complete on their first poll.
    let done = poll_once(set_all(&reporter, &names, ServingStatus::NotServing))
        && poll_once(set_all(&reporter, &[LIVENESS.to_owned()], ServingStatus::Serving));
    if !done {
        tracing::error!("could not set the health service's statuses at start");
    }
    let server = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    let readiness = Readiness {
        reporter,
        services: names.into(),
        serving: Arc::new(AtomicBool::new(false)),
        transition: Arc::new(Mutex::new(())),
    };
    (readiness, server)
}

/// Switches every service a server exposes between SERVING and NOT_SERVING together.
#[derive(Clone, Debug)]
pub struct Readiness {
    reporter: HealthReporter,
    services: Arc<[String]>,
    serving: Arc<AtomicBool>,
    // Keeps one transition from interleaving with another across the services.
    transition: Arc<Mutex<()>>,
}

impl Readiness {
    /// Marks every governed service SERVING.
    pub async fn set_serving(&self) {
        self.set(ServingStatus::Serving).await;
    }

    /// Marks every governed service NOT_SERVING (e.g. database lost, or shutting down).
    pub async fn set_not_serving(&self) {
        self.set(ServingStatus::NotServing).await;
    }

    /// Whether the last transition was to SERVING.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The underlying reporter, for statuses beyond the governed services.
    pub fn reporter(&self) -> &HealthReporter {
        &self.reporter
    }

    async fn set(&self, status: ServingStatus) {
        let _transition = self.transition.lock().await;
        set_all(&self.reporter, &self.services, status).await;
        self.serving.store(status == ServingStatus::Serving, Ordering::Release);
    }
}

async fn set_all(reporter: &HealthReporter, services: &[String], status: ServingStatus) {
    for service in services {
        reporter.set_service_status(service, status).await;
    }
}

fn poll_once(future: impl Future<Output = ()>) -> bool {
    // unconstrained: an exhausted tokio coop budget would otherwise make even an
    // uncontended lock return Pending.
    let future = pin!(tokio::task::unconstrained(future));
    future.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

/// Drives `readiness` from the database: NOT_SERVING until `migrate` (if any) has succeeded,
/// then SERVING exactly while the database answers and takes writes (not a standby, not
/// read-only), checked every `interval`. A database seen read-only also has the pool's
/// connections replaced ([`crate::db::mark_failover`]), so a promoted primary is found.
///
/// Runs until its task is aborted; spawn it and abort it when shutting down.
///
/// ```ignore
/// let (readiness, health_service) = common::server::health(&["inventory.v1.InventoryService"]);
/// let migrate = settings.db.run_migrations.then(|| {
///     common::db::migrate_fn(pool.clone(), || sqlx::migrate!("../../migrations/inventory"), "inventory")
/// });
/// let watcher = tokio::spawn(common::server::watch_database(
///     pool.clone(), readiness.clone(), migrate, Duration::from_secs(5),
/// ));
/// ```
pub async fn watch_database(
    pool: PgPool,
    readiness: Readiness,
    migrate: Option<MigrateFn>,
    interval: Duration,
) {
    if let Some(migrate) = migrate {
        migrate_until_done(&migrate).await;
    }
    // tokio's interval panics on zero.
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reachable = None;
    loop {
        ticker.tick().await;
        let error = writable(&pool).await.err();
        if reachable == Some(error.is_none()) {
            continue;
        }
        reachable = Some(error.is_none());
        match error {
            None => {
                tracing::info!("database reachable and writable, serving");
                readiness.set_serving().await;
            }
            Some(error) => {
                tracing::warn!(%error, "database unreachable or read-only, not serving");
                readiness.set_not_serving().await;
            }
        }
    }
}

async fn migrate_until_done(migrate: &MigrateFn) {
    let mut backoff = MIGRATE_FIRST_BACKOFF;
    loop {
        match migrate().await {
            Ok(()) => {
                tracing::info!("database migrations applied");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "database migrations failed, not serving");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MIGRATE_MAX_BACKOFF);
            }
        }
    }
}

/// `Ok` when the database answers and would take a write: it is no standby
/// (`pg_is_in_recovery()`) and new transactions are not read-only.
async fn writable(pool: &PgPool) -> Result<(), String> {
    let query = sqlx::query_as::<_, (bool, String)>(
        "select pg_is_in_recovery(), current_setting('transaction_read_only')",
    );
    match tokio::time::timeout(PING_TIMEOUT, query.fetch_one(pool)).await {
        Ok(Ok((false, read_only))) if read_only == "off" => Ok(()),
        Ok(Ok((in_recovery, _))) => {
            crate::db::mark_failover();
            Err(if in_recovery {
                "the database is a standby (in recovery)".to_owned()
            } else {
                "the database is read-only (transaction_read_only = on)".to_owned()
            })
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {PING_TIMEOUT:?}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use sqlx::SqlSafeStr as _;
    use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
    use tonic::{Code, Request};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health;

    use super::*;
    use crate::db;
    use crate::settings::DatabaseSettings;

    const SERVICE: &str = "inventory.v1.InventoryService";

    async fn status(readiness: &Readiness, service: &str) -> Result<Wire, Code> {
        let health = HealthService::from_health_reporter(readiness.reporter().clone());
        let request = Request::new(HealthCheckRequest { service: service.to_owned() });
        match health.check(request).await {
            Ok(response) => Ok(response.into_inner().status()),
            Err(status) => Err(status.code()),
        }
    }

    fn unreachable_pool() -> PgPool {
        db::connect_lazy(&DatabaseSettings {
            db_max_connections: 1,
            db_acquire_timeout_ms: 50,
            ..DatabaseSettings::new("postgres://app:pw@127.0.0.1:1/none")
        })
        .unwrap()
    }

    #[test]
    fn reflection_builds() {
        assert!(with_reflection(Routes::default()).is_ok());
    }

    #[tokio::test]
    async fn starts_not_serving_and_switches_together() {
        let (readiness, _server) = health(&[SERVICE]);
        assert!(!readiness.is_serving());
        assert_eq!(status(&readiness, "").await, Ok(Wire::NotServing));
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::NotServing));
        assert_eq!(status(&readiness, "other.Service").await, Err(Code::NotFound));

        readiness.set_serving().await;
        assert!(readiness.is_serving());
        assert_eq!(status(&readiness, "").await, Ok(Wire::Serving));
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::Serving));

        readiness.set_not_serving().await;
        assert_eq!(status(&readiness, "").await, Ok(Wire::NotServing));
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::NotServing));
    }

    #[tokio::test]
    async fn liveness_serves_whatever_readiness_says() {
        let (readiness, _server) = health(&[SERVICE]);
        assert_eq!(status(&readiness, LIVENESS).await, Ok(Wire::Serving));
        readiness.set_serving().await;
        readiness.set_not_serving().await;
        assert_eq!(status(&readiness, LIVENESS).await, Ok(Wire::Serving));
    }

    #[tokio::test]
    async fn unreachable_database_keeps_not_serving_and_retries_migrations() {
        let (readiness, _server) = health(&[SERVICE]);
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let migrate: MigrateFn = Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(MigrateError::VersionMissing(1)) })
        });
        let watcher = tokio::spawn(watch_database(
            unreachable_pool(),
            readiness.clone(),
            Some(migrate),
            Duration::from_millis(10),
        ));
        tokio::time::sleep(MIGRATE_FIRST_BACKOFF + Duration::from_millis(200)).await;
        assert!(attempts.load(Ordering::SeqCst) >= 2);
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::NotServing));
        watcher.abort();

        let watcher = tokio::spawn(watch_database(
            unreachable_pool(),
            readiness.clone(),
            None,
            Duration::from_millis(10),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::NotServing));
        watcher.abort();
    }

    /// The cluster `scripts/test` starts (each test below makes its own schema in it).
    fn test_database_url() -> String {
        std::env::var("TEST_DATABASE_URL")
            .expect("TEST_DATABASE_URL is not set: run the tests through scripts/test")
    }

    fn noop_migrator() -> Migrator {
        Migrator::with_migrations(vec![Migration::new(
            1,
            "noop".into(),
            MigrationType::Simple,
            "SELECT 1".into_sql_str(),
            false,
        )])
    }

    fn failing_migrator() -> Migrator {
        Migrator::with_migrations(vec![Migration::new(
            1,
            "broken".into(),
            MigrationType::Simple,
            "SELECT no_such_column FROM no_such_table".into_sql_str(),
            false,
        )])
    }

    /// A failed run must not leave sqlx's advisory lock behind (it is per database, so a
    /// leaked lock would wedge every later migration of both services).
    #[tokio::test]
    async fn a_failed_migration_does_not_block_the_next() {
        let pool = db::connect_lazy(&DatabaseSettings {
            db_max_connections: 2,
            db_acquire_timeout_ms: 2000,
            ..DatabaseSettings::new(test_database_url())
        })
        .unwrap();
        let id = std::process::id();
        let broken: &'static str = format!("common_broken_{id}").leak();
        let fine: &'static str = format!("common_fine_{id}").leak();
        assert!(db::migrate(&pool, failing_migrator(), broken).await.is_err());
        let next = tokio::time::timeout(
            Duration::from_secs(10),
            db::migrate(&pool, noop_migrator(), fine),
        )
        .await;
        for schema in [broken, fine] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                .execute(&pool)
                .await
                .unwrap();
        }
        assert!(matches!(next, Ok(Ok(()))), "the next migration hung or failed: {next:?}");
    }

    /// Needs a real server (it creates its own schema).
    #[tokio::test]
    async fn migrates_into_its_own_schema_then_serves() {
        let url = test_database_url();
        let schema: &'static str = format!("common_test_{}", std::process::id()).leak();
        let pool = db::connect_lazy(&DatabaseSettings {
            db_max_connections: 2,
            db_acquire_timeout_ms: 2000,
            ..DatabaseSettings::new(url)
        })
        .unwrap();
        let migrator = noop_migrator;
        let (readiness, _server) = health(&[SERVICE]);
        let migrate = db::migrate_fn(pool.clone(), migrator, schema);
        let watcher = tokio::spawn(watch_database(
            pool.clone(),
            readiness.clone(),
            Some(migrate),
            Duration::from_millis(20),
        ));
        for _ in 0..250 {
            if readiness.is_serving() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.abort();
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::Serving));

        let history: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}._sqlx_migrations"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(history, 1);
        // Running again is a no-op against the same history.
        db::migrate(&pool, migrator(), schema).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await
            .unwrap();

        // Losing the database flips readiness back.
        let watcher = tokio::spawn(watch_database(
            pool.clone(),
            readiness.clone(),
            None,
            Duration::from_millis(20),
        ));
        pool.close().await;
        for _ in 0..250 {
            if !readiness.is_serving() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.abort();
        assert_eq!(status(&readiness, SERVICE).await, Ok(Wire::NotServing));
    }
}
