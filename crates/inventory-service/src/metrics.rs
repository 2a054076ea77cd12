//! The inventory server's own metrics (the per-RPC gRPC metrics come from `common`).

use std::sync::LazyLock;

use common::metrics::{register_counter_vec, register_histogram_vec};
use prometheus::{HistogramVec, IntCounterVec};

/// Latency of CheckInventoryAvailability, from request to answer.
pub static CHECK_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "inventory_check_duration_seconds",
        "Latency of inventory availability checks.",
        &[],
        common::metrics::LATENCY_BUCKETS,
    )
});

/// Reservation attempts by outcome: reserved, existing, insufficient, not_found, invalid, error.
pub static RESERVATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_reservations_total",
        "Reservation requests by outcome.",
        &["outcome"],
    )
});

/// Commit attempts by outcome: committed, already_done, refused, not_found, invalid, error.
pub static COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_commits_total",
        "Reservation commit requests by outcome.",
        &["outcome"],
    )
});

/// Cancel attempts by outcome: cancelled, already_done, refused, not_found, invalid, error.
pub static CANCELLATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_cancellations_total",
        "Reservation cancel requests by outcome.",
        &["outcome"],
    )
});

/// Holds released by the expiry sweeper.
pub static EXPIRED_HOLDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_expired_holds_total",
        "Holds released because they expired.",
        &[],
    )
});

/// The outcome label of a failed request, shared by the three outcome counters.
pub fn error_outcome(err: &crate::error::InventoryError) -> &'static str {
    use crate::error::InventoryError as E;
    match err {
        E::InvalidArgument(_) => "invalid",
        E::NotFound { .. } => "not_found",
        E::FailedPrecondition(_) => "refused",
        E::Unavailable(_) | E::Internal(_) => "error",
    }
}

/// Creates every known series at zero, so dashboards and alert rules see them (and their
/// rates) before the first event instead of "no data".
pub fn init() {
    let none: &[&str] = &[];
    CHECK_DURATION.with_label_values(none);
    EXPIRED_HOLDS.with_label_values(none);
    for outcome in ["reserved", "existing", "insufficient", "not_found", "invalid", "error"] {
        RESERVATIONS.with_label_values(&[outcome]);
    }
    for outcome in ["already_done", "refused", "not_found", "invalid", "error"] {
        COMMITS.with_label_values(&[outcome]);
        CANCELLATIONS.with_label_values(&[outcome]);
    }
    COMMITS.with_label_values(&["committed"]);
    CANCELLATIONS.with_label_values(&["cancelled"]);
}
