use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::settings::DatabaseSettings;

/// A boxed, repeatable migration run, as handed to [`crate::server::watch_database`].
pub type MigrateFn =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), MigrateError>> + Send>> + Send + Sync>;

/// Builds the pool without connecting, so a server can start (NOT_SERVING) while the database is down.
///
/// Call it inside a Tokio runtime: the pool spawns its maintenance task right away.
pub fn connect_lazy(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .acquire_timeout(Duration::from_millis(settings.db_acquire_timeout_ms))
        // By default sqlx pings every idle connection before handing it out: one extra round
        // trip per query, which doubles the cost of a one-statement call. Ping only those
        // that sat idle for a while, so a connection broken by a restart is still replaced
        // before use.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy(&settings.database_url)
}

/// How long a pooled connection may sit idle before it is pinged ahead of its next use.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Runs `migrator` with its history table inside `schema`, creating the schema if needed.
///
/// Each service owns one schema of a shared database, so the default `public._sqlx_migrations`
/// would mix both services' histories and each would reject the other's versions.
///
/// Runs on a connection of its own, closed afterwards: sqlx holds an advisory lock for the
/// whole run, and a failed run returned to the pool would keep that lock and wedge every
/// retry (and the other service's migrations, whose lock key is the same database).
pub async fn migrate(
    pool: &PgPool,
    mut migrator: Migrator,
    schema: &'static str,
) -> Result<(), MigrateError> {
    let options = pool.connect_options();
    let mut conn = PgConnection::connect_with(&options).await?;
    // CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database, which a role that only
    // owns its (pre-created) schema does not have: ask for it only when the schema is missing.
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = $1)")
            .bind(schema)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        migrator.create_schema(schema);
    }
    migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    let result = migrator.run_direct(None, &mut conn, false).await;
    // Closing ends the session and with it any advisory lock a failed run left behind.
    let _ = conn.close().await;
    result
}

/// Packages [`migrate`] as a [`MigrateFn`] that can be retried until the database is up.
///
/// `migrator` is a function because `Migrator` is not `Clone`; pass
/// `|| sqlx::migrate!("../../migrations/inventory")`.
pub fn migrate_fn(pool: PgPool, migrator: fn() -> Migrator, schema: &'static str) -> MigrateFn {
    Box::new(move || {
        let pool = pool.clone();
        Box::pin(async move { migrate(&pool, migrator(), schema).await })
    })
}

/// Whether `err` means the database cannot be reached right now (worth `UNAVAILABLE` and a retry).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_sqlstate(&code)),
        _ => false,
    }
}

fn is_unavailable_sqlstate(code: &str) -> bool {
    // 08: connection exceptions; 57P01-03: admin/crash shutdown, cannot connect now;
    // 53300: too many connections.
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    #[derive(Debug)]
    struct FakeDbError(&'static str);

    impl fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "sqlstate {}", self.0)
        }
    }

    impl StdError for FakeDbError {}

    impl DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "fake"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn db_error(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDbError(code)))
    }

    #[test]
    fn connection_problems_are_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(io),
            sqlx::Error::Tls("handshake".into()),
            db_error("08006"),
            db_error("08001"),
            db_error("57P01"),
            db_error("57P02"),
            db_error("57P03"),
            db_error("53300"),
        ] {
            assert!(is_unavailable(&err), "{err}");
        }
    }

    #[test]
    fn query_problems_are_not_unavailable() {
        for err in [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("bad".into()),
            db_error("23505"),
            db_error("40001"),
            db_error("57014"),
            db_error("53100"),
        ] {
            assert!(!is_unavailable(&err), "{err}");
        }
    }

    #[tokio::test]
    async fn connect_lazy_does_not_touch_the_database() {
        let settings = DatabaseSettings {
            database_url: "postgres://app:pw@127.0.0.1:1/none".into(),
            run_migrations: true,
            db_max_connections: 2,
            db_acquire_timeout_ms: 100,
        };
        let pool = connect_lazy(&settings).unwrap();
        let err = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
        assert!(is_unavailable(&err), "{err}");
    }

    #[tokio::test]
    async fn connect_lazy_rejects_a_malformed_url() {
        let settings = DatabaseSettings {
            database_url: "postgres://app:pw@db:not-a-port/shop".into(),
            run_migrations: true,
            db_max_connections: 2,
            db_acquire_timeout_ms: 100,
        };
        assert!(connect_lazy(&settings).is_err());
    }
}
