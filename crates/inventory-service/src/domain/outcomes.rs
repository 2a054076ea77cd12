//! What a reserve, commit or cancel achieved when it did not fail: results, not errors.

use super::allocation::Shortage;
use super::{ReservationId, ReservationStatus};

/// What a reserve request achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// A new hold was taken.
    Reserved(ReservationId),
    /// A new hold was taken, some of its units on backorder (beyond what their rows had in
    /// stock): the reply lists them.
    ReservedOnBackorder(ReservationId),
    /// The reference already had a live hold; nothing new was taken.
    Existing(ReservationId, ReservationStatus),
    /// Not enough stock; nothing was taken.
    Short(Vec<Shortage>),
}

/// What a commit or cancel achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// The hold moved to the requested state now.
    Applied,
    /// The hold was already in the requested state (or an equivalent one, for cancel).
    AlreadyDone(ReservationStatus),
    /// The hold is in a state the request cannot leave.
    Refused(ReservationStatus),
}
