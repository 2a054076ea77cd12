//! The payment service client. Both calls carry an idempotency key derived from the order, so
//! a retry after an unknown outcome returns the first outcome instead of charging again.

use common::proto::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use tonic::transport::Channel;

use super::{CallPolicy, PeerError, request, retrying, with_deadline};
use crate::domain::OrderId;

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

/// Client of `payment.v1.PaymentService`.
#[derive(Debug, Clone)]
pub struct PaymentPeer {
    client: PaymentServiceClient<Channel>,
    policy: CallPolicy,
}

impl PaymentPeer {
    /// A client over `channel`.
    pub fn new(channel: Channel, policy: CallPolicy) -> Self {
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

    /// Refunds `amount_minor` of the payment; returns the refund id.
    pub async fn refund(
        &self,
        order: OrderId,
        payment_id: &str,
        amount_minor: i64,
    ) -> Result<String, PeerError> {
        let msg = pb::RefundPaymentRequest {
            payment_id: payment_id.to_owned(),
            amount_minor,
            idempotency_key: Self::refund_key(order),
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
