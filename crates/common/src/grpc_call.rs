//! What every layer that watches a gRPC call needs (the metrics layer and the trace layers):
//! which methods a server serves, and the status code a call ends with.
//!
//! - [`MethodTable`]: the served methods' names, read from the service descriptors; every
//!   other path is `unknown`, so no caller can grow metric families or span names by
//!   inventing method names.
//! - [`WatchedFuture`] / [`WatchedBody`]: the call's end handed to a [`CallEnd`] exactly
//!   once. The code is only known once the response is finished: tonic puts it in the headers
//!   of a trailers-only response (errors) and otherwise in the trailers after the last
//!   message; a response dropped unfinished (the client went away, the connection broke) ends
//!   as CANCELLED.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prost::Message as _;
use tonic::Code;

/// The service and method name of every path that is not a served method.
pub const UNKNOWN_LABEL: &str = "unknown";

/// Services every server of the pair answers besides its own (health and reflection).
pub const STANDARD_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The names of one served method, shared by every call of it.
#[derive(Clone, Debug)]
pub struct MethodNames {
    /// Full service name, e.g. `inventory.v1.InventoryService`.
    pub service: Arc<str>,
    /// Method name, e.g. `ReserveInventory`.
    pub method: Arc<str>,
}

/// The methods a server serves, by request path (`/package.Service/Method`).
#[derive(Clone, Debug)]
pub struct MethodTable {
    known: Arc<HashMap<String, MethodNames>>,
    unknown: MethodNames,
}

impl MethodTable {
    /// The methods of `services` (full names) and of [`STANDARD_SERVICES`], read from the
    /// descriptors of every proto the pair and tonic's health and reflection services define;
    /// a name found there has none.
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
            // build defect, and costs the names of its services only.
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
                    let service_name: Arc<str> = name.as_str().into();
                    for method in &service.method {
                        let names = MethodNames {
                            service: service_name.clone(),
                            method: method.name().into(),
                        };
                        known.insert(format!("/{name}/{}", method.name()), names);
                    }
                }
            }
        }
        let unknown = MethodNames { service: UNKNOWN_LABEL.into(), method: UNKNOWN_LABEL.into() };
        Self { known: Arc::new(known), unknown }
    }

    /// The names of a call to `path`: a served method's, else [`UNKNOWN_LABEL`] twice.
    pub fn names(&self, path: &str) -> &MethodNames {
        self.known.get(path).unwrap_or(&self.unknown)
    }

    /// How many methods are served.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether none is (never, with the standard services).
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

/// What happens when a watched call ends: called once, with the code the caller gets.
pub trait CallEnd {
    /// The code of a call whose inner service failed without any response (a broken
    /// connection, or a layer outside the router failing).
    const WITHOUT_RESPONSE: Code;

    /// Records the end of the call.
    fn end(self, code: Code);
}

/// A call not ended yet; ends as CANCELLED when dropped before its end was seen.
struct Pending<O: CallEnd>(Option<O>);

impl<O: CallEnd> Pending<O> {
    fn end(&mut self, code: Code) {
        if let Some(watcher) = self.0.take() {
            watcher.end(code);
        }
    }
}

impl<O: CallEnd> Drop for Pending<O> {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

pin_project! {
    /// A service's response future whose call `O` watches; the response body is wrapped
    /// so that the end is seen when its trailers pass.
    pub struct WatchedFuture<F, O: CallEnd> {
        #[pin]
        inner: F,
        call: Pending<O>,
    }
}

impl<F, O: CallEnd> WatchedFuture<F, O> {
    /// `inner`, the response of the call `watcher` watches.
    pub fn new(inner: F, watcher: O) -> Self {
        Self { inner, call: Pending(Some(watcher)) }
    }
}

impl<F, O, ResBody, E> Future for WatchedFuture<F, O>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    O: CallEnd,
{
    type Output = Result<Response<WatchedBody<ResBody, O>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        // The body (or this end) takes the call over; a future polled again after it was
        // ready (which tower forbids) has nothing left to watch.
        let mut call = std::mem::replace(this.call, Pending(None));
        Poll::Ready(match result {
            Ok(response) => {
                // Trailers-only response: the status is already final.
                if let Some(code) = status_in(response.headers()) {
                    call.end(code);
                }
                Ok(response.map(|inner| WatchedBody { inner, call }))
            }
            Err(err) => {
                call.end(O::WITHOUT_RESPONSE);
                Err(err)
            }
        })
    }
}

pin_project! {
    /// Response body of a watched call; ends the call when its trailers pass.
    pub struct WatchedBody<B, O: CallEnd> {
        #[pin]
        inner: B,
        call: Pending<O>,
    }
}

impl<B: Body, O: CallEnd> Body for WatchedBody<B, O> {
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
            // response: either way no status went through.
            Some(Err(_)) | None => Some(Code::Unknown),
        };
        if let Some(code) = code {
            this.call.end(code);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_the_methods_served() {
        let table = MethodTable::new(&["inventory.v1.InventoryService"]);
        let names = |path: &str| {
            let names = table.names(path);
            (names.service.to_string(), names.method.to_string())
        };
        let pair = |service: &str, method: &str| (service.to_owned(), method.to_owned());
        assert_eq!(
            names("/inventory.v1.InventoryService/ReserveInventory"),
            pair("inventory.v1.InventoryService", "ReserveInventory")
        );
        assert_eq!(names("/grpc.health.v1.Health/Watch"), pair("grpc.health.v1.Health", "Watch"));
        assert_eq!(
            names("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            pair("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo")
        );
        // Another service of the pair, invented names and paths that are no gRPC call at all
        // share one pair of names.
        for path in [
            "/order.v1.OrderService/CreateOrder",
            "/inventory.v1.InventoryService/NoSuchMethod",
            "/evil1.Svc/M1a2b",
            "/",
            "",
            "/metrics",
            "/inventory.v1.InventoryService/ReserveInventory/extra",
        ] {
            assert_eq!(names(path), pair(UNKNOWN_LABEL, UNKNOWN_LABEL), "{path}");
        }
        // Every RPC of the contract resolves (the descriptors are the source of truth).
        assert_eq!(table.len(), 14 + 2 + 1 + 1, "{:?}", table.known.keys());
    }
}
