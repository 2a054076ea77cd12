use system_tests::{PlantedOrder, TestSystem, order_request};
use tonic::Code;
use tonic_types::StatusExt as _;

/// An hour: planted orders wait for their cancel, not for the recovery worker.
const NOT_DUE_MS: i64 = 3_600_000;

#[tokio::test]
async fn cancelling_a_pending_order_releases_the_hold_its_reserve_took() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    // PENDING with its reserve call made but never recorded (a crash or a timeout between
    // the call and its answer being written).
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 4, 250)]);
    planted.attempts = 1;
    planted.due_in_ms = NOT_DUE_MS;
    let id = sys.plant(&planted).await?;
    let hold = sys.inventory()?.reserve(&id, &[("WIDGET", 4)]).await?;
    assert!(hold.success);
    assert_eq!(sys.item("WIDGET").await?.reserved, 4);

    let order = sys.cancel(&id, "changed my mind").await??;

    assert_eq!(order.status, "CANCELLED", "{order:?}");
    assert_eq!(order.status_reason, "changed my mind");
    assert_eq!(order.inventory_reservation_id, hold.reservation_id);
    assert_eq!(sys.reservation(&hold.reservation_id).await?.status, "CANCELLED");
    assert_eq!(sys.item("WIDGET").await?.reserved, 0);
    assert_eq!(sys.holds_for(&id).await?.len(), 1, "found the hold, took no other");
    assert_eq!(sys.saga_row(&id).await?.next_action, None);

    let again = sys.cancel(&id, "").await??;
    assert_eq!(again.status, "CANCELLED", "repeating a cancel is success");
    assert_eq!(again.status_reason, "changed my mind");
    Ok(())
}

#[tokio::test]
async fn cancelling_a_reserved_order_before_payment_releases_its_hold() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    planted.due_in_ms = NOT_DUE_MS;
    let id = planted.id.to_string();
    let hold = sys.inventory()?.reserve(&id, &[("WIDGET", 2)]).await?;
    planted.status = "RESERVED";
    planted.next_action = Some("pay");
    planted.reservation_id = Some(hold.reservation_id.parse()?);
    sys.plant(&planted).await?;

    let order = sys.cancel(&id, "").await??;

    assert_eq!(order.status, "CANCELLED", "{order:?}");
    assert_eq!(order.status_reason, "cancelled by request");
    assert_eq!(sys.reservation(&hold.reservation_id).await?.status, "CANCELLED");
    assert_eq!(sys.item("WIDGET").await?.reserved, 0);
    assert!(sys.ledger.charges().is_empty(), "never charged");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_while_the_payment_is_in_flight_is_refused() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    sys.payment_faults.set_latency_ms(700);
    let mut client = sys.client()?;
    let create = tokio::spawn(async move {
        client.create_order(order_request("alice", &[("p-widget", 1)])).await
    });
    let id = sys.wait_order_of("alice").await?;
    sys.wait_payment_calls(1).await?;

    let status = sys.cancel(&id, "").await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("payment in progress"), "{}", status.message());

    let order = create.await??.into_inner();
    assert_eq!(order.status, "CONFIRMED");
    Ok(())
}

#[tokio::test]
async fn confirmed_rejected_and_failed_orders_cannot_be_cancelled() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 1).await?;
    let confirmed = sys.order("alice", &[("p-widget", 1)]).await??;
    assert_eq!(confirmed.status, "CONFIRMED");
    let status = sys.cancel(&confirmed.id, "").await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("use ReturnOrder"), "{}", status.message());
    let info = status.get_details_error_info().ok_or_else(|| anyhow::anyhow!("no ErrorInfo"))?;
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("ORDER_CONFIRMED_USE_RETURN", "order.v1")
    );
    assert_eq!(sys.get(&confirmed.id).await?.status, "CONFIRMED");
    assert_eq!(sys.item("WIDGET").await?.on_hand, 0, "stock stays sold");

    let mut declined = order_request("alice", &[("p-widget", 1)]);
    declined.payment_method = "card_decline".into();
    sys.stock("WIDGET", 1).await?;
    let failed = sys.create(declined).await??;
    assert_eq!(failed.status, "PAYMENT_FAILED");
    let status = sys.cancel(&failed.id, "").await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("PAYMENT_FAILED"), "{}", status.message());

    let mut rejected = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
    rejected.status = "REJECTED";
    rejected.next_action = None;
    let id = sys.plant(&rejected).await?;
    let status = sys.cancel(&id, "").await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("REJECTED"), "{}", status.message());
    Ok(())
}

#[tokio::test]
async fn releasing_an_order_without_a_recorded_hold_takes_no_hold() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    // PENDING, its reserve attempted once but nothing recorded, and (unlike a reserve that
    // landed) nothing held at the inventory: the release must find that out without
    // reserving under the order's reference first.
    let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 4, 250)]);
    planted.attempts = 1;
    planted.due_in_ms = NOT_DUE_MS;
    let id = sys.plant(&planted).await?;

    let order = sys.cancel(&id, "changed my mind").await??;

    assert_eq!(order.status, "CANCELLED", "{order:?}");
    assert_eq!(order.inventory_reservation_id, "", "{order:?}");
    assert!(sys.holds_for(&id).await?.is_empty(), "no reservation under the order's reference");
    assert_eq!(sys.movements("WIDGET", "RESERVE").await?.0, 0, "no RESERVE movement");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (10, 0));
    let steps = sys.saga_steps(&id).await?;
    assert!(steps.contains(&("release_hold".into(), "nothing_held".into())), "{steps:?}");
    Ok(())
}
