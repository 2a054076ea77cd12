//! Transport security: TLS and mutual TLS on every hop, admin-RPC authorization, order calls
//! bound to users, the healthcheck against TLS servers. Certificates are made at test time
//! (`system_tests::tls`).

mod admin;
mod holds;
mod labels;
mod parked;
mod transport;
mod user_binding;
