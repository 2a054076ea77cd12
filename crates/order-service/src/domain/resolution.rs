//! What an operator may record about a parked order, and where each resolution leaves it.

use super::{NextAction, OrderStatus, PaymentStatus};

/// What the operator established (or wants) for a parked order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Retry the parked step now (after fixing what made it fail).
    Retry,
    /// The money was returned by hand.
    RefundedByHand,
    /// The inventory side (hold, stock) was settled by hand.
    StockSettledByHand,
    /// Nothing was charged; the order ends cancelled.
    Cancelled,
}

impl Resolution {
    /// The outcome name written to the saga history.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::RefundedByHand => "refunded_by_hand",
            Self::StockSettledByHand => "stock_settled_by_hand",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A parked order's state, as far as a resolution is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    /// The step it was parked at.
    pub next: NextAction,
}

/// Where a resolution leaves the order: its status, payment status and the saga's next step
/// (None: settled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub next: Option<NextAction>,
}

/// The state `resolution` leaves `parked` in, or why it does not apply.
pub fn resolve(parked: Parked, resolution: Resolution) -> Result<Resolved, String> {
    use NextAction as A;
    let ended = |status: OrderStatus| match status {
        OrderStatus::Rejected | OrderStatus::PaymentFailed | OrderStatus::Cancelled => status,
        _ => OrderStatus::Cancelled,
    };
    let Parked { status, payment_status, next } = parked;
    match resolution {
        Resolution::Retry => Ok(Resolved { status, payment_status, next: Some(next) }),
        Resolution::RefundedByHand => Ok(Resolved {
            status: ended(status),
            payment_status: PaymentStatus::Refunded,
            // The hold may still be there unless the refund was the last thing left.
            next: (next != A::Refund).then_some(A::ReleaseHold),
        }),
        Resolution::StockSettledByHand => match next {
            A::Commit => Ok(Resolved { status, payment_status, next: None }),
            A::ReleaseHold => Ok(Resolved {
                status,
                payment_status,
                next: (payment_status == PaymentStatus::Succeeded).then_some(A::Refund),
            }),
            A::Reserve | A::Pay | A::Refund => Err(format!(
                "the order is parked at {}: the inventory has nothing to settle by hand; \
                 record RETRY, CANCELLED or REFUNDED_BY_HAND",
                next.as_str()
            )),
        },
        Resolution::Cancelled if payment_status == PaymentStatus::Succeeded => {
            Err("the order was paid: record REFUNDED_BY_HAND once the money is back, or RETRY"
                .to_owned())
        }
        Resolution::Cancelled => {
            Ok(Resolved { status: ended(status), payment_status, next: Some(A::ReleaseHold) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NextAction as A;
    use OrderStatus as S;
    use PaymentStatus as P;

    fn parked(status: S, payment_status: P, next: A) -> Parked {
        Parked { status, payment_status, next }
    }

    #[test]
    fn a_commit_settled_by_hand_confirms_the_order() {
        let r =
            resolve(parked(S::Confirmed, P::Succeeded, A::Commit), Resolution::StockSettledByHand);
        assert_eq!(
            r,
            Ok(Resolved { status: S::Confirmed, payment_status: P::Succeeded, next: None })
        );
    }

    #[test]
    fn a_release_settled_by_hand_still_owes_the_refund() {
        let r = resolve(
            parked(S::Cancelled, P::Succeeded, A::ReleaseHold),
            Resolution::StockSettledByHand,
        );
        assert_eq!(r.map(|r| r.next), Ok(Some(A::Refund)));
        let unpaid = resolve(
            parked(S::PaymentFailed, P::Declined, A::ReleaseHold),
            Resolution::StockSettledByHand,
        );
        assert_eq!(unpaid.map(|r| r.next), Ok(None));
    }

    #[test]
    fn a_refund_by_hand_ends_the_order_refunded_and_releases_what_may_be_held() {
        let at_refund =
            resolve(parked(S::Cancelled, P::Succeeded, A::Refund), Resolution::RefundedByHand);
        assert_eq!(
            at_refund,
            Ok(Resolved { status: S::Cancelled, payment_status: P::Refunded, next: None })
        );
        let at_pay = resolve(parked(S::Reserved, P::None, A::Pay), Resolution::RefundedByHand);
        assert_eq!(
            at_pay,
            Ok(Resolved {
                status: S::Cancelled,
                payment_status: P::Refunded,
                next: Some(A::ReleaseHold)
            })
        );
    }

    #[test]
    fn a_paid_order_is_never_recorded_as_cancelled_without_its_refund() {
        assert!(
            resolve(parked(S::Confirmed, P::Succeeded, A::Commit), Resolution::Cancelled).is_err()
        );
        let unpaid = resolve(parked(S::Reserved, P::None, A::Pay), Resolution::Cancelled);
        assert_eq!(unpaid.map(|r| (r.status, r.next)), Ok((S::Cancelled, Some(A::ReleaseHold))));
    }

    #[test]
    fn nothing_to_settle_in_the_inventory_before_a_hold_is_owed() {
        for next in [A::Reserve, A::Pay, A::Refund] {
            assert!(
                resolve(parked(S::Reserved, P::None, next), Resolution::StockSettledByHand)
                    .is_err()
            );
        }
    }

    #[test]
    fn retry_keeps_everything() {
        let p = parked(S::Confirmed, P::Succeeded, A::Commit);
        assert_eq!(
            resolve(p, Resolution::Retry),
            Ok(Resolved {
                status: S::Confirmed,
                payment_status: P::Succeeded,
                next: Some(A::Commit)
            })
        );
    }
}
