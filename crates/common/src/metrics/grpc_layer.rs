//! Per-method gRPC server metrics in the go-grpc-prometheus shape existing dashboards expect.
//!
//! The status code is only known once the response is finished: tonic puts it in the headers
//! of a trailers-only response (errors) and otherwise in the trailers after the last message.
//! So the layer wraps the response body and records when the trailers frame goes by.
//!
//! Labels come only from the methods the server serves (read from the service descriptors
//! when the layer is built); every other path is counted under one fixed `unknown` pair, so
//! no caller can grow the metric families by inventing method names.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus::{HistogramVec, IntCounterVec};
use prost::Message as _;
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

use super::registry::{LATENCY_BUCKETS, register_counter_vec, register_histogram_vec};

// The layer sees HTTP, not the method's shape, so every call is labelled "unary" like the
// unary-only dashboards expect; streaming calls are counted and timed over their whole life.
const GRPC_TYPE: &str = "unary";

static STARTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
        &["grpc_type", "grpc_service", "grpc_method"],
    )
});

static HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
    )
});

static HANDLING_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        &["grpc_type", "grpc_service", "grpc_method"],
        LATENCY_BUCKETS,
    )
});

/// Canonical (go-grpc) name of a status code, as used in the `grpc_code` label.
pub fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The `grpc_service` / `grpc_method` label of every path that is not a served method.
pub const UNKNOWN_LABEL: &str = "unknown";

/// Services every server of the pair answers besides its own (health and reflection).
pub const STANDARD_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The label pair of one served method, shared by every call of it.
#[derive(Clone, Debug)]
struct Labels {
    service: Arc<str>,
    method: Arc<str>,
}

/// Tower layer recording `grpc_server_{started,handled}_total` and `grpc_server_handling_seconds`.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    /// `/package.Service/Method` of every served method -> its labels.
    known: Arc<HashMap<String, Labels>>,
    unknown: Labels,
}

impl GrpcMetricsLayer {
    /// A layer labelling the methods of `services` (full names, e.g.
    /// `inventory.v1.InventoryService`) and of [`STANDARD_SERVICES`]; any other path counts
    /// as `unknown`. The methods are read from the descriptors of every proto the pair and
    /// tonic's health and reflection services define; a name found there has none.
    pub fn new(services: &[&str]) -> Self {
        let wanted: Vec<&str> = services.iter().copied().chain(STANDARD_SERVICES).collect();
        let mut known = HashMap::new();
        for set in [
            proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ] {
            // Compiled into the binary by build scripts: a set that does not decode is a
            // build defect, and costs the labels of its services only.
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                tracing::error!("a compiled-in descriptor set does not decode");
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let name = match file.package() {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    if !wanted.contains(&name.as_str()) {
                        continue;
                    }
                    let service_label: Arc<str> = name.as_str().into();
                    for method in &service.method {
                        let labels =
                            Labels { service: service_label.clone(), method: method.name().into() };
                        known.insert(format!("/{name}/{}", method.name()), labels);
                    }
                }
            }
        }
        let unknown = Labels { service: UNKNOWN_LABEL.into(), method: UNKNOWN_LABEL.into() };
        Self { known: Arc::new(known), unknown }
    }

    /// The labels a call to `path` is recorded under.
    fn labels(&self, path: &str) -> Labels {
        self.known.get(path).unwrap_or(&self.unknown).clone()
    }

    /// The `(service, method)` names of a call to `path`, as its labels: a served method's,
    /// else `unknown` twice. The trace layer names its spans by them, bounded alike.
    pub fn method_names(&self, path: &str) -> (&str, &str) {
        let labels = self.known.get(path).unwrap_or(&self.unknown);
        (&labels.service, &labels.method)
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService { inner, layer: self.clone() }
    }
}

/// Service produced by [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let recorder = Some(Recorder::start(self.layer.labels(request.uri().path())));
        ResponseFuture { inner: self.inner.call(request), recorder }
    }
}

pin_project! {
    /// Future of [`GrpcMetricsService`]: the inner response with its body wrapped.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recorder: Option<Recorder>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<MetricsBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut recorder = this.recorder.take();
        match result {
            Ok(response) => {
                // Trailers-only response: the status is already final.
                if let Some(code) = status_in(response.headers())
                    && let Some(recorder) = recorder.take()
                {
                    recorder.finish(code);
                }
                Poll::Ready(Ok(response.map(|inner| MetricsBody { inner, recorder })))
            }
            Err(err) => {
                // Only layers outside tonic's router fail here, and what the client sees
                // depends on them; Unknown is the honest label.
                if let Some(recorder) = recorder {
                    recorder.finish(Code::Unknown);
                }
                Poll::Ready(Err(err))
            }
        }
    }
}

pin_project! {
    /// Response body of [`GrpcMetricsService`]; records the call when its trailers pass.
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        recorder: Option<Recorder>,
    }
}

impl<B: Body> Body for MetricsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let code = match &frame {
            Some(Ok(frame)) => {
                frame.trailers_ref().map(|trailers| status_in(trailers).unwrap_or(Code::Unknown))
            }
            // A failing body resets the stream, and an end without trailers is a broken
            // response: either way the client gets no status from us.
            Some(Err(_)) | None => Some(Code::Unknown),
        };
        if let Some(code) = code
            && let Some(recorder) = this.recorder.take()
        {
            recorder.finish(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn status_in(headers: &HeaderMap) -> Option<Code> {
    headers.get("grpc-status").map(|value| Code::from_bytes(value.as_bytes()))
}

/// One in-flight call; records `handled` exactly once, as `Canceled` if dropped unfinished.
struct Recorder {
    labels: Labels,
    started_at: Instant,
    finished: bool,
}

impl Recorder {
    fn start(labels: Labels) -> Self {
        STARTED.with_label_values(&[GRPC_TYPE, &labels.service, &labels.method]).inc();
        Self { labels, started_at: Instant::now(), finished: false }
    }

    fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (service, method) = (&*self.labels.service, &*self.labels.method);
        HANDLED.with_label_values(&[GRPC_TYPE, service, method, grpc_code_name(code)]).inc();
        HANDLING_SECONDS
            .with_label_values(&[GRPC_TYPE, service, method])
            .observe(self.started_at.elapsed().as_secs_f64());
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Reached unfinished only when the response future or body is dropped early: the
        // client went away or the connection broke.
        self.record(Code::Cancelled);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio_stream::StreamExt as _;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::service::Routes;
    use tonic::transport::{Channel, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    const HEALTH: &str = "grpc.health.v1.Health";

    fn handled(method: &str, code: &str) -> u64 {
        HANDLED.with_label_values(&[GRPC_TYPE, HEALTH, method, code]).get()
    }

    fn started(method: &str) -> u64 {
        STARTED.with_label_values(&[GRPC_TYPE, HEALTH, method]).get()
    }

    fn timed(method: &str) -> u64 {
        HANDLING_SECONDS.with_label_values(&[GRPC_TYPE, HEALTH, method]).get_sample_count()
    }

    /// The server records just before the client sees the end, so allow it a moment.
    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..100 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn labels_only_the_methods_served() {
        let layer = GrpcMetricsLayer::new(&["inventory.v1.InventoryService"]);
        let labels = |path: &str| {
            let labels = layer.labels(path);
            (labels.service.to_string(), labels.method.to_string())
        };
        let pair = |service: &str, method: &str| (service.to_owned(), method.to_owned());
        assert_eq!(
            labels("/inventory.v1.InventoryService/ReserveInventory"),
            pair("inventory.v1.InventoryService", "ReserveInventory")
        );
        assert_eq!(labels("/grpc.health.v1.Health/Watch"), pair("grpc.health.v1.Health", "Watch"));
        assert_eq!(
            labels("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            pair("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo")
        );
        // Another service of the pair, invented names and paths that are no gRPC call at all
        // share one pair of labels.
        for path in [
            "/order.v1.OrderService/CreateOrder",
            "/inventory.v1.InventoryService/NoSuchMethod",
            "/evil1.Svc/M1a2b",
            "/",
            "",
            "/metrics",
            "/inventory.v1.InventoryService/ReserveInventory/extra",
        ] {
            assert_eq!(labels(path), pair(UNKNOWN_LABEL, UNKNOWN_LABEL), "{path}");
        }
        // Every RPC of the contract resolves (the descriptors are the source of truth).
        assert_eq!(layer.known.len(), 11 + 2 + 1 + 1, "{:?}", layer.known.keys());
    }

    #[test]
    fn code_names_follow_go_grpc() {
        assert_eq!(grpc_code_name(Code::Ok), "OK");
        assert_eq!(grpc_code_name(Code::Cancelled), "Canceled");
        assert_eq!(grpc_code_name(Code::NotFound), "NotFound");
        assert_eq!(grpc_code_name(Code::from_bytes(b"14")), "Unavailable");
    }

    // All assertions on the health service live in this one test: counters are process-wide.
    #[tokio::test]
    async fn records_every_call_of_a_real_tonic_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::builder()
                .layer(GrpcMetricsLayer::new(&[]))
                .add_routes(crate::server::with_reflection(Routes::new(health), &[]).unwrap())
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        let channel =
            Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let mut client = HealthClient::new(channel);

        let (ok, not_found, started_check) =
            (handled("Check", "OK"), handled("Check", "NotFound"), started("Check"));
        let (timed_check, canceled_watch) = (timed("Check"), handled("Watch", "Canceled"));

        let request = |service: &str| HealthCheckRequest { service: service.to_owned() };
        client.check(request("")).await.unwrap();
        let err = client.check(request("no.such.Service")).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);

        eventually("OK and NotFound", || {
            handled("Check", "OK") == ok + 1 && handled("Check", "NotFound") == not_found + 1
        })
        .await;
        assert_eq!(started("Check"), started_check + 2);
        assert_eq!(timed("Check"), timed_check + 2);

        // A stream the client abandons is recorded as Canceled when the server drops it.
        let mut watch = client.watch(request("")).await.unwrap().into_inner();
        watch.next().await.unwrap().unwrap();
        drop(watch);
        eventually("Canceled watch", || handled("Watch", "Canceled") == canceled_watch + 1).await;

        let exported = prometheus::default_registry()
            .gather()
            .into_iter()
            .any(|family| family.name() == "grpc_server_handled_total");
        assert!(exported);

        drop(client);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
