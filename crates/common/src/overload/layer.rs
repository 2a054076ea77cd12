//! The tower layer: at most `limit` calls in flight, each bounded by its deadline.
//!
//! A call that finds every permit taken is answered at once with a trailers-only
//! `RESOURCE_EXHAUSTED`: waiting for a permit would only turn overload into latency and
//! memory, and the client (or its load balancer) can retry elsewhere or later. A call that is
//! admitted runs with a deadline (the client's `grpc-timeout`, capped by the server's
//! bound); when it passes, the handler's future is dropped (which rolls back its open
//! database transaction) and the client gets `DEADLINE_EXCEEDED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::futures::TaskLocalFuture;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use super::deadline::{self, Deadline, parse_grpc_timeout};
use crate::metrics::{register_counter_vec, register_int_gauge};

/// The server answers this much before the client's deadline, so that its
/// `DEADLINE_EXCEEDED` (rather than the client's own timer) ends the call.
const ANSWER_MARGIN: Duration = Duration::from_millis(5);

static SHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "grpc_server_overload_shed_total",
        "Calls refused with RESOURCE_EXHAUSTED because the server had MAX_CONCURRENT_REQUESTS calls in flight.",
        &["reason"],
    )
});

static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "grpc_server_in_flight_requests",
        "Calls being handled now, counted against MAX_CONCURRENT_REQUESTS (health and reflection excluded).",
    )
});

/// Calls that never wait for a permit nor get a deadline: probes must answer under load, and
/// a health `Watch` stream lives as long as its client wants.
pub fn is_exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// Tower layer limiting calls in flight and enforcing each call's deadline.
#[derive(Clone, Debug)]
pub struct OverloadLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    request_timeout: Option<Duration>,
}

impl OverloadLayer {
    /// At most `limit` calls at once; each ends by `request_timeout` (if any) or the client's
    /// `grpc-timeout`, whichever is shorter.
    pub fn new(limit: usize, request_timeout: Option<Duration>) -> Self {
        // Register the metrics now, so they are exported (at 0) before the first call.
        LazyLock::force(&SHED).with_label_values(&["concurrency"]);
        LazyLock::force(&IN_FLIGHT);
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self { permits: Arc::new(Semaphore::new(limit)), limit, request_timeout }
    }

    /// The concurrency limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl<S> Layer<S> for OverloadLayer {
    type Service = OverloadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OverloadService { inner, layer: self.clone() }
    }
}

/// Service produced by [`OverloadLayer`].
#[derive(Clone, Debug)]
pub struct OverloadService<S> {
    inner: S,
    layer: OverloadLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OverloadService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if is_exempt(request.uri().path()) {
            return ResponseFuture { kind: Kind::Exempt { inner: self.inner.call(request) } };
        }
        let Ok(permit) = self.layer.permits.clone().try_acquire_owned() else {
            SHED.with_label_values(&["concurrency"]).inc();
            let status = Status::resource_exhausted(format!(
                "server overloaded: {} calls in flight; retry with backoff",
                self.layer.limit
            ));
            return ResponseFuture { kind: Kind::Refused { response: Some(status.into_http()) } };
        };
        let in_flight = InFlight::new(permit);
        let client = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()))
            .map(|timeout| timeout.saturating_sub(ANSWER_MARGIN));
        let timeout = match (client, self.layer.request_timeout) {
            (Some(client), Some(server)) => client.min(server),
            (client, server) => client.or(server).unwrap_or(Duration::MAX),
        };
        let deadline = Instant::now().checked_add(timeout);
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(Deadline(deadline));
        }
        // Without any bound the call still runs in a scope, one far in the future.
        let scope = deadline.unwrap_or_else(far_future);
        ResponseFuture {
            kind: Kind::Admitted {
                inner: deadline::scope(scope, self.inner.call(request)),
                sleep: deadline.map(tokio::time::sleep_until),
                timeout,
                _in_flight: in_flight,
            },
        }
    }
}

fn far_future() -> Instant {
    // About 30 years, as tokio itself does for "never".
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// A permit and its share of the in-flight gauge, both released on drop.
struct InFlight {
    _permit: OwnedSemaphorePermit,
}

impl InFlight {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        IN_FLIGHT.inc();
        Self { _permit: permit }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.dec();
    }
}

pin_project! {
    /// Future of [`OverloadService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Exempt { #[pin] inner: F },
        Refused { response: Option<Response<B>> },
        Admitted {
            #[pin]
            inner: TaskLocalFuture<Instant, F>,
            #[pin]
            sleep: Option<Sleep>,
            timeout: Duration,
            _in_flight: InFlight,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Exempt { inner } => inner.poll(cx),
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a contract breach of the caller.
                None => Poll::Ready(Ok(Status::internal("response already taken").into_http())),
            },
            KindProj::Admitted { inner, sleep, timeout, .. } => {
                if let Poll::Ready(result) = inner.poll(cx) {
                    return Poll::Ready(result);
                }
                match sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
                    Some(Poll::Ready(())) => {
                        let status = Status::deadline_exceeded(format!(
                            "deadline exceeded: no answer within {} ms",
                            timeout.as_millis()
                        ));
                        Poll::Ready(Ok(status.into_http()))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::watch;
    use tower::ServiceExt as _;

    use super::*;

    type Body = String;

    fn code(response: &Response<Body>) -> Option<&str> {
        response.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    fn call(path: &str, timeout: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri(path);
        if let Some(timeout) = timeout {
            builder = builder.header("grpc-timeout", timeout);
        }
        builder.body(()).unwrap()
    }

    /// A service whose calls wait until `release` turns true, checking that the handler sees
    /// the deadline the request extension carries.
    fn blocking(
        release: watch::Receiver<bool>,
    ) -> impl Service<
        Request<()>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |request: Request<()>| {
            let mut release = release.clone();
            async move {
                if let Some(Deadline(seen)) = request.extensions().get::<Deadline>().copied() {
                    assert_eq!(Some(seen), deadline::current());
                }
                let _ = release.wait_for(|go| *go).await;
                Ok::<_, Infallible>(Response::new(Body::from("done")))
            }
        })
    }

    #[tokio::test]
    async fn refuses_beyond_the_limit_at_once_and_exempts_health() {
        let (release, released) = watch::channel(false);
        let service = OverloadLayer::new(1, None).layer(blocking(released));
        let shed_before = SHED.with_label_values(&["concurrency"]).get();

        // The permit is taken in `call`, before the future is first polled.
        let first = service.clone().oneshot(call("/pkg.Svc/Slow", None));
        let first = tokio::spawn(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let refused = service.clone().oneshot(call("/pkg.Svc/Other", None)).await.unwrap();
        assert_eq!(code(&refused), Some("8"), "{refused:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(SHED.with_label_values(&["concurrency"]).get() > shed_before);

        // Health is admitted (it waits for the handler like the first call, not refused).
        let health =
            tokio::spawn(service.clone().oneshot(call("/grpc.health.v1.Health/Check", None)));
        release.send(true).unwrap();
        assert_eq!(code(&first.await.unwrap().unwrap()), None);
        assert_eq!(code(&health.await.unwrap().unwrap()), None);

        // The permit is back.
        let again = service.oneshot(call("/pkg.Svc/Slow", None)).await.unwrap();
        assert_eq!(code(&again), None);
    }

    #[tokio::test]
    async fn the_shorter_deadline_ends_the_call_with_deadline_exceeded() {
        let (release, released) = watch::channel(false);
        let service = OverloadLayer::new(4, Some(Duration::from_millis(400)))
            .layer(blocking(released.clone()));
        let elapsed = |started: Instant| started.elapsed();

        let started = Instant::now();
        let response = service.clone().oneshot(call("/pkg.Svc/Slow", Some("100m"))).await;
        assert_eq!(code(&response.unwrap()), Some("4"));
        let took = elapsed(started);
        assert!(took >= Duration::from_millis(90) && took < Duration::from_millis(390), "{took:?}");

        let started = Instant::now();
        let response = service.clone().oneshot(call("/pkg.Svc/Slow", Some("1H"))).await;
        assert_eq!(code(&response.unwrap()), Some("4"));
        assert!(elapsed(started) >= Duration::from_millis(400));

        // A malformed timeout is ignored: the server's bound applies.
        let started = Instant::now();
        let response = service.oneshot(call("/pkg.Svc/Slow", Some("soon"))).await;
        assert_eq!(code(&response.unwrap()), Some("4"));
        assert!(elapsed(started) >= Duration::from_millis(400));

        // No bound at all: the call waits for its handler.
        let unbounded = OverloadLayer::new(4, None).layer(blocking(released));
        let call = tokio::spawn(unbounded.oneshot(call("/pkg.Svc/Slow", None)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!call.is_finished());
        release.send(true).unwrap();
        assert_eq!(code(&call.await.unwrap().unwrap()), None);
    }
}
