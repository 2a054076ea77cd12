//! gRPC connections shared by every worker: a few HTTP/2 connections, opened once and reused
//! for every call (a connection per call would measure connection set-up, not the service).

use std::time::Duration;

use proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use proto::order::v1::order_service_client::OrderServiceClient;

use crate::lanes;
pub use crate::transport::{Conn, Transport};

/// Connections to one server, or to the replicas of one (a comma-separated URL list); worker
/// `i` uses connection `i % len`, and the connections alternate between the replicas, so
/// consecutive workers land on different ones.
#[derive(Debug, Clone)]
pub struct Channels {
    url: String,
    channels: Vec<Conn>,
}

impl Channels {
    /// Opens `count` (at least one) connections to each server of `url` over the default
    /// transport, failing if any cannot connect; calls give up by themselves after `deadline`
    /// plus a grace.
    pub async fn connect(url: &str, count: usize, deadline: Duration) -> anyhow::Result<Self> {
        Self::connect_with(url, count, Transport::default(), deadline).await
    }

    /// [`Channels::connect`] over `transport`.
    pub async fn connect_with(
        url: &str,
        count: usize,
        transport: Transport,
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        let servers = replicas(url)?;
        let total = count.max(1) * servers.len();
        let mut channels = Vec::with_capacity(total);
        for i in 0..total {
            // Opened on lane i, so its connection task runs where its workers will.
            let url = servers[i % servers.len()].to_owned();
            let conn =
                lanes::spawn(i, async move { Conn::connect(&url, transport, deadline).await });
            channels.push(conn.await??);
        }
        Ok(Self { url: url.to_owned(), channels })
    }

    /// The URL (or list) the connections were opened to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether there are none (never, once connected).
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The connection of slot `slot` (a cheap handle onto the shared connection).
    pub fn channel(&self, slot: usize) -> Conn {
        self.channels[slot % self.channels.len()].clone()
    }

    /// An inventory client on slot `slot`'s connection.
    pub fn inventory(&self, slot: usize) -> InventoryServiceClient<Conn> {
        InventoryServiceClient::new(self.channel(slot))
    }

    /// An order client on slot `slot`'s connection.
    pub fn order(&self, slot: usize) -> OrderServiceClient<Conn> {
        OrderServiceClient::new(self.channel(slot))
    }
}

/// The servers of a comma-separated URL list, in order; an empty entry is an error.
pub fn replicas(list: &str) -> anyhow::Result<Vec<&str>> {
    let servers: Vec<&str> = list.split(',').map(str::trim).collect();
    if servers.iter().any(|s| s.is_empty()) {
        anyhow::bail!("{list:?}: an empty server address in the list");
    }
    Ok(servers)
}

/// A request with a deadline (sent as `grpc-timeout`, enforced by the server).
pub fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_list_names_each_replica_once_in_order() {
        assert_eq!(replicas("http://a:1").unwrap(), ["http://a:1"]);
        assert_eq!(replicas("http://a:1, http://b:2").unwrap(), ["http://a:1", "http://b:2"]);
        assert!(replicas("http://a:1,,http://b:2").is_err());
        assert!(replicas("").is_err());
    }

    #[tokio::test]
    async fn connections_alternate_between_the_replicas() {
        let listeners = [
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let list = format!("http://{},http://{}", addrs[0], addrs[1]);
        // Tonic's channel connects without a handshake answer from the peer.
        let channels =
            Channels::connect_with(&list, 2, Transport::Tonic, Duration::from_secs(1)).await;
        let channels = channels.unwrap();
        assert_eq!(channels.len(), 4);
        for (i, listener) in listeners.iter().enumerate() {
            for _ in 0..2 {
                let accepted =
                    tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
                assert!(accepted.is_ok(), "replica {i} did not get its two connections");
            }
        }
    }
}
