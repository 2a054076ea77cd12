//! The payment simulator's books: charges and refunds, each keyed by its idempotency key.
//!
//! Every decision is taken under one lock, so two concurrent retries with the same key see
//! one charge, never two.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use crate::error::StandinError;

/// Outcome of a charge attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeStatus {
    /// The money was taken.
    Succeeded,
    /// The payment was refused; nothing was taken.
    Declined,
}

impl ChargeStatus {
    /// The wire name, as `ProcessPaymentResponse.status` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Declined => "DECLINED",
        }
    }
}

/// One processed payment (succeeded or declined), as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// `pay_<uuid>`.
    pub payment_id: String,
    /// The order it was for.
    pub order_id: String,
    /// The key it was processed under.
    pub idempotency_key: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The payment method as sent.
    pub method: String,
    /// Succeeded or declined.
    pub status: ChargeStatus,
    /// The message sent back (the decline reason, for declines).
    pub message: String,
    /// Sum of the refunds taken from it so far, in minor units.
    pub refunded_minor: i64,
}

impl Charge {
    /// Whether money was taken.
    pub fn succeeded(&self) -> bool {
        self.status == ChargeStatus::Succeeded
    }
}

/// One refund of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// `ref_<uuid>`.
    pub refund_id: String,
    /// The charge refunded.
    pub payment_id: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// The key it was processed under.
    pub idempotency_key: String,
}

/// A validated charge request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChargeRequest {
    pub(crate) order_id: String,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    pub(crate) method: String,
    pub(crate) idempotency_key: String,
}

/// A validated refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefundRequest {
    pub(crate) payment_id: String,
    pub(crate) amount_minor: i64,
    pub(crate) idempotency_key: String,
}

/// Whether a new charge goes through; decided once per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Take the money.
    Approve,
    /// Refuse, with this reason.
    Decline(String),
}

/// The in-memory books of one payment stand-in; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// In the order they were processed.
    charges: Vec<Charge>,
    charge_by_key: HashMap<String, usize>,
    charge_by_id: HashMap<String, usize>,
    refunds: Vec<Refund>,
    refund_by_key: HashMap<String, usize>,
}

impl Ledger {
    /// Empty books.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every processed payment, succeeded or declined, in processing order.
    pub fn charges(&self) -> Vec<Charge> {
        self.lock().charges.clone()
    }

    /// The payments processed for `order_id`, in processing order.
    pub fn charges_for_order(&self, order_id: &str) -> Vec<Charge> {
        self.lock().charges.iter().filter(|c| c.order_id == order_id).cloned().collect()
    }

    /// How many payments for `order_id` took money.
    pub fn succeeded_count_for_order(&self, order_id: &str) -> usize {
        self.lock().charges.iter().filter(|c| c.order_id == order_id && c.succeeded()).count()
    }

    /// The payment with this id.
    pub fn charge(&self, payment_id: &str) -> Option<Charge> {
        let state = self.lock();
        state.charge_by_id.get(payment_id).and_then(|&i| state.charges.get(i)).cloned()
    }

    /// Every refund, in processing order.
    pub fn refunds(&self) -> Vec<Refund> {
        self.lock().refunds.clone()
    }

    /// The stored charge for the request's key, or a new one as `decide` says.
    pub(crate) fn charge_once(
        &self,
        request: ChargeRequest,
        decide: impl FnOnce(&ChargeRequest) -> Decision,
    ) -> Result<Charge, StandinError> {
        let mut state = self.lock();
        if let Some(&index) = state.charge_by_key.get(&request.idempotency_key) {
            let stored = state.charges.get(index).cloned().ok_or_else(corrupt)?;
            let same = stored.order_id == request.order_id
                && stored.amount_minor == request.amount_minor
                && stored.currency == request.currency
                && stored.method == request.method;
            if !same {
                return Err(StandinError::invalid(
                    "idempotency_key",
                    format!(
                        "already used for a different payment (order {}, {} {} by {})",
                        stored.order_id, stored.amount_minor, stored.currency, stored.method
                    ),
                ));
            }
            tracing::info!(payment_id = %stored.payment_id, "replaying stored payment outcome");
            return Ok(stored);
        }
        let (status, message) = match decide(&request) {
            Decision::Approve => (ChargeStatus::Succeeded, "payment succeeded".to_owned()),
            Decision::Decline(reason) => (ChargeStatus::Declined, reason),
        };
        let ChargeRequest { order_id, amount_minor, currency, method, idempotency_key } = request;
        let charge = Charge {
            payment_id: format!("pay_{}", Uuid::new_v4()),
            order_id,
            idempotency_key,
            amount_minor,
            currency,
            method,
            status,
            message,
            refunded_minor: 0,
        };
        let index = state.charges.len();
        state.charge_by_key.insert(charge.idempotency_key.clone(), index);
        state.charge_by_id.insert(charge.payment_id.clone(), index);
        state.charges.push(charge.clone());
        tracing::info!(
            payment_id = %charge.payment_id,
            status = charge.status.as_str(),
            amount_minor = charge.amount_minor,
            "payment processed"
        );
        Ok(charge)
    }

    /// The stored refund for the request's key, or a new one if the charge allows it.
    pub(crate) fn refund_once(&self, request: RefundRequest) -> Result<Refund, StandinError> {
        let mut state = self.lock();
        // The key is checked before the limits: replaying the refund that used up the charge
        // must return it, not a "nothing left to refund" error.
        if let Some(&index) = state.refund_by_key.get(&request.idempotency_key) {
            let stored = state.refunds.get(index).cloned().ok_or_else(corrupt)?;
            if stored.payment_id != request.payment_id
                || stored.amount_minor != request.amount_minor
            {
                return Err(StandinError::invalid(
                    "idempotency_key",
                    format!(
                        "already used for a different refund ({} of payment {})",
                        stored.amount_minor, stored.payment_id
                    ),
                ));
            }
            tracing::info!(refund_id = %stored.refund_id, "replaying stored refund");
            return Ok(stored);
        }
        let index = *state
            .charge_by_id
            .get(&request.payment_id)
            .ok_or_else(|| StandinError::not_found("payment", request.payment_id.clone()))?;
        let charge = state.charges.get_mut(index).ok_or_else(corrupt)?;
        if !charge.succeeded() {
            return Err(StandinError::FailedPrecondition(format!(
                "payment {} was declined: nothing to refund",
                charge.payment_id
            )));
        }
        let remaining = charge.amount_minor - charge.refunded_minor;
        if request.amount_minor > remaining {
            return Err(StandinError::FailedPrecondition(format!(
                "refund of {} exceeds what is left to refund of payment {}: {} of {} {}",
                request.amount_minor,
                charge.payment_id,
                remaining,
                charge.amount_minor,
                charge.currency
            )));
        }
        charge.refunded_minor += request.amount_minor;
        let RefundRequest { payment_id, amount_minor, idempotency_key } = request;
        let refund = Refund {
            refund_id: format!("ref_{}", Uuid::new_v4()),
            payment_id,
            amount_minor,
            idempotency_key,
        };
        let index = state.refunds.len();
        state.refund_by_key.insert(refund.idempotency_key.clone(), index);
        state.refunds.push(refund.clone());
        tracing::info!(refund_id = %refund.refund_id, amount_minor, "refund processed");
        Ok(refund)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and the state stays consistent step by
        // step, so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The indexes point past the vectors: a bug in this module.
fn corrupt() -> StandinError {
    StandinError::Internal("payment ledger index out of step")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, amount_minor: i64) -> ChargeRequest {
        ChargeRequest {
            order_id: "order-1".into(),
            amount_minor,
            currency: "EUR".into(),
            method: "card".into(),
            idempotency_key: key.into(),
        }
    }

    fn refund(payment_id: &str, key: &str, amount_minor: i64) -> RefundRequest {
        RefundRequest { payment_id: payment_id.into(), amount_minor, idempotency_key: key.into() }
    }

    #[test]
    fn same_key_decides_once() {
        let ledger = Ledger::new();
        let first = ledger.charge_once(request("k", 500), |_| Decision::Approve).unwrap();
        let again = ledger
            .charge_once(request("k", 500), |_| panic!("a stored key must not be re-decided"))
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(ledger.charges().len(), 1);
        assert_eq!(ledger.succeeded_count_for_order("order-1"), 1);
        assert!(first.payment_id.starts_with("pay_"));
    }

    #[test]
    fn refunds_never_exceed_the_charge() {
        let ledger = Ledger::new();
        let charge = ledger.charge_once(request("k", 500), |_| Decision::Approve).unwrap();
        let id = &charge.payment_id;
        let first = ledger.refund_once(refund(id, "r1", 300)).unwrap();
        assert!(matches!(
            ledger.refund_once(refund(id, "r2", 201)),
            Err(StandinError::FailedPrecondition(_))
        ));
        ledger.refund_once(refund(id, "r2", 200)).unwrap();
        // Replays still answer after the charge is used up.
        assert_eq!(ledger.refund_once(refund(id, "r1", 300)).unwrap(), first);
        assert_eq!(ledger.charge(id).unwrap().refunded_minor, 500);
        assert_eq!(ledger.refunds().len(), 2);
    }
}
