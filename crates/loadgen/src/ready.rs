//! Helpers for `scripts/bench`: free loopback ports for the servers, and waiting until a
//! server reports SERVING on `grpc.health.v1`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// `count` distinct loopback ports that were free a moment ago (all bound at once, then
/// released, so they differ from each other).
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

/// Polls `addr` (host:port) until its health service answers SERVING for service `""`.
pub async fn wait_serving(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(1));
    loop {
        let last = match endpoint.connect().await {
            Ok(channel) => {
                let req = HealthCheckRequest { service: String::new() };
                match HealthClient::new(channel).check(req).await {
                    Ok(resp) if resp.get_ref().status() == ServingStatus::Serving => return Ok(()),
                    Ok(resp) => format!("status {:?}", resp.get_ref().status()),
                    Err(status) => format!("health call failed: {status}"),
                }
            }
            Err(e) => format!("cannot connect: {e}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!("{addr} not SERVING within {} s ({last})", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(5).unwrap();
        assert_eq!(ports.len(), 5);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert!(ports.iter().all(|&p| p > 0));
    }

    #[tokio::test]
    async fn a_closed_port_times_out() {
        let port = free_ports(1).unwrap()[0];
        let err = wait_serving(&format!("127.0.0.1:{port}"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not SERVING"), "{err}");
    }
}
