//! gRPC channels shared by every worker: a few HTTP/2 connections, opened once and reused for
//! every call (a channel per call would measure connection set-up, not the service).

use std::time::Duration;

use proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use proto::order::v1::order_service_client::OrderServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Connections to one server; worker `i` uses connection `i % len`.
#[derive(Debug, Clone)]
pub struct Channels {
    url: String,
    channels: Vec<Channel>,
}

impl Channels {
    /// Opens `count` (at least one) connections to `url`, failing if any cannot connect.
    pub async fn connect(url: &str, count: usize) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let mut channels = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to {url}: {e}"))?;
            channels.push(channel);
        }
        Ok(Self { url: url.to_owned(), channels })
    }

    /// The server's URL.
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
    pub fn channel(&self, slot: usize) -> Channel {
        self.channels[slot % self.channels.len()].clone()
    }

    /// An inventory client on slot `slot`'s connection.
    pub fn inventory(&self, slot: usize) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.channel(slot))
    }

    /// An order client on slot `slot`'s connection.
    pub fn order(&self, slot: usize) -> OrderServiceClient<Channel> {
        OrderServiceClient::new(self.channel(slot))
    }
}

/// A request with a deadline (sent as `grpc-timeout`, enforced on both sides).
pub fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}
