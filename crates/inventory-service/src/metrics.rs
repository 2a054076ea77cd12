//! The inventory server's own metrics (the per-RPC gRPC metrics come from `common`).

use std::sync::LazyLock;

use common::metrics::{
    register_counter_vec, register_histogram_vec, register_int_gauge, register_int_gauge_vec,
};
use prometheus::{HistogramVec, IntCounterVec, IntGauge, IntGaugeVec};
use proto::status::CallError as _;
use tonic::Code;

use crate::domain::{InconsistencyKind, ReserveOutcome, SettleOutcome, commands::Settle};
use crate::error::InventoryError;

/// Latency of CheckInventoryAvailability, from request to answer.
pub static CHECK_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "inventory_check_duration_seconds",
        "Latency of inventory availability checks.",
        &[],
        common::metrics::LATENCY_BUCKETS,
    )
});

/// Reservation attempts by outcome: reserved, existing, insufficient, conflict (the reference
/// holds another request), denied, not_found, invalid, error.
pub static RESERVATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_reservations_total",
        "Reservation requests by outcome.",
        &["outcome"],
    )
});

/// Commit attempts by outcome: committed, already_done, refused, denied, not_found, invalid,
/// error.
pub static COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_commits_total",
        "Reservation commit requests by outcome.",
        &["outcome"],
    )
});

/// Cancel attempts by outcome: cancelled, already_done, refused, denied, not_found, invalid,
/// error.
pub static CANCELLATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_cancellations_total",
        "Reservation cancel requests by outcome.",
        &["outcome"],
    )
});

/// ReturnStock requests by outcome: returned, replayed, refused, conflict, denied, not_found,
/// invalid, error.
pub static RETURNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_returns_total",
        "ReturnStock requests by outcome.",
        &["outcome"],
    )
});

/// Units taken back by returns: restocked (on hand again) or not (damaged goods).
pub static RETURNED_UNITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_returned_units_total",
        "Units taken back by ReturnStock, by whether they were put back on hand.",
        &["restocked"],
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

/// Availability checks answered by one query of the check batcher (`CHECK_BATCHING`).
pub static CHECK_BATCH_SIZE: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "inventory_check_batch_size",
        "Availability checks answered together by one query of the check batcher.",
        &[],
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    )
});

/// Reservations per batch (one transaction) of the reserve batcher (`RESERVE_BATCHING`).
pub static RESERVE_BATCH_SIZE: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "inventory_reserve_batch_size",
        "Reservations run together in one transaction by the reserve batcher.",
        &[],
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    )
});

/// Mismatches the reconciler found in its last pass, by kind (see `domain::InconsistencyKind`).
pub static INCONSISTENCIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec(
        "inventory_inconsistencies",
        "Stock rows or holds breaking an invariant, by kind, as the reconciler last counted them.",
        &["kind"],
    )
});

/// When the reconciler last finished a pass (Unix seconds; 0 before the first).
pub static RECONCILE_LAST_SUCCESS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "inventory_reconcile_last_success_timestamp_seconds",
        "Unix time of the reconciler's last completed pass (0 before the first).",
    )
});

/// How long a reconciliation pass took, by scope (`incremental`, `full`).
pub static RECONCILE_PASS_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "inventory_reconcile_pass_seconds",
        "Duration of the reconciler's passes run by this replica, by scope (incremental, full).",
        &["scope"],
        &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
    )
});

/// Movements past the ledger horizon after this replica's last pass: what the next pass
/// reads at least. It grows while a long transaction holds the horizon back.
pub static LEDGER_TAIL: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "inventory_ledger_tail_movements",
        "Movements recorded past the ledger horizon after the last pass (the horizon cannot pass an open transaction).",
    )
});

/// Stock rows below their low-stock threshold, per warehouse, as this replica last counted.
pub static LOW_STOCK_ROWS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec(
        "inventory_low_stock_rows",
        "Stock rows whose available units (on_hand - reserved - safety_stock) are below their low_stock_threshold, per warehouse.",
        &["warehouse_id"],
    )
});

/// Rows retention removed, by table.
pub static RETENTION_REMOVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "inventory_retention_removed_total",
        "Rows removed by retention past their keep period, by table (movements, reservations, adjustments).",
        &["table"],
    )
});

/// The outcome label of a reserve request that got an answer.
pub fn reserve_outcome(outcome: &ReserveOutcome) -> &'static str {
    match outcome {
        ReserveOutcome::Reserved(_) | ReserveOutcome::ReservedOnBackorder(_) => "reserved",
        ReserveOutcome::Existing(..) => "existing",
        ReserveOutcome::Short(_) => "insufficient",
    }
}

/// The outcome label of a commit (`committed`) or cancel (`cancelled`) that got an answer.
pub fn settle_outcome(op: Settle, outcome: &SettleOutcome) -> &'static str {
    match outcome {
        SettleOutcome::Applied => op.done(),
        SettleOutcome::AlreadyDone(_) => "already_done",
        SettleOutcome::Refused(_) => "refused",
    }
}

/// The outcome label of a failed request, shared by the three outcome counters: the error's
/// code says which.
pub fn error_outcome(err: &InventoryError) -> &'static str {
    match err.code() {
        Code::InvalidArgument => "invalid",
        Code::NotFound => "not_found",
        Code::FailedPrecondition => "refused",
        Code::AlreadyExists => "conflict",
        Code::PermissionDenied | Code::Unauthenticated => "denied",
        _ => "error",
    }
}

/// Creates every known series at zero, so dashboards and alert rules see them (and their
/// rates) before the first event instead of "no data".
pub fn init() {
    let none: &[&str] = &[];
    CHECK_DURATION.with_label_values(none);
    EXPIRED_HOLDS.with_label_values(none);
    RESERVE_BATCH_SIZE.with_label_values(none);
    CHECK_BATCH_SIZE.with_label_values(none);
    for outcome in [
        "reserved",
        "existing",
        "insufficient",
        "conflict",
        "denied",
        "not_found",
        "invalid",
        "error",
    ] {
        RESERVATIONS.with_label_values(&[outcome]);
    }
    for outcome in ["already_done", "refused", "denied", "not_found", "invalid", "error"] {
        COMMITS.with_label_values(&[outcome]);
        CANCELLATIONS.with_label_values(&[outcome]);
    }
    for outcome in
        ["returned", "replayed", "refused", "conflict", "denied", "not_found", "invalid", "error"]
    {
        RETURNS.with_label_values(&[outcome]);
    }
    for restocked in ["true", "false"] {
        RETURNED_UNITS.with_label_values(&[restocked]);
    }
    COMMITS.with_label_values(&["committed"]);
    CANCELLATIONS.with_label_values(&["cancelled"]);
    for kind in InconsistencyKind::ALL {
        INCONSISTENCIES.with_label_values(&[kind.as_str()]);
    }
    LazyLock::force(&RECONCILE_LAST_SUCCESS);
}
