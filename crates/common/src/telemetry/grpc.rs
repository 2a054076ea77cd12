//! A span per gRPC call, on both sides, carrying the W3C trace context across the hop.
//!
//! Server side ([`ServerTraceLayer`], in every host): the call's span continues the trace of
//! the caller's `traceparent` / `tracestate` (or starts one), names the method only when the
//! server serves it (as the metrics layer labels it: a caller cannot invent span names), and
//! records the gRPC status code the caller gets; health checks (probes, every few seconds)
//! get none. Client side ([`ClientTrace`], around a
//! channel): a span per attempt, whose context goes out in the request's headers, so the
//! peer's server span is its child.
//!
//! The span ends with the call's status code, seen as the metrics layer sees it
//! ([`crate::grpc_call`]).

use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing::instrument::{Instrument as _, Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::grpc_call::{CallEnd, MethodTable, WatchedBody, WatchedFuture};

/// The health service: its calls get no span.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Which side of a call a span stands for; decides which codes mark it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// Tower layer of a server: a `grpc.server` span per call, child of the caller's span when
/// the request carries a W3C `traceparent`.
#[derive(Clone, Debug)]
pub struct ServerTraceLayer {
    methods: MethodTable,
}

impl ServerTraceLayer {
    /// A layer naming calls as `methods` names them: served methods by name, any other path
    /// `unknown`.
    pub fn new(methods: MethodTable) -> Self {
        Self { methods }
    }
}

impl<S> Layer<S> for ServerTraceLayer {
    type Service = ServerTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerTraceService { inner, methods: self.methods.clone() }
    }
}

/// Service produced by [`ServerTraceLayer`].
#[derive(Clone, Debug)]
pub struct ServerTraceService<S> {
    inner: S,
    methods: MethodTable,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerTraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let names = self.methods.names(request.uri().path());
        let (service, method) = (&*names.service, &*names.method);
        // Probes call health every few seconds: a trace each would bury the real ones.
        let span = if service == HEALTH_SERVICE {
            Span::none()
        } else {
            // A root of our own span tree: whatever span this task is in is not the caller.
            tracing::info_span!(
                parent: None,
                "grpc.server",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = Empty,
            )
        };
        let caller = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
        // Fails only where no OpenTelemetry layer sees the span (none installed, tests):
        // there is no trace to continue then.
        let _ = span.set_parent(caller);
        let inner = span.in_scope(|| self.inner.call(request)).instrument(span.clone());
        WatchedFuture::new(inner, CallSpan { span, side: Side::Server })
    }
}

/// A client channel (or any gRPC client service) whose calls each get a `grpc.client` span,
/// child of the current span, and carry its W3C trace context to the peer.
#[derive(Clone, Debug)]
pub struct ClientTrace<S> {
    inner: S,
}

impl<S> ClientTrace<S> {
    /// Traces the calls made through `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientTrace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The path is our own generated client's: bounded by the protos, not by a caller.
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = path,
            otel.kind = "client",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
        );
        TraceContextPropagator::new()
            .inject_context(&span.context(), &mut HeaderInjector(request.headers_mut()));
        let inner = span.in_scope(|| self.inner.call(request)).instrument(span.clone());
        WatchedFuture::new(inner, CallSpan { span, side: Side::Client })
    }
}

/// Future of [`ServerTraceService`] and [`ClientTrace`]: the inner response, polled in the
/// call's span, with its body wrapped.
pub type TraceFuture<F> = WatchedFuture<Instrumented<F>, CallSpan>;

/// Response body of a traced call; finishes the call's span when its trailers pass.
pub type TracedBody<B> = WatchedBody<B, CallSpan>;

/// The span of one call in flight; records its status code when the call ends (CANCELLED
/// if the response is dropped unfinished).
pub struct CallSpan {
    span: Span,
    side: Side,
}

impl CallEnd for CallSpan {
    // No response at all: a broken connection (client) or a layer outside the router failing
    // (server); the caller sees no status from the peer.
    const WITHOUT_RESPONSE: Code = Code::Unavailable;

    fn end(self, code: Code) {
        self.span.record("rpc.grpc.status_code", i64::from(i32::from(code)));
        if is_failure(self.side, code) {
            self.span.record("otel.status_code", "error");
        }
    }
}

/// Whether `code` marks the span failed, as OpenTelemetry's gRPC conventions say: a client
/// failed on any code but OK; a server only on the codes that say it (not the caller) failed.
fn is_failure(side: Side, code: Code) -> bool {
    match side {
        Side::Client => code != Code::Ok,
        Side::Server => matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

/// Reads trace context headers of an incoming request.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes trace context headers into an outgoing request.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only valid header names and values; anything else is
        // skipped rather than failing the call over its trace context.
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::convert::Infallible;

    use opentelemetry::Value;
    use opentelemetry::trace::{SpanKind, Status};
    use tower::ServiceExt as _;

    use super::*;

    const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const SERVED: &str = "/inventory.v1.InventoryService/ReserveInventory";

    /// A server answering every call with `code` in a trailers-only response, remembering the
    /// `traceparent` it was sent.
    fn answering(
        code: Code,
    ) -> impl Service<Request<()>, Response = Response<tonic::body::Body>, Error = Infallible> + Clone
    {
        tower::service_fn(move |request: Request<()>| async move {
            let sent = request.headers().get("traceparent").cloned();
            let mut response = Response::new(tonic::body::Body::empty());
            response.headers_mut().insert("grpc-status", HeaderValue::from(i32::from(code)));
            if let Some(sent) = sent {
                response.headers_mut().insert("x-seen-traceparent", sent);
            }
            Ok::<_, Infallible>(response)
        })
    }

    fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<Value> {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.clone())
    }

    #[tokio::test]
    async fn a_server_span_continues_the_callers_trace_and_records_the_code() {
        let (subscriber, spans) = crate::telemetry::collect::subscriber();
        let _default = tracing::subscriber::set_default(subscriber);
        let layer = ServerTraceLayer::new(MethodTable::new(&["inventory.v1.InventoryService"]));
        let service = layer.layer(answering(Code::Unavailable));
        let request =
            Request::builder().uri(SERVED).header("traceparent", CALLER).body(()).unwrap();
        drop(service.oneshot(request).await.unwrap());

        let span = spans.named("inventory.v1.InventoryService/ReserveInventory").pop().unwrap();
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(span.span_context.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");
        assert!(span.parent_span_is_remote);
        assert_eq!(attribute(&span, "rpc.grpc.status_code"), Some(Value::I64(14)));
        assert_eq!(attribute(&span, "rpc.method"), Some(Value::from("ReserveInventory")));
        assert!(matches!(span.status, Status::Error { .. }), "UNAVAILABLE is the server's failure");
    }

    #[tokio::test]
    async fn an_unserved_path_is_named_unknown_and_a_callers_error_is_no_server_failure() {
        let (subscriber, spans) = crate::telemetry::collect::subscriber();
        let _default = tracing::subscriber::set_default(subscriber);
        let layer = ServerTraceLayer::new(MethodTable::new(&[]));
        let service = layer.layer(answering(Code::NotFound));
        let request = Request::builder().uri("/made.up.Service/Anything").body(()).unwrap();
        drop(service.oneshot(request).await.unwrap());

        let span = spans.named("unknown/unknown").pop().unwrap();
        assert_eq!(span.parent_span_id, opentelemetry::trace::SpanId::INVALID, "a new trace");
        assert_eq!(attribute(&span, "rpc.grpc.status_code"), Some(Value::I64(5)));
        assert_eq!(span.status, Status::Unset);
    }

    #[tokio::test]
    async fn health_checks_are_not_traced() {
        let (subscriber, spans) = crate::telemetry::collect::subscriber();
        let _default = tracing::subscriber::set_default(subscriber);
        let layer = ServerTraceLayer::new(MethodTable::new(&[]));
        let service = layer.layer(answering(Code::Ok));
        let request = Request::builder().uri("/grpc.health.v1.Health/Check").body(()).unwrap();
        drop(service.oneshot(request).await.unwrap());
        assert_eq!(spans.all(), []);
    }

    #[tokio::test]
    async fn a_client_span_is_a_child_of_the_current_span_and_travels_in_the_headers() {
        let (subscriber, spans) = crate::telemetry::collect::subscriber();
        let _default = tracing::subscriber::set_default(subscriber);
        let step = tracing::info_span!("saga.step");
        let response = async {
            let client = ClientTrace::new(answering(Code::Ok));
            client.oneshot(Request::builder().uri(SERVED).body(()).unwrap()).await.unwrap()
        }
        .instrument(step.clone())
        .await;
        let sent =
            response.headers().get("x-seen-traceparent").unwrap().to_str().unwrap().to_owned();
        drop(response);
        drop(step);

        let call = spans.named("inventory.v1.InventoryService/ReserveInventory").pop().unwrap();
        let step = spans.named("saga.step").pop().unwrap();
        assert_eq!(call.span_kind, SpanKind::Client);
        assert_eq!(call.parent_span_id, step.span_context.span_id());
        assert_eq!(
            sent,
            format!("00-{}-{}-01", call.span_context.trace_id(), call.span_context.span_id()),
            "the peer's parent is the client span"
        );
        assert_eq!(attribute(&call, "rpc.grpc.status_code"), Some(Value::I64(0)));
        assert_eq!(call.status, Status::Unset);
    }

    #[test]
    fn every_non_ok_code_fails_a_client_but_only_its_own_fail_a_server() {
        assert!(!is_failure(Side::Client, Code::Ok));
        assert!(is_failure(Side::Client, Code::NotFound));
        assert!(!is_failure(Side::Server, Code::NotFound));
        assert!(!is_failure(Side::Server, Code::ResourceExhausted));
        assert!(is_failure(Side::Server, Code::Internal));
    }
}
