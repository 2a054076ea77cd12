//! The database pool, per-schema migrations, and what a database error means: the one place
//! both services ask whether a failure is worth a retry, and which connections to replace
//! after a failover.

use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::settings::DatabaseSettings;

/// A boxed, repeatable migration run, as handed to [`crate::server::watch_database`].
pub type MigrateFn =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), MigrateError>> + Send>> + Send + Sync>;

/// Builds the pool without connecting, so a server can start (NOT_SERVING) while the database is down.
///
/// Call it inside a Tokio runtime: the pool spawns its maintenance task right away.
pub fn connect_lazy(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    connect_lazy_to(settings, &settings.database_url)
}

/// [`connect_lazy`] to `url` with the pool settings of `settings`.
pub(crate) fn connect_lazy_to(
    settings: &DatabaseSettings,
    url: &str,
) -> Result<PgPool, sqlx::Error> {
    let mut options = PgConnectOptions::from_str(url)?;
    // Session defaults of every pooled connection: a statement, or a caller stuck inside a
    // transaction, cannot hold a connection and its row locks without bound.
    let timeouts = [
        ("statement_timeout", settings.db_statement_timeout_ms),
        ("idle_in_transaction_session_timeout", settings.db_idle_in_transaction_timeout_ms),
    ];
    let set: Vec<_> = timeouts.into_iter().filter(|(_, ms)| *ms > 0).collect();
    if !set.is_empty() {
        options = options.options(set);
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .acquire_timeout(Duration::from_millis(settings.db_acquire_timeout_ms))
        // By default sqlx pings every idle connection before handing it out: one extra round
        // trip per query, which doubles the cost of a one-statement call. Ping only those
        // that sat idle for a while, so a connection broken by a restart is still replaced
        // before use.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                // Opened before the database was last seen read-only (a failover that left
                // this connection on a standby): replace it.
                if opened_before_last_failover(meta.age) {
                    return Ok(false);
                }
                if meta.idle_for >= PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options);
    Ok(pool)
}

/// When the process started; failover marks are kept relative to it.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Milliseconds after [`STARTED`] the database was last seen unable to take writes (0: never).
static LAST_FAILOVER_MS: AtomicU64 = AtomicU64::new(0);

/// Notes that the database behind the pools was seen unable to take writes (read-only, shut
/// down by its administrator): every connection opened before now is replaced before its
/// next use, so the pools reconnect to wherever the database address now leads.
pub fn mark_failover() {
    let now = u64::try_from(STARTED.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
    LAST_FAILOVER_MS.fetch_max(now, Ordering::AcqRel);
}

/// Whether a connection of age `age` was opened before the last [`mark_failover`].
fn opened_before_last_failover(age: Duration) -> bool {
    let mark = LAST_FAILOVER_MS.load(Ordering::Acquire);
    if mark == 0 {
        return false;
    }
    let since_mark = STARTED.elapsed().saturating_sub(Duration::from_millis(mark));
    age > since_mark
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
    // A migration (an index on a big table) may run longer than any call should.
    sqlx::query("set statement_timeout = 0").execute(&mut conn).await?;
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

/// The first argument that applies the migrations and exits instead of serving.
pub const MIGRATE_SUBCOMMAND: &str = "migrate";

/// Whether `args` (the program name first) ask for `<binary> migrate`, and the arguments
/// without that word, for the settings parser.
pub fn migrate_requested(args: impl IntoIterator<Item = OsString>) -> (bool, Vec<OsString>) {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let requested = args.get(1).is_some_and(|a| a == MIGRATE_SUBCOMMAND);
    if requested {
        args.remove(1);
    }
    (requested, args)
}

/// `<binary> migrate`: applies `migrator` to the database of `settings` once, with the same
/// advisory lock as at start, so several replicas or a rerun do no harm.
pub async fn migrate_once(
    settings: &DatabaseSettings,
    migrator: Migrator,
    schema: &'static str,
) -> Result<(), MigrateError> {
    let pool = connect_lazy(settings).map_err(MigrateError::Execute)?;
    let applied = migrate(&pool, migrator, schema).await;
    pool.close().await;
    applied
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

/// What a database error means for the call that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The database cannot serve the call now: down, restarting, failing over, read-only,
    /// out of resources or too slow. Worth `UNAVAILABLE`: the caller retries later.
    Unavailable,
    /// The call's transaction lost a race (serialization failure, deadlock) and was rolled
    /// back. Worth `ABORTED`: the caller retries the call.
    Conflict,
    /// A lock the statement needed stayed taken past its `lock_timeout`, which a statement
    /// sets from its call's deadline: nothing was written. Worth `DEADLINE_EXCEEDED`.
    LockTimeout,
    /// Anything else: a bug or a broken invariant. Worth `INTERNAL`, details logged.
    Other,
}

/// A database error with what it means ([`classify`]): the one database variant of every
/// service's error type, and the one place its status is decided.
#[derive(Debug, thiserror::Error)]
#[error("database error ({failure:?}): {source}")]
pub struct DbError {
    failure: DbFailure,
    #[source]
    source: sqlx::Error,
}

impl From<sqlx::Error> for DbError {
    fn from(source: sqlx::Error) -> Self {
        Self { failure: classify(&source), source }
    }
}

impl DbError {
    /// What the error means.
    pub fn failure(&self) -> DbFailure {
        self.failure
    }

    /// The same failure for another caller (`sqlx::Error` is not `Clone`: a batch that fails
    /// answers each of its callers).
    pub fn shared(&self) -> Self {
        Self { failure: self.failure, source: sqlx::Error::Protocol(self.source.to_string()) }
    }
}

impl proto::status::CallError for DbError {
    fn code(&self) -> tonic::Code {
        match self.failure {
            DbFailure::Unavailable => tonic::Code::Unavailable,
            DbFailure::Conflict => tonic::Code::Aborted,
            DbFailure::LockTimeout => tonic::Code::DeadlineExceeded,
            DbFailure::Other => tonic::Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self.failure {
            DbFailure::Unavailable => "database unavailable, retry later",
            DbFailure::Conflict => "the database rolled the call back after a conflict; retry",
            DbFailure::LockTimeout => {
                "the rows the call needs stayed locked until its deadline; nothing was written"
            }
            DbFailure::Other => "internal error",
        }
        .to_owned()
    }

    fn log(&self) {
        match self.failure {
            DbFailure::Other => tracing::error!(error = ?self.source, "internal database error"),
            DbFailure::LockTimeout => {
                tracing::info!(error = %self.source, "lock wait past the deadline")
            }
            DbFailure::Unavailable | DbFailure::Conflict => {
                tracing::warn!(failure = ?self.failure, error = %self.source, "database error")
            }
        }
    }
}

/// What `err` means; see [`DbFailure`]. Errors that show the pool's connections lead to a
/// server that cannot take writes also [`mark_failover`], so they are replaced.
pub fn classify(err: &sqlx::Error) -> DbFailure {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => DbFailure::Unavailable,
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => {
                let failure = classify_sqlstate(&code);
                if leaves_wrong_server(&code) {
                    mark_failover();
                }
                failure
            }
            None => DbFailure::Other,
        },
        _ => DbFailure::Other,
    }
}

/// Whether `err` means the database cannot serve right now (worth `UNAVAILABLE` and a retry).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    classify(err) == DbFailure::Unavailable
}

fn classify_sqlstate(code: &str) -> DbFailure {
    match code {
        // 08: connection exceptions. 57P01-03: administrator or crash shutdown, cannot
        // connect now. 57014: statement_timeout (or a cancel). 25006: a read-only
        // transaction (a standby, or default_transaction_read_only: a failover in
        // progress). 53: insufficient resources (disk full, out of memory, too many
        // connections). 58030: I/O error on the server. 40003: the server lost track of
        // whether the statement completed.
        _ if code.starts_with("08") || code.starts_with("53") => DbFailure::Unavailable,
        "57P01" | "57P02" | "57P03" | "57014" | "25006" | "58030" | "40003" => {
            DbFailure::Unavailable
        }
        // Serialization failure, deadlock: nothing was written, the call may run again.
        "40001" | "40P01" => DbFailure::Conflict,
        // lock_not_available: the statement's lock_timeout (its call's deadline) ran out.
        "55P03" => DbFailure::LockTimeout,
        _ => DbFailure::Other,
    }
}

/// SQLSTATEs after which the pool's connections may lead to a server that cannot take writes.
fn leaves_wrong_server(code: &str) -> bool {
    matches!(code, "25006" | "57P01" | "57P02" | "57P03")
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
            db_error("53100"),
            // A failover in progress: the pool reached a read-only server.
            db_error("25006"),
            // statement_timeout: the database is too slow to answer now.
            db_error("57014"),
            db_error("58030"),
            db_error("40003"),
        ] {
            assert_eq!(classify(&err), DbFailure::Unavailable, "{err}");
        }
    }

    #[test]
    fn lost_races_are_conflicts_and_bugs_are_other() {
        assert_eq!(classify(&db_error("40001")), DbFailure::Conflict);
        assert_eq!(classify(&db_error("40P01")), DbFailure::Conflict);
        assert_eq!(classify(&db_error("55P03")), DbFailure::LockTimeout);
        for err in [
            sqlx::Error::RowNotFound,
            sqlx::Error::Protocol("bad".into()),
            db_error("23505"),
            db_error("42P01"),
            db_error("XX000"),
        ] {
            assert_eq!(classify(&err), DbFailure::Other, "{err}");
        }
    }

    #[test]
    fn a_failover_replaces_connections_opened_before_it() {
        mark_failover();
        // Opened before the mark: older than the time since it.
        assert!(opened_before_last_failover(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!opened_before_last_failover(Duration::from_millis(1)));
        // A read-only error marks too.
        let before = LAST_FAILOVER_MS.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(classify(&db_error("25006")), DbFailure::Unavailable);
        assert!(LAST_FAILOVER_MS.load(Ordering::Acquire) > before);
    }

    #[tokio::test]
    async fn connect_lazy_does_not_touch_the_database() {
        let settings = DatabaseSettings {
            db_max_connections: 2,
            db_acquire_timeout_ms: 100,
            ..DatabaseSettings::new("postgres://app:pw@127.0.0.1:1/none")
        };
        let pool = connect_lazy(&settings).unwrap();
        let err = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
        assert!(is_unavailable(&err), "{err}");
    }

    #[tokio::test]
    async fn connect_lazy_rejects_a_malformed_url() {
        let settings = DatabaseSettings {
            db_max_connections: 2,
            db_acquire_timeout_ms: 100,
            ..DatabaseSettings::new("postgres://app:pw@db:not-a-port/shop")
        };
        assert!(connect_lazy(&settings).is_err());
    }

    #[test]
    fn each_failure_has_one_code_and_a_message_without_internals() {
        use proto::status::CallError as _;
        for (state, code) in [
            ("08006", tonic::Code::Unavailable),
            ("40001", tonic::Code::Aborted),
            ("55P03", tonic::Code::DeadlineExceeded),
            ("XX000", tonic::Code::Internal),
        ] {
            let err = DbError::from(db_error(state));
            assert_eq!(err.code(), code, "{state}");
            assert_eq!(err.shared().code(), code, "a shared copy answers the same");
            assert!(!err.public_message().contains("sqlstate"), "{}", err.public_message());
            let status = proto::status::status(&err);
            assert_eq!((status.code(), status.message()), (code, err.public_message().as_str()));
        }
    }
}
