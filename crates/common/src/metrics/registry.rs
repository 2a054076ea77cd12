//! Registration helpers that never panic, whoever registered first.
//!
//! Several servers (and several tests) may share one process, and each may ask for the same
//! metric. The first call registers it in the default registry; later calls with the same
//! name, kind and labels get a clone of that same metric (prometheus metrics are handles to
//! shared state), so every caller's updates are exported. A conflicting later call (other
//! kind or labels) or an invalid descriptor is logged and gets a working but unexported
//! metric, because a metrics mistake must not take a server down.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use prometheus::core::Collector;
use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

/// Latency buckets from half a millisecond to ten seconds, for RPCs and database calls.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

struct Registered {
    labels: Vec<String>,
    metric: Box<dyn Any + Send>,
}

static REGISTERED: LazyLock<Mutex<HashMap<String, Registered>>> = LazyLock::new(Default::default);

/// Registers (once per process) an integer counter with the given label names.
pub fn register_counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_once(
        name,
        labels,
        || IntCounterVec::new(Opts::new(name, help), labels),
        || with_placeholders(labels, |names| IntCounterVec::new(fallback_opts(), names)),
    )
}

/// Registers (once per process) a histogram with the given label names and bucket bounds.
pub fn register_histogram_vec(
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    register_once(
        name,
        labels,
        || {
            // prometheus only rejects `le` when the first child is created, i.e. at a call
            // site deep inside request handling; reject it up front instead.
            if labels.contains(&"le") {
                return Err(prometheus::Error::Msg("`le` is reserved in histograms".into()));
            }
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
        },
        // Empty buckets mean prometheus' defaults, which are always valid.
        || with_placeholders(labels, |names| HistogramVec::new(fallback_opts().into(), names)),
    )
}

/// Registers (once per process) an integer gauge with the given label names.
pub fn register_int_gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register_once(
        name,
        labels,
        || IntGaugeVec::new(Opts::new(name, help), labels),
        || with_placeholders(labels, |names| IntGaugeVec::new(fallback_opts(), names)),
    )
}

/// Registers (once per process) an integer gauge without labels.
pub fn register_int_gauge(name: &str, help: &str) -> IntGauge {
    register_once(
        name,
        &[],
        || IntGauge::with_opts(Opts::new(name, help)),
        || IntGauge::with_opts(fallback_opts()),
    )
}

/// Registers (once per process) a float gauge without labels.
pub fn register_gauge(name: &str, help: &str) -> Gauge {
    register_once(
        name,
        &[],
        || Gauge::with_opts(Opts::new(name, help)),
        || Gauge::with_opts(fallback_opts()),
    )
}

fn register_once<M>(
    name: &str,
    labels: &[&str],
    build: impl FnOnce() -> prometheus::Result<M>,
    fallback: impl FnOnce() -> prometheus::Result<M>,
) -> M
where
    M: Collector + Clone + Send + 'static,
{
    // A panic elsewhere while holding the lock leaves the map intact; keep using it.
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = registered.get(name) {
        if let Some(metric) = existing.metric.downcast_ref::<M>()
            && existing.labels == labels
        {
            return metric.clone();
        }
        tracing::error!(
            metric = name,
            "metric requested again with another kind or labels; this copy is not exported"
        );
        return build().or_else(|_| fallback()).unwrap_or_else(unreachable_fallback);
    }
    let metric = match build() {
        Ok(metric) => metric,
        Err(err) => {
            tracing::error!(metric = name, error = %err, "invalid metric; it is not exported");
            return fallback().unwrap_or_else(unreachable_fallback);
        }
    };
    if let Err(err) = prometheus::default_registry().register(Box::new(metric.clone())) {
        // Someone registered this name without these helpers; ours still counts, unexported.
        tracing::error!(metric = name, error = %err, "metric could not be registered");
    }
    registered.insert(
        name.to_owned(),
        Registered {
            labels: labels.iter().map(|label| (*label).to_owned()).collect(),
            metric: Box::new(metric.clone()),
        },
    );
    metric
}

fn fallback_opts() -> Opts {
    Opts::new("invalid_metric", "stand-in for a metric with an invalid descriptor")
}

// Same arity as the caller's labels, so `with_label_values` on the stand-in still works.
fn with_placeholders<M>(labels: &[&str], build: impl FnOnce(&[&str]) -> M) -> M {
    let names: Vec<String> = (0..labels.len()).map(|i| format!("label_{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    build(&names)
}

fn unreachable_fallback<M>(err: prometheus::Error) -> M {
    // The fallback descriptor is a fixed valid name, non-empty help, distinct valid label
    // names and default buckets: prometheus has no reason left to reject it.
    unreachable!("fallback metric descriptor rejected: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exported_value(name: &str) -> Option<f64> {
        prometheus::default_registry()
            .gather()
            .into_iter()
            .find(|family| family.name() == name)
            .and_then(|family| family.get_metric().first().map(|m| m.get_gauge().get_value()))
    }

    #[test]
    fn same_metric_twice_shares_state() {
        let first = register_counter_vec("common_test_shared_total", "help", &["outcome"]);
        let second = register_counter_vec("common_test_shared_total", "help", &["outcome"]);
        first.with_label_values(&["ok"]).inc();
        second.with_label_values(&["ok"]).inc();
        assert_eq!(first.with_label_values(&["ok"]).get(), 2);
    }

    #[test]
    fn conflicting_requests_do_not_panic() {
        let gauge = register_int_gauge("common_test_conflict", "help");
        gauge.set(7);
        let other_kind = register_int_gauge_vec("common_test_conflict", "help", &["a"]);
        other_kind.with_label_values(&["x"]).set(1);
        let other_labels = register_counter_vec("common_test_labels", "help", &["a"]);
        let again = register_counter_vec("common_test_labels", "help", &["a", "b"]);
        again.with_label_values(&["x", "y"]).inc();
        other_labels.with_label_values(&["x"]).inc();
        assert_eq!(exported_value("common_test_conflict"), Some(7.0));
    }

    #[test]
    fn invalid_descriptors_do_not_panic() {
        let counter = register_counter_vec("bad name", "help", &["a", "b"]);
        counter.with_label_values(&["x", "y"]).inc();
        let histogram =
            register_histogram_vec("common_test_bad_buckets", "h", &["le"], &[2.0, 1.0]);
        histogram.with_label_values(&["x"]).observe(0.1);
        let gauge = register_int_gauge("common_test_no_help", "");
        gauge.set(1);
        assert_eq!(exported_value("common_test_no_help"), None);
    }

    #[test]
    fn histogram_uses_the_given_buckets() {
        let histogram =
            register_histogram_vec("common_test_latency_seconds", "h", &["op"], LATENCY_BUCKETS);
        histogram.with_label_values(&["read"]).observe(0.003);
        let family = prometheus::default_registry()
            .gather()
            .into_iter()
            .find(|family| family.name() == "common_test_latency_seconds");
        let buckets = family.map(|f| f.get_metric()[0].get_histogram().get_bucket().len());
        assert_eq!(buckets, Some(LATENCY_BUCKETS.len()));
    }
}
