//! The return saga: restock (inventory ReturnStock) -> refund (payment RefundPayment), driven
//! by the same engine discipline as an order's. Each step is idempotent on its peer, keyed by
//! the return's id (`order-return:<id>`, `order-return-refund:<id>`), so the row only records
//! what to do next: a crash anywhere leaves a row at or before the step reached, and a repeat
//! is answered, never applied twice. Only the lease holder calls peers; every write is guarded
//! by the row's version. A return is written when it completes, must wait for a retry, needs
//! an operator, needs its lease renewed, or the server stops.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;
use uuid::Uuid;

use super::engine::Engine;
use super::reasons;
use super::steps::cannot_heal;
use crate::backoff;
use crate::clients::PaymentPeer;
use crate::clients::inventory::{ReturnFailure, classify_return_failure, return_stock_key};
use crate::domain::returns::{ReturnAction, ReturnStatus, restock_lines};
use crate::error::OrderError;
use crate::metrics;
use crate::store::{ReturnSave, ReturnState};

/// First wait before retrying a return step that failed transiently.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How a return's drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnEnd {
    /// Stock back and refunded.
    Completed,
    /// A step failed transiently; the recovery worker retries it.
    Waiting,
    /// A step was refused for good.
    NeedsOperator,
    /// Someone else drives it (this drive's write lost).
    Elsewhere,
    /// The server is stopping; the lease was given up.
    Stopped,
}

/// What one return step produced.
enum ReturnStep {
    /// The step went through; the state now records it.
    Advanced,
    /// Try again later; the text (the peer's, for the logs) says why.
    Retry(String),
    /// Refused for good: the return's `status_reason`, and the peer's detail for the logs.
    Refused { reason: String, detail: String, refund: bool },
}

impl Engine {
    /// Drives return `id`, whose lease `owner` holds since `leased_at` (claimed by the
    /// recovery worker, or re-armed by its request).
    #[tracing::instrument(skip_all, fields(return_id = %id, order_id))]
    pub async fn drive_return(
        &self,
        id: Uuid,
        owner: Uuid,
        leased_at: Instant,
    ) -> Result<ReturnEnd, OrderError> {
        let state = self
            .inner
            .store
            .return_state(id)
            .await?
            .ok_or_else(|| OrderError::NotFound { what: "return", key: id.to_string() })?;
        tracing::Span::current().record("order_id", tracing::field::display(state.view.order_id));
        self.run_return(state, owner, leased_at + self.inner.config.lease).await
    }

    /// Drives a return its request just wrote (`state`, leased to `owner` since `leased_at`).
    #[tracing::instrument(skip_all, fields(return_id = %state.view.id, order_id = %state.view.order_id))]
    pub async fn drive_new_return(
        &self,
        state: ReturnState,
        owner: Uuid,
        leased_at: Instant,
    ) -> Result<ReturnEnd, OrderError> {
        self.run_return(state, owner, leased_at + self.inner.config.lease).await
    }

    async fn run_return(
        &self,
        mut state: ReturnState,
        owner: Uuid,
        mut lease_until: Instant,
    ) -> Result<ReturnEnd, OrderError> {
        let me = &self.inner;
        loop {
            let action = match state.view.next_action {
                _ if me.stop.is_cancelled() => {
                    return self.end_return(&mut state, ReturnEnd::Stopped, None).await;
                }
                None => return self.end_return(&mut state, ReturnEnd::Completed, None).await,
                // Claimed or re-read while an operator's help is due: nothing to do.
                Some(_) if state.view.status == ReturnStatus::NeedsOperator => {
                    return self.end_return(&mut state, ReturnEnd::NeedsOperator, None).await;
                }
                Some(action) => action,
            };
            if lease_until.saturating_duration_since(Instant::now()) < me.config.step_limit {
                let renewed_at = Instant::now();
                let save = ReturnSave {
                    state: &state,
                    attempts: state.attempts,
                    last_error: None,
                    retry_in: Duration::ZERO,
                    lease: Some((owner, me.config.lease)),
                };
                let Some((version, _)) = me.store.save_return(&save).await? else {
                    return Ok(ReturnEnd::Elsewhere);
                };
                state.version = version;
                lease_until = renewed_at + me.config.lease;
            }
            let span = tracing::info_span!(
                "saga.return_step",
                otel.name = %format_args!("saga.return.{}", action.as_str()),
                saga.action = action.as_str(),
                return_id = %state.view.id,
                order_id = %state.view.order_id,
            );
            match self.return_step(action, &mut state).instrument(span).await {
                ReturnStep::Advanced => state.attempts = 0,
                ReturnStep::Retry(detail) => {
                    tracing::warn!(action = action.as_str(), error = %detail, "return step failed; will retry");
                    return self.end_return(&mut state, ReturnEnd::Waiting, Some(detail)).await;
                }
                ReturnStep::Refused { reason, detail, refund } => {
                    tracing::error!(action = action.as_str(), error = %detail, "return step refused for good: an operator must fix the cause, then the same ReturnOrder request re-arms it");
                    state.view.status = ReturnStatus::NeedsOperator;
                    state.view.status_reason = reason;
                    let end = self.end_return(&mut state, ReturnEnd::NeedsOperator, Some(detail));
                    let end = end.await?;
                    if refund && end == ReturnEnd::NeedsOperator {
                        metrics::return_outcome("refund_failed");
                    }
                    return Ok(end);
                }
            }
        }
    }

    /// Runs `action` for the return, taking its outcome into `state` when it goes through.
    async fn return_step(&self, action: ReturnAction, state: &mut ReturnState) -> ReturnStep {
        match action {
            ReturnAction::Restock => self.restock(state).await,
            ReturnAction::Refund => self.refund_return(state).await,
        }
    }

    /// Puts the returned units back at the inventory, keyed by the return.
    async fn restock(&self, state: &mut ReturnState) -> ReturnStep {
        let view = &state.view;
        let Some(lines) = restock_lines(&view.items) else {
            return ReturnStep::Refused {
                reason: "the return's quantities overflow; an operator must look".to_owned(),
                detail: "restock lines overflow i32".to_owned(),
                refund: false,
            };
        };
        let reply = self
            .inner
            .peers
            .inventory
            .return_stock(
                view.order_id,
                state.reservation_id,
                return_stock_key(view.id),
                &lines,
                &view.reason,
            )
            .await;
        match reply {
            Ok(reply) => {
                tracing::info!(inventory_return_id = %reply.return_id, replayed = reply.replayed, "returned units back at the inventory");
                state.view.status = ReturnStatus::Restocked;
                state.view.next_action = Some(ReturnAction::Refund);
                ReturnStep::Advanced
            }
            Err(err) => match classify_return_failure(&err.status) {
                ReturnFailure::Refused => ReturnStep::Refused {
                    reason: reasons::return_restock_refused(err.peer_code()),
                    detail: err.to_string(),
                    refund: false,
                },
                ReturnFailure::Retry => ReturnStep::Retry(err.to_string()),
            },
        }
    }

    /// Refunds the returned units' price, keyed by the return so it happens once.
    async fn refund_return(&self, state: &mut ReturnState) -> ReturnStep {
        let done = |state: &mut ReturnState, refund_id: Option<String>| {
            state.view.status = ReturnStatus::Completed;
            state.view.next_action = None;
            state.view.status_reason.clear();
            state.view.refund_id = refund_id;
            ReturnStep::Advanced
        };
        // Units given away for free are returned without a refund.
        if state.view.refund_amount_minor == 0 {
            return done(state, None);
        }
        let Some(payment_id) = state.payment_id.clone() else {
            return ReturnStep::Refused {
                reason: reasons::RETURN_NOTHING_TO_REFUND.to_owned(),
                detail: "refund due but the order has no payment id".to_owned(),
                refund: true,
            };
        };
        let reply = self
            .inner
            .peers
            .payment
            .refund_with_key(
                &payment_id,
                state.view.refund_amount_minor,
                PaymentPeer::return_refund_key(state.view.id),
            )
            .await;
        match reply {
            Ok(refund_id) => done(state, Some(refund_id)),
            Err(err) if cannot_heal(err.peer_code()) => ReturnStep::Refused {
                reason: reasons::return_refund_refused(err.peer_code()),
                detail: err.to_string(),
                refund: true,
            },
            // Money owed is never given up on: retried with backoff until it goes through.
            Err(err) => ReturnStep::Retry(err.to_string()),
        }
    }

    /// Writes the return as the drive leaves it (`error`: why it must wait or needs an
    /// operator), giving up the lease; counts its end once the write landed.
    async fn end_return(
        &self,
        state: &mut ReturnState,
        end: ReturnEnd,
        error: Option<String>,
    ) -> Result<ReturnEnd, OrderError> {
        let me = &self.inner;
        let (attempts, retry_in) = match end {
            ReturnEnd::Waiting => {
                let attempt = u32::try_from(state.attempts).unwrap_or(0);
                let delay = backoff::delay(FIRST_BACKOFF, attempt, me.config.max_backoff);
                (state.attempts.saturating_add(1), delay)
            }
            _ => (state.attempts, Duration::ZERO),
        };
        let save =
            ReturnSave { state, attempts, last_error: error.as_deref(), retry_in, lease: None };
        let Some((version, updated_at)) = me.store.save_return(&save).await? else {
            tracing::info!("return taken over during the drive; leaving it");
            return Ok(ReturnEnd::Elsewhere);
        };
        state.version = version;
        state.attempts = attempts;
        state.view.updated_at = updated_at;
        match end {
            ReturnEnd::Completed => {
                metrics::return_outcome("completed");
                metrics::return_refunded(&state.view.currency, state.view.refund_amount_minor);
                tracing::info!(
                    refund_amount_minor = state.view.refund_amount_minor,
                    "return completed"
                );
            }
            ReturnEnd::Waiting => metrics::return_outcome("retry"),
            ReturnEnd::NeedsOperator if error.is_some() => {
                metrics::return_outcome("needs_operator")
            }
            _ => {}
        }
        Ok(end)
    }
}
