//! Ends calls at shutdown: a tower layer that, once its `streams` signal fires, ends every
//! response body still open (long-lived streams such as health `Watch`) with `UNAVAILABLE`,
//! and once its `calls` signal fires also answers every call whose handler has not answered
//! yet. Without it a server waits for its clients: tonic's graceful shutdown lasts until the
//! last stream ends, and a load balancer's Watch stream never does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

/// What clients are told when the server ends their call.
const SHUTTING_DOWN: &str = "server shutting down; retry on another replica";

/// The two moments of a shutdown the layer acts on.
#[derive(Clone, Debug, Default)]
pub struct Ending {
    /// Fires when open streams must end (the server no longer accepts connections).
    pub streams: CancellationToken,
    /// Fires when calls still running must be answered (the grace is over).
    pub calls: CancellationToken,
}

/// Tower layer ending streams and calls as [`Ending`] says.
#[derive(Clone, Debug)]
pub struct EndingLayer {
    ending: Ending,
}

impl EndingLayer {
    /// A layer acting on `ending`.
    pub fn new(ending: Ending) -> Self {
        Self { ending }
    }
}

impl<S> Layer<S> for EndingLayer {
    type Service = EndingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EndingService { inner, ending: self.ending.clone() }
    }
}

/// Service produced by [`EndingLayer`].
#[derive(Clone, Debug)]
pub struct EndingService<S> {
    inner: S,
    ending: Ending,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for EndingService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<EndingBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
            ending: Some(self.ending.clone()),
            calls_over: None,
        }
    }
}

pin_project! {
    /// Future of [`EndingService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        ending: Option<Ending>,
        // Made on the first poll that must wait: a call answered at once costs nothing.
        calls_over: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<EndingBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            let ending = this.ending.take().unwrap_or_default();
            return Poll::Ready(result.map(|response| {
                response.map(|body| EndingBody::Open {
                    body,
                    streams_over: ending.streams.cancelled_owned(),
                })
            }));
        }
        let Some(ending) = this.ending.as_ref() else { return Poll::Pending };
        let calls_over =
            this.calls_over.get_or_insert_with(|| Box::pin(ending.calls.clone().cancelled_owned()));
        ready!(calls_over.as_mut().poll(cx));
        // The grace is over: answer now; dropping the handler's future rolls its work back.
        Poll::Ready(Ok(Status::unavailable(SHUTTING_DOWN).into_http()))
    }
}

pin_project! {
    /// Response body of [`EndingService`]: the handler's, ended with `UNAVAILABLE` trailers
    /// when the streams signal fires first; or none (a trailers-only answer).
    #[project = EndingBodyProj]
    pub enum EndingBody<B> {
        Open {
            #[pin]
            body: B,
            #[pin]
            streams_over: WaitForCancellationFutureOwned,
        },
        Ended,
    }
}

// Not derived: a derive would demand `B: Default`, which response bodies need not be.
#[allow(clippy::derivable_impls)]
impl<B> Default for EndingBody<B> {
    fn default() -> Self {
        Self::Ended
    }
}

impl<B: Body> Body for EndingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let EndingBodyProj::Open { body, streams_over } = self.as_mut().project() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = body.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(streams_over.poll(cx));
        self.set(Self::Ended);
        let mut trailers = HeaderMap::new();
        // A fixed ASCII message: adding it cannot fail.
        let _ = Status::unavailable(SHUTTING_DOWN).add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Open { body, .. } => body.is_end_stream(),
            Self::Ended => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Open { body, .. } => body.size_hint(),
            Self::Ended => SizeHint::with_exact(0),
        }
    }
}
