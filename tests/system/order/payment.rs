//! What a payment error does to an order: only an answer that proves no money moved ends it;
//! anything else is asked again with the same key until the provider answers for sure.

use system_tests::TestSystem;
use tonic::Code;

/// Codes a provider answers before it processes a request, with their names in reasons.
const NO_CHARGE: [(Code, &str); 6] = [
    (Code::InvalidArgument, "INVALID_ARGUMENT"),
    (Code::FailedPrecondition, "FAILED_PRECONDITION"),
    (Code::OutOfRange, "OUT_OF_RANGE"),
    (Code::PermissionDenied, "PERMISSION_DENIED"),
    (Code::Unauthenticated, "UNAUTHENTICATED"),
    (Code::Unimplemented, "UNIMPLEMENTED"),
];

/// Codes that can come after the charge was taken.
const OUTCOME_UNKNOWN: [Code; 10] = [
    Code::Cancelled,
    Code::Unknown,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::ResourceExhausted,
    Code::Aborted,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
];

/// What the payment stand-in's injected failures say; it must not reach an order.
const STANDIN_TEXT: [&str; 2] = ["injected", "stand-in"];

#[tokio::test]
async fn a_refusal_that_proves_no_charge_fails_the_order_with_a_fixed_reason() -> anyhow::Result<()>
{
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    for (code, name) in NO_CHARGE {
        sys.payment_faults.set_fail_code(code);
        sys.payment_faults.fail_next_n(1);

        let order = sys.order("alice", &[("p-widget", 1)]).await??;

        assert_eq!(order.status, "PAYMENT_FAILED", "{code:?}: {order:?}");
        assert_eq!(order.status_reason, format!("payment refused by the payment service ({name})"));
        for text in STANDIN_TEXT {
            assert!(!order.status_reason.contains(text), "{}", order.status_reason);
        }
        assert_eq!(order.payment_status, "", "{code:?}");
        assert!(sys.ledger.charges_for_order(&order.id).is_empty(), "{code:?}");
        assert_eq!(sys.reservation(&order.inventory_reservation_id).await?.status, "CANCELLED");
        let steps = sys.saga_steps(&order.id).await?;
        assert!(steps.contains(&("pay".into(), "failed".into())), "{code:?}: {steps:?}");
    }
    // One payment call per order: a refusal is final, never asked again.
    assert_eq!(sys.payment_faults.calls(), 6);
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (10, 0));
    Ok(())
}

#[tokio::test]
async fn a_payment_error_after_the_charge_is_asked_again_and_the_order_confirms_once()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 20).await?;
    for code in OUTCOME_UNKNOWN {
        sys.payment_faults.set_fail_code(code);
        // The provider takes the money, then answers with `code`.
        sys.payment_faults.fail_after_apply_next_n(1);

        let placed = sys.order("alice", &[("p-widget", 1)]).await??;
        let order = sys.wait_settled(&placed.id).await?;

        assert_eq!(order.status, "CONFIRMED", "{code:?}: {order:?}");
        assert_eq!(order.payment_status, "SUCCEEDED", "{code:?}");
        assert_eq!(sys.ledger.charges_for_order(&order.id).len(), 1, "{code:?}: charged once");
        assert_eq!(sys.reservation(&order.inventory_reservation_id).await?.status, "COMMITTED");
    }
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (10, 0));
    Ok(())
}

#[tokio::test]
async fn a_payment_error_before_the_charge_is_asked_again_until_the_provider_recovers()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    for code in [Code::Internal, Code::NotFound, Code::Unknown] {
        sys.payment_faults.set_fail_code(code);
        sys.payment_faults.fail_next_n(3);
        let calls_before = sys.payment_faults.calls();

        let placed = sys.order("alice", &[("p-widget", 1)]).await??;
        let order = sys.wait_settled(&placed.id).await?;

        assert_eq!(order.status, "CONFIRMED", "{code:?}: {order:?}");
        assert_eq!(sys.ledger.succeeded_count_for_order(&order.id), 1, "{code:?}");
        assert!(
            sys.payment_faults.calls() - calls_before >= 4,
            "{code:?}: three failures, then the charge"
        );
        let steps = sys.saga_steps(&order.id).await?;
        assert!(!steps.iter().any(|(_, outcome)| outcome == "failed"), "{code:?}: {steps:?}");
    }
    Ok(())
}
