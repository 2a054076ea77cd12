//! The step engine: "call the peer for the next action -> take on its outcome", in a loop,
//! until the order settles, writing the order's row only when it must.
//!
//! Every remote step is idempotent on the peer's side, keyed by the order (reserve by
//! `(ORDER, order id)`, payment and refund by keys derived from the order id, commit and
//! cancel by reservation id). So the row only records *what to do next*, never *whether a
//! call happened*, and a driver may make several calls before it writes: a crash anywhere
//! leaves a row that points at a step at or before the one reached, and repeating steps is
//! safe. A happy order is written twice: its intent (before the first call) and its end.
//! Between them the driver writes only when it must wait for a retry, when its lease needs
//! renewing before a step, or when the server stops.
//!
//! What the row cannot show while a driver works is how far it got; in particular whether it
//! charged. Hence two rules. A row with a `lease_owner` is being driven (or was, by a driver
//! that died) and CancelOrder refuses it. And a driver that takes over a lapsed lease treats
//! the payment as possibly taken until it has the payment's own answer (see
//! [`Progress::charge_unrecorded`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing::field::{Empty, display};
use uuid::Uuid;

use crate::backoff;
use crate::clients::Peers;
use crate::clients::inventory::ShortLine;
use crate::domain::pricing::{SkuDemand, demand};
use crate::domain::{NextAction, OrderId, OrderStatus, PaymentStatus};
use crate::error::OrderError;
use crate::metrics;
use crate::store::{LastError, LeaseAfter, Park, SagaState, Save, StepRecord, Store, Transition};

use super::reasons;

/// First wait before retrying a step that failed transiently.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Steps one drive runs before yielding the order (guards against a hold that keeps being
/// lost between re-take and commit, or an order that keeps changing under the driver).
const MAX_STEPS_PER_DRIVE: u32 = 16;

/// The engine's knobs, from the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// How long a driver holds an order.
    pub lease: Duration,
    /// The longest one step (a peer call with its inline retries) can take: a lease with
    /// less than this left is renewed before the next step.
    pub step_limit: Duration,
    /// Lifetime of the inventory hold, in minutes.
    pub hold_minutes: u32,
    /// Longest wait between two attempts of a failing step.
    pub max_backoff: Duration,
    /// How long a step may keep failing before its order is parked for an operator (None:
    /// retried forever).
    pub park_after: Option<Duration>,
    /// Age past which an order that is not paid yet is cancelled instead of reserved or
    /// charged (None: no limit).
    pub payment_deadline: Option<Duration>,
    /// How long the payment provider honours an idempotency key: a charge whose outcome is
    /// still unknown past it is parked, never asked again.
    pub payment_key_window: Duration,
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
    /// The order's first reserve found no stock and the order was deleted (see
    /// [`Withdrawal`]).
    Withdrawn,
    /// The order is parked for an operator: nothing drives it until it is resolved.
    NeedsOperator,
}

/// How a drive ended, and the order as its last write left it.
#[derive(Debug, Clone)]
pub struct Drive {
    pub end: DriveEnd,
    /// The state the drive wrote last and when, if that write is still the order's (settled
    /// or parked).
    pub written: Option<(SagaState, DateTime<Utc>)>,
    /// Why the order was withdrawn (when `end` is Withdrawn).
    pub refused: Option<Refusal>,
}

impl Drive {
    fn ended(end: DriveEnd) -> Self {
        Self { end, written: None, refused: None }
    }
}

/// Why a reserve took nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not enough stock: what each short SKU asked and had left.
    Short(Vec<ShortLine>),
    /// The inventory refused the items (an SKU it does not know, say).
    ItemsRefused,
}

/// The right to withdraw an order (delete it, as if never placed) when its first reserve
/// finds no stock, shared by the request that placed it and the drive: only one of them gets
/// it. The drive withdraws only while the request still waits to answer with the refusal; a
/// request that answers first (its budget spent) has handed out the order's id, and the
/// order then ends REJECTED like any other.
#[derive(Debug, Clone)]
pub struct Withdrawal(Arc<AtomicBool>);

impl Withdrawal {
    /// Not yet taken by either side.
    pub fn open() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Takes the right; true for the first caller only.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// How the order's previous driver left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// Its row records everything done to it: just created, parked, or released.
    Recorded,
    /// Its driver's lease lapsed: that driver may have made calls the row does not record.
    Lapsed,
}

/// What one step produced.
pub(super) enum Step {
    /// Take on this state and following action.
    Advance(Transition, StepRecord),
    /// A reserve took nothing, for this reason: take on this state (the order's end, or a
    /// refund of a paid order), unless the drive withdraws the order.
    NoStock(Transition, StepRecord, Refusal),
    /// Try again later; the text says why.
    Retry(String),
    /// Failed in a way retrying cannot heal: park the order for an operator; the text says why.
    Stuck(String),
}

/// A drive's knowledge beyond its order's row: the steps done since the row was last written.
struct Progress {
    /// The order as the drive has it; `version` is the row's as last read or written.
    state: SagaState,
    /// Steps done since the last write, for its audit rows.
    steps: Vec<StepRecord>,
    /// Holds settled by other callers since the last write: counted once it lands, since a
    /// write that loses makes its steps be repeated.
    settlements: Vec<&'static str>,
    /// Until when the lease surely holds, on this clock.
    lease_until: Instant,
    /// The previous driver's lease lapsed and this drive has not had the payment's own
    /// answer yet.
    lapsed: bool,
    /// Whether a step went through since the last write (its `last_error` is stale).
    advanced: bool,
    /// The last hold this drive took, to release if the order ends up without it.
    reserved: Option<Uuid>,
    /// The right to withdraw the order if its first reserve finds no stock.
    withdrawal: Option<Withdrawal>,
    /// When the order was created, on this clock.
    born: Instant,
}

impl Progress {
    fn new(state: SagaState, lease_until: Instant, prior: Prior) -> Self {
        let now = Instant::now();
        Self {
            born: now.checked_sub(state.age).unwrap_or(now),
            state,
            steps: Vec::new(),
            settlements: Vec::new(),
            lease_until,
            lapsed: prior == Prior::Lapsed,
            advanced: false,
            reserved: None,
            withdrawal: None,
        }
    }

    /// Whether the order may have been charged without its row saying so: a lapsed driver
    /// reached the payment, or not; nobody can tell until the payment answers this drive (a
    /// payment recorded as taken, or a step past the payment, settles the question).
    pub(super) fn charge_unrecorded(&self) -> bool {
        self.lapsed
            && matches!(self.state.next_action, Some(NextAction::Reserve | NextAction::Pay))
            && self.state.payment_status != PaymentStatus::Succeeded
    }

    /// What a write that gives up the lease leaves: free, or (while a charge may be
    /// unrecorded) lapsing after `after` in `owner`'s name, so CancelOrder keeps refusing and
    /// the next driver knows.
    fn give_up(&self, owner: Uuid, after: Duration) -> LeaseAfter {
        if self.charge_unrecorded() {
            LeaseAfter::Lapse { owner, after }
        } else {
            LeaseAfter::Release
        }
    }

    /// The end of a drive whose last write landed at `written` (None: it lost to a takeover).
    fn ended(&self, end: DriveEnd, written: Option<DateTime<Utc>>) -> Drive {
        match written {
            Some(at) => Drive { end, written: Some((self.state.clone(), at)), refused: None },
            None => Drive::ended(DriveEnd::Elsewhere),
        }
    }
}

/// The saga step engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) store: Store,
    pub(super) peers: Peers,
    pub(super) config: EngineConfig,
    pub(super) stop: CancellationToken,
}

impl Engine {
    /// An engine over `store` and `peers` that stops between steps once `stop` is cancelled.
    pub fn new(store: Store, peers: Peers, config: EngineConfig, stop: CancellationToken) -> Self {
        Self { inner: Arc::new(Inner { store, peers, config, stop }) }
    }

    /// Drives order `id`, whose lease `owner` already holds (claimed, or taken by a cancel),
    /// until it settles, a step must wait, or someone else takes it over.
    #[tracing::instrument(skip_all, fields(order_id = %id, reservation_id))]
    pub async fn drive(&self, id: OrderId, owner: Uuid, prior: Prior) -> Result<Drive, OrderError> {
        let me = &self.inner;
        let asked = Instant::now();
        let state = me
            .store
            .saga_state(id)
            .await?
            .ok_or_else(|| OrderError::NotFound { what: "order", key: id.to_string() })?;
        if state.next_action.is_none() {
            return Ok(Drive::ended(DriveEnd::Settled));
        }
        if state.parked {
            return Ok(Drive::ended(DriveEnd::NeedsOperator));
        }
        let Some(left) = state.lease_left.filter(|_| state.lease_owner == Some(owner)) else {
            return Ok(Drive::ended(DriveEnd::Elsewhere));
        };
        let lines = me.store.order_lines(id).await?;
        let demand =
            demand(lines.iter().map(|l| (l.sku.as_str(), l.product_id.as_str(), l.quantity)))
                .ok_or_else(|| {
                    OrderError::internal("stored order lines overflow a SKU's quantity")
                })?;
        if demand.is_empty() {
            return Err(OrderError::internal("order has no lines"));
        }
        self.run(Progress::new(state, asked + left, prior), &demand, owner).await
    }

    /// Drives an order this request just wrote (`state`, leased to `owner` from `leased_at`
    /// on this clock), with no read: the request has everything the saga needs. With
    /// `withdrawal`, a first reserve that finds no stock deletes the order instead of
    /// rejecting it (if the drive gets the right first).
    #[tracing::instrument(skip_all, fields(order_id = %state.id, reservation_id))]
    pub async fn drive_new(
        &self,
        state: SagaState,
        demand: Vec<SkuDemand>,
        owner: Uuid,
        leased_at: Instant,
        withdrawal: Withdrawal,
    ) -> Result<Drive, OrderError> {
        let lease_until = leased_at + self.inner.config.lease;
        let mut progress = Progress::new(state, lease_until, Prior::Recorded);
        progress.withdrawal = Some(withdrawal);
        self.run(progress, &demand, owner).await
    }

    async fn run(
        &self,
        mut progress: Progress,
        demand: &[SkuDemand],
        owner: Uuid,
    ) -> Result<Drive, OrderError> {
        let me = &self.inner;
        let mut taken = 0;
        loop {
            let attempts = progress.state.attempts;
            if me.stop.is_cancelled() {
                let lease = progress.give_up(owner, Duration::ZERO);
                let saved = self
                    .write(&mut progress, attempts, lease, Duration::ZERO, None, Park::No)
                    .await?;
                return Ok(progress.ended(DriveEnd::Stopped, saved.map(|(at, _)| at)));
            }
            let Some(action) = progress.state.next_action else {
                let steps = progress.steps.len();
                let saved = self
                    .write(&mut progress, 0, LeaseAfter::Release, Duration::ZERO, None, Park::No)
                    .await?;
                if saved.is_some() {
                    // One line per order's end (its steps are at debug): logging costs CPU on
                    // the hot path, and the audit rows hold every step anyway.
                    tracing::info!(
                        status = progress.state.status.as_str(),
                        payment_status = progress.state.payment_status.as_str(),
                        steps,
                        "order settled"
                    );
                }
                return Ok(progress.ended(DriveEnd::Settled, saved.map(|(at, _)| at)));
            };
            if taken >= MAX_STEPS_PER_DRIVE {
                let detail = format!("yielded after {taken} steps in one drive");
                return self.park(&mut progress, action, owner, 4, detail, false).await;
            }
            if let Some(limit) = me.config.payment_deadline.filter(|limit| {
                matches!(action, NextAction::Reserve | NextAction::Pay)
                    && progress.state.payment_status != PaymentStatus::Succeeded
                    && progress.born.elapsed() >= *limit
            }) {
                // A charge that may have gone through (a lapsed driver's, or a payment call
                // whose outcome was unknown) can be neither asked again (that could charge
                // now) nor ignored: an operator establishes it.
                let limit_s = limit.as_secs();
                if progress.charge_unrecorded()
                    || (action == NextAction::Pay && progress.state.attempts > 0)
                {
                    let detail = format!(
                        "not paid within {limit_s} s and an earlier charge's outcome is unknown: \
                         establish whether the order was charged"
                    );
                    return self.park(&mut progress, action, owner, 0, detail, true).await;
                }
                let mut to = Transition::from_state(&progress.state);
                to.status = OrderStatus::Cancelled;
                to.status_reason = reasons::NOT_PAID_IN_TIME.to_owned();
                to.next_action = Some(NextAction::ReleaseHold);
                let detail = format!("not paid within {limit_s} s of its creation; cancelled");
                tracing::warn!(action = action.as_str(), "{detail}");
                metrics::saga_step(action, "too_old");
                progress.state.apply(to);
                progress.state.attempts = 0;
                progress.steps.push(StepRecord {
                    action: action.as_str(),
                    outcome: "too_old",
                    detail,
                });
                progress.advanced = true;
                continue;
            }
            if progress.lease_until.saturating_duration_since(Instant::now()) < me.config.step_limit
            {
                let renewed_at = Instant::now();
                let lease = LeaseAfter::Renew { owner, lease: me.config.lease };
                let saved = self
                    .write(&mut progress, attempts, lease, Duration::ZERO, None, Park::No)
                    .await?;
                if saved.is_none() {
                    return Ok(Drive::ended(DriveEnd::Elsewhere));
                }
                progress.lease_until = renewed_at + me.config.lease;
            }
            taken += 1;
            if let Some(reservation) = progress.state.reservation_id {
                tracing::Span::current().record("reservation_id", display(reservation));
            }
            let unrecorded = progress.charge_unrecorded();
            let span = step_span(action, &progress.state);
            let step = self
                .step(action, &progress.state, demand, unrecorded)
                .instrument(span.clone())
                .await;
            span.record("saga.outcome", step.outcome());
            let (to, record) = match step {
                Step::Advance(to, record) => (to, record),
                Step::NoStock(to, record, refusal) => {
                    let first = taken == 1;
                    if first && progress.withdrawal.as_ref().is_some_and(Withdrawal::take) {
                        metrics::saga_step(action, record.outcome);
                        return self.withdraw(&progress, refusal).await;
                    }
                    (to, record)
                }
                Step::Retry(detail) => {
                    metrics::saga_step(action, "retry");
                    let attempt = u32::try_from(attempts).unwrap_or(0);
                    return self.park(&mut progress, action, owner, attempt, detail, false).await;
                }
                Step::Stuck(detail) => {
                    metrics::saga_step(action, "stuck");
                    return self.park(&mut progress, action, owner, 0, detail, true).await;
                }
            };
            metrics::saga_step(action, record.outcome);
            if let Some(kind) = foreign_settlement_kind(record.outcome) {
                progress.settlements.push(kind);
            }
            if action == NextAction::Pay {
                // The payment answered this drive: whatever a lapsed driver did, it
                // is this answer (the same key), and the state now records it.
                progress.lapsed = false;
            }
            if action == NextAction::Reserve
                && let Some(reservation) = to.reservation_id
            {
                progress.reserved = Some(reservation);
                // The drive's span too, so its next lines name the hold just taken.
                tracing::Span::current().record("reservation_id", display(reservation));
            }
            tracing::debug!(
                action = action.as_str(),
                outcome = record.outcome,
                status = to.status.as_str(),
                next = to.next_action.map_or("none", NextAction::as_str),
                "saga step done"
            );
            progress.state.apply(to);
            progress.state.attempts = 0;
            progress.steps.push(record);
            progress.advanced = true;
        }
    }

    /// Deletes the order its first reserve refused, as if it had never been placed: the
    /// request answers with the refusal, and a retry of its key starts afresh. The reserve
    /// took nothing, so nothing else is left to undo.
    async fn withdraw(&self, progress: &Progress, refusal: Refusal) -> Result<Drive, OrderError> {
        if !self.inner.store.withdraw_order(&progress.state).await? {
            return Ok(Drive::ended(DriveEnd::Elsewhere));
        }
        tracing::info!("order withdrawn: its stock is not there");
        Ok(Drive { end: DriveEnd::Withdrawn, written: None, refused: Some(refusal) })
    }

    /// Writes the progress and waits for a retry of `action` after a backoff of `attempt`;
    /// the recovery worker picks the order up then. The write parks the order for an
    /// operator instead when `stuck`, when its step has failed for longer than `park_after`,
    /// or when a charge's outcome is still unknown past the payment key's window.
    async fn park(
        &self,
        progress: &mut Progress,
        action: NextAction,
        owner: Uuid,
        attempt: u32,
        detail: String,
        stuck: bool,
    ) -> Result<Drive, OrderError> {
        let config = &self.inner.config;
        let delay = backoff::delay(FIRST_BACKOFF, attempt, config.max_backoff);
        let key_expired =
            action == NextAction::Pay && progress.born.elapsed() >= config.payment_key_window;
        let park = match config.park_after {
            _ if stuck || key_expired => Park::Now,
            Some(after) => Park::FailingFor(after),
            None => Park::No,
        };
        let attempts = progress.state.attempts.saturating_add(1);
        let lease = progress.give_up(owner, delay);
        let failure = StepRecord { action: action.as_str(), outcome: "retry", detail };
        let error = failure.detail.clone();
        let saved = self.write(progress, attempts, lease, delay, Some(failure), park).await?;
        match saved {
            Some((_, true)) => {
                tracing::error!(action = action.as_str(), error = %error, "saga parked: an operator must resolve the order (ListParkedOrders)");
                metrics::saga_step(action, "parked");
                Ok(progress.ended(DriveEnd::NeedsOperator, saved.map(|(at, _)| at)))
            }
            _ => {
                tracing::warn!(action = action.as_str(), error = %error, retry_in = ?delay, "saga step failed; will retry");
                Ok(progress.ended(DriveEnd::Parked, saved.map(|(at, _)| at)))
            }
        }
    }

    /// The one write of the engine: the progress, the steps since the last write (and the
    /// `failure` that makes it wait, if any) and the lease, guarded by the version last seen.
    /// Returns when it was written, or None when someone took the order over meanwhile.
    async fn write(
        &self,
        progress: &mut Progress,
        attempts: i32,
        lease: LeaseAfter,
        retry_in: Duration,
        failure: Option<StepRecord>,
        park: Park,
    ) -> Result<Option<(DateTime<Utc>, bool)>, OrderError> {
        let me = &self.inner;
        let error = failure.as_ref().map(|f| f.detail.clone());
        progress.steps.extend(failure);
        let last_error = match &error {
            Some(detail) => LastError::Set(detail),
            None if progress.advanced => LastError::Clear,
            None => LastError::Keep,
        };
        let save = Save {
            state: &progress.state,
            attempts,
            last_error,
            retry_in,
            lease,
            steps: &progress.steps,
            park,
        };
        let Some(saved) = me.store.save(&save).await? else {
            // Someone took the order over while this drive worked (its lease lapsed): they
            // repeat what this drive did, and their write is the order's.
            let action = progress.state.next_action.unwrap_or(NextAction::Reserve);
            metrics::saga_step(action, "superseded");
            tracing::info!(
                action = action.as_str(),
                "order taken over during the drive; leaving it"
            );
            if let Some(held) = progress.reserved {
                self.release_if_orphaned(progress.state.id, held).await?;
            }
            return Ok(None);
        };
        progress.state.version = saved.version;
        progress.state.attempts = attempts;
        progress.steps.clear();
        progress.advanced = false;
        for kind in progress.settlements.drain(..) {
            metrics::foreign_settlement(kind);
        }
        Ok(Some((saved.updated_at, saved.parked)))
    }

    /// A hold taken by a drive whose write lost (the order was taken over meanwhile) may be
    /// one nobody will use: a reserve that landed after another driver or a cancel had
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
}

impl Step {
    /// The outcome a trace shows for the step.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Advance(_, record) | Self::NoStock(_, record, _) => record.outcome,
            Self::Retry(_) => "retry",
            Self::Stuck(_) => "stuck",
        }
    }
}

/// The span of one saga step (its peer calls are its children): the order and, once the
/// order has one, its hold (a reserve records the hold it took).
fn step_span(action: NextAction, state: &SagaState) -> tracing::Span {
    let span = tracing::info_span!(
        "saga.step",
        otel.name = %format_args!("saga.{}", action.as_str()),
        saga.action = action.as_str(),
        saga.outcome = Empty,
        order_id = %state.id,
        reservation_id = Empty,
    );
    if let Some(reservation) = state.reservation_id {
        span.record("reservation_id", display(reservation));
    }
    span
}

/// Step outcome: the hold the saga had to release was committed by another caller.
pub(super) const COMMITTED_ELSEWHERE: &str = "committed_elsewhere";
/// Step outcome: the hold the saga had to commit was cancelled by another caller.
pub(super) const CANCELLED_ELSEWHERE: &str = "cancelled_elsewhere";
/// Step outcome: another caller holds the order's inventory reference.
pub(super) const REFERENCE_TAKEN: &str = "reference_taken";

/// The `order_foreign_settlements_total` kind a step outcome reports, if any.
fn foreign_settlement_kind(outcome: &str) -> Option<&'static str> {
    match outcome {
        COMMITTED_ELSEWHERE => Some("committed"),
        CANCELLED_ELSEWHERE => Some("cancelled"),
        REFERENCE_TAKEN => Some("reference_taken"),
        _ => None,
    }
}
