//! The global `tracing` subscriber (readable lines on a terminal, JSON in containers, and a
//! quiet one for tests) and distributed tracing: W3C trace context in and out of every gRPC
//! call, OTLP export when configured.
//!
//! Every server installs the OpenTelemetry layer, exporting or not: spans get W3C trace and
//! span ids either way, so an incoming `traceparent` is carried on to the peers and every
//! JSON line inside a span names its trace. Only with `OTEL_EXPORTER_OTLP_ENDPOINT` set do
//! spans leave the process (see [`TraceExport`]).
//!
//! The OpenTelemetry layer has its own level (INFO, where every span of ours is), apart from
//! `RUST_LOG`: turning the logs down to `warn` must not cut the traces.

mod context;
mod export;
mod grpc;
mod json;

use std::io::IsTerminal;
use std::sync::Once;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _, fmt};

pub use context::W3cTraceContext;
pub use export::{TraceExport, flush};
pub use grpc::{
    CallSpan, ClientTrace, ServerTraceLayer, ServerTraceService, TraceFuture, TracedBody,
};

/// Instrumentation scope of every span the pair creates.
const SCOPE: &str = "order-inventory";

/// How log lines are rendered.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors in containers.
    Json,
}

/// Installs the global subscriber writing to stderr, with OTLP export as the standard
/// `OTEL_*` environment says ([`TraceExport::from_env`], the service named after the
/// binary by default); later calls are no-ops.
///
/// A `filter` that does not parse falls back to `info` rather than failing startup over a
/// typo in `RUST_LOG`; an export that cannot be set up is logged and left off rather than
/// stopping the server (its calls matter more than its traces).
pub fn init(filter: &str, format: LogFormat) {
    init_with(filter, format, TraceExport::from_env(&binary_name()));
}

/// [`init`] with the export given instead of read from the environment (tests point it at
/// their own receiver). Returns whether this call installed the subscriber (false: one was
/// installed before, and stays).
pub fn init_with(filter: &str, format: LogFormat, export: Option<TraceExport>) -> bool {
    let (provider, failed) = export::provider(export.as_ref());
    let tracer = provider.tracer(SCOPE);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Per-enter timings and thread ids cost on every poll and say little here.
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_filter(LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(otel);
    // try_init: tests and embedded servers may call this repeatedly in one process, and the
    // first subscriber wins.
    let installed = match format {
        LogFormat::Json => registry
            .with(json::layer(std::io::stderr).with_filter(env_filter(filter)))
            .try_init()
            .is_ok(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .with_filter(env_filter(filter)),
            )
            .try_init()
            .is_ok(),
    };
    if !installed {
        return false;
    }
    match (export, failed) {
        (Some(export), None) => {
            export::keep(provider);
            tracing::info!(endpoint = %export.endpoint, service = %export.service_name, "exporting traces over OTLP");
        }
        (_, Some(error)) => {
            tracing::error!(%error, "OTLP trace export is not set up; spans are not exported");
        }
        (None, None) => {}
    }
    true
}

/// The name of the running binary, the default `service.name` of its spans.
fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".to_owned())
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

    #[test]
    fn the_default_service_name_is_the_binary_name() {
        // The test binary is named after the crate, with a hash suffix.
        assert!(binary_name().starts_with("common"), "{}", binary_name());
    }
}

/// Test support: a subscriber whose finished spans are kept in memory.
#[cfg(test)]
pub(crate) mod collect {
    use std::sync::{Arc, Mutex, PoisonError};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// The finished spans, in the order they ended.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Spans(Arc<Mutex<Vec<SpanData>>>);

    impl Spans {
        pub(crate) fn all(&self) -> Vec<SpanData> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
        }

        pub(crate) fn named(&self, name: &str) -> Vec<SpanData> {
            self.all().into_iter().filter(|s| s.name == name).collect()
        }
    }

    impl SpanExporter for Spans {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend(batch);
            Ok(())
        }
    }

    /// A registry with the OpenTelemetry layer exporting (synchronously) into the returned
    /// spans.
    pub(crate) fn subscriber() -> (impl tracing::Subscriber + Send + Sync, Spans) {
        let spans = Spans::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        (tracing_subscriber::registry().with(layer), spans)
    }
}
