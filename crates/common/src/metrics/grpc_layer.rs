//! Per-method gRPC server metrics in the go-grpc-prometheus shape existing dashboards expect.
//!
//! Labels come only from the methods the server serves ([`MethodTable`]); every other path
//! is counted under one fixed `unknown` pair, so no caller can grow the metric families by
//! inventing method names. The code is recorded when the call ends ([`WatchedFuture`]).

use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use prometheus::{HistogramVec, IntCounterVec};
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

use crate::grpc_call::{CallEnd, MethodNames, MethodTable, WatchedBody, WatchedFuture};

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

/// Tower layer recording `grpc_server_{started,handled}_total` and `grpc_server_handling_seconds`.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    methods: MethodTable,
}

impl GrpcMetricsLayer {
    /// A layer labelling the methods of `services` (full names, e.g.
    /// `inventory.v1.InventoryService`) and the standard services; any other path counts as
    /// `unknown` ([`MethodTable::new`]).
    pub fn new(services: &[&str]) -> Self {
        Self { methods: MethodTable::new(services) }
    }

    /// The methods it labels, for the other layers that name calls alike.
    pub fn methods(&self) -> &MethodTable {
        &self.methods
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
        let recorder = Recorder::start(self.layer.methods.names(request.uri().path()).clone());
        WatchedFuture::new(self.inner.call(request), recorder)
    }
}

/// Future of [`GrpcMetricsService`]: the inner response with its body wrapped.
pub type ResponseFuture<F> = WatchedFuture<F, Recorder>;

/// Response body of [`GrpcMetricsService`]; records the call when its trailers pass.
pub type MetricsBody<B> = WatchedBody<B, Recorder>;

/// One call in flight: counted as started, recorded as handled (with its time) when it ends.
pub struct Recorder {
    labels: MethodNames,
    started_at: Instant,
}

impl Recorder {
    fn start(labels: MethodNames) -> Self {
        STARTED.with_label_values(&[GRPC_TYPE, &labels.service, &labels.method]).inc();
        Self { labels, started_at: Instant::now() }
    }
}

impl CallEnd for Recorder {
    // Only layers outside tonic's router fail without a response, and what the client sees
    // depends on them; Unknown is the honest label.
    const WITHOUT_RESPONSE: Code = Code::Unknown;

    fn end(self, code: Code) {
        let (service, method) = (&*self.labels.service, &*self.labels.method);
        HANDLED.with_label_values(&[GRPC_TYPE, service, method, grpc_code_name(code)]).inc();
        HANDLING_SECONDS
            .with_label_values(&[GRPC_TYPE, service, method])
            .observe(self.started_at.elapsed().as_secs_f64());
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
                .add_service(health)
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
