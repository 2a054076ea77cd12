//! OTLP export of spans over gRPC: on when an endpoint is configured, and then flushed when a
//! server stops; off (no exporter, no batch thread, nothing sent) otherwise.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::transport::ClientTlsConfig;

/// Longest a flush at shutdown waits for the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporting provider, once installed: what [`flush`] flushes.
static EXPORTING: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Where spans are exported: an OTLP/gRPC collector, under a service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExport {
    /// The collector's OTLP/gRPC URL, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// The `service.name` resource attribute of every span.
    pub service_name: String,
}

impl TraceExport {
    /// The export the standard environment asks for: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// else `OTEL_EXPORTER_OTLP_ENDPOINT`; None when neither is set (or both are empty) or
    /// `OTEL_SDK_DISABLED=true`. The service is `OTEL_SERVICE_NAME`, else `default_service`.
    pub fn from_env(default_service: &str) -> Option<Self> {
        Self::from_vars(|name| std::env::var(name).ok(), default_service)
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, default_service: &str) -> Option<Self> {
        let set = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        let service_name = set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned());
        Some(Self { endpoint, service_name })
    }
}

/// The tracer provider for `export`: batching to the collector when given, else one with no
/// processor at all (spans get ids, for propagation and log lines, and go nowhere). An export
/// that cannot be built gives the second kind and the reason.
pub(super) fn provider(export: Option<&TraceExport>) -> (SdkTracerProvider, Option<String>) {
    // The sampler is the SDK's: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, by default
    // parent-based always-on (a caller's sampling decision is kept).
    let builder = SdkTracerProvider::builder();
    let Some(export) = export else {
        return (builder.build(), None);
    };
    // The tonic exporter dials through the runtime it is built in; without one it would
    // panic on the first export instead of failing here.
    if tokio::runtime::Handle::try_current().is_err() {
        return (builder.build(), Some("OTLP export needs a tokio runtime".to_owned()));
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(export.endpoint.clone());
    if export.endpoint.starts_with("https://") {
        // Checked against the system's CAs (SSL_CERT_FILE in the images): a collector behind a
        // public or company CA. Without roots every handshake would fail.
        exporter = exporter.with_tls_config(ClientTlsConfig::new().with_native_roots());
    }
    let exporter = match exporter.build() {
        Ok(exporter) => exporter,
        Err(err) => {
            return (builder.build(), Some(format!("endpoint {:?}: {err}", export.endpoint)));
        }
    };
    let resource = Resource::builder().with_service_name(export.service_name.clone()).build();
    (builder.with_batch_exporter(exporter).with_resource(resource).build(), None)
}

/// Keeps `provider` for [`flush`] (the first one installed; there is one subscriber).
pub(super) fn keep(provider: SdkTracerProvider) {
    let _ = EXPORTING.set(provider);
}

/// Sends the spans still buffered to the collector, waiting at most 5 s; nothing to do
/// without export. The host calls it as a server stops, after its last call.
pub async fn flush() {
    let Some(provider) = EXPORTING.get().cloned() else { return };
    // force_flush blocks its thread until the batch thread has exported, and the export is
    // carried by this runtime: a blocking thread keeps the runtime free to carry it (on a
    // current-thread runtime, blocking here would wait forever).
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush());
    match tokio::time::timeout(FLUSH_TIMEOUT, flushed).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "flushing spans to the collector failed"),
        Ok(Err(err)) => tracing::warn!(error = %err, "flushing spans to the collector failed"),
        Err(_) => tracing::warn!(
            timeout_ms = FLUSH_TIMEOUT.as_millis(),
            "the collector did not take the last spans in time"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn export_of(vars: &[(&str, &str)]) -> Option<TraceExport> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        TraceExport::from_vars(|name| vars.get(name).map(|v| (*v).to_owned()), "order-service")
    }

    #[test]
    fn export_needs_an_endpoint() {
        assert_eq!(export_of(&[]), None);
        assert_eq!(export_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]), None);
        assert_eq!(export_of(&[("OTEL_SERVICE_NAME", "orders")]), None);
    }

    #[test]
    fn the_traces_endpoint_wins_and_the_binary_names_the_service() {
        let export = export_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ]);
        assert_eq!(
            export,
            Some(TraceExport {
                endpoint: "http://traces:4317".to_owned(),
                service_name: "order-service".to_owned(),
            })
        );
        let named = export_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SERVICE_NAME", "orders-eu"),
        ]);
        assert_eq!(named.map(|e| e.service_name).as_deref(), Some("orders-eu"));
    }

    #[test]
    fn the_sdk_switch_turns_export_off() {
        let vars =
            [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_SDK_DISABLED", "TRUE")];
        assert_eq!(export_of(&vars), None);
    }

    #[tokio::test]
    async fn plaintext_and_tls_collectors_are_accepted_and_junk_is_refused() {
        for endpoint in ["http://127.0.0.1:4317", "https://collector.example:4317"] {
            let export = TraceExport { endpoint: endpoint.into(), service_name: "t".into() };
            let (_provider, failed) = provider(Some(&export));
            assert_eq!(failed, None, "{endpoint}");
        }
        let junk = TraceExport { endpoint: "not a url".into(), service_name: "t".into() };
        let (_provider, failed) = provider(Some(&junk));
        assert!(failed.is_some_and(|why| why.contains("not a url")));
    }

    #[test]
    fn without_a_runtime_export_is_refused_not_panicking() {
        let export =
            TraceExport { endpoint: "http://127.0.0.1:1".into(), service_name: "t".into() };
        let (_provider, failed) = provider(Some(&export));
        assert!(failed.is_some_and(|why| why.contains("tokio runtime")));
    }
}
