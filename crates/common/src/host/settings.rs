//! How a server stops and how long its connections live, flattened into every server's
//! settings (same names everywhere).

use std::time::Duration;

/// Shutdown and connection-age settings of a gRPC server.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// After SIGTERM, how long the server keeps serving while its readiness says NOT_SERVING,
    /// so load balancers take it out before it stops accepting calls, in milliseconds.
    #[arg(long, env = "SHUTDOWN_DRAIN_DELAY_MS", default_value_t = 5_000)]
    pub shutdown_drain_delay_ms: u64,

    /// Then how long calls in flight get to finish, in milliseconds; long-lived streams
    /// (health Watch) are ended at once. Calls still running after it are answered
    /// UNAVAILABLE and their connections closed.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Longest a client connection lives before the server asks the client to reconnect
    /// (HTTP/2 GOAWAY), so long-lived connections spread over new replicas, in milliseconds.
    /// 0: no limit.
    #[arg(long, env = "MAX_CONNECTION_AGE_MS", default_value_t = 300_000)]
    pub max_connection_age_ms: u64,

    /// After that, how long the connection's calls in flight get before it is closed, in ms.
    #[arg(long, env = "MAX_CONNECTION_AGE_GRACE_MS", default_value_t = 30_000)]
    pub max_connection_age_grace_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            shutdown_drain_delay_ms: 5_000,
            shutdown_grace_ms: 10_000,
            max_connection_age_ms: 300_000,
            max_connection_age_grace_ms: 30_000,
        }
    }
}

impl ShutdownSettings {
    /// No drain delay, a short grace: for servers no load balancer sits in front of (tests,
    /// the development stand-ins).
    pub fn immediate() -> Self {
        Self { shutdown_drain_delay_ms: 0, shutdown_grace_ms: 2_000, ..Self::default() }
    }

    /// The drain delay.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_delay_ms)
    }

    /// The grace of calls in flight.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The connection age limits on `server`.
    pub fn configure<L>(&self, server: tonic::transport::Server<L>) -> tonic::transport::Server<L> {
        if self.max_connection_age_ms == 0 {
            return server;
        }
        server
            .max_connection_age(Duration::from_millis(self.max_connection_age_ms))
            .max_connection_age_grace(Duration::from_millis(self.max_connection_age_grace_ms))
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
        shutdown: ShutdownSettings,
    }

    #[test]
    fn clap_defaults_match_default() {
        let parsed = TestSettings::try_parse_from(["server"]).unwrap().shutdown;
        assert_eq!(parsed, ShutdownSettings::default());
        let set = TestSettings::try_parse_from([
            "server",
            "--shutdown-drain-delay-ms",
            "0",
            "--shutdown-grace-ms",
            "250",
        ])
        .unwrap()
        .shutdown;
        assert_eq!((set.drain_delay(), set.grace()), (Duration::ZERO, Duration::from_millis(250)));
    }
}
