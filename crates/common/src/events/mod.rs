//! The event log of a service's schema (its transactional outbox, see the `event_outbox`
//! migrations): the relay that numbers committed outbox rows into the log, the watchers that
//! stream the log to `WatchEvents` callers, and retention of old events.
//!
//! Both services keep the same three tables in their own schema (`event_outbox`, `events`,
//! `event_log`); only the schema name and the event types differ.

mod log;
mod metrics;
mod payload;
mod relay;
mod settings;
mod watch;

pub use log::{EventLog, Head, LogRows, StoredEvent};
pub use metrics::{EventMetrics, INVENTORY_METRICS, MetricNames, ORDER_METRICS};
pub use payload::to_event;
pub use relay::run_relay;
pub use settings::EventSettings;
pub use watch::{EventStream, WatchError, WatchRequest, Watchers, check_types};

/// What tells one server's events apart.
#[derive(Debug, Clone, Copy)]
pub struct EventKinds {
    /// The server's metric names.
    pub metrics: &'static MetricNames,
    /// The types its outbox writes.
    pub types: &'static [&'static str],
    /// The ErrorInfo domain of its errors (`inventory.v1`).
    pub domain: &'static str,
    /// How its log rows stand for events.
    pub rows: LogRows,
}

/// Starts the relay of `schema`'s log on `host` (stopped with the host's background work)
/// and returns the watchers WatchEvents opens streams with.
pub fn start(
    host: &crate::host::Host,
    pool: sqlx::PgPool,
    schema: &'static str,
    settings: &EventSettings,
    kinds: EventKinds,
) -> Watchers {
    let log = EventLog::new(pool, schema, kinds.rows);
    let metrics = EventMetrics::new(kinds.metrics);
    metrics.init_types(kinds.types);
    let (head_tx, head_rx) = tokio::sync::watch::channel(Head::default());
    host.spawn(run_relay(
        log.clone(),
        settings.relay_interval(),
        settings.events_relay_batch,
        metrics.clone(),
        head_tx,
        host.stop_token(),
    ));
    Watchers::new(log, settings, metrics, kinds.types, kinds.domain, head_rx, host.stop_token())
}

/// The types the inventory service's outbox writes.
pub const INVENTORY_TYPES: &[&str] = &[
    "stock.changed",
    "reservation.created",
    "reservation.committed",
    "reservation.cancelled",
    "reservation.expired",
    "stock.returned",
    "stock.low",
];

/// The types the order service's outbox writes.
pub const ORDER_TYPES: &[&str] = &[
    "order.created",
    "order.reserved",
    "order.confirmed",
    "order.rejected",
    "order.payment_failed",
    "order.cancelled",
    "order.payment_status_changed",
    "order.withdrawn",
    "order_return.created",
    "order_return.restocked",
    "order_return.completed",
    "order_return.needs_operator",
];
