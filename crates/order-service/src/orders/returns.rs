//! ReturnOrder: write the return under its order's row lock (or find the one its key already
//! wrote), then drive its saga inline for the request's budget and answer the state reached;
//! a return that must wait for a peer finishes in the background (recovery worker).

use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::{Orders, POLL_INTERVAL};
use crate::domain::returns::{ReturnOrder, ReturnStatus};
use crate::error::OrderError;
use crate::metrics;
use crate::saga::ReturnEnd;
use crate::store::{NewReturn, ReturnView, ReturnWrite};

impl Orders {
    /// Returns units of a confirmed order, or answers the return the same request (same
    /// order, key and lines) already made; a return that needed an operator is re-armed.
    #[tracing::instrument(skip_all, fields(order_id = %cmd.order_id, return_id))]
    pub async fn return_order(&self, cmd: ReturnOrder) -> Result<ReturnView, OrderError> {
        let owner = Uuid::new_v4();
        let new = NewReturn { cmd: &cmd, id: Uuid::now_v7(), owner, lease: self.config.lease };
        // Measured before the write that takes the lease, so it surely holds until then + lease.
        let leased_at = Instant::now();
        let written = match self.store.insert_return(&new).await {
            Ok(written) => written,
            Err(
                err @ (OrderError::Refused { .. }
                | OrderError::ReturnKeyInUse
                | OrderError::InvalidArgument(_)),
            ) => {
                metrics::return_outcome("refused");
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let deadline = self.answer_by();
        let engine = self.engine.clone();
        let id = match written {
            ReturnWrite::Created(state) => {
                metrics::return_outcome("requested");
                let id = state.view.id;
                tracing::Span::current().record("return_id", tracing::field::display(id));
                tracing::info!(
                    refund_amount_minor = state.view.refund_amount_minor,
                    "return requested"
                );
                self.drive_return_within(deadline, async move {
                    engine.drive_new_return(*state, owner, leased_at).await
                })
                .await;
                id
            }
            ReturnWrite::Existing { id, rearmed: true } => {
                metrics::return_outcome("rearmed");
                tracing::Span::current().record("return_id", tracing::field::display(id));
                self.drive_return_within(deadline, async move {
                    engine.drive_return(id, owner, leased_at).await
                })
                .await;
                id
            }
            ReturnWrite::Existing { id, rearmed: false } => {
                metrics::return_outcome("replayed");
                tracing::Span::current().record("return_id", tracing::field::display(id));
                return self.wait_return(id, deadline).await;
            }
        };
        self.return_view(id).await
    }

    /// Runs a return's drive as its own task (it carries on when the budget is spent) and
    /// waits for it until `deadline`.
    async fn drive_return_within<F>(&self, deadline: Instant, drive: F)
    where
        F: Future<Output = Result<ReturnEnd, OrderError>> + Send + 'static,
    {
        let drive = self.tasks.spawn(drive.in_current_span());
        match tokio::time::timeout_at(deadline, drive).await {
            Ok(Ok(Ok(end))) => tracing::debug!(?end, "inline return drive ended"),
            Ok(Ok(Err(err))) => {
                tracing::warn!(error = %err, "inline return drive failed; the recovery worker resumes it")
            }
            Ok(Err(err)) => tracing::error!(error = %err, "inline return drive panicked"),
            Err(_) => {
                tracing::info!("request budget spent; the return continues in the background")
            }
        }
    }

    /// Reads return `id` until it completed or needs an operator, or `deadline` passes (the
    /// same request answered while another call drives it).
    async fn wait_return(&self, id: Uuid, deadline: Instant) -> Result<ReturnView, OrderError> {
        loop {
            let view = self.return_view(id).await?;
            let now = Instant::now();
            let settled =
                matches!(view.status, ReturnStatus::Completed | ReturnStatus::NeedsOperator);
            if settled || now >= deadline {
                return Ok(view);
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    async fn return_view(&self, id: Uuid) -> Result<ReturnView, OrderError> {
        self.store
            .return_view(id)
            .await?
            .ok_or_else(|| OrderError::internal("a return vanished after it was written"))
    }
}
