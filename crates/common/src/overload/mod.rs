//! Overload protection shared by both servers: a concurrency limit that refuses excess calls
//! at once (`RESOURCE_EXHAUSTED`) instead of queueing them, the caller's `grpc-timeout` (and a
//! server-side upper bound) enforced on every call, and the HTTP/2 and message-size limits of
//! the server builder, all from one set of settings.
//!
//! ```ignore
//! let server = settings.overload.configure(tonic::transport::Server::builder())
//!     .layer(common::metrics::GrpcMetricsLayer::new(&[SERVICE_NAME])) // outside: sees shed calls' codes
//!     .layer(settings.overload.layer());
//! ```

pub mod deadline;
mod layer;
mod settings;

pub use deadline::{Deadline, parse_grpc_timeout};
pub use layer::{OverloadLayer, OverloadService, ResponseFuture, is_exempt};
pub use settings::OverloadSettings;
