//! CancelOrder: mark the order CANCELLED under its row lock, then release its hold.

use uuid::Uuid;

use super::Orders;
use crate::domain::commands::CancelOrder;
use crate::error::OrderError;
use crate::store::{CancelOutcome, OrderView};

impl Orders {
    /// Cancels an order that has not been paid; repeating a cancel is success.
    #[tracing::instrument(skip_all, fields(order_id = %cmd.order_id))]
    pub async fn cancel(&self, cmd: CancelOrder) -> Result<OrderView, OrderError> {
        let owner = Uuid::new_v4();
        match self.store.cancel_order(&cmd, owner, self.config.lease).await? {
            CancelOutcome::Cancelled { leased: true } => {
                tracing::info!(reason = %cmd.reason, "order cancelled; releasing its hold");
                self.drive_within_budget(cmd.order_id, owner).await
            }
            // Whoever holds the lease is mid-step; its guarded write fails on the version we
            // bumped, and it continues with the release.
            CancelOutcome::Cancelled { leased: false } => {
                tracing::info!(reason = %cmd.reason, "order cancelled; its driver releases the hold");
                self.wait_settled(cmd.order_id, self.answer_by()).await
            }
            CancelOutcome::AlreadyCancelled => self.get(cmd.order_id).await,
            CancelOutcome::Refused(reason) => Err(OrderError::FailedPrecondition(reason)),
        }
    }
}
