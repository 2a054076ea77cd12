//! Command-line and environment settings every server flattens into its own: the database
//! (pool, timeouts, migrations) and logging; database URLs are redacted wherever printed.

use std::fmt;

use clap::ArgAction;
use clap::builder::BoolishValueParser;

use crate::telemetry::LogFormat;

/// Database connection settings, flattened into each server's own settings.
#[derive(clap::Args, Clone)]
pub struct DatabaseSettings {
    /// PostgreSQL connection URL.
    // hide_env_values: `--help` would otherwise print the password taken from the env.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Apply this service's migrations at start (true/false).
    #[arg(
        long,
        env = "RUN_MIGRATIONS",
        default_value_t = true,
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub run_migrations: bool,

    /// Maximum number of pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// How long a query waits for a pooled connection before failing, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2000)]
    pub db_acquire_timeout_ms: u64,

    /// Longest one SQL statement may run, in milliseconds (PostgreSQL `statement_timeout` of
    /// every pooled connection; migrations are not bound). Past it the call answers
    /// UNAVAILABLE. 0: no limit.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_statement_timeout_ms: u64,

    /// Longest a pooled connection may sit inside an open transaction, in milliseconds
    /// (`idle_in_transaction_session_timeout`): a stuck caller cannot hold row locks longer.
    /// 0: no limit.
    #[arg(long, env = "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 15_000)]
    pub db_idle_in_transaction_timeout_ms: u64,

    /// A PostgreSQL standby for reads that tolerate a bounded staleness (availability checks,
    /// item and order reads); unset: every read on DATABASE_URL.
    #[arg(long, env = "READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,

    /// The most the replica of READ_DATABASE_URL may be behind the primary (measured by WAL
    /// position every 200 ms) for reads to use it, in milliseconds; past it reads go to the
    /// primary.
    #[arg(long, env = "READ_MAX_STALENESS_MS", default_value_t = 1000)]
    pub read_max_staleness_ms: u64,
}

impl DatabaseSettings {
    /// The defaults for `database_url` (what `--help` shows), for tests and tools.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            run_migrations: true,
            db_max_connections: 10,
            db_acquire_timeout_ms: 2000,
            db_statement_timeout_ms: 10_000,
            db_idle_in_transaction_timeout_ms: 15_000,
            read_database_url: None,
            read_max_staleness_ms: 1000,
        }
    }
}

// Manual impl: settings get logged at startup, and the URL carries the password.
impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("database_url", &redacted_url(&self.database_url))
            .field("run_migrations", &self.run_migrations)
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout_ms", &self.db_acquire_timeout_ms)
            .field("db_statement_timeout_ms", &self.db_statement_timeout_ms)
            .field("db_idle_in_transaction_timeout_ms", &self.db_idle_in_transaction_timeout_ms)
            .field("read_database_url", &self.read_database_url.as_deref().map(redacted_url))
            .field("read_max_staleness_ms", &self.read_max_staleness_ms)
            .finish()
    }
}

/// Logging settings, flattened into each server's own settings.
#[derive(clap::Args, Clone, Debug)]
pub struct LogSettings {
    /// Log filter directives, e.g. `info` or `info,sqlx=warn`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,

    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

/// Returns `url` with its password (in the userinfo or a `password=` parameter) replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    let mut out = redact_userinfo(url);
    redact_password_params(&mut out);
    out
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // rfind: an unescaped '@' inside the password must not split the userinfo early.
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!("{}{}:***{}", &url[..authority_start], &userinfo[..colon], &url[authority_start + at..])
}

fn redact_password_params(url: &mut String) {
    const KEY: &str = "password=";
    let mut search_from = 0;
    while let Some(found) = url[search_from..].find(KEY) {
        let start = search_from + found;
        let at_boundary = start == 0 || url[..start].ends_with(['?', '&', ' ']);
        let value_start = start + KEY.len();
        if !at_boundary {
            search_from = value_start;
            continue;
        }
        let value_len = url[value_start..].find(['&', ' ', '#']).unwrap_or(url.len() - value_start);
        url.replace_range(value_start..value_start + value_len, "***");
        search_from = value_start + 3;
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct TestSettings {
        #[command(flatten)]
        db: DatabaseSettings,
        #[command(flatten)]
        log: LogSettings,
    }

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redacted_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redacted_url("postgres://app:p@ss@db/shop?sslmode=disable"),
            "postgres://app:***@db/shop?sslmode=disable"
        );
    }

    #[test]
    fn redacts_password_parameter() {
        assert_eq!(
            redacted_url("postgres://db/shop?user=app&password=s3cret&sslmode=disable"),
            "postgres://db/shop?user=app&password=***&sslmode=disable"
        );
        assert_eq!(
            redacted_url("host=db password=s3cret user=app"),
            "host=db password=*** user=app"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for url in [
            "postgres://app@db/shop",
            "postgres://db/shop?sslmode=disable",
            "postgres:///shop?host=/run/postgresql",
            "not a url",
        ] {
            assert_eq!(redacted_url(url), url);
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let settings = TestSettings::try_parse_from([
            "server",
            "--database-url",
            "postgres://app:s3cret@db/shop",
            "--run-migrations",
            "false",
            "--db-max-connections",
            "3",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert!(!settings.db.run_migrations);
        assert_eq!(settings.db.db_max_connections, 3);
        assert_eq!(settings.log.log_format, LogFormat::Json);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("postgres://app:***@db/shop"), "{debug}");
    }

    #[test]
    fn defaults_match_the_fixed_names() {
        let command = TestSettings::command();
        let default_of = |id: &str| {
            command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .map(|arg| {
                    let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                    let defaults: Vec<_> = arg
                        .get_default_values()
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect();
                    (env, defaults)
                })
                .unwrap()
        };
        let expect = |env: &str, default: &[&str]| {
            (Some(env.to_owned()), default.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(default_of("database_url"), expect("DATABASE_URL", &[]));
        assert_eq!(default_of("run_migrations"), expect("RUN_MIGRATIONS", &["true"]));
        assert_eq!(default_of("db_max_connections"), expect("DB_MAX_CONNECTIONS", &["10"]));
        assert_eq!(default_of("db_acquire_timeout_ms"), expect("DB_ACQUIRE_TIMEOUT_MS", &["2000"]));
        assert_eq!(default_of("rust_log"), expect("RUST_LOG", &["info"]));
        assert_eq!(default_of("log_format"), expect("LOG_FORMAT", &["pretty"]));
    }

    #[test]
    fn help_hides_the_database_url_value() {
        let help = TestSettings::command().render_long_help().to_string();
        assert!(help.contains("[env: DATABASE_URL]"), "{help}");
    }
}
