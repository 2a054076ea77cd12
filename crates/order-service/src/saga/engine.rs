//! The step engine: "read the next action -> call the peer -> write the outcome and the
//! following action", in a loop, until the order settles.
//!
//! Every remote step is idempotent on the peer's side, keyed by the order (reserve by
//! `(ORDER, order id)`, payment and refund by keys derived from the order id, commit and
//! cancel by reservation id). So the row only records *what to do next*, never *whether a
//! call happened*: a crash anywhere leaves it pointing at a step that is safe to repeat.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Code;
use tracing::field::display;
use uuid::Uuid;

use super::reasons;
use crate::backoff;
use crate::clients::Peers;
use crate::clients::inventory::{
    HoldStatus, ReserveFailure, ReserveReply, classify_reserve_failure,
};
use crate::clients::payment::{ChargeFailure, ChargeReply, classify_charge_failure};
use crate::domain::pricing::{SkuDemand, demand};
use crate::domain::{NextAction, OrderId, OrderStatus, PaymentStatus};
use crate::error::OrderError;
use crate::metrics;
use crate::store::{SagaState, StepRecord, Store, Transition};

/// First wait before retrying a step that failed transiently.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Steps one drive runs before yielding the order (guards against a hold that keeps being
/// lost between re-take and commit, or an order that keeps changing under the driver).
const MAX_STEPS_PER_DRIVE: u32 = 16;

/// Step outcome: the hold the saga had to release was committed by another caller.
const COMMITTED_ELSEWHERE: &str = "committed_elsewhere";
/// Step outcome: the hold the saga had to commit was cancelled by another caller.
const CANCELLED_ELSEWHERE: &str = "cancelled_elsewhere";
/// Step outcome: another caller holds the order's inventory reference.
const REFERENCE_TAKEN: &str = "reference_taken";

/// The `order_foreign_settlements_total` kind a step outcome reports, if any.
fn foreign_settlement_kind(outcome: &str) -> Option<&'static str> {
    match outcome {
        COMMITTED_ELSEWHERE => Some("committed"),
        CANCELLED_ELSEWHERE => Some("cancelled"),
        REFERENCE_TAKEN => Some("reference_taken"),
        _ => None,
    }
}

/// The engine's knobs, from the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// How long a driver holds an order per step.
    pub lease: Duration,
    /// Lifetime of the inventory hold, in minutes.
    pub hold_minutes: u32,
    /// Longest wait between two attempts of a failing step.
    pub max_backoff: Duration,
}

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveEnd {
    /// The order has no next action.
    Settled,
    /// A step failed transiently; the order waits for the recovery worker's retry.
    Parked,
    /// Someone else holds the order's lease and drives it.
    Elsewhere,
    /// The server is shutting down; the lease was given up.
    Stopped,
}

/// What one step produced.
enum Step {
    /// Write this state and following action.
    Advance(Transition, StepRecord),
    /// Try again later; the text says why.
    Retry(String),
}

/// The saga step engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    peers: Peers,
    config: EngineConfig,
    stop: CancellationToken,
}

impl Engine {
    /// An engine over `store` and `peers` that stops between steps once `stop` is cancelled.
    pub fn new(store: Store, peers: Peers, config: EngineConfig, stop: CancellationToken) -> Self {
        Self { inner: Arc::new(Inner { store, peers, config, stop }) }
    }

    /// Drives order `id` as lease holder `owner` until it settles, a step must wait, or
    /// someone else takes it over.
    #[tracing::instrument(skip_all, fields(order_id = %id, reservation_id))]
    pub async fn drive(&self, id: OrderId, owner: Uuid) -> Result<DriveEnd, OrderError> {
        let me = &self.inner;
        let lines = me.store.order_lines(id).await?;
        let demand =
            demand(lines.iter().map(|l| (l.sku.as_str(), l.product_id.as_str(), l.quantity)))
                .ok_or_else(|| {
                    OrderError::internal("stored order lines overflow a SKU's quantity")
                })?;
        if demand.is_empty() {
            return Err(OrderError::internal("order has no lines"));
        }
        let mut steps = 0;
        loop {
            if me.stop.is_cancelled() {
                me.store.release_lease(id, owner).await?;
                return Ok(DriveEnd::Stopped);
            }
            let state = me
                .store
                .saga_state(id)
                .await?
                .ok_or_else(|| OrderError::NotFound { what: "order", key: id.to_string() })?;
            if let Some(reservation) = state.reservation_id {
                tracing::Span::current().record("reservation_id", display(reservation));
            }
            let Some(action) = state.next_action else {
                return Ok(DriveEnd::Settled);
            };
            if state.lease_active && state.lease_owner != Some(owner) {
                return Ok(DriveEnd::Elsewhere);
            }
            if steps >= MAX_STEPS_PER_DRIVE {
                let record = StepRecord {
                    action: action.as_str(),
                    outcome: "retry",
                    detail: format!("yielded after {steps} steps in one drive"),
                };
                let delay = backoff::delay(FIRST_BACKOFF, 4, me.config.max_backoff);
                if me.store.park(id, state.version, delay, &record).await? {
                    return Ok(DriveEnd::Parked);
                }
                continue;
            }
            steps += 1;
            // Count the attempt and renew the lease before the call: a crash during the call
            // leaves a row that says "do `action` again", which is safe.
            let Some(version) =
                me.store.begin_step(id, state.version, owner, me.config.lease).await?
            else {
                continue;
            };
            let attempt = u32::try_from(state.attempts).unwrap_or(0);
            match self.step(action, &state, &demand).await {
                Step::Advance(to, record) => {
                    metrics::saga_step(action, record.outcome);
                    if let Some(reservation) = to.reservation_id {
                        tracing::Span::current().record("reservation_id", display(reservation));
                    }
                    if me.store.finish_step(id, version, &to, &record).await? {
                        // Counted once the outcome is written: a superseded step is repeated
                        // and would otherwise count the same settlement twice.
                        if let Some(kind) = foreign_settlement_kind(record.outcome) {
                            metrics::foreign_settlement(kind);
                        }
                        tracing::info!(
                            action = action.as_str(),
                            outcome = record.outcome,
                            status = to.status.as_str(),
                            next = to.next_action.map_or("none", NextAction::as_str),
                            "saga step done"
                        );
                    } else {
                        // Someone changed the order during the call (a cancel, or a driver
                        // that took over after our lease lapsed): reload and follow them.
                        metrics::saga_step(action, "superseded");
                        tracing::info!(
                            action = action.as_str(),
                            "order changed during the step; reloading"
                        );
                        if action == NextAction::Reserve
                            && let Some(held) = to.reservation_id
                        {
                            self.release_if_orphaned(id, held).await?;
                        }
                    }
                }
                Step::Retry(detail) => {
                    metrics::saga_step(action, "retry");
                    let delay = backoff::delay(FIRST_BACKOFF, attempt, me.config.max_backoff);
                    tracing::warn!(action = action.as_str(), error = %detail, retry_in = ?delay, "saga step failed; will retry");
                    let record = StepRecord { action: action.as_str(), outcome: "retry", detail };
                    if me.store.park(id, version, delay, &record).await? {
                        return Ok(DriveEnd::Parked);
                    }
                }
            }
        }
    }

    /// A reserve whose outcome could not be written (the order changed meanwhile) may have
    /// taken a hold nobody will use: a retry that landed after another driver or a cancel had
    /// already settled the order finds no live hold and takes a fresh one. If the order is
    /// settled and does not point at that hold, release it now rather than let it sit until
    /// it expires.
    async fn release_if_orphaned(&self, id: OrderId, held: Uuid) -> Result<(), OrderError> {
        let me = &self.inner;
        let Some(state) = me.store.saga_state(id).await? else { return Ok(()) };
        if state.next_action.is_some() || state.reservation_id == Some(held) {
            return Ok(());
        }
        match me.peers.inventory.cancel(held).await {
            Ok(reply) => {
                tracing::warn!(reservation_id = %held, message = %reply.message, "released a hold taken after the order settled");
                metrics::saga_step(NextAction::ReleaseHold, "orphan_released");
            }
            // The hold expires on its own; the late_hold check of the chaos run and the
            // expiry sweeper bound the damage.
            Err(err) => {
                tracing::error!(reservation_id = %held, error = %err, "could not release a hold taken after the order settled; it will expire");
            }
        }
        Ok(())
    }

    async fn step(&self, action: NextAction, state: &SagaState, demand: &[SkuDemand]) -> Step {
        match action {
            NextAction::Reserve => self.reserve(state, demand).await,
            NextAction::Pay => self.pay(state).await,
            NextAction::Commit => self.commit(state).await,
            NextAction::ReleaseHold => self.release_hold(state, demand).await,
            NextAction::Refund => self.refund(state).await,
        }
    }

    /// Holds the stock. A hold re-taken after payment (the first one expired) goes on to commit.
    #[tracing::instrument(skip_all, fields(order_id = %state.id, reservation_id))]
    async fn reserve(&self, state: &SagaState, demand: &[SkuDemand]) -> Step {
        let me = &self.inner;
        match me.peers.inventory.reserve(state.id, demand, me.config.hold_minutes).await {
            Ok(ReserveReply::Held(reservation)) => {
                tracing::Span::current().record("reservation_id", display(reservation));
                let mut to = Transition::from_state(state);
                to.reservation_id = Some(reservation);
                if state.payment_status == PaymentStatus::Succeeded {
                    to.next_action = Some(NextAction::Commit);
                } else {
                    to.status = OrderStatus::Reserved;
                    to.next_action = Some(NextAction::Pay);
                }
                Step::Advance(to, record(NextAction::Reserve, "ok", format!("hold {reservation}")))
            }
            Ok(ReserveReply::Short(message)) => {
                no_stock(state, "short", reasons::short_stock(&message), message)
            }
            Err(err) => match classify_reserve_failure(&err.status) {
                ReserveFailure::ItemsRefused => no_stock(
                    state,
                    "rejected",
                    reasons::inventory_refused(err.peer_code()),
                    err.to_string(),
                ),
                ReserveFailure::ReferenceTaken => reference_taken(state, err.to_string()),
                ReserveFailure::Retry => Step::Retry(err.to_string()),
            },
        }
    }

    /// Charges the order with a key derived from it, so a retry never charges twice.
    #[tracing::instrument(skip_all, fields(order_id = %state.id, reservation_id))]
    async fn pay(&self, state: &SagaState) -> Step {
        record_reservation(state);
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
    #[tracing::instrument(skip_all, fields(order_id = %state.id, reservation_id))]
    async fn commit(&self, state: &SagaState) -> Step {
        record_reservation(state);
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
            // Paid orders never give up on their commit: retried with backoff until it
            // lands, visible meanwhile in the saga backlog metrics.
            Err(err) => Step::Retry(err.to_string()),
        }
    }

    /// Releases the order's hold. Without a recorded hold id (a crash or timeout between the
    /// reserve call and recording its answer, or a cancel that came first) it asks the
    /// inventory for the order's hold by reference, and releases whatever that returns.
    #[tracing::instrument(skip_all, fields(order_id = %state.id, reservation_id))]
    async fn release_hold(&self, state: &SagaState, demand: &[SkuDemand]) -> Step {
        let me = &self.inner;
        let mut to = Transition::from_state(state);
        to.next_action =
            (state.payment_status == PaymentStatus::Succeeded).then_some(NextAction::Refund);
        let reservation = match state.reservation_id {
            Some(reservation) => reservation,
            None => {
                match me.peers.inventory.reserve(state.id, demand, me.config.hold_minutes).await {
                    Ok(ReserveReply::Held(reservation)) => reservation,
                    Ok(ReserveReply::Short(_)) => {
                        return Step::Advance(
                            to,
                            record(
                                NextAction::ReleaseHold,
                                "nothing_held",
                                "no hold for the order".to_owned(),
                            ),
                        );
                    }
                    Err(err) => match classify_reserve_failure(&err.status) {
                        ReserveFailure::ItemsRefused => {
                            return Step::Advance(
                                to,
                                record(NextAction::ReleaseHold, "nothing_held", err.to_string()),
                            );
                        }
                        // Whatever the other caller holds under the order's reference is not
                        // the saga's to release; the order still ends (and refunds if paid).
                        ReserveFailure::ReferenceTaken => {
                            tracing::error!(error = %err, "another caller holds the order's inventory reference; nothing to release");
                            to.status_reason =
                                reasons::reference_taken_at_release(&state.status_reason);
                            return Step::Advance(
                                to,
                                record(NextAction::ReleaseHold, REFERENCE_TAKEN, err.to_string()),
                            );
                        }
                        ReserveFailure::Retry => return Step::Retry(err.to_string()),
                    },
                }
            }
        };
        tracing::Span::current().record("reservation_id", display(reservation));
        to.reservation_id = Some(reservation);
        match me.peers.inventory.cancel(reservation).await {
            Ok(reply) if reply.success => {
                Step::Advance(to, record(NextAction::ReleaseHold, "ok", reply.message))
            }
            // Only a committed hold refuses a cancel, and the saga never releases a hold it
            // committed (it commits paid orders only, and never releases a paid order's hold):
            // another caller committed it, and its stock left without a sale. The order keeps
            // its end, says so, and is counted and alerted on; a refund still follows.
            Ok(reply) if reply.hold_status() == HoldStatus::Committed => {
                tracing::error!(message = %reply.message, "the order's hold was committed by another caller; its stock left without a sale");
                to.status_reason = reasons::hold_committed_elsewhere(&state.status_reason);
                Step::Advance(
                    to,
                    record(
                        NextAction::ReleaseHold,
                        COMMITTED_ELSEWHERE,
                        format!("hold {reservation}: {}", reply.message),
                    ),
                )
            }
            Ok(reply) => {
                // A refusal this engine does not know: a person has to look, so say so
                // loudly and stop retrying.
                tracing::error!(message = %reply.message, status = %reply.status, "hold could not be released");
                Step::Advance(to, record(NextAction::ReleaseHold, "failed", reply.message))
            }
            Err(err) if err.peer_code() == Code::NotFound => {
                Step::Advance(to, record(NextAction::ReleaseHold, "nothing_held", err.to_string()))
            }
            Err(err) => Step::Retry(err.to_string()),
        }
    }

    /// Gives the money back, with a key derived from the order so it happens once.
    #[tracing::instrument(skip_all, fields(order_id = %state.id, reservation_id))]
    async fn refund(&self, state: &SagaState) -> Step {
        record_reservation(state);
        let mut to = Transition::from_state(state);
        let Some(payment_id) = state.payment_id.as_deref() else {
            tracing::error!("refund due but no payment id recorded");
            to.next_action = None;
            return Step::Advance(
                to,
                record(NextAction::Refund, "failed", "no payment id recorded".to_owned()),
            );
        };
        match self.inner.peers.payment.refund(state.id, payment_id, state.total_amount_minor).await
        {
            Ok(refund_id) => {
                to.payment_status = PaymentStatus::Refunded;
                to.next_action = None;
                Step::Advance(to, record(NextAction::Refund, "ok", format!("refund {refund_id}")))
            }
            // Money owed is never given up on: retried with backoff until it goes through.
            Err(err) => Step::Retry(err.to_string()),
        }
    }
}

/// The outcome of a reserve that got no stock: rejected with `reason`, or (already paid)
/// cancelled with a refund to follow. `detail` goes to the audit only.
fn no_stock(state: &SagaState, outcome: &'static str, reason: String, detail: String) -> Step {
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
    Step::Advance(to, record(NextAction::Reserve, outcome, detail))
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

fn record_reservation(state: &SagaState) {
    if let Some(reservation) = state.reservation_id {
        tracing::Span::current().record("reservation_id", display(reservation));
    }
}
