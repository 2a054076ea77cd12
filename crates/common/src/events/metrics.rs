//! The event log's metrics, one set per server (`inventory_events_published_total`, ...).

use prometheus::{HistogramVec, IntCounterVec, IntGauge};

use crate::metrics::{
    register_counter_vec, register_gauge, register_histogram_vec, register_int_gauge,
};

/// Lag buckets in events, from caught up to far behind.
const LAG_BUCKETS: &[f64] = &[0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

/// The metrics of one server's event log.
#[derive(Debug, Clone)]
pub struct EventMetrics {
    /// Events the relay numbered into the log, by type.
    pub published: IntCounterVec,
    /// The newest position this server has seen.
    pub position: IntGauge,
    /// Age of the oldest outbox row still waiting for the relay, in seconds.
    pub oldest_pending: prometheus::Gauge,
    /// WatchEvents streams open on this server.
    pub watchers: IntGauge,
    /// How far behind the newest event each watcher's last sent event was.
    pub lag: HistogramVec,
    /// Streams that ended other than by the consumer, by reason.
    pub ended: IntCounterVec,
}

/// The metric names of one server (literals, so the monitoring checks find them).
#[derive(Debug, Clone, Copy)]
pub struct MetricNames {
    published: &'static str,
    position: &'static str,
    oldest_pending: &'static str,
    watchers: &'static str,
    lag: &'static str,
    ended: &'static str,
}

/// The inventory server's event metrics.
pub const INVENTORY_METRICS: MetricNames = MetricNames {
    published: "inventory_events_published_total",
    position: "inventory_event_log_position",
    oldest_pending: "inventory_event_outbox_oldest_seconds",
    watchers: "inventory_event_watchers",
    lag: "inventory_event_watcher_lag_events",
    ended: "inventory_event_streams_ended_total",
};

/// The order server's event metrics.
pub const ORDER_METRICS: MetricNames = MetricNames {
    published: "order_events_published_total",
    position: "order_event_log_position",
    oldest_pending: "order_event_outbox_oldest_seconds",
    watchers: "order_event_watchers",
    lag: "order_event_watcher_lag_events",
    ended: "order_event_streams_ended_total",
};

impl EventMetrics {
    /// The metrics named `names`, registered once per process.
    pub fn new(names: &MetricNames) -> Self {
        let metrics = Self {
            published: register_counter_vec(
                names.published,
                "Events the relay numbered into the event log, by type.",
                &["type"],
            ),
            position: register_int_gauge(
                names.position,
                "The newest event position this server has seen.",
            ),
            oldest_pending: register_gauge(
                names.oldest_pending,
                "Age of the oldest outbox row the relay has not numbered yet (0: none).",
            ),
            watchers: register_int_gauge(
                names.watchers,
                "WatchEvents streams open on this server.",
            ),
            lag: register_histogram_vec(
                names.lag,
                "Events between each watcher's last sent event and the newest one, per batch sent.",
                &[],
                LAG_BUCKETS,
            ),
            ended: register_counter_vec(
                names.ended,
                "WatchEvents streams the server ended, by reason: too_slow, out_of_range, \
                 too_many_watchers, error.",
                &["reason"],
            ),
        };
        for reason in ["too_slow", "out_of_range", "too_many_watchers", "error"] {
            metrics.ended.with_label_values(&[reason]);
        }
        metrics
    }

    /// Counts every type in `types` at zero, so rate() sees each from the start.
    pub fn init_types(&self, types: &[&str]) {
        for t in types {
            self.published.with_label_values(&[t]);
        }
    }
}
