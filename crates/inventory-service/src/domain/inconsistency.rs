//! The invariants the reconciler measures, one kind per metric label.

/// A kind of inconsistency the reconciler measures (the `kind` label of
/// `inventory_inconsistencies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InconsistencyKind {
    /// A stock row whose `reserved` differs from the sum of its PENDING holds' lines.
    ReservedMismatch,
    /// A stock row whose `on_hand` or `reserved` differs from the sum of its movements.
    LedgerMismatch,
    /// A stock row with `reserved < 0` or `on_hand - reserved < -backorder_limit` (without a
    /// backorder limit: `on_hand < 0` or `reserved > on_hand`).
    ImpossibleLevel,
    /// A PENDING hold whose expiry passed longer ago than the grace allows.
    LapsedPendingHold,
    /// A stock row whose ledger checkpoint differs from the movements it sums (base plus the
    /// remaining movements below the horizon): measured by full verifications only.
    CheckpointMismatch,
    /// Returned units a hold cannot account for: more than its committed line, or returned
    /// from a hold that is not COMMITTED.
    ReturnMismatch,
}

impl InconsistencyKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 6] = [
        Self::ReservedMismatch,
        Self::LedgerMismatch,
        Self::ImpossibleLevel,
        Self::LapsedPendingHold,
        Self::CheckpointMismatch,
        Self::ReturnMismatch,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservedMismatch => "reserved_mismatch",
            Self::LedgerMismatch => "ledger_mismatch",
            Self::ImpossibleLevel => "impossible_level",
            Self::LapsedPendingHold => "lapsed_pending_hold",
            Self::CheckpointMismatch => "checkpoint_mismatch",
            Self::ReturnMismatch => "return_mismatch",
        }
    }

    /// Kinds an incremental pass measures; the others keep the last full verification's count.
    pub fn incremental(self) -> bool {
        self != Self::CheckpointMismatch
    }

    /// The kind whose label is `label`.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == label)
    }
}
