//! The run's event consumers: one task per service watches its event log from position 0 for
//! the whole run, the way a downstream consumer would, while the servers are killed and
//! restarted and PostgreSQL crashes. Whenever a stream ends or a connect fails it pauses and
//! resumes from the last position it handled, until told to stop. It checks as it goes that
//! each position is the one after the last (a gap or a repeat is a [`Violation::EventGap`]),
//! and keeps every event for the replay check ([`crate::invariants::replay`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use proto::events::v1::Event;
use proto::inventory::v1 as inv;
use proto::order::v1 as ord;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use super::stack::lock;
use crate::invariants::Violation;
use crate::invariants::replay::{self, Final};

/// Pause before reconnecting after a stream ended or a connect failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// What one consumer received and what it took.
#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// The service whose log it watched.
    pub service: &'static str,
    /// Events received, repeats included.
    pub received: u64,
    /// The last position it handled.
    pub last_position: u64,
    /// Streams it opened (or tried to) after the first.
    pub reconnects: u64,
    /// Why its streams ended, by gRPC code ("connect failed": no connection at all).
    pub ends: BTreeMap<String, u64>,
}

/// Where a consumer watches.
#[derive(Debug, Clone)]
enum Source {
    Inventory(SocketAddr),
    /// WatchEvents of the order service is an operator RPC: it takes the admin bearer token.
    Order {
        addr: SocketAddr,
        admin_token: String,
    },
}

impl Source {
    fn service(&self) -> &'static str {
        match self {
            Self::Inventory(_) => replay::INVENTORY,
            Self::Order { .. } => replay::ORDERS,
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Inventory(addr) | Self::Order { addr, .. } => *addr,
        }
    }
}

/// What a consumer keeps while it runs, shared with the run that waits for it.
#[derive(Debug, Default)]
struct Consumed {
    /// Every event handled, in position order, each once.
    events: Vec<Event>,
    stats: ConsumerStats,
    violations: Vec<Violation>,
}

impl Consumed {
    /// Takes `event` if it is the next position; a gap is noted and taken, a repeat noted
    /// and dropped (the first copy stays).
    fn record(&mut self, event: Event) {
        self.stats.received += 1;
        let (last, got) = (self.stats.last_position, event.position);
        if got != last + 1 {
            let service = self.stats.service;
            self.violations.push(Violation::EventGap { service, expected: last + 1, got });
        }
        if got > last {
            self.stats.last_position = got;
            self.events.push(event);
        }
    }
}

/// One running consumer.
struct Consumer {
    consumed: Arc<Mutex<Consumed>>,
    task: JoinHandle<()>,
}

impl Consumer {
    fn start(source: Source, stop: watch::Receiver<bool>) -> Self {
        let stats = ConsumerStats { service: source.service(), ..Default::default() };
        let consumed = Arc::new(Mutex::new(Consumed { stats, ..Default::default() }));
        let task = tokio::spawn(consume(source, Arc::clone(&consumed), stop));
        Self { consumed, task }
    }

    fn last_position(&self) -> u64 {
        lock(&self.consumed).stats.last_position
    }
}

/// What the consumers handed over once stopped.
pub(super) struct Received {
    /// The inventory's events, in position order.
    pub(super) inventory: Vec<Event>,
    /// The order service's events, in position order.
    pub(super) orders: Vec<Event>,
    /// Per consumer, what it received and what it took.
    pub(super) stats: Vec<ConsumerStats>,
    /// Gaps and repeats seen, and a consumer that did not catch up.
    pub(super) violations: Vec<Violation>,
}

/// The two consumers of a run; dropping them stops them.
pub(super) struct Consumers {
    inventory: Consumer,
    orders: Consumer,
    stop: watch::Sender<bool>,
}

impl Consumers {
    /// Starts watching both services from position 0.
    pub(super) fn start(inventory: SocketAddr, order: SocketAddr, admin_token: String) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        Self {
            inventory: Consumer::start(Source::Inventory(inventory), stop_rx.clone()),
            orders: Consumer::start(Source::Order { addr: order, admin_token }, stop_rx),
            stop,
        }
    }

    /// Waits until each consumer has handled its service's head in `db` (at most `timeout`
    /// in all; one that does not is a violation), then stops both and hands over what they
    /// received.
    pub(super) async fn finish(self, db: &Final, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        let targets = [(&self.inventory, db.inventory_head), (&self.orders, db.orders_head)];
        while targets.iter().any(|(c, head)| c.last_position() < *head) && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop.send(true);
        let mut violations = Vec::new();
        let mut stats = Vec::new();
        let mut logs = Vec::new();
        for (consumer, head) in [(self.inventory, db.inventory_head), (self.orders, db.orders_head)]
        {
            if let Err(err) = consumer.task.await {
                println!("an event consumer panicked: {err}");
            }
            let consumed = std::mem::take(&mut *lock(&consumer.consumed));
            let reached = consumed.stats.last_position;
            if reached < head {
                let service = consumed.stats.service;
                violations.push(Violation::EventsNotCaughtUp { service, reached, head });
            }
            violations.extend(consumed.violations);
            stats.push(consumed.stats);
            logs.push(consumed.events);
        }
        let orders = logs.pop().unwrap_or_default();
        let inventory = logs.pop().unwrap_or_default();
        Received { inventory, orders, stats, violations }
    }
}

/// Follows `source` from position 0, resuming after every end, until `stop` turns true (or
/// its sender goes).
async fn consume(source: Source, consumed: Arc<Mutex<Consumed>>, mut stop: watch::Receiver<bool>) {
    let mut first = true;
    loop {
        let from = {
            let mut consumed = lock(&consumed);
            if !first {
                consumed.stats.reconnects += 1;
            }
            consumed.stats.last_position
        };
        first = false;
        let ended = tokio::select! {
            ended = follow(&source, from, &consumed) => ended,
            _ = stop.wait_for(|s| *s) => return,
        };
        *lock(&consumed).stats.ends.entry(ended).or_default() += 1;
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One stream of `source` after position `from`, recorded into `consumed`; returns why it
/// ended.
async fn follow(source: &Source, from: u64, consumed: &Mutex<Consumed>) -> String {
    let mut stream = match open(source, from).await {
        Ok(stream) => stream,
        Err(why) => return why,
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(Some(event)) => lock(consumed).record(event),
            Ok(None) => {
                let mut consumed = lock(consumed);
                let after = consumed.stats.last_position;
                consumed.violations.push(Violation::EventReplayMismatch {
                    service: source.service(),
                    subject: "WatchEvents".to_owned(),
                    problem: format!("a response without an event after position {after}"),
                });
                return "a response without an event".to_owned();
            }
            Err(status) => return ended(&status),
        }
    }
    "stream closed".to_owned()
}

/// A stream's end as the report counts it.
fn ended(status: &Status) -> String {
    format!("{:?}", status.code())
}

/// The events of one WatchEvents call.
type EventStream = BoxStream<'static, Result<Option<Event>, Status>>;

/// Opens a WatchEvents stream of `source` after position `from` on a fresh connection (the
/// last one may belong to a server killed since).
async fn open(source: &Source, from: u64) -> Result<EventStream, String> {
    let channel = connect(source.addr()).await.map_err(|_| "connect failed".to_owned())?;
    match source {
        Source::Inventory(_) => {
            let mut client = inv::inventory_service_client::InventoryServiceClient::new(channel);
            let request = inv::WatchEventsRequest { from_position: from, ..Default::default() };
            let stream = client.watch_events(request).await.map_err(|s| ended(&s))?.into_inner();
            Ok(stream.map(|item| item.map(|r| r.event)).boxed())
        }
        Source::Order { admin_token, .. } => {
            let mut client = ord::order_service_client::OrderServiceClient::new(channel);
            let mut request = tonic::Request::new(ord::WatchEventsRequest {
                from_position: from,
                ..Default::default()
            });
            let bearer = format!("Bearer {admin_token}").parse().map_err(|_| "bad admin token")?;
            request.metadata_mut().insert("authorization", bearer);
            let stream = client.watch_events(request).await.map_err(|s| ended(&s))?.into_inner();
            Ok(stream.map(|item| item.map(|r| r.event)).boxed())
        }
    }
}

/// A connection to `addr` whose HTTP/2 pings notice a peer that went away without a word.
async fn connect(addr: SocketAddr) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .connect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_and_a_repeat_are_violations_and_each_event_is_kept_once() {
        let stats = ConsumerStats { service: "inventory", ..Default::default() };
        let mut consumed = Consumed { stats, ..Default::default() };
        for position in [1, 2, 2, 4, 5] {
            consumed.record(Event { position, ..Default::default() });
        }
        let kept: Vec<u64> = consumed.events.iter().map(|e| e.position).collect();
        assert_eq!(kept, [1, 2, 4, 5]);
        assert_eq!((consumed.stats.received, consumed.stats.last_position), (5, 5));
        assert_eq!(
            consumed.violations,
            [
                Violation::EventGap { service: "inventory", expected: 3, got: 2 },
                Violation::EventGap { service: "inventory", expected: 3, got: 4 },
            ]
        );
        assert!(consumed.violations[0].to_string().contains("a repeat"));
        assert!(consumed.violations[1].to_string().contains("1 position(s) never sent"));
    }
}
