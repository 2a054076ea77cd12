//! gRPC connections shared by every worker: a few HTTP/2 connections, opened once and reused
//! for every call (a connection per call would measure connection set-up, not the service).

use std::time::Duration;

use proto::inventory::v1::inventory_service_client::InventoryServiceClient;
use proto::order::v1::order_service_client::OrderServiceClient;

use crate::lanes;
pub use crate::transport::{Conn, Transport};

/// Connections to one server; worker `i` uses connection `i % len`.
#[derive(Debug, Clone)]
pub struct Channels {
    url: String,
    channels: Vec<Conn>,
}

impl Channels {
    /// Opens `count` (at least one) connections to `url` over the default transport, failing
    /// if any cannot connect; calls give up by themselves after `deadline` plus a grace.
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
        let mut channels = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            // Opened on lane i, so its connection task runs where its workers will.
            let url = url.to_owned();
            let conn =
                lanes::spawn(i, async move { Conn::connect(&url, transport, deadline).await });
            channels.push(conn.await??);
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

/// A request with a deadline (sent as `grpc-timeout`, enforced by the server).
pub fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}
