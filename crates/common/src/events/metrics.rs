//! The event log's metrics, named after the server (`inventory_events_published_total`, ...).

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

impl EventMetrics {
    /// The metrics of server `name` (`inventory`, `order`), registered once per process.
    pub fn new(name: &str) -> Self {
        let metrics = Self {
            published: register_counter_vec(
                &format!("{name}_events_published_total"),
                "Events the relay numbered into the event log, by type.",
                &["type"],
            ),
            position: register_int_gauge(
                &format!("{name}_event_log_position"),
                "The newest event position this server has seen.",
            ),
            oldest_pending: register_gauge(
                &format!("{name}_event_outbox_oldest_seconds"),
                "Age of the oldest outbox row the relay has not numbered yet (0: none).",
            ),
            watchers: register_int_gauge(
                &format!("{name}_event_watchers"),
                "WatchEvents streams open on this server.",
            ),
            lag: register_histogram_vec(
                &format!("{name}_event_watcher_lag_events"),
                "Events between each watcher's last sent event and the newest one, per batch sent.",
                &[],
                LAG_BUCKETS,
            ),
            ended: register_counter_vec(
                &format!("{name}_event_streams_ended_total"),
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
