//! Wire types for every proto of the pair, and the plumbing both servers share: settings,
//! telemetry, metrics, database pool and migrations, server bootstrap and shutdown.

/// Admin-RPC authorization: bearer token and/or allowed mutual-TLS client identities.
pub mod auth;
/// Database pool construction, per-schema migrations and "is the database down?" checks.
pub mod db;
/// `<binary> healthcheck`: asks the own grpc.health.v1, exits 0 when SERVING (container probe).
pub mod healthcheck;
/// The one server host of every binary: listeners, health, layers, bounded shutdown.
pub mod host;
/// Prometheus `/metrics` endpoint, per-method gRPC server metrics and registration helpers.
pub mod metrics;
/// Overload protection: concurrency limit, call deadlines, HTTP/2 and message-size limits.
pub mod overload;
/// Generated protobuf and gRPC types for every proto of the pair.
pub mod proto;
/// gRPC server bootstrap: reflection, health and database-driven readiness.
pub mod server;
/// Command-line and environment settings shared by every server.
pub mod settings;
/// Graceful shutdown on SIGTERM or Ctrl-C.
pub mod shutdown;
/// Rich gRPC errors: BadRequest field violations and ResourceInfo, built one way.
pub mod status;
/// Global `tracing` subscriber setup for servers and tests.
pub mod telemetry;
/// TLS settings of servers and peer clients, PEM loading, the healthcheck's TLS client.
pub mod tls;
