//! The global `tracing` subscriber: readable lines on a terminal, JSON in containers, and a
//! quiet one for tests.

use std::io::IsTerminal;
use std::sync::Once;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// How log lines are rendered.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors in containers.
    Json,
}

/// Installs the global subscriber writing to stderr; later calls are no-ops.
///
/// A `filter` that does not parse falls back to `info` rather than failing startup over a
/// typo in `RUST_LOG`.
pub fn init(filter: &str, format: LogFormat) {
    let registry = tracing_subscriber::registry().with(env_filter(filter));
    // try_init: tests and embedded servers may call this repeatedly in one process, and the
    // first subscriber wins.
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    // Span fields (order_id, reservation_id) must appear on every line.
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

fn env_filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Test logging: silent unless `TEST_LOG` is set, then `debug` through the test writer.
pub fn init_for_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Without TEST_LOG no subscriber is installed at all, which keeps test output clean
        // and makes disabled tracing calls nearly free.
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::registry()
                .with(EnvFilter::new("debug"))
                .with(fmt::layer().compact().with_test_writer())
                .try_init();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_safe_to_call_repeatedly() {
        init_for_tests();
        init_for_tests();
        // "off" so that, should this call win the race, other tests stay quiet.
        init("off", LogFormat::Json);
        init("off", LogFormat::Pretty);
    }

    #[test]
    fn unparsable_filter_falls_back_to_info() {
        assert_eq!(env_filter("inventory=[").to_string(), "info");
        assert_eq!(env_filter("warn,sqlx=error").to_string(), "sqlx=error,warn");
    }
}
