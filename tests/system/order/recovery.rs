//! Crashes, outages and replicas: the saga is resumed from its row and never double-acts.

use system_tests::{PlantedOrder, SystemOptions, TestOrderServer, TestSystem, order_request};

#[tokio::test]
async fn a_payment_that_answers_unavailable_after_charging_still_confirms_once()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    sys.payment_faults.fail_after_apply_next_n(1);

    let order = sys.order("alice", &[("p-widget", 1)]).await??;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(sys.ledger.charges_for_order(&order.id).len(), 1, "the retry reused the key");
    assert_eq!(sys.reservation(&order.inventory_reservation_id).await?.status, "COMMITTED");
    Ok(())
}

#[tokio::test]
async fn a_payment_outage_parks_the_order_and_the_worker_finishes_it() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    sys.payment_faults.set_fail_all(true);

    let order = sys.order("alice", &[("p-widget", 2)]).await??;

    // The request answers with the state reached; the payment step waits for its retry.
    assert_eq!(order.status, "RESERVED", "{order:?}");
    let row = sys.saga_row(&order.id).await?;
    assert_eq!(row.next_action.as_deref(), Some("pay"));
    assert!(row.last_error.as_deref().unwrap_or_default().contains("Unavailable"), "{row:?}");
    let status = sys.cancel(&order.id, "").await?.unwrap_err();
    assert!(status.message().contains("payment in progress"), "{status:?}");

    sys.payment_faults.set_fail_all(false);
    let settled = sys.wait_settled(&order.id).await?;

    assert_eq!(settled.status, "CONFIRMED", "{settled:?}");
    assert_eq!(sys.ledger.charges_for_order(&order.id).len(), 1);
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_lands_by_retry_once_the_inventory_is_back() -> anyhow::Result<()> {
    let mut sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    sys.payment_faults.set_latency_ms(500);
    let mut client = sys.client()?;
    let create = tokio::spawn(async move {
        client.create_order(order_request("alice", &[("p-widget", 2)])).await
    });
    let id = sys.wait_order_of("alice").await?;
    sys.wait_payment_calls(1).await?;

    // The inventory goes away while the payment is in flight: the commit cannot land.
    sys.stop_inventory().await?;
    let order = create.await??.into_inner();
    assert_eq!(order.status, "CONFIRMED", "paid; the commit is queued: {order:?}");
    let row = sys
        .wait_row(&id, "retrying its commit", |r| {
            r.next_action.as_deref() == Some("commit") && r.last_error.is_some()
        })
        .await?;
    assert!(row.attempts >= 1, "{row:?}");

    sys.restart_inventory().await?;
    let settled = sys.wait_settled(&id).await?;

    assert_eq!(settled.status, "CONFIRMED");
    assert_eq!(sys.reservation(&settled.inventory_reservation_id).await?.status, "COMMITTED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    assert_eq!(sys.ledger.charges_for_order(&id).len(), 1);
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_server_killed_during_payment_is_resumed_at_restart() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.migrate_orders().await?;
    sys.stock("WIDGET", 5).await?;

    // What a server killed with -9 mid-payment leaves behind: a hold, a charge the payment
    // service took, and a row at "pay" whose lease lapsed with its owner.
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    let id = planted.id.to_string();
    let hold = sys.inventory()?.reserve(&id, &[("WIDGET", 2)]).await?;
    planted.status = "RESERVED";
    planted.next_action = Some("pay");
    planted.attempts = 1;
    planted.reservation_id = Some(hold.reservation_id.parse()?);
    planted.leased_for_ms = Some(-1_000);
    sys.plant(&planted).await?;
    sys.charge_as_saga(&planted).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.payment_status, "SUCCEEDED");
    assert_eq!(sys.ledger.charges_for_order(&id).len(), 1, "the charge was not repeated");
    assert_eq!(sys.reservation(&hold.reservation_id).await?.status, "COMMITTED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));
    Ok(())
}

#[tokio::test]
async fn a_server_killed_during_reserve_is_resumed_without_a_second_hold() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.migrate_orders().await?;
    sys.stock("WIDGET", 5).await?;
    // The reserve call went through, but the server died before recording its answer.
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 3, 250)]);
    planted.attempts = 1;
    planted.leased_for_ms = Some(-1_000);
    let id = sys.plant(&planted).await?;
    let hold = sys.inventory()?.reserve(&id, &[("WIDGET", 3)]).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.inventory_reservation_id, hold.reservation_id, "the same hold");
    assert_eq!(sys.holds_for(&id).await?.len(), 1);
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (2, 0));
    Ok(())
}

#[tokio::test]
async fn a_lapsed_hold_is_retaken_before_the_commit() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.migrate_orders().await?;
    sys.stock("WIDGET", 5).await?;
    // Paid, but the hold it recorded was cancelled meanwhile (as an expired hold would be).
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
    let id = planted.id.to_string();
    let stale = sys.inventory()?.reserve(&id, &[("WIDGET", 1)]).await?;
    let mut inventory = sys.inventory()?.client.clone();
    inventory
        .cancel_reservation(proto::inventory::v1::CancelReservationRequest::by_id(
            stale.reservation_id.clone(),
        ))
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
    assert_ne!(order.inventory_reservation_id, stale.reservation_id, "a new hold");
    assert_eq!(sys.reservation(&order.inventory_reservation_id).await?.status, "COMMITTED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (4, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_order_servers_resume_orders_without_double_driving() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.migrate_orders().await?;
    sys.stock("WIDGET", 30).await?;
    let mut ids = Vec::new();
    for i in 0..30 {
        let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
        planted.user_id = format!("replica-{i}");
        ids.push(sys.plant(&planted).await?);
    }

    let servers = futures::future::try_join_all(
        (0..3).map(|_| TestOrderServer::start(sys.order_settings.clone())),
    )
    .await?;
    sys.orders.extend(servers);
    for id in &ids {
        let order = sys.wait_settled(id).await?;
        assert_eq!(order.status, "CONFIRMED", "{order:?}");
    }

    // Each order was driven once: one payment call and one hold each.
    assert_eq!(sys.payment_faults.calls(), 30);
    assert_eq!(sys.ledger.charges().len(), 30);
    for id in &ids {
        assert_eq!(sys.holds_for(id).await?.len(), 1);
    }
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (0, 0));
    Ok(())
}

#[tokio::test]
async fn a_paid_order_whose_stock_is_gone_is_cancelled_and_refunded() -> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(0).await?;
    // Paid, its hold lost (expired), and the stock sold to someone else meanwhile: the
    // re-take finds nothing.
    let planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    let id = planted.id.to_string();
    let payment_id = sys.charge_as_saga(&planted).await?;
    sys.plant(&planted.paid("CONFIRMED", payment_id.clone())).await?;

    sys.start_order_server().await?;
    let order = sys.wait_settled(&id).await?;

    sys.assert_refunded_for_lost_stock(&order, &payment_id)?;
    Ok(())
}
