//! The order server's own metrics (the per-RPC gRPC server metrics come from `common`).

use std::sync::LazyLock;
use std::time::Duration;

use common::metrics::{
    register_counter_vec, register_histogram_vec, register_int_gauge, register_int_gauge_vec,
};
use prometheus::{HistogramVec, IntCounterVec, IntGauge, IntGaugeVec};
use tonic::Code;

use crate::domain::resolution::Resolution;
use crate::domain::{NextAction, OrderStatus};

/// The inventory calls the order server makes, as the `call` label names them.
pub const INVENTORY_CALLS: [&str; 6] =
    ["check", "reserve", "commit", "cancel", "get_reservation", "return_stock"];

/// Client-side latency of each inventory call attempt, by call.
pub static INVENTORY_CALL_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec(
        "order_inventory_call_duration_seconds",
        "Latency of the order server's calls to the inventory service, per attempt.",
        &["call"],
        common::metrics::LATENCY_BUCKETS,
    )
});

/// Inventory call attempts by call and outcome: ok, refused (success=false) or a gRPC code.
pub static INVENTORY_CALLS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "order_inventory_calls_total",
        "The order server's calls to the inventory service, by call and outcome.",
        &["call", "outcome"],
    )
});

/// Saga step attempts by action and outcome.
pub static SAGA_STEPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "order_saga_steps_total",
        "Saga steps run, by action and outcome.",
        &["action", "outcome"],
    )
});

/// Orders with a saga step still to do, as the recovery worker last counted them.
pub static SAGA_BACKLOG: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge("order_saga_backlog", "Orders whose saga still has a step to do.")
});

/// Age of the oldest order with a saga step still to do.
pub static SAGA_OLDEST_PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "order_saga_oldest_pending_seconds",
        "Age in seconds of the oldest order whose saga still has a step to do (0 when none).",
    )
});

/// Rows retention removed (or, for idempotency keys, cleared), by table.
pub static RETENTION_REMOVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "order_retention_removed_total",
        "History removed by retention past its keep period: saga_steps rows, idempotency_keys cleared.",
        &["table"],
    )
});

/// Orders parked for an operator: a step failed for good or for too long; nothing retries
/// them until they are resolved (ResolveParkedOrder).
pub static SAGA_PARKED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "order_saga_parked",
        "Orders parked for an operator (a saga step failed for good or for too long); nothing retries them.",
    )
});

/// Confirmed orders whose hold is not committed after the grace period, by kind, as the
/// reconciler last counted them.
pub static INCONSISTENCIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec(
        "order_inconsistencies",
        "Orders disagreeing with the inventory, by kind, as the reconciler last counted them.",
        &["kind"],
    )
});

/// When the reconciler last finished a tick with every inventory answer (Unix seconds).
pub static RECONCILE_LAST_SUCCESS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "order_reconcile_last_success_timestamp_seconds",
        "Unix time of the reconciler's last complete tick (0 before the first).",
    )
});

/// Orders created, by the status CreateOrder answered with.
pub static ORDERS_CREATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "orders_created_total",
        "Orders created, by the status they had when CreateOrder answered.",
        &["status"],
    )
});

/// Holds of orders settled by another caller, by kind: `committed` (a hold the saga had to
/// release was committed), `cancelled` (a hold the saga had to commit was cancelled),
/// `reference_taken` (another caller holds the order's inventory reference).
pub static FOREIGN_SETTLEMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "order_foreign_settlements_total",
        "Order holds found settled (or the order's reference held) by another caller, by kind.",
        &["kind"],
    )
});

/// Returns by outcome (see [`RETURN_OUTCOMES`]).
pub static RETURNS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "order_returns_total",
        "ReturnOrder requests and return saga ends, by outcome.",
        &["outcome"],
    )
});

/// The outcomes of [`RETURNS_TOTAL`]: `requested` (a return written), `replayed` (the same
/// request again), `rearmed` (the same request again re-armed a return needing an operator),
/// `refused` (the request was refused, nothing written), `completed` (stock back and
/// refunded), `retry` (a step failed transiently and waits), `needs_operator` (a step was
/// refused for good), `refund_failed` (of those, the refund).
pub const RETURN_OUTCOMES: [&str; 8] = [
    "requested",
    "replayed",
    "rearmed",
    "refused",
    "completed",
    "retry",
    "needs_operator",
    "refund_failed",
];

/// Money refunded by completed returns, in minor units, by currency (the accepted list only).
pub static RETURN_REFUNDED_MINOR: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_counter_vec(
        "order_return_refunded_minor_total",
        "Money refunded by completed returns, in minor units of the currency.",
        &["currency"],
    )
});

/// Returns waiting for an operator, as the recovery worker last counted them (from SQL, so
/// every replica shows the same).
pub static RETURNS_NEEDING_OPERATOR: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge(
        "order_returns_needing_operator",
        "Returns whose restock or refund was refused for good: an operator must fix the cause, then the same ReturnOrder request re-arms them.",
    )
});

/// Counts one return event; `outcome` is one of [`RETURN_OUTCOMES`].
pub fn return_outcome(outcome: &'static str) {
    RETURNS_TOTAL.with_label_values(&[outcome]).inc();
}

/// Counts the refund of a completed return (a currency outside the accepted list, which the
/// order could not have been placed in, is not counted rather than made a label).
pub fn return_refunded(currency: &str, amount_minor: i64) {
    if crate::domain::currency::is_known(currency)
        && let Ok(amount) = u64::try_from(amount_minor)
    {
        RETURN_REFUNDED_MINOR.with_label_values(&[currency]).inc_by(amount);
    }
}

/// The kinds of [`FOREIGN_SETTLEMENTS`].
pub const FOREIGN_SETTLEMENT_KINDS: [&str; 3] = ["committed", "cancelled", "reference_taken"];

/// The saga step outcomes the engine reports (besides a transient `retry`).
pub const STEP_OUTCOMES: [&str; 13] = [
    "ok",
    "short",
    "rejected",
    "declined",
    "failed",
    "hold_lost",
    "nothing_held",
    "retry",
    "superseded",
    "orphan_released",
    "committed_elsewhere",
    "cancelled_elsewhere",
    "reference_taken",
];

/// Records one inventory call attempt.
pub fn observe_inventory(call: &'static str, outcome: InventoryOutcome, elapsed: Duration) {
    INVENTORY_CALL_DURATION.with_label_values(&[call]).observe(elapsed.as_secs_f64());
    let label = match outcome {
        InventoryOutcome::Ok => "ok",
        InventoryOutcome::Refused => "refused",
        InventoryOutcome::Error(code) => common::metrics::grpc_code_name(code),
    };
    INVENTORY_CALLS_TOTAL.with_label_values(&[call, label]).inc();
}

/// How one inventory call attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryOutcome {
    /// Answered with success (or, for check, all available).
    Ok,
    /// Answered, but refused: `success=false` (or, for check, not all available).
    Refused,
    /// Failed with this gRPC code.
    Error(Code),
}

/// Records one saga step attempt.
pub fn saga_step(action: NextAction, outcome: &str) {
    SAGA_STEPS.with_label_values(&[action.as_str(), outcome]).inc();
}

/// Counts one operator resolution of a parked order (action `operator`, outcome the
/// resolution's name: a fixed set).
pub fn operator_resolution(resolution: Resolution) {
    SAGA_STEPS.with_label_values(&["operator", resolution.as_str()]).inc();
}

/// Counts one hold of an order settled by another caller; `kind` is one of
/// [`FOREIGN_SETTLEMENT_KINDS`].
pub fn foreign_settlement(kind: &'static str) {
    FOREIGN_SETTLEMENTS.with_label_values(&[kind]).inc();
}

/// Creates every known series at zero, so dashboards and alert rules see them (and their
/// rates) before the first event instead of "no data".
pub fn init() {
    LazyLock::force(&SAGA_BACKLOG);
    LazyLock::force(&SAGA_OLDEST_PENDING);
    LazyLock::force(&SAGA_PARKED);
    LazyLock::force(&RECONCILE_LAST_SUCCESS);
    for kind in crate::domain::inconsistency::KINDS {
        INCONSISTENCIES.with_label_values(&[kind]);
    }
    for call in INVENTORY_CALLS {
        INVENTORY_CALL_DURATION.with_label_values(&[call]);
        for outcome in ["ok", "refused", "Unavailable", "DeadlineExceeded", "NotFound"] {
            INVENTORY_CALLS_TOTAL.with_label_values(&[call, outcome]);
        }
    }
    for action in NextAction::ALL {
        for outcome in STEP_OUTCOMES {
            SAGA_STEPS.with_label_values(&[action.as_str(), outcome]);
        }
    }
    for status in OrderStatus::ALL {
        ORDERS_CREATED.with_label_values(&[status.as_str()]);
    }
    for kind in FOREIGN_SETTLEMENT_KINDS {
        FOREIGN_SETTLEMENTS.with_label_values(&[kind]);
    }
    LazyLock::force(&RETURNS_NEEDING_OPERATOR);
    for outcome in RETURN_OUTCOMES {
        RETURNS_TOTAL.with_label_values(&[outcome]);
    }
    for currency in crate::domain::currency::all() {
        RETURN_REFUNDED_MINOR.with_label_values(&[currency]);
    }
}
