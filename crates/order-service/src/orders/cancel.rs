//! CancelOrder: mark the order CANCELLED under its row lock, then release its hold.

use uuid::Uuid;

use super::{Orders, Reached};
use crate::domain::cancellation::USE_RETURN;
use crate::domain::commands::CancelOrder;
use crate::error::{ORDER_CONFIRMED_USE_RETURN, OrderError};
use crate::saga::Prior;
use crate::store::{CancelOutcome, OrderView};

impl Orders {
    /// Cancels an order that has not been paid; repeating a cancel is success.
    #[tracing::instrument(skip_all, fields(order_id = %cmd.order_id))]
    pub async fn cancel(&self, cmd: CancelOrder) -> Result<OrderView, OrderError> {
        let owner = Uuid::new_v4();
        match self.store.cancel_order(&cmd, owner, self.config.lease).await? {
            CancelOutcome::Cancelled => {
                tracing::info!(reason = %cmd.reason, "order cancelled; releasing its hold");
                let engine = self.engine.clone();
                let id = cmd.order_id;
                let drive = async move { engine.drive(id, owner, Prior::Recorded).await };
                match self.drive_within_budget(id, drive, None).await? {
                    Reached::Read(order) => Ok(order),
                    Reached::Written(..) | Reached::Withdrawn(_) => self.get(id).await,
                }
            }
            CancelOutcome::AlreadyCancelled => self.get(cmd.order_id).await,
            CancelOutcome::Refused(reason) => Err(OrderError::FailedPrecondition(reason)),
            CancelOutcome::UseReturn => Err(OrderError::Refused {
                reason: ORDER_CONFIRMED_USE_RETURN,
                field: None,
                message: USE_RETURN.to_owned(),
            }),
        }
    }
}
