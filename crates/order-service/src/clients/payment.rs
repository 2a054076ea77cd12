//! The payment service client. Both calls carry an idempotency key derived from the order, so
//! a retry after an unknown outcome returns the first outcome instead of charging again.

use proto::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use tonic::Code;
use uuid::Uuid;

use super::{PeerChannel, PeerError, request, retrying, with_deadline};
use crate::domain::OrderId;
use crate::settings::CallPolicy;

const PEER: &str = "payment";

/// What the payment service answered to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeReply {
    Succeeded {
        payment_id: String,
    },
    Declined {
        message: String,
    },
    /// A status this client does not know: the outcome is unknown.
    Unrecognised {
        status: String,
    },
}

/// What a charge that failed with a gRPC error can have done to the customer's money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeFailure {
    /// The provider refused the request before processing it: nothing was charged.
    NotCharged,
    /// The charge may have been taken: ask again with the same key.
    OutcomeUnknown,
}

/// The one rule for a failed charge. Only codes a provider answers before it processes a
/// request (the request is malformed, not allowed, or not served) prove that no money moved.
/// Every other code can come after the charge was taken (INTERNAL, DATA_LOSS, a timeout, a
/// reset connection, a provider's NOT_FOUND or ALREADY_EXISTS about its own bookkeeping), and
/// ending such an order as PAYMENT_FAILED could keep money for goods never sent.
pub fn classify_charge_failure(code: Code) -> ChargeFailure {
    match code {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented => ChargeFailure::NotCharged,
        // Listed one by one, no wildcard: a code added to tonic must be classified here.
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::NotFound
        | Code::AlreadyExists
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => ChargeFailure::OutcomeUnknown,
    }
}

/// Client of `payment.v1.PaymentService`.
#[derive(Debug, Clone)]
pub struct PaymentPeer {
    client: PaymentServiceClient<PeerChannel>,
    policy: CallPolicy,
}

impl PaymentPeer {
    /// A client over `channel`.
    pub fn new(channel: PeerChannel, policy: CallPolicy) -> Self {
        Self { client: PaymentServiceClient::new(channel), policy }
    }

    /// The idempotency key of an order's charge.
    pub fn charge_key(order: OrderId) -> String {
        format!("order:{order}:charge")
    }

    /// The idempotency key of an order's refund.
    pub fn refund_key(order: OrderId) -> String {
        format!("order:{order}:refund")
    }

    /// Charges the order's total.
    pub async fn charge(
        &self,
        order: OrderId,
        amount_minor: i64,
        currency: &str,
        method: &str,
    ) -> Result<ChargeReply, PeerError> {
        let msg = pb::ProcessPaymentRequest {
            order_id: order.to_string(),
            amount_minor,
            currency: currency.to_owned(),
            method: method.to_owned(),
            idempotency_key: Self::charge_key(order),
        };
        let reply = retrying(self.policy, PEER, "process_payment", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            with_deadline(self.policy.timeout, async move { client.process_payment(req).await })
        })
        .await?;
        Ok(match reply.status.as_str() {
            "SUCCEEDED" => ChargeReply::Succeeded { payment_id: reply.payment_id },
            "DECLINED" => ChargeReply::Declined { message: reply.message },
            _ => ChargeReply::Unrecognised { status: reply.status },
        })
    }

    /// The idempotency key of the refund of return `return_id` (one refund per return).
    pub fn return_refund_key(return_id: Uuid) -> String {
        format!("order-return-refund:{return_id}")
    }

    /// Refunds `amount_minor` of the payment; returns the refund id.
    pub async fn refund(
        &self,
        order: OrderId,
        payment_id: &str,
        amount_minor: i64,
    ) -> Result<String, PeerError> {
        self.refund_with_key(payment_id, amount_minor, Self::refund_key(order)).await
    }

    /// Refunds `amount_minor` of the payment under `idempotency_key` (a retry refunds once);
    /// returns the refund id.
    pub async fn refund_with_key(
        &self,
        payment_id: &str,
        amount_minor: i64,
        idempotency_key: String,
    ) -> Result<String, PeerError> {
        let msg = pb::RefundPaymentRequest {
            payment_id: payment_id.to_owned(),
            amount_minor,
            idempotency_key,
        };
        let reply = retrying(self.policy, PEER, "refund_payment", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            with_deadline(self.policy.timeout, async move { client.refund_payment(req).await })
        })
        .await?;
        Ok(reply.refund_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ALL_CODES;

    #[test]
    fn only_codes_that_prove_no_charge_end_a_payment() {
        let not_charged = [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::OutOfRange,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Unimplemented,
        ];
        for code in ALL_CODES {
            let expected = if not_charged.contains(&code) {
                ChargeFailure::NotCharged
            } else {
                ChargeFailure::OutcomeUnknown
            };
            assert_eq!(classify_charge_failure(code), expected, "{code:?}");
        }
        // An unknown numeric status reaches the client as UNKNOWN: retried.
        assert_eq!(
            classify_charge_failure(Code::from_i32(99)),
            ChargeFailure::OutcomeUnknown,
            "unknown status numbers"
        );
    }
}
