//! Which orders CancelOrder may cancel. Cancelling after payment is not supported (the order
//! is paid and its stock committed or being committed): that is a return, a separate process.

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
}

/// Decides from the order's status, next saga action and attempts of that action.
pub fn decide(status: OrderStatus, next: Option<NextAction>, attempts: i32) -> CancelDecision {
    use OrderStatus as S;
    match (status, next) {
        (S::Cancelled, _) => CancelDecision::AlreadyCancelled,
        // Stock may be (about to be) held but no charge was attempted: releasing the hold
        // undoes everything. A reserve in flight is fine too: the release step finds the
        // hold by the order's reference even if its id was never recorded.
        (S::Pending, Some(NextAction::Reserve)) => CancelDecision::Cancel,
        (S::Reserved, Some(NextAction::Pay)) if attempts == 0 => CancelDecision::Cancel,
        (S::Pending | S::Reserved, _) => {
            CancelDecision::Refuse("payment in progress; retry shortly".to_owned())
        }
        (S::Confirmed, _) => CancelDecision::Refuse(
            "order is confirmed (paid, stock committed); cancellation after confirmation is not \
             supported — use a return"
                .to_owned(),
        ),
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
        assert_eq!(decide(S::Pending, Some(A::Reserve), 0), CancelDecision::Cancel);
        assert_eq!(decide(S::Pending, Some(A::Reserve), 2), CancelDecision::Cancel);
        assert_eq!(decide(S::Reserved, Some(A::Pay), 0), CancelDecision::Cancel);
        assert!(
            matches!(decide(S::Reserved, Some(A::Pay), 1), CancelDecision::Refuse(m) if m.contains("payment in progress"))
        );
        assert!(
            matches!(decide(S::Confirmed, None, 0), CancelDecision::Refuse(m) if m.contains("return"))
        );
        assert!(matches!(decide(S::Confirmed, Some(A::Commit), 0), CancelDecision::Refuse(_)));
        assert!(
            matches!(decide(S::Rejected, None, 0), CancelDecision::Refuse(m) if m.contains("REJECTED"))
        );
        assert!(
            matches!(decide(S::PaymentFailed, Some(A::ReleaseHold), 0), CancelDecision::Refuse(m) if m.contains("PAYMENT_FAILED"))
        );
        assert_eq!(decide(S::Cancelled, Some(A::ReleaseHold), 3), CancelDecision::AlreadyCancelled);
        assert_eq!(decide(S::Cancelled, None, 0), CancelDecision::AlreadyCancelled);
    }
}
