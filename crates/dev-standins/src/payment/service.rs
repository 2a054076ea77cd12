//! The `payment.v1.PaymentService` handlers: validate, decide, record in the [`Ledger`].

use proto::payment::v1 as pb;
use tonic::{Request, Response, Status};

use super::ledger::{ChargeRequest, Decision, Ledger, RefundRequest};
use crate::error::StandinError;
use crate::faults::Faults;
use crate::fields::Violations;

/// Methods with this prefix always decline, so tests can choose the outcome.
const DECLINE_PREFIX: &str = "decline";
/// The conventional always-declining test card.
const DECLINE_METHOD: &str = "card_decline";

/// How the simulator decides new charges.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules {
    /// Decline amounts above this, when set.
    pub(crate) decline_over_minor: Option<i64>,
}

impl Rules {
    /// Approve, or decline with a reason that says which rule fired.
    fn decide(self, request: &ChargeRequest) -> Decision {
        if request.method == DECLINE_METHOD || request.method.starts_with(DECLINE_PREFIX) {
            return Decision::Decline(format!(
                "card declined: method {:?} always declines (development stand-in)",
                request.method
            ));
        }
        match self.decline_over_minor {
            Some(limit) if request.amount_minor > limit => Decision::Decline(format!(
                "card declined: amount {} is over the limit of {limit} (development stand-in)",
                request.amount_minor
            )),
            _ => Decision::Approve,
        }
    }
}

/// The gRPC face of the payment simulator.
#[derive(Debug, Clone)]
pub(crate) struct PaymentApi {
    ledger: Ledger,
    faults: Faults,
    rules: Rules,
}

impl PaymentApi {
    /// Handlers recording into `ledger`, under `faults`, deciding by `rules`.
    pub(crate) fn new(ledger: Ledger, faults: Faults, rules: Rules) -> Self {
        Self { ledger, faults, rules }
    }
}

fn charge_request(req: pb::ProcessPaymentRequest) -> Result<ChargeRequest, StandinError> {
    let mut v = Violations::default();
    v.non_empty("order_id", &req.order_id);
    v.check(req.amount_minor > 0, "amount_minor", "must be greater than 0");
    v.currency("currency", &req.currency);
    v.non_empty("method", &req.method);
    v.non_empty("idempotency_key", &req.idempotency_key);
    v.finish().map_err(StandinError::InvalidArgument)?;
    Ok(ChargeRequest {
        order_id: req.order_id,
        amount_minor: req.amount_minor,
        currency: req.currency,
        method: req.method,
        idempotency_key: req.idempotency_key,
    })
}

fn refund_request(req: pb::RefundPaymentRequest) -> Result<RefundRequest, StandinError> {
    let mut v = Violations::default();
    v.non_empty("payment_id", &req.payment_id);
    v.check(req.amount_minor > 0, "amount_minor", "must be greater than 0");
    v.non_empty("idempotency_key", &req.idempotency_key);
    v.finish().map_err(StandinError::InvalidArgument)?;
    Ok(RefundRequest {
        payment_id: req.payment_id,
        amount_minor: req.amount_minor,
        idempotency_key: req.idempotency_key,
    })
}

#[tonic::async_trait]
impl pb::payment_service_server::PaymentService for PaymentApi {
    #[tracing::instrument(
        skip_all,
        fields(order_id = %request.get_ref().order_id, idempotency_key = %request.get_ref().idempotency_key)
    )]
    async fn process_payment(
        &self,
        request: Request<pb::ProcessPaymentRequest>,
    ) -> Result<Response<pb::ProcessPaymentResponse>, Status> {
        let req = request.into_inner();
        let rules = self.rules;
        let charge = self
            .faults
            .around(async { self.ledger.charge_once(charge_request(req)?, |r| rules.decide(r)) })
            .await?;
        Ok(Response::new(pb::ProcessPaymentResponse {
            payment_id: charge.payment_id,
            status: charge.status.as_str().to_owned(),
            message: charge.message,
        }))
    }

    #[tracing::instrument(
        skip_all,
        fields(payment_id = %request.get_ref().payment_id, idempotency_key = %request.get_ref().idempotency_key)
    )]
    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, Status> {
        let req = request.into_inner();
        let refund =
            self.faults.around(async { self.ledger.refund_once(refund_request(req)?) }).await?;
        Ok(Response::new(pb::RefundPaymentResponse {
            refund_id: refund.refund_id,
            // Refunds are simulated instantly; there is no pending state to report.
            status: "SUCCEEDED".to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(method: &str, amount_minor: i64) -> ChargeRequest {
        ChargeRequest {
            order_id: "o".into(),
            amount_minor,
            currency: "EUR".into(),
            method: method.into(),
            idempotency_key: "k".into(),
        }
    }

    #[test]
    fn declines_are_deterministic() {
        let rules = Rules { decline_over_minor: Some(10_000) };
        assert_eq!(rules.decide(&charge("card", 10_000)), Decision::Approve);
        for (method, amount) in
            [("card_decline", 1), ("decline_insufficient_funds", 1), ("card", 10_001)]
        {
            assert!(
                matches!(rules.decide(&charge(method, amount)), Decision::Decline(_)),
                "{method}"
            );
        }
        assert_eq!(Rules::default().decide(&charge("card", i64::MAX)), Decision::Approve);
    }

    #[test]
    fn validation_names_every_bad_field() {
        let err = charge_request(pb::ProcessPaymentRequest {
            currency: "eur".into(),
            ..Default::default()
        })
        .unwrap_err();
        let StandinError::InvalidArgument(violations) = err else { panic!("{err:?}") };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["order_id", "amount_minor", "currency", "method", "idempotency_key"]);
    }
}
