//! Holds of an order settled by another caller (anyone who can reach the inventory port
//! without mutual TLS can commit or cancel a hold by its id): never silent. The order says
//! so in its reason, the saga audit has its own outcome, `order_foreign_settlements_total`
//! counts it, and the saga makes right what it can.

use proto::inventory::v1 as inv;
use system_tests::{PlantedOrder, SystemOptions, TestSystem, metric_value, order_request};

const COMMITTED: &str = r#"order_foreign_settlements_total{kind="committed"}"#;
const CANCELLED: &str = r#"order_foreign_settlements_total{kind="cancelled"}"#;
const TAKEN: &str = r#"order_foreign_settlements_total{kind="reference_taken"}"#;

/// Places an order of 2 WIDGET paid by `method` while the payment service answers
/// UNAVAILABLE, so the order waits at `pay` with its hold PENDING (the outcome of its payment
/// unknown): the window in which another caller settles the hold. Returns (order, hold).
async fn order_waiting_for_payment(
    sys: &TestSystem,
    method: &str,
) -> anyhow::Result<(String, String)> {
    sys.payment_faults.set_fail_all(true);
    let mut req = order_request("alice", &[("p-widget", 2)]);
    req.payment_method = method.to_owned();
    let order = sys.create(req).await??;
    assert_eq!(order.status, "RESERVED", "{order:?}");
    assert_eq!(sys.saga_row(&order.id).await?.next_action.as_deref(), Some("pay"));
    Ok((order.id, order.inventory_reservation_id))
}

/// A plain inventory client, as any caller on the network has.
fn stranger(sys: &TestSystem) -> anyhow::Result<system_tests::InventoryClient> {
    Ok(sys.inventory()?.client.clone())
}

async fn counter(sys: &TestSystem, series: &str) -> anyhow::Result<f64> {
    Ok(metric_value(&sys.order_metrics().await?, series))
}

#[tokio::test]
async fn a_hold_committed_by_another_caller_is_named_counted_and_audited() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let before = counter(&sys, COMMITTED).await?;
    let (id, hold) = order_waiting_for_payment(&sys, "card_decline").await?;

    let committed = stranger(&sys)?
        .commit_reservation(inv::CommitReservationRequest { reservation_id: hold.clone() })
        .await?
        .into_inner();
    assert!(committed.success, "{committed:?}");
    sys.payment_faults.set_fail_all(false);
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "PAYMENT_FAILED", "{order:?}");
    assert_eq!(order.payment_status, "DECLINED");
    assert!(order.status_reason.contains("declined"), "keeps why it failed: {order:?}");
    assert!(
        order.status_reason.contains("committed by another caller"),
        "names the foreign commit: {}",
        order.status_reason
    );
    assert!(order.status_reason.contains("without a sale"), "{}", order.status_reason);
    let steps = sys.saga_steps(&id).await?;
    assert!(steps.contains(&("release_hold".into(), "committed_elsewhere".into())), "{steps:?}");
    assert_eq!(counter(&sys, COMMITTED).await? - before, 1.0);
    assert_eq!(counter(&sys, CANCELLED).await?, 0.0);
    // The stock left with the foreign commit; nothing was charged.
    assert_eq!(sys.reservation(&hold).await?.status, "COMMITTED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    assert_eq!(sys.ledger.succeeded_count_for_order(&id), 0);
    Ok(())
}

#[tokio::test]
async fn a_hold_cancelled_by_another_caller_is_taken_again_and_the_order_confirms()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let before = counter(&sys, CANCELLED).await?;
    let (id, hold) = order_waiting_for_payment(&sys, "card").await?;

    let cancelled = stranger(&sys)?
        .cancel_reservation(inv::CancelReservationRequest::by_id(hold.clone()))
        .await?
        .into_inner();
    assert!(cancelled.success, "{cancelled:?}");
    sys.payment_faults.set_fail_all(false);
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.payment_status, "SUCCEEDED");
    assert_ne!(order.inventory_reservation_id, hold, "a fresh hold");
    assert_eq!(sys.reservation(&order.inventory_reservation_id).await?.status, "COMMITTED");
    assert_eq!(sys.reservation(&hold).await?.status, "CANCELLED");
    assert!(order.status_reason.contains("cancelled by another caller"), "{order:?}");
    let steps = sys.saga_steps(&id).await?;
    assert!(steps.contains(&("commit".into(), "cancelled_elsewhere".into())), "{steps:?}");
    assert_eq!(counter(&sys, CANCELLED).await? - before, 1.0);
    // Stock deducted once, charged once.
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    assert_eq!(sys.ledger.charges_for_order(&id).len(), 1);
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_hold_cancelled_by_another_caller_with_the_stock_gone_cancels_and_refunds()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let before = counter(&sys, CANCELLED).await?;
    let (id, hold) = order_waiting_for_payment(&sys, "card").await?;

    stranger(&sys)?.cancel_reservation(inv::CancelReservationRequest::by_id(hold.clone())).await?;
    // The freed units are gone before the saga can take them again.
    sys.stock("WIDGET", 0).await?;
    sys.payment_faults.set_fail_all(false);
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CANCELLED", "{order:?}");
    assert_eq!(order.payment_status, "REFUNDED");
    assert!(order.status_reason.contains("stock no longer available"), "{order:?}");
    assert!(order.status_reason.contains("cancelled by another caller"), "{order:?}");
    let charges = sys.ledger.charges_for_order(&id);
    assert_eq!(charges.len(), 1);
    let refunds: Vec<_> = sys
        .ledger
        .refunds()
        .into_iter()
        .filter(|r| r.payment_id == charges[0].payment_id)
        .collect();
    assert_eq!(refunds.len(), 1, "refunded once");
    assert_eq!(refunds[0].amount_minor, charges[0].amount_minor);
    let steps = sys.saga_steps(&id).await?;
    assert!(steps.contains(&("commit".into(), "cancelled_elsewhere".into())), "{steps:?}");
    assert_eq!(counter(&sys, CANCELLED).await? - before, 1.0);
    Ok(())
}

/// The ordinary lost hold (expired) is no foreign settlement: re-taken, not counted.
#[tokio::test]
async fn an_expired_hold_is_retaken_without_being_counted_as_foreign() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.migrate_orders().await?;
    sys.stock("WIDGET", 5).await?;
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
    let id = planted.id.to_string();
    let stale = sys.inventory()?.reserve(&id, &[("WIDGET", 1)]).await?;
    // Its time is up: the inventory refuses to commit it (and its sweeper expires it).
    sqlx::query(
        "update inventory.reservations set expires_at = now() - interval '1 second' where id = $1",
    )
    .bind(uuid::Uuid::parse_str(&stale.reservation_id)?)
    .execute(&sys.db.pool)
    .await?;
    planted.status = "CONFIRMED";
    planted.next_action = Some("commit");
    planted.payment_status = "SUCCEEDED";
    planted.payment_id = Some("pay_planted".into());
    planted.reservation_id = Some(stale.reservation_id.parse()?);
    sys.plant(&planted).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_ne!(order.inventory_reservation_id, stale.reservation_id);
    assert_eq!(order.status_reason, "", "nothing unusual to report");
    let steps = sys.saga_steps(&id).await?;
    assert!(steps.contains(&("commit".into(), "hold_lost".into())), "{steps:?}");
    assert_eq!(counter(&sys, CANCELLED).await?, 0.0);
    assert_eq!(sys.reservation(&stale.reservation_id).await?.status, "EXPIRED");
    Ok(())
}

/// Another caller squats on the order's reference (`ORDER`, order id) before the saga's first
/// reserve: with a different request the inventory refuses the order's own (ALREADY_EXISTS).
#[tokio::test]
async fn an_order_reference_held_by_another_caller_rejects_the_order() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.migrate_orders().await?;
    sys.stock("WIDGET", 5).await?;
    sys.stock("GADGET", 5).await?;
    let planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
    let id = sys.plant(&planted).await?;
    let squatter = sys.inventory()?.reserve(&id, &[("GADGET", 2)]).await?;
    assert!(squatter.success);
    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;
    assert_eq!(order.status, "REJECTED", "{order:?}");
    assert!(order.status_reason.contains("another caller holds"), "{order:?}");
    let steps = sys.saga_steps(&id).await?;
    assert!(steps.contains(&("reserve".into(), "reference_taken".into())), "{steps:?}");
    assert_eq!(metric_value(&sys.order_metrics().await?, TAKEN), 1.0);
    assert_eq!(sys.reservation(&squatter.reservation_id).await?.status, "PENDING");
    assert!(sys.ledger.charges_for_order(&id).is_empty());
    Ok(())
}

/// The order's hold is cancelled by a stranger while payment waits, then the stranger takes the
/// reference with another request: the paid order cannot re-take its stock.
#[tokio::test]
async fn a_reference_taken_after_payment_cancels_and_refunds() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    sys.stock("GADGET", 5).await?;
    sys.payment_faults.set_fail_all(true);
    let order = sys.create(order_request("alice", &[("p-widget", 2)])).await??;
    assert_eq!(order.status, "RESERVED");
    let mut stranger = sys.inventory()?.client.clone();
    stranger
        .cancel_reservation(inv::CancelReservationRequest::by_id(
            order.inventory_reservation_id.clone(),
        ))
        .await?;
    let squatter = sys.inventory()?.reserve(&order.id, &[("GADGET", 1)]).await?;
    assert!(squatter.success);
    sys.payment_faults.set_fail_all(false);
    let done = sys.wait_settled(&order.id).await?;
    assert_eq!(done.status, "CANCELLED", "{done:?}");
    assert_eq!(done.payment_status, "REFUNDED");
    assert!(done.status_reason.contains("another caller took"), "{done:?}");
    let steps = sys.saga_steps(&order.id).await?;
    assert!(steps.contains(&("commit".into(), "cancelled_elsewhere".into())), "{steps:?}");
    assert!(steps.contains(&("reserve".into(), "reference_taken".into())), "{steps:?}");
    Ok(())
}
