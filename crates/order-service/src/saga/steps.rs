//! The saga's steps: one function per next action, each calling its peer once and turning
//! the answer into the order's next state (or a retry).

use tonic::Code;
use tracing::field::display;

use super::engine::{
    CANCELLED_ELSEWHERE, COMMITTED_ELSEWHERE, Engine, REFERENCE_TAKEN, Refusal, Step,
};
use super::reasons;
use crate::clients::PeerError;
use crate::clients::inventory::{
    HoldStatus, ReserveFailure, ReserveReply, classify_reserve_failure,
};
use crate::clients::payment::{ChargeFailure, ChargeReply, classify_charge_failure};
use crate::domain::pricing::SkuDemand;
use crate::domain::{NextAction, OrderStatus, PaymentStatus};
use crate::store::{SagaState, StepRecord, Transition};

/// Step outcome: a reserve got no hold for an order a lapsed driver may have charged.
const CHARGE_UNKNOWN: &str = "charge_unknown";

impl Engine {
    /// Runs `action` for the order in `state`. `charge_unrecorded`: a previous driver may have
    /// charged the order without recording so.
    pub(super) async fn step(
        &self,
        action: NextAction,
        state: &SagaState,
        demand: &[SkuDemand],
        charge_unrecorded: bool,
    ) -> Step {
        match action {
            NextAction::Reserve => self.reserve(state, demand, charge_unrecorded).await,
            NextAction::Pay => self.pay(state).await,
            NextAction::Commit => self.commit(state).await,
            NextAction::ReleaseHold => self.release_hold(state).await,
            NextAction::Refund => self.refund(state).await,
        }
    }

    /// Holds the stock. A hold re-taken after payment (the first one expired) goes on to commit.
    async fn reserve(
        &self,
        state: &SagaState,
        demand: &[SkuDemand],
        charge_unrecorded: bool,
    ) -> Step {
        let me = &self.inner;
        let reply = me.peers.inventory.reserve(state.id, demand, me.config.hold_minutes).await;
        if charge_unrecorded && !matches!(reply, Ok(ReserveReply::Held(..))) && !is_retry(&reply) {
            return charge_unknown_without_stock(state, reply);
        }
        match reply {
            Ok(ReserveReply::Held(reservation, backordered)) => {
                tracing::Span::current().record("reservation_id", display(reservation));
                let mut to = Transition::from_state(state);
                to.reservation_id = Some(reservation);
                to.backordered = Some(backordered);
                if state.payment_status == PaymentStatus::Succeeded {
                    to.next_action = Some(NextAction::Commit);
                } else {
                    to.status = OrderStatus::Reserved;
                    to.next_action = Some(NextAction::Pay);
                }
                Step::Advance(to, record(NextAction::Reserve, "ok", format!("hold {reservation}")))
            }
            Ok(ReserveReply::Short { message, lines }) => {
                no_stock(state, Refusal::Short(lines), reasons::short_stock(&message), message)
            }
            Err(err) => match classify_reserve_failure(&err.status) {
                ReserveFailure::ItemsRefused => no_stock(
                    state,
                    Refusal::ItemsRefused,
                    reasons::inventory_refused(err.peer_code()),
                    err.to_string(),
                ),
                ReserveFailure::ReferenceTaken => reference_taken(state, err.to_string()),
                ReserveFailure::Retry => Step::Retry(err.to_string()),
            },
        }
    }

    /// Charges the order with a key derived from it, so a retry never charges twice.
    async fn pay(&self, state: &SagaState) -> Step {
        let result = self
            .inner
            .peers
            .payment
            .charge(state.id, state.total_amount_minor, &state.currency, &state.payment_method)
            .await;
        let mut to = Transition::from_state(state);
        match result {
            Ok(ChargeReply::Succeeded { payment_id }) => {
                to.payment_status = PaymentStatus::Succeeded;
                to.payment_id = Some(payment_id.clone());
                to.status = OrderStatus::Confirmed;
                to.status_reason.clear();
                to.next_action = Some(NextAction::Commit);
                Step::Advance(to, record(NextAction::Pay, "ok", format!("payment {payment_id}")))
            }
            Ok(ChargeReply::Declined { message }) => {
                to.payment_status = PaymentStatus::Declined;
                to.status = OrderStatus::PaymentFailed;
                to.status_reason = reasons::payment_declined(&message);
                to.next_action = Some(NextAction::ReleaseHold);
                Step::Advance(to, record(NextAction::Pay, "declined", message))
            }
            // The outcome is unknown: ask again with the same key.
            Ok(ChargeReply::Unrecognised { status }) => {
                Step::Retry(format!("payment answered with unknown status {status:?}"))
            }
            Err(err) => match classify_charge_failure(err.peer_code()) {
                // Asked again with the same key: the provider answers the first outcome, so a
                // charge taken before the error is found, never taken twice.
                ChargeFailure::OutcomeUnknown => Step::Retry(err.to_string()),
                ChargeFailure::NotCharged => {
                    to.status = OrderStatus::PaymentFailed;
                    to.status_reason = reasons::payment_refused(err.peer_code());
                    to.next_action = Some(NextAction::ReleaseHold);
                    Step::Advance(to, record(NextAction::Pay, "failed", err.to_string()))
                }
            },
        }
    }

    /// Turns the hold into a sale. A hold that is gone (expired, cancelled) is re-taken.
    async fn commit(&self, state: &SagaState) -> Step {
        let mut to = Transition::from_state(state);
        let Some(reservation) = state.reservation_id else {
            to.next_action = Some(NextAction::Reserve);
            return Step::Advance(
                to,
                record(NextAction::Commit, "hold_lost", "no hold recorded; re-taking".to_owned()),
            );
        };
        let lost = |to: &mut Transition, why: String| {
            tracing::warn!(reason = %why, "hold lost before commit; re-taking it");
            to.reservation_id = None;
            to.next_action = Some(NextAction::Reserve);
            record(NextAction::Commit, "hold_lost", why)
        };
        match self.inner.peers.inventory.commit(reservation).await {
            Ok(reply) if reply.success => {
                to.next_action = None;
                Step::Advance(to, record(NextAction::Commit, "ok", reply.message))
            }
            // Only another caller cancels a hold the saga still has to commit (the saga
            // releases holds of unpaid orders only): take the stock again, and say so.
            Ok(reply) if reply.hold_status() == HoldStatus::Cancelled => {
                tracing::error!(message = %reply.message, "the order's hold was cancelled by another caller before its commit; re-taking it");
                to.reservation_id = None;
                to.next_action = Some(NextAction::Reserve);
                to.status_reason = reasons::HOLD_CANCELLED_ELSEWHERE.to_owned();
                Step::Advance(
                    to,
                    record(
                        NextAction::Commit,
                        CANCELLED_ELSEWHERE,
                        format!("hold {reservation}: {}", reply.message),
                    ),
                )
            }
            // Expired (or gone some other way): the ordinary lost hold.
            Ok(reply) => {
                let rec = lost(&mut to, reply.message);
                Step::Advance(to, rec)
            }
            Err(err) if err.peer_code() == Code::NotFound => {
                let rec = lost(&mut to, err.to_string());
                Step::Advance(to, rec)
            }
            // The inventory refuses this commit for good (the hold is not ours, the request
            // is malformed to it): only a person can settle it.
            Err(err) if cannot_heal(err.peer_code()) => Step::Stuck(err.to_string()),
            // Paid orders never give up on their commit: retried with backoff until it
            // lands (or parks past SAGA_PARK_AFTER_MS), visible meanwhile in the saga
            // backlog metrics.
            Err(err) => Step::Retry(err.to_string()),
        }
    }

    /// Releases the order's hold. Without a recorded hold id (a crash or timeout between the
    /// reserve call and recording its answer, or a cancel that came first) it cancels by the
    /// order's reference `(ORDER, order id)`, which takes nothing to find the hold.
    async fn release_hold(&self, state: &SagaState) -> Step {
        let me = &self.inner;
        let mut to = Transition::from_state(state);
        to.next_action =
            (state.payment_status == PaymentStatus::Succeeded).then_some(NextAction::Refund);
        let (reply, by_reference) = match state.reservation_id {
            Some(reservation) => {
                tracing::Span::current().record("reservation_id", display(reservation));
                (me.peers.inventory.cancel(reservation).await, false)
            }
            None => (me.peers.inventory.cancel_by_reference(state.id).await, true),
        };
        let reply = match reply {
            Ok(reply) => reply,
            // The reference never held anything (or the hold id is unknown): nothing to release.
            Err(err) if err.peer_code() == Code::NotFound => {
                return Step::Advance(
                    to,
                    record(NextAction::ReleaseHold, "nothing_held", err.to_string()),
                );
            }
            // Whatever another identity holds under the order's reference is not the saga's
            // to release; the order still ends (and refunds if paid).
            Err(err)
                if by_reference
                    && classify_reserve_failure(&err.status) == ReserveFailure::ReferenceTaken =>
            {
                tracing::error!(error = %err, "another caller holds the order's inventory reference; nothing to release");
                to.status_reason = reasons::reference_taken_at_release(&state.status_reason);
                return Step::Advance(
                    to,
                    record(NextAction::ReleaseHold, REFERENCE_TAKEN, err.to_string()),
                );
            }
            Err(err) => return Step::Retry(err.to_string()),
        };
        if let Some(reservation) = reply.reservation_id.filter(|_| by_reference) {
            tracing::Span::current().record("reservation_id", display(reservation));
            to.reservation_id = Some(reservation);
        }
        let hold = to
            .reservation_id
            .map_or_else(|| "the order's hold".to_owned(), |r| format!("hold {r}"));
        if reply.success {
            return Step::Advance(to, record(NextAction::ReleaseHold, "ok", reply.message));
        }
        match reply.hold_status() {
            // Only a committed hold refuses a cancel, and the saga never releases a hold it
            // committed (it commits paid orders only, and never releases a paid order's hold):
            // another caller committed it, and its stock left without a sale. The order keeps
            // its end, says so, and is counted and alerted on; a refund still follows.
            HoldStatus::Committed => {
                tracing::error!(message = %reply.message, "the order's hold was committed by another caller; its stock left without a sale");
                to.status_reason = reasons::hold_committed_elsewhere(&state.status_reason);
                Step::Advance(
                    to,
                    record(
                        NextAction::ReleaseHold,
                        COMMITTED_ELSEWHERE,
                        format!("{hold}: {}", reply.message),
                    ),
                )
            }
            // A refusal this engine does not know: a person has to look, so the order waits
            // for one (parked) instead of ending as if its hold were released.
            _ => Step::Stuck(format!(
                "{hold} could not be released ({}): {}",
                reply.status, reply.message
            )),
        }
    }

    /// Gives the money back, with a key derived from the order so it happens once.
    async fn refund(&self, state: &SagaState) -> Step {
        let mut to = Transition::from_state(state);
        let Some(payment_id) = state.payment_id.as_deref() else {
            return Step::Stuck("refund due but no payment id recorded".to_owned());
        };
        match self.inner.peers.payment.refund(state.id, payment_id, state.total_amount_minor).await
        {
            Ok(refund_id) => {
                to.payment_status = PaymentStatus::Refunded;
                to.next_action = None;
                Step::Advance(to, record(NextAction::Refund, "ok", format!("refund {refund_id}")))
            }
            Err(err) if cannot_heal(err.peer_code()) => Step::Stuck(err.to_string()),
            // Money owed is never given up on: retried with backoff until it goes through
            // (or parks for an operator past SAGA_PARK_AFTER_MS).
            Err(err) => Step::Retry(err.to_string()),
        }
    }
}

/// Codes with which a peer refuses a settling call (commit, refund) for good: retrying the
/// same call cannot change the answer, a person must.
pub(super) fn cannot_heal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented
            | Code::OutOfRange
    )
}

/// The outcome of a reserve that got no stock (`why`): rejected with `reason`, or (already
/// paid) cancelled with a refund to follow. `detail` goes to the audit only.
fn no_stock(state: &SagaState, why: Refusal, reason: String, detail: String) -> Step {
    let outcome = match why {
        Refusal::Short(_) => "short",
        Refusal::ItemsRefused => "rejected",
    };
    let mut to = Transition::from_state(state);
    to.reservation_id = None;
    if state.payment_status == PaymentStatus::Succeeded {
        to.status = OrderStatus::Cancelled;
        to.status_reason = if state.status_reason == reasons::HOLD_CANCELLED_ELSEWHERE {
            reasons::STOCK_GONE_AFTER_FOREIGN_CANCEL
        } else {
            reasons::STOCK_GONE_AFTER_PAYMENT
        }
        .to_owned();
        to.next_action = Some(NextAction::Refund);
    } else {
        to.status = OrderStatus::Rejected;
        to.status_reason = reason;
        to.next_action = None;
    }
    Step::NoStock(to, record(NextAction::Reserve, outcome, detail), why)
}

/// Whether a reserve's answer is a transient failure, to be retried.
fn is_retry(reply: &Result<ReserveReply, PeerError>) -> bool {
    matches!(reply, Err(err) if classify_reserve_failure(&err.status) == ReserveFailure::Retry)
}

/// A reserve that got no hold (no stock, items refused, reference taken) for an order whose
/// previous driver's lease lapsed: that driver may have reserved, charged, and died before
/// writing, and its hold expired since. Rejecting would keep its money, and nothing else can
/// tell whether it was taken, so the payment is asked with the order's key: a charge already
/// taken is returned (not repeated), and the order ends the way a paid order whose stock went
/// does, cancelled and refunded (or confirmed, if the stock is back by the re-take). A charge
/// never taken is taken now and refunded the same way: the price of never keeping money for
/// goods not delivered, paid only after a crash outlived the hold.
fn charge_unknown_without_stock(state: &SagaState, reply: Result<ReserveReply, PeerError>) -> Step {
    let detail = match reply {
        Ok(ReserveReply::Short { message, .. }) => message,
        Ok(ReserveReply::Held(reservation, _)) => format!("hold {reservation}"),
        Err(err) => err.to_string(),
    };
    tracing::warn!(reason = %detail, "no hold for an order a lapsed driver may have charged; settling its payment first");
    let mut to = Transition::from_state(state);
    to.reservation_id = None;
    to.next_action = Some(NextAction::Pay);
    Step::Advance(to, record(NextAction::Reserve, CHARGE_UNKNOWN, detail))
}

/// The outcome of a reserve that found the order's reference held by another caller: that
/// hold is not the order's, so nothing is released. Not yet paid: rejected; paid (a re-take
/// after a lost hold): cancelled with a refund to follow.
fn reference_taken(state: &SagaState, detail: String) -> Step {
    tracing::error!(error = %detail, "another caller holds the order's inventory reference");
    let mut to = Transition::from_state(state);
    to.reservation_id = None;
    if state.payment_status == PaymentStatus::Succeeded {
        to.status = OrderStatus::Cancelled;
        to.status_reason = reasons::REFERENCE_TAKEN_AFTER_PAYMENT.to_owned();
        to.next_action = Some(NextAction::Refund);
    } else {
        to.status = OrderStatus::Rejected;
        to.status_reason = reasons::REFERENCE_TAKEN.to_owned();
        to.next_action = None;
    }
    Step::Advance(to, record(NextAction::Reserve, REFERENCE_TAKEN, detail))
}

fn record(action: NextAction, outcome: &'static str, detail: String) -> StepRecord {
    StepRecord { action: action.as_str(), outcome, detail }
}
