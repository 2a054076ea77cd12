//! Transport security and credentials shared by the servers and their clients (shopctl,
//! the order service's peer clients, the tests): TLS settings and configs, PEM loading, the
//! healthcheck's pinned-certificate verifier, and secrets that never show in logs.

/// A secret setting (a token): usable, but never shown by `{:?}`.
mod secret;
/// TLS settings of servers and peer clients, PEM loading, the healthcheck's TLS client.
pub mod tls;

pub use secret::Secret;
