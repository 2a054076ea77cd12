//! An open WatchEvents stream of either service: both answer `events.v1.Event`s, each wrapped
//! in their own package's `WatchEventsResponse`.

use std::time::Duration;

use proto::events::v1::Event;
use proto::inventory::v1 as inventory_pb;
use proto::order::v1 as order_pb;
use tonic::Streaming;

use crate::error::CliError;

/// An open WatchEvents stream, read with [`EventStream::next`].
#[derive(Debug)]
pub struct EventStream {
    source: Source,
    /// The URL called, for error reports.
    url: String,
    /// The call's deadline, for error reports.
    deadline: Duration,
}

#[derive(Debug)]
enum Source {
    Inventory(Streaming<inventory_pb::WatchEventsResponse>),
    Order(Streaming<order_pb::WatchEventsResponse>),
}

impl EventStream {
    /// The inventory service's stream, opened at `url`.
    pub fn inventory(
        stream: Streaming<inventory_pb::WatchEventsResponse>,
        url: &str,
        deadline: Duration,
    ) -> Self {
        Self { source: Source::Inventory(stream), url: url.to_owned(), deadline }
    }

    /// The order service's stream, opened at `url`.
    pub fn order(
        stream: Streaming<order_pb::WatchEventsResponse>,
        url: &str,
        deadline: Duration,
    ) -> Self {
        Self { source: Source::Order(stream), url: url.to_owned(), deadline }
    }

    /// The next event, waiting for it as long as it takes; `None` when the server closed the
    /// stream without an error. A response without an event (nothing to print) is skipped.
    pub async fn next(&mut self) -> Result<Option<Event>, CliError> {
        loop {
            let answer = match &mut self.source {
                Source::Inventory(stream) => stream.message().await.map(|r| r.map(|r| r.event)),
                Source::Order(stream) => stream.message().await.map(|r| r.map(|r| r.event)),
            };
            match answer {
                Ok(Some(Some(event))) => return Ok(Some(event)),
                Ok(Some(None)) => {}
                Ok(None) => return Ok(None),
                Err(status) => return Err(CliError::rpc(status, &self.url, self.deadline)),
            }
        }
    }
}
