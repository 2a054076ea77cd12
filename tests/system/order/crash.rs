//! Crashes between an order's two writes. A driver writes the order's intent, then calls the
//! inventory and the payment without writing again until the order settles (or must wait).
//! A server killed in between leaves the intent row (PENDING, "reserve", its lease lapsed)
//! however far it got: each test plants that row after doing, as the dead server would have,
//! the calls it made, and checks that the order ends charged once and stocked once.

use proto::inventory::v1 as inv;
use system_tests::{PlantedOrder, TestOrderServer, TestSystem};
use tonic::Code;

/// A system with no order server yet, its order schema migrated and WIDGET stocked.
/// The intent row of an order for `quantity` WIDGETs whose server died (lease lapsed).
fn intent(quantity: i32) -> PlantedOrder {
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", quantity, 250)]);
    planted.leased_for_ms = Some(-1_000);
    planted
}

#[tokio::test]
async fn killed_after_paying_confirms_with_the_same_hold_and_charge() -> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(5).await?;
    let planted = intent(2);
    let id = planted.id.to_string();
    let hold = sys.inventory()?.reserve(&id, &[("WIDGET", 2)]).await?;
    let payment_id = sys.charge_as_saga(&planted).await?;
    sys.plant(&planted).await?;

    // Until a driver picks it up, the row cannot tell a cancel that the payment went
    // through: the cancel is refused rather than release a paid order's stock.
    let mut quiet = sys.order_settings.clone();
    quiet.recovery_interval_ms = 600_000;
    let idle = TestOrderServer::start(quiet).await?;
    let cancel = proto::order::v1::CancelOrderRequest { order_id: id.clone(), reason: "".into() };
    let refused = idle.client.clone().cancel_order(cancel).await.expect_err("refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("payment in progress"), "{refused:?}");

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.inventory_reservation_id, hold.reservation_id, "the same hold");
    assert_eq!(sys.ledger.charges_for_order(&id).len(), 1, "the charge was not repeated");
    assert_eq!(sys.ledger.charges_for_order(&id)[0].payment_id, payment_id);
    assert_eq!(sys.reservation(&hold.reservation_id).await?.status, "COMMITTED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    let steps = sys.saga_steps(&id).await?;
    let steps: Vec<(&str, &str)> = steps.iter().map(|(a, o)| (a.as_str(), o.as_str())).collect();
    assert_eq!(steps, [("reserve", "ok"), ("pay", "ok"), ("commit", "ok")], "one write, in order");
    Ok(())
}

#[tokio::test]
async fn killed_after_committing_confirms_without_taking_the_stock_twice() -> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(5).await?;
    let planted = intent(2);
    let id = planted.id.to_string();
    let hold = sys.inventory()?.reserve(&id, &[("WIDGET", 2)]).await?;
    sys.charge_as_saga(&planted).await?;
    let mut inventory = sys.inventory()?.client.clone();
    let committed = inventory
        .commit_reservation(inv::CommitReservationRequest {
            reservation_id: hold.reservation_id.clone(),
        })
        .await?
        .into_inner();
    assert!(committed.success, "{committed:?}");
    sys.plant(&planted).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    // The reserve by the order's reference finds its committed hold; the payment answers
    // the charge it took; the commit of a committed hold is a success.
    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.inventory_reservation_id, hold.reservation_id);
    assert_eq!(sys.holds_for(&id).await?.len(), 1, "no second hold");
    assert_eq!(sys.ledger.charges_for_order(&id).len(), 1);
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0), "the stock left once");
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn killed_after_paying_whose_stock_went_meanwhile_is_refunded() -> anyhow::Result<()> {
    // The dead server's hold expired and the stock was sold before anyone resumed the order:
    // the re-take finds none. Rejecting it would keep the customer's money.
    let mut sys = TestSystem::without_order_server(0).await?;
    let planted = intent(2);
    let id = planted.id.to_string();
    let payment_id = sys.charge_as_saga(&planted).await?;
    sys.plant(&planted).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    sys.assert_refunded_for_lost_stock(&order, &payment_id)?;
    assert!(sys.saga_steps(&id).await?.contains(&("reserve".into(), "charge_unknown".into())));
    Ok(())
}

#[tokio::test]
async fn killed_before_paying_whose_stock_went_meanwhile_is_charged_and_refunded()
-> anyhow::Result<()> {
    // Nothing tells this crash from the one above (no hold either way), so it ends the same:
    // the payment is asked with the order's key, which takes the charge now, and refunded.
    // Money is never kept for goods not delivered; the price is a charge and its refund.
    let mut sys = TestSystem::without_order_server(0).await?;
    let planted = intent(1);
    let id = planted.id.to_string();
    sys.plant(&planted).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    let charges = sys.ledger.charges_for_order(&id);
    assert_eq!(charges.len(), 1, "charged now, by the order's key");
    sys.assert_refunded_for_lost_stock(&order, &charges[0].payment_id)?;
    Ok(())
}

#[tokio::test]
async fn a_resumed_order_that_must_wait_stays_uncancellable() -> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(5).await?;
    let planted = intent(2);
    let id = planted.id.to_string();
    sys.inventory()?.reserve(&id, &[("WIDGET", 2)]).await?;
    sys.charge_as_saga(&planted).await?;
    sys.plant(&planted).await?;
    sys.stop_inventory().await?;

    // The new driver's reserve fails and the order waits for its retry: it does not know
    // yet what the dead driver did, so the order stays closed to a cancel meanwhile.
    sys.start_order_server().await?;
    let row = sys
        .wait_row(&id, "waiting for the inventory", |r| {
            r.next_action.as_deref() == Some("reserve") && r.last_error.is_some()
        })
        .await?;
    assert!(row.attempts >= 1, "{row:?}");
    let refused = sys.cancel(&id, "").await?.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    sys.restart_inventory().await?;
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(sys.ledger.charges_for_order(&id).len(), 1);
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    Ok(())
}
