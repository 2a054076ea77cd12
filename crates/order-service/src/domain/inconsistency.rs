//! What the order reconciler measures: the `kind` label values of `order_inconsistencies`.

/// A confirmed order whose inventory hold is not COMMITTED after the grace period.
pub const CONFIRMED_NOT_COMMITTED: &str = "confirmed_not_committed";

/// Every kind, for pre-initialising the gauge.
pub const KINDS: [&str; 1] = [CONFIRMED_NOT_COMMITTED];
