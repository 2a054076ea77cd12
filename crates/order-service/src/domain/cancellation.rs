//! Which orders CancelOrder may cancel. Cancelling after payment is not supported (the order
//! is paid and its stock committed or being committed): that is a return (ReturnOrder).

use super::{NextAction, OrderStatus};

/// What CancelOrder does with an order in a given state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelDecision {
    /// Mark it CANCELLED and release its hold (if any).
    Cancel,
    /// Already cancelled: repeating a cancel is success.
    AlreadyCancelled,
    /// Refused with this reason (FAILED_PRECONDITION).
    Refuse(String),
    /// Refused: the order is confirmed, and undoing it is a return (ReturnOrder).
    UseReturn,
}

/// What CancelOrder answers for a CONFIRMED order.
pub const USE_RETURN: &str = "order is confirmed (paid, stock committed) and cannot be cancelled; \
                              use ReturnOrder to return its items and refund them";

/// Decides from the order's status, next saga action, attempts of that action, and whether a
/// driver holds the order (or held it and lapsed, and nobody has picked it up since).
///
/// A driver records its steps when it is done or must wait, not after each call: while one
/// holds the order, its row may say "reserve" although the payment already went through. So
/// an order being driven is never cancelled; the caller retries once the driver settles it.
pub fn decide(
    status: OrderStatus,
    next: Option<NextAction>,
    attempts: i32,
    driven: bool,
) -> CancelDecision {
    use OrderStatus as S;
    match (status, next) {
        (S::Cancelled, _) => CancelDecision::AlreadyCancelled,
        (S::Pending | S::Reserved, _) if driven => {
            CancelDecision::Refuse("payment in progress; retry shortly".to_owned())
        }
        // Stock may be held but no charge was attempted: releasing the hold undoes
        // everything. A hold whose id was never recorded (a reserve that timed out) is found
        // by the order's reference.
        (S::Pending, Some(NextAction::Reserve)) => CancelDecision::Cancel,
        (S::Reserved, Some(NextAction::Pay)) if attempts == 0 => CancelDecision::Cancel,
        (S::Pending | S::Reserved, _) => {
            CancelDecision::Refuse("payment in progress; retry shortly".to_owned())
        }
        (S::Confirmed, _) => CancelDecision::UseReturn,
        (S::Rejected | S::PaymentFailed, _) => CancelDecision::Refuse(format!(
            "order is {}; there is nothing to cancel",
            status.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NextAction as A;
    use OrderStatus as S;

    #[test]
    fn cancellable_only_before_any_payment_attempt() {
        assert_eq!(decide(S::Pending, Some(A::Reserve), 0, false), CancelDecision::Cancel);
        assert_eq!(decide(S::Pending, Some(A::Reserve), 2, false), CancelDecision::Cancel);
        assert_eq!(decide(S::Reserved, Some(A::Pay), 0, false), CancelDecision::Cancel);
        assert!(
            matches!(decide(S::Reserved, Some(A::Pay), 1, false), CancelDecision::Refuse(m) if m.contains("payment in progress"))
        );
        assert_eq!(decide(S::Confirmed, None, 0, false), CancelDecision::UseReturn);
        assert_eq!(decide(S::Confirmed, Some(A::Commit), 0, false), CancelDecision::UseReturn);
        assert!(USE_RETURN.contains("ReturnOrder"));
        assert!(
            matches!(decide(S::Rejected, None, 0, false), CancelDecision::Refuse(m) if m.contains("REJECTED"))
        );
        assert!(
            matches!(decide(S::PaymentFailed, Some(A::ReleaseHold), 0, false), CancelDecision::Refuse(m) if m.contains("PAYMENT_FAILED"))
        );
        assert_eq!(
            decide(S::Cancelled, Some(A::ReleaseHold), 3, false),
            CancelDecision::AlreadyCancelled
        );
        assert_eq!(decide(S::Cancelled, None, 0, false), CancelDecision::AlreadyCancelled);
    }

    #[test]
    fn an_order_being_driven_is_never_cancelled() {
        // Its row may still say "reserve" while the payment has gone through.
        for (status, next) in [(S::Pending, A::Reserve), (S::Reserved, A::Pay)] {
            assert!(
                matches!(decide(status, Some(next), 0, true), CancelDecision::Refuse(m) if m.contains("retry shortly"))
            );
        }
        assert_eq!(
            decide(S::Cancelled, Some(A::ReleaseHold), 0, true),
            CancelDecision::AlreadyCancelled
        );
        assert_eq!(decide(S::Confirmed, Some(A::Commit), 0, true), CancelDecision::UseReturn);
    }
}
