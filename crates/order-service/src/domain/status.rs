//! The states an order moves through and the saga's next actions, with their stored names.

/// Where an order stands, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Created; stock not yet held.
    Pending,
    /// Stock held; payment not yet taken.
    Reserved,
    /// Paid; the inventory commit is done or queued.
    Confirmed,
    /// No stock (or the inventory refused the items): nothing held, nothing charged.
    Rejected,
    /// The payment was declined or failed; the hold is released.
    PaymentFailed,
    /// Cancelled by request (or after a lost hold): the hold is released, payment refunded.
    Cancelled,
}

impl OrderStatus {
    /// Every status, for pre-initialising metric labels.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Reserved,
        Self::Confirmed,
        Self::Rejected,
        Self::PaymentFailed,
        Self::Cancelled,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Reserved => "RESERVED",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a stored name.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// What the payment service said about the order's charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// No outcome yet (never attempted, or unknown).
    None,
    Succeeded,
    Declined,
    Refunded,
}

impl PaymentStatus {
    /// The stored and wire name (`""` for none).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Succeeded => "SUCCEEDED",
            Self::Declined => "DECLINED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// Parses a stored name.
    pub fn from_db(value: &str) -> Option<Self> {
        [Self::None, Self::Succeeded, Self::Declined, Self::Refunded]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// The saga step an order waits for; none once the order has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextAction {
    /// Hold the stock (ReserveInventory, keyed by the order).
    Reserve,
    /// Charge the payment (keyed by the order).
    Pay,
    /// Turn the hold into a sale (CommitReservation).
    Commit,
    /// Release the hold (CancelReservation).
    ReleaseHold,
    /// Give the money back (RefundPayment, keyed by the order).
    Refund,
}

impl NextAction {
    /// Every action, for pre-initialising metric labels.
    pub const ALL: [Self; 5] =
        [Self::Reserve, Self::Pay, Self::Commit, Self::ReleaseHold, Self::Refund];

    /// The stored name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Pay => "pay",
            Self::Commit => "commit",
            Self::ReleaseHold => "release_hold",
            Self::Refund => "refund",
        }
    }

    /// Parses a stored name.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_db(s.as_str()), Some(s));
        }
        for a in NextAction::ALL {
            assert_eq!(NextAction::from_db(a.as_str()), Some(a));
        }
        for p in [
            PaymentStatus::None,
            PaymentStatus::Succeeded,
            PaymentStatus::Declined,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::from_db(p.as_str()), Some(p));
        }
        assert_eq!(OrderStatus::from_db("SHIPPED"), None);
    }
}
