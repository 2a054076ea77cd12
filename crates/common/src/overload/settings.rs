//! The overload settings, flattened into each server's settings (same names in both).

use std::time::Duration;

use super::OverloadLayer;

/// The largest response a server sends: what a default gRPC client accepts (4 MiB). Larger
/// responses are refused (`OUT_OF_RANGE`) rather than sent to a client that drops them.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Concurrency, deadline, HTTP/2 and message-size limits of a gRPC server.
#[derive(clap::Args, Clone, Debug)]
pub struct OverloadSettings {
    /// Most calls the server handles at once; a call beyond it is refused at once with
    /// RESOURCE_EXHAUSTED (health and reflection are exempt).
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,

    /// Longest the server works on a call, in milliseconds, whatever the client's
    /// `grpc-timeout` says (the shorter wins); past it the call ends DEADLINE_EXCEEDED.
    /// 0: no server-side bound.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Largest request message accepted, in bytes; a larger one is refused with OUT_OF_RANGE.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub max_message_bytes: usize,

    /// Most concurrent HTTP/2 streams (calls) one client connection may open.
    #[arg(long, env = "HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 512)]
    pub http2_max_concurrent_streams: u32,

    /// How often the server pings an idle HTTP/2 connection, in milliseconds (0: never).
    #[arg(long, env = "HTTP2_KEEPALIVE_INTERVAL_MS", default_value_t = 30_000)]
    pub http2_keepalive_interval_ms: u64,

    /// How long the server waits for a ping's answer before closing the connection, in ms.
    #[arg(long, env = "HTTP2_KEEPALIVE_TIMEOUT_MS", default_value_t = 10_000)]
    pub http2_keepalive_timeout_ms: u64,
}

impl Default for OverloadSettings {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 256,
            request_timeout_ms: 30_000,
            max_message_bytes: 256 * 1024,
            http2_max_concurrent_streams: 512,
            http2_keepalive_interval_ms: 30_000,
            http2_keepalive_timeout_ms: 10_000,
        }
    }
}

impl OverloadSettings {
    /// The concurrency limit and deadline layer; put it inside `GrpcMetricsLayer` so the
    /// refused calls are counted with their codes.
    pub fn layer(&self) -> OverloadLayer {
        let timeout =
            (self.request_timeout_ms > 0).then(|| Duration::from_millis(self.request_timeout_ms));
        OverloadLayer::new(self.max_concurrent_requests.max(1), timeout)
    }

    /// The HTTP/2 limits: streams per connection and keepalive pings, so a dead client's
    /// connection (and its calls) is noticed and closed.
    pub fn configure<L>(&self, server: tonic::transport::Server<L>) -> tonic::transport::Server<L> {
        let keepalive = (self.http2_keepalive_interval_ms > 0)
            .then(|| Duration::from_millis(self.http2_keepalive_interval_ms));
        server
            .max_concurrent_streams(self.http2_max_concurrent_streams.max(1))
            .http2_keepalive_interval(keepalive)
            .http2_keepalive_timeout(Some(Duration::from_millis(
                self.http2_keepalive_timeout_ms.max(1),
            )))
    }

    /// Largest request message, for the services' `max_decoding_message_size`.
    pub fn max_request_bytes(&self) -> usize {
        self.max_message_bytes.max(1)
    }

    /// Largest response message, for the services' `max_encoding_message_size`.
    pub fn max_response_bytes(&self) -> usize {
        MAX_RESPONSE_BYTES.max(self.max_request_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct TestSettings {
        #[command(flatten)]
        overload: OverloadSettings,
    }

    #[test]
    fn clap_defaults_match_default() {
        let parsed = TestSettings::try_parse_from(["server"]).unwrap().overload;
        let default = OverloadSettings::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
    }

    #[test]
    fn zero_limits_are_clamped() {
        let settings = TestSettings::try_parse_from([
            "server",
            "--max-concurrent-requests",
            "0",
            "--max-message-bytes",
            "0",
        ])
        .unwrap()
        .overload;
        assert_eq!(settings.max_request_bytes(), 1);
        assert_eq!(settings.max_response_bytes(), MAX_RESPONSE_BYTES);
        assert_eq!(settings.layer().limit(), 1);
    }
}
