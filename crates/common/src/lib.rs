//! The server plumbing every binary of the pair shares: settings, telemetry, metrics,
//! database pool and migrations, the server host (health, reflection, layers, shutdown),
//! admin authorization. Wire types live in `proto`, TLS and secrets in `security`.

/// Admin-RPC authorization: bearer token and/or allowed mutual-TLS client identities.
pub mod auth;
/// Database pool construction, per-schema migrations and "is the database down?" checks.
pub mod db;
/// The event log of a schema's transactional outbox: relay, WatchEvents streams, retention.
pub mod events;
/// What the layers watching gRPC calls share: the served methods' names and the call's end.
pub mod grpc_call;
/// `<binary> healthcheck`: asks the own grpc.health.v1, exits 0 when SERVING (container probe).
pub mod healthcheck;
/// The one server host of every binary: listeners, health, layers, bounded shutdown.
pub mod host;
/// Prometheus `/metrics` endpoint, per-method gRPC server metrics and registration helpers.
pub mod metrics;
/// Overload protection: concurrency limit, call deadlines, HTTP/2 and message-size limits.
pub mod overload;
/// Reads from a replica within a staleness bound (`READ_DATABASE_URL`).
pub mod replica;
/// Retention rounds: batches of old history removed every interval, by any replica.
pub mod retention;
/// gRPC server bootstrap: reflection, health and database-driven readiness.
pub mod server;
/// Command-line and environment settings shared by every server.
pub mod settings;
/// Graceful shutdown on SIGTERM or Ctrl-C.
pub mod shutdown;
/// Global `tracing` subscriber setup for servers and tests.
pub mod telemetry;
