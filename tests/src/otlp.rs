//! An OTLP trace receiver inside the test process, and the process's telemetry exporting to
//! it: what a collector would get from the servers the tests run in-process.
//!
//! The global subscriber is the process's, so there is one receiver per process: it runs on
//! a thread of its own with its own runtime (the exporter's channel lives there too), so it
//! outlives the test that started it; tests tell their spans apart by trace id. Under
//! nextest every test has a process to itself; under `cargo test` the tests of one process
//! share the receiver, which is fine for that reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use common::telemetry::{LogFormat, TraceExport};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// How long [`Traces::wait_for`] waits for the spans it expects.
const WAIT: Duration = Duration::from_secs(15);

/// One span as the collector received it, ids in lowercase hex (as in `traceparent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root.
    pub parent_span_id: String,
    pub name: String,
    pub kind: SpanKind,
    /// Every attribute as text (numbers and booleans too).
    pub attributes: HashMap<String, String>,
    /// `(trace_id, span_id)` of each linked span.
    pub links: Vec<(String, String)>,
    pub status: StatusCode,
    /// The `service.name` of the exporting process.
    pub service: String,
}

impl ReceivedSpan {
    /// The attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Every span received so far.
#[derive(Debug, Clone, Default)]
pub struct Traces {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Where the receiver listens.
    pub addr: Option<SocketAddr>,
}

impl Traces {
    /// Every span received so far of trace `trace_id`.
    pub fn of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.all().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }

    /// Every span received so far.
    pub fn all(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Flushes the process's spans to the receiver until `done` holds for what it got
    /// (every span received so far), then returns that; fails naming `what` after 15 s.
    pub async fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> anyhow::Result<Vec<ReceivedSpan>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            common::telemetry::flush().await;
            let spans = self.all();
            if done(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.trace_id)).collect();
                anyhow::bail!("no {what} within {WAIT:?}; received {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The process's receiver, started (with the telemetry exporting to it, service name
/// `system-tests`) by the first call. Fails when another global subscriber was installed
/// first (e.g. `TEST_LOG` under `cargo test`): run the tracing tests under nextest.
pub fn traces() -> anyhow::Result<&'static Traces> {
    static RECEIVER: OnceLock<Result<Traces, String>> = OnceLock::new();
    RECEIVER
        .get_or_init(|| start().map_err(|err| format!("{err:#}")))
        .as_ref()
        .map_err(|err| anyhow::anyhow!("the OTLP receiver of this process did not start: {err}"))
}

fn start() -> anyhow::Result<Traces> {
    let (started, ready) = std::sync::mpsc::channel();
    let traces = Traces::default();
    let receiver = Receiver(traces.clone());
    std::thread::Builder::new().name("otlp-receiver".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                let _ = started.send(Err(anyhow::Error::from(err)));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
                Ok(listener) => listener,
                Err(err) => {
                    let _ = started.send(Err(err.into()));
                    return;
                }
            };
            let addr = listener.local_addr();
            // Built on this runtime, so the exporter's connection lives as long as the
            // receiver. The logs stay quiet unless TEST_LOG asks for them.
            let filter = if std::env::var_os("TEST_LOG").is_some() { "debug" } else { "off" };
            let export = addr.as_ref().ok().map(|addr| TraceExport {
                endpoint: format!("http://{addr}"),
                service_name: "system-tests".to_owned(),
            });
            let installed = common::telemetry::init_with(filter, LogFormat::Json, export);
            let _ = started.send(match (addr, installed) {
                (Ok(addr), true) => Ok(addr),
                (Err(err), _) => Err(err.into()),
                (Ok(_), false) => Err(anyhow::anyhow!(
                    "another tracing subscriber was installed first (TEST_LOG under cargo test?)"
                )),
            });
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
    })?;
    let addr = ready.recv().context("the receiver thread ended before it started")??;
    Ok(Traces { addr: Some(addr), ..traces })
}

/// The collector side of OTLP/gRPC traces: keeps every span it is sent.
struct Receiver(Traces);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(text)
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.as_ref().map(text).unwrap_or_default()))
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                        .collect(),
                    status: span
                        .status
                        .as_ref()
                        .and_then(|s| StatusCode::try_from(s.code).ok())
                        .unwrap_or(StatusCode::Unset),
                    name: span.name,
                    service: service.clone(),
                });
            }
        }
        self.0.spans.lock().unwrap_or_else(PoisonError::into_inner).extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn text(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
