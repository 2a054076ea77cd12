//! Sagas that need a person: a step that fails for good (or for too long) parks its order,
//! counted by `order_saga_parked`; an operator lists and resolves it through the operator
//! RPCs or `shopctl`, each resolution written to the saga history. And orders too old to be
//! paid are cancelled, never charged.

use std::time::Duration;

use clap::Parser;
use proto::order::v1 as pb;
use system_tests::{PlantedOrder, TestSystem, metric_value, wait_parked};
use tonic::Code;

/// Polls the first order server's `order_saga_parked` until it reads `want`.
async fn wait_parked_gauge(sys: &TestSystem, want: f64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = sys.order_metrics().await?;
        if metric_value(&page, "order_saga_parked") == want {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "gauge never {want}:\n{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn shopctl(sys: &TestSystem, args: &[&str]) -> anyhow::Result<shopctl::cli::Cli> {
    let url = format!("http://{}", sys.orders[0].addr);
    let mut all = vec!["shopctl", "--order-url", url.as_str(), "--json"];
    all.extend_from_slice(args);
    Ok(shopctl::cli::Cli::try_parse_from(all)?)
}

#[tokio::test]
async fn a_refund_refused_for_good_parks_the_order_until_an_operator_records_it()
-> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(0).await?;
    // Paid, its stock gone: the saga owes a refund, which the payment refuses for good.
    let planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    let id = planted.id.to_string();
    let payment_id = sys.charge_as_saga(&planted).await?;
    let mut planted = planted.paid("CANCELLED", payment_id);
    planted.next_action = Some("refund");
    sys.plant(&planted).await?;
    sys.payment_faults.set_fail_code(Code::FailedPrecondition);
    sys.payment_faults.set_fail_all(true);

    sys.start_order_server().await?;
    wait_parked(&sys.db.pool, &id).await?;
    wait_parked_gauge(&sys, 1.0).await?;
    // Parked: nothing retries it any more.
    let steps = sys.saga_steps(&id).await?;
    assert_eq!(steps, [("refund".to_owned(), "retry".to_owned())]);
    let calls = sys.payment_faults.calls();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sys.payment_faults.calls(), calls, "a parked order was retried");
    assert_eq!(sys.saga_steps(&id).await?.len(), 1);

    // The operator sees why, and records the refund made by hand.
    let parked = sys
        .client()?
        .list_parked_orders(pb::ListParkedOrdersRequest { page_size: 0 })
        .await?
        .into_inner()
        .orders;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].order.as_ref().map(|o| o.id.as_str()), Some(id.as_str()));
    assert_eq!(parked[0].next_action, "refund");
    assert!(parked[0].last_error.contains("FailedPrecondition"), "{:?}", parked[0]);
    let cli = shopctl(
        &sys,
        &[
            "order",
            "resolve",
            &id,
            "--resolution",
            "refunded-by-hand",
            "--note",
            "refund R-77 by the bank",
        ],
    )?;
    shopctl::run(cli).await.map_err(|e| anyhow::anyhow!(e.report()))?;

    let order = sys.wait_settled(&id).await?;
    assert_eq!((order.status.as_str(), order.payment_status.as_str()), ("CANCELLED", "REFUNDED"));
    assert!(sys.ledger.refunds().is_empty(), "the saga refunded after all");
    let steps = sys.saga_steps(&id).await?;
    assert_eq!(steps.last(), Some(&("operator".to_owned(), "refunded_by_hand".to_owned())));
    let note: String = sqlx::query_scalar(
        "select detail from orders.saga_steps where order_id = $1 and action = 'operator'",
    )
    .bind(planted.id)
    .fetch_one(&sys.db.pool)
    .await?;
    assert_eq!(note, "refund R-77 by the bank");
    wait_parked_gauge(&sys, 0.0).await?;
    // Once resolved it is no longer parked: a second resolution is refused.
    let again = sys
        .client()?
        .resolve_parked_order(pb::ResolveParkedOrderRequest {
            order_id: id.clone(),
            resolution: pb::Resolution::Retry.into(),
            note: "again".into(),
        })
        .await
        .expect_err("not parked");
    assert_eq!(again.code(), Code::FailedPrecondition);
    Ok(())
}

#[tokio::test]
async fn a_step_failing_for_too_long_parks_and_an_operator_retry_settles_it() -> anyhow::Result<()>
{
    let mut sys = TestSystem::without_order_server(5).await?;
    sys.order_settings.saga_park_after_ms = 300;
    let planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    let id = planted.id.to_string();
    sys.plant(&planted).await?;
    // The inventory is down: the reserve fails again and again, then the order parks.
    sys.stop_inventory().await?;
    sys.start_order_server().await?;
    wait_parked(&sys.db.pool, &id).await?;
    let row = sys.saga_row(&id).await?;
    assert_eq!((row.status.as_str(), row.next_action.as_deref()), ("PENDING", Some("reserve")));
    assert!(row.attempts >= 2, "{row:?}");
    assert!(row.last_error.is_some(), "{row:?}");
    // A customer cannot cancel it while an operator must look.
    let refused = sys
        .client()?
        .cancel_order(pb::CancelOrderRequest { order_id: id.clone(), reason: String::new() })
        .await
        .expect_err("parked");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // Operator RPCs validate their input.
    let invalid = sys
        .client()?
        .resolve_parked_order(pb::ResolveParkedOrderRequest {
            order_id: id.clone(),
            resolution: 0,
            note: " ".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(invalid.message().contains("resolution") && invalid.message().contains("note"));

    // Fixed: the operator retries, and the saga goes on from the parked step.
    sys.restart_inventory().await?;
    let resolved = sys
        .client()?
        .resolve_parked_order(pb::ResolveParkedOrderRequest {
            order_id: id.clone(),
            resolution: pb::Resolution::Retry.into(),
            note: "inventory back".into(),
        })
        .await?
        .into_inner();
    assert_eq!(resolved.id, id);
    let order = sys.wait_settled(&id).await?;
    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    let steps = sys.saga_steps(&id).await?;
    let operator = steps.iter().position(|s| s.0 == "operator").expect("operator row");
    assert_eq!(steps[operator].1, "retry");
    assert!(steps[operator + 1..].iter().any(|s| s == &("commit".to_owned(), "ok".to_owned())));
    Ok(())
}

#[tokio::test]
async fn an_order_not_paid_in_time_is_cancelled_and_never_charged() -> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(5).await?;
    sys.order_settings.order_payment_deadline_ms = 60_000;
    // Stuck before its reserve for two minutes (its server died, the inventory was down).
    let stale = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    let stale_id = stale.id.to_string();
    sys.plant(&stale).await?;
    // Its payment attempted once with an unknown outcome, then two minutes passed.
    let mut unknown = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
    unknown.status = "RESERVED";
    unknown.next_action = Some("pay");
    unknown.attempts = 1;
    let unknown_id = unknown.id.to_string();
    sys.plant(&unknown).await?;
    sqlx::query("update orders.orders set created_at = now() - interval '2 minutes'")
        .execute(&sys.db.pool)
        .await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&stale_id).await?;
    assert_eq!(order.status, "CANCELLED", "{order:?}");
    assert!(order.status_reason.contains("time limit"), "{order:?}");
    assert_eq!(order.payment_status, "");
    let steps = sys.saga_steps(&stale_id).await?;
    assert_eq!(steps[0], ("reserve".to_owned(), "too_old".to_owned()));
    // An unknown charge is never asked again past the limit: an operator establishes it.
    wait_parked(&sys.db.pool, &unknown_id).await?;
    assert!(sys.ledger.charges_for_order(&stale_id).is_empty());
    assert!(sys.ledger.charges_for_order(&unknown_id).is_empty());
    assert_eq!(sys.payment_faults.calls(), 0, "the payment was called");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (5, 0));
    Ok(())
}
