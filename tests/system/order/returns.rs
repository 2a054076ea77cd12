//! ReturnOrder: a confirmed order's units come back (stock restocked at the inventory, their
//! price refunded exactly from the order's own prices), once per request, also when retried,
//! raced, refused for good and re-armed, or interrupted.

use proto::order::v1 as pb;
use system_tests::{PlantedOrder, TestSystem, metric_value, order_request, return_request};
use tonic::Code;
use tonic_types::StatusExt as _;

/// A confirmed order of `items` placed by `user`.
async fn confirmed(
    sys: &TestSystem,
    user: &str,
    items: &[(&str, i32)],
) -> anyhow::Result<pb::Order> {
    let order = sys.order(user, items).await??;
    anyhow::ensure!(order.status == "CONFIRMED", "{order:?}");
    Ok(order)
}

/// The payment id of order `order` (its one charge at the stand-in).
fn payment_of(sys: &TestSystem, order: &pb::Order) -> anyhow::Result<String> {
    let charges = sys.ledger.charges_for_order(&order.id);
    anyhow::ensure!(charges.len() == 1, "{charges:?}");
    Ok(charges[0].payment_id.clone())
}

/// The ErrorInfo reason of `status`.
fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

#[tokio::test]
async fn a_whole_return_restocks_refunds_and_shows_on_the_order() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    sys.stock("GADGET", 5).await?;
    let order = confirmed(&sys, "alice", &[("p-widget", 2), ("p-gadget", 1)]).await?;

    let ret = sys.return_order(&order.id, "r-1", &[]).await??;

    assert_eq!(ret.status, "COMPLETED", "{ret:?}");
    assert_eq!(ret.refund_amount_minor, 2 * 250 + 1999);
    assert_eq!(ret.currency, "EUR");
    assert!(!ret.refund_id.is_empty(), "{ret:?}");
    assert_eq!(sys.refunds_of_return(&ret.id), [(payment_of(&sys, &order)?, 2499)]);
    for (sku, on_hand) in [("WIDGET", 10), ("GADGET", 5)] {
        let item = sys.item(sku).await?;
        assert_eq!((item.on_hand, item.reserved), (on_hand, 0), "{sku} back on hand");
        assert!(sys.movements(sku, "RETURN").await?.0 >= 1, "{sku}: a RETURN ledger row");
    }
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());

    let after = sys.get(&order.id).await?;
    assert_eq!(after.status, "CONFIRMED", "the order keeps its status");
    assert_eq!(after.refunded_amount_minor, 2499);
    assert_eq!(after.returns.len(), 1);
    assert_eq!(after.returns[0].id, ret.id);
    assert_eq!(after.returns[0].status, "COMPLETED");
    // Nothing is left to return.
    let none_left = sys.return_order(&order.id, "r-2", &[]).await?.unwrap_err();
    assert_eq!(none_left.code(), Code::FailedPrecondition, "{none_left:?}");
    assert_eq!(reason(&none_left), "RETURN_EXCEEDS_ORDER");
    Ok(())
}

#[tokio::test]
async fn two_partial_returns_refund_exactly_at_odd_prices() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("ODD", 3).await?;
    let order = confirmed(&sys, "bo", &[("p-odd", 3)]).await?;

    let first = sys.return_order(&order.id, "part-1", &[("ODD", 2, false)]).await??;
    assert_eq!((first.status.as_str(), first.refund_amount_minor), ("COMPLETED", 666));
    let second = sys.return_order(&order.id, "part-2", &[("ODD", 1, false)]).await??;
    assert_eq!((second.status.as_str(), second.refund_amount_minor), ("COMPLETED", 333));
    assert_eq!(second.items[0].unit_price_minor, 333);

    let third = sys.return_order(&order.id, "part-3", &[("ODD", 1, false)]).await?.unwrap_err();
    assert_eq!(third.code(), Code::FailedPrecondition, "{third:?}");
    assert!(third.message().contains("items[0].quantity"), "{}", third.message());

    let payment = payment_of(&sys, &order)?;
    assert_eq!(sys.refunds_of_return(&first.id), [(payment.clone(), 666)]);
    assert_eq!(sys.refunds_of_return(&second.id), [(payment, 333)]);
    let after = sys.get(&order.id).await?;
    assert_eq!(after.refunded_amount_minor, 999);
    assert_eq!(
        after.returns.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [first.id.as_str(), second.id.as_str()]
    );
    assert_eq!(sys.item("ODD").await?.on_hand, 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_request_again_answers_the_same_return_and_refunds_once() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let order = confirmed(&sys, "cy", &[("p-widget", 3)]).await?;
    let first = sys.return_order(&order.id, "same", &[("WIDGET", 1, false)]).await??;
    let again = sys.return_order(&order.id, "same", &[("WIDGET", 1, false)]).await??;
    assert_eq!(again.id, first.id);
    assert_eq!(again.status, "COMPLETED");
    assert_eq!(sys.refunds_of_return(&first.id).len(), 1);

    // Eight identical calls racing on another order: one return, one refund, one restock.
    let raced = confirmed(&sys, "cy", &[("p-widget", 2)]).await?;
    let on_hand = sys.item("WIDGET").await?.on_hand;
    let calls = (0..8).map(|_| {
        let client = sys.client();
        let req = return_request(&raced.id, "race", &[("WIDGET", 2, false)]);
        async move { Ok::<_, anyhow::Error>(client?.return_order(req).await?.into_inner()) }
    });
    let answers = futures::future::try_join_all(calls).await?;
    let id = &answers[0].id;
    assert!(answers.iter().all(|a| &a.id == id), "{answers:?}");
    sys.wait_return_status(id, "COMPLETED").await?;
    assert_eq!(sys.return_count(&raced.id).await?, 1);
    assert_eq!(sys.refunds_of_return(id).len(), 1);
    assert_eq!(sys.item("WIDGET").await?.on_hand, on_hand + 2, "restocked once");
    Ok(())
}

#[tokio::test]
async fn a_different_request_under_the_key_is_already_exists() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let order = confirmed(&sys, "di", &[("p-widget", 3)]).await?;
    sys.return_order(&order.id, "k", &[("WIDGET", 1, false)]).await??;

    let other = sys.return_order(&order.id, "k", &[("WIDGET", 2, false)]).await?.unwrap_err();

    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
    assert!(other.message().contains("idempotency_key"), "{}", other.message());
    assert_eq!(reason(&other), "RETURN_KEY_IN_USE");
    assert_eq!(sys.return_count(&order.id).await?, 1);
    assert_eq!(sys.ledger.refunds().len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_over_return_is_refused_with_nothing_written() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let order = confirmed(&sys, "ed", &[("p-widget", 2)]).await?;
    let before = sys.item("WIDGET").await?;

    let over = sys.return_order(&order.id, "over", &[("WIDGET", 3, false)]).await?.unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition, "{over:?}");
    assert!(over.message().contains("items[0].quantity"), "{}", over.message());
    assert!(over.message().contains("2 were bought"), "{}", over.message());
    assert_eq!(reason(&over), "RETURN_EXCEEDS_ORDER");

    let unknown =
        sys.return_order(&order.id, "unknown", &[("GADGET", 1, false)]).await?.unwrap_err();
    system_tests::assert_invalid::<()>(Err(unknown), "items[0].sku");

    assert_eq!(sys.return_count(&order.id).await?, 0);
    assert_eq!(sys.item("WIDGET").await?, before, "no inventory change");
    assert!(sys.ledger.refunds().is_empty());
    Ok(())
}

#[tokio::test]
async fn do_not_restock_lines_are_refunded_and_leave_stock_as_it_is() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    sys.stock("GADGET", 5).await?;
    let order = confirmed(&sys, "fa", &[("p-widget", 2), ("p-gadget", 1)]).await?;

    let ret = sys
        .return_order(&order.id, "damaged", &[("WIDGET", 1, true), ("GADGET", 1, false)])
        .await??;

    assert_eq!(ret.status, "COMPLETED", "{ret:?}");
    assert_eq!(ret.refund_amount_minor, 250 + 1999);
    assert!(ret.items.iter().any(|i| i.sku == "WIDGET" && i.do_not_restock));
    assert_eq!(sys.item("WIDGET").await?.on_hand, 8, "damaged units stay off the shelf");
    assert_eq!(sys.item("GADGET").await?.on_hand, 5);
    assert_eq!(sys.refunds_of_return(&ret.id).len(), 1);
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn orders_not_confirmed_or_still_committing_cannot_be_returned() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let mut declined = order_request("gu", &[("p-widget", 1)]);
    declined.payment_method = "card_decline".into();
    let failed = sys.create(declined).await??;
    assert_eq!(failed.status, "PAYMENT_FAILED");
    let refused = sys.return_order(&failed.id, "r", &[]).await?.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("PAYMENT_FAILED"), "{}", refused.message());
    assert_eq!(reason(&refused), "ORDER_NOT_RETURNABLE");

    // Paid, its commit not done yet (not due for an hour, so nothing finishes it meanwhile).
    let mut committing = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)])
        .paid("CONFIRMED", "pay_planted".into());
    committing.next_action = Some("commit");
    committing.due_in_ms = 3_600_000;
    let id = sys.plant(&committing).await?;
    let later = sys.return_order(&id, "r", &[]).await?.unwrap_err();
    assert_eq!(later.code(), Code::FailedPrecondition, "{later:?}");
    assert!(later.message().contains("try the return again later"), "{}", later.message());

    let absent = uuid::Uuid::now_v7().to_string();
    assert_eq!(sys.return_order(&absent, "r", &[]).await?.unwrap_err().code(), Code::NotFound);
    assert_eq!(sys.return_count(&failed.id).await? + sys.return_count(&id).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_refund_failing_transiently_completes_through_recovery() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let order = confirmed(&sys, "ha", &[("p-widget", 2)]).await?;
    sys.payment_faults.set_fail_all(true);

    let ret = sys.return_order(&order.id, "later", &[("WIDGET", 2, false)]).await??;
    assert_eq!(ret.status, "RESTOCKED", "stock back, refund waiting: {ret:?}");
    assert_eq!(sys.item("WIDGET").await?.on_hand, 10);

    sys.payment_faults.set_fail_all(false);
    sys.wait_return_status(&ret.id, "COMPLETED").await?;
    assert_eq!(sys.refunds_of_return(&ret.id), [(payment_of(&sys, &order)?, 500)]);
    assert_eq!(sys.get(&order.id).await?.refunded_amount_minor, 500);
    Ok(())
}

#[tokio::test]
async fn a_refund_refused_for_good_needs_an_operator_and_the_same_request_rearms_it()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let order = confirmed(&sys, "io", &[("p-widget", 1)]).await?;
    sys.payment_faults.set_fail_code(Code::FailedPrecondition);
    sys.payment_faults.set_fail_all(true);

    let stuck = sys.return_order(&order.id, "stuck", &[]).await??;
    assert_eq!(stuck.status, "NEEDS_OPERATOR", "{stuck:?}");
    assert!(stuck.status_reason.contains("FAILED_PRECONDITION"), "{}", stuck.status_reason);
    assert!(!stuck.status_reason.contains("injected"), "never a peer's message");
    let metrics = sys.order_metrics().await?;
    assert_eq!(metric_value(&metrics, r#"order_returns_total{outcome="needs_operator"}"#), 1.0);
    assert_eq!(metric_value(&metrics, r#"order_returns_total{outcome="refund_failed"}"#), 1.0);
    assert!(sys.ledger.refunds().is_empty());

    sys.payment_faults.reset();
    let rearmed = sys.return_order(&order.id, "stuck", &[]).await??;
    assert_eq!(rearmed.id, stuck.id);
    assert_eq!(rearmed.status, "COMPLETED", "{rearmed:?}");
    assert_eq!(sys.refunds_of_return(&stuck.id).len(), 1);
    assert_eq!(sys.item("WIDGET").await?.on_hand, 10, "restocked once");
    Ok(())
}

#[tokio::test]
async fn shopctl_order_return_returns_the_items_it_names() -> anyhow::Result<()> {
    use clap::Parser as _;
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    sys.stock("GADGET", 5).await?;
    let order = confirmed(&sys, "jo", &[("p-widget", 2), ("p-gadget", 1)]).await?;
    let url = format!("http://{}", sys.orders[0].addr);
    let cli = shopctl::cli::Cli::try_parse_from([
        "shopctl",
        "--order-url",
        url.as_str(),
        "--json",
        "order",
        "return",
        order.id.as_str(),
        "--reason",
        "wrong size",
        "--key",
        "cli-1",
        "--item",
        "WIDGET=1",
        "--item",
        "GADGET=1:no-restock",
    ])?;
    shopctl::run(cli).await.map_err(|e| anyhow::anyhow!(e.report()))?;

    let after = sys.get(&order.id).await?;
    assert_eq!(after.returns.len(), 1, "{after:?}");
    let ret = &after.returns[0];
    assert_eq!((ret.status.as_str(), ret.reason.as_str()), ("COMPLETED", "wrong size"));
    assert_eq!(ret.refund_amount_minor, 250 + 1999);
    assert!(ret.items.iter().any(|i| i.sku == "GADGET" && i.do_not_restock));
    assert_eq!(sys.item("WIDGET").await?.on_hand, 9);
    assert_eq!(sys.item("GADGET").await?.on_hand, 4);
    Ok(())
}
