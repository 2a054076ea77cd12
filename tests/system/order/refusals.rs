use prost::Message;
use proto::order::v1 as pb;
use system_tests::{SystemOptions, TestSystem, order_request};
use tonic::Code;
use tonic_types::StatusExt;

const INVENTORY_UNAVAILABLE_TYPE: &str = "type.googleapis.com/order.v1.InventoryUnavailable";

/// The typed `order.v1.InventoryUnavailable` detail packed in `status`.
fn inventory_unavailable(status: &tonic::Status) -> anyhow::Result<pb::InventoryUnavailable> {
    let raw = tonic_types::pb::Status::decode(status.details())?;
    let any = raw
        .details
        .iter()
        .find(|a| a.type_url == INVENTORY_UNAVAILABLE_TYPE)
        .ok_or_else(|| anyhow::anyhow!("no InventoryUnavailable detail in {status:?}"))?;
    Ok(pb::InventoryUnavailable::decode(any.value.as_slice())?)
}

#[tokio::test]
async fn short_stock_is_failed_precondition_with_typed_details_and_writes_nothing()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 2).await?;
    sys.stock("GADGET", 10).await?;
    // SHIRT has no inventory item at all.
    let status =
        sys.order("alice", &[("p-widget", 3), ("p-gadget", 1), ("p-shirt", 1)]).await?.unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("WIDGET: requested 3, available 2"), "{}", status.message());
    let info = status.get_details_error_info().ok_or_else(|| anyhow::anyhow!("no ErrorInfo"))?;
    assert_eq!(info.reason, "INVENTORY_UNAVAILABLE");
    assert_eq!(info.domain, "order.v1");
    let detail = inventory_unavailable(&status)?;
    let short: Vec<(&str, &str, i32, i32)> = detail
        .items
        .iter()
        .map(|i| {
            (i.product_id.as_str(), i.sku.as_str(), i.requested_quantity, i.available_quantity)
        })
        .collect();
    assert_eq!(short, [("p-widget", "WIDGET", 3, 2), ("p-shirt", "SHIRT", 1, 0)]);

    assert_eq!(sys.order_count().await?, 0, "no order row");
    assert_eq!(sys.item("WIDGET").await?.reserved, 0, "nothing held");
    assert!(sys.ledger.charges().is_empty(), "nothing charged");
    Ok(())
}

#[tokio::test]
async fn a_key_refused_for_stock_is_free_again() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 1).await?;
    let mut req = order_request("alice", &[("p-widget", 2)]);
    req.idempotency_key = "try-1".into();

    let status = sys.create(req.clone()).await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(sys.order_count().await?, 0, "the order was withdrawn");

    sys.stock("WIDGET", 2).await?;
    let order = sys.create(req).await??;
    assert_eq!(order.status, "CONFIRMED", "the same key, placed afresh: {order:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_the_answer_rejects_the_order_instead() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    let mut settings = sys.order_settings.clone();
    settings.create_order_budget_ms = 300;
    sys.orders.push(system_tests::TestOrderServer::start(settings).await?);
    sys.stock("WIDGET", 1).await?;

    // The reserve waits in the database past the request's budget: the request answers with
    // the order it placed, whose id its caller now has, so the order cannot just vanish.
    let lock = sys.db.lock_stock("WIDGET").await?;
    let order = sys.order("alice", &[("p-widget", 2)]).await??;
    assert_eq!(order.status, "PENDING", "{order:?}");
    lock.rollback().await?;

    let settled = sys.wait_settled(&order.id).await?;
    assert_eq!(settled.status, "REJECTED", "{settled:?}");
    assert!(settled.status_reason.contains("WIDGET"), "{}", settled.status_reason);
    assert_eq!(sys.order_count().await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_of_a_withdrawn_order_is_told_to_retry() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 1).await?;
    let mut req = order_request("alice", &[("p-widget", 2)]);
    req.idempotency_key = "twin".into();

    // The first call's reserve waits for the stock row; its twin finds the order by key and
    // waits for it to settle. The order is then withdrawn for lack of stock.
    let lock = sys.db.lock_stock("WIDGET").await?;
    let mut client = sys.client()?;
    let first = tokio::spawn({
        let req = req.clone();
        async move { client.create_order(req).await }
    });
    sys.wait_order_of("alice").await?;
    let mut client = sys.client()?;
    let twin = tokio::spawn(async move { client.create_order(req).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    lock.rollback().await?;

    let first = first.await?.unwrap_err();
    assert_eq!(first.code(), Code::FailedPrecondition, "{first:?}");
    let twin = twin.await?.unwrap_err();
    assert_eq!(twin.code(), Code::Aborted, "{twin:?}");
    assert!(twin.message().contains("retry"), "{twin:?}");
    assert_eq!(sys.order_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn unknown_product_or_variant_is_not_found() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let status = sys.order("alice", &[("p-widget", 1), ("p-nope", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("p-nope"), "{}", status.message());
    let info =
        status.get_details_resource_info().ok_or_else(|| anyhow::anyhow!("no ResourceInfo"))?;
    assert_eq!((info.resource_type.as_str(), info.resource_name.as_str()), ("product", "p-nope"));

    let mut req = order_request("alice", &[("p-shirt", 1)]);
    req.items[0].variant_id = Some("green-xs".into());
    let status = sys.create(req).await?.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("green-xs"), "{}", status.message());
    assert_eq!(sys.order_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn products_sold_in_another_currency_are_refused() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("FAN", 5).await?;
    let status = sys.order("alice", &[("p-fan", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("JPY"), "{}", status.message());
    assert_eq!(sys.order_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_total_past_64_bits_is_invalid() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("BIG", 5).await?;
    let status = sys.order("alice", &[("p-big", 3)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["items"]);
    Ok(())
}

#[tokio::test]
async fn declined_payment_fails_the_order_and_releases_the_hold() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let mut req = order_request("alice", &[("p-widget", 2)]);
    req.payment_method = "card_decline".into();

    let order = sys.create(req).await??;

    assert_eq!(order.status, "PAYMENT_FAILED", "{order:?}");
    assert_eq!(order.payment_status, "DECLINED");
    assert!(order.status_reason.contains("declined"), "{}", order.status_reason);
    let hold = sys.reservation(&order.inventory_reservation_id).await?;
    assert_eq!(hold.status, "CANCELLED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (5, 0));
    assert_eq!(sys.ledger.succeeded_count_for_order(&order.id), 0);
    assert_eq!(sys.saga_row(&order.id).await?.next_action, None);
    Ok(())
}

#[tokio::test]
async fn users_are_checked_when_the_user_service_is_configured() -> anyhow::Result<()> {
    let sys = TestSystem::start_with(SystemOptions { users: true, ..Default::default() }).await?;
    sys.stock("WIDGET", 5).await?;

    let order = sys.order("user-1", &[("p-widget", 1)]).await??;
    assert_eq!(order.status, "CONFIRMED");

    let status = sys.order("stranger", &[("p-widget", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("stranger"), "{}", status.message());

    let status = sys.order("user-blocked", &[("p-widget", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("blocked"), "{}", status.message());

    assert_eq!(sys.order_count().await?, 1);
    Ok(())
}

#[tokio::test]
async fn without_the_user_service_any_user_id_may_order() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let order = sys.order("user-blocked", &[("p-widget", 1)]).await??;
    assert_eq!(order.status, "CONFIRMED");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_catalog_is_unavailable_and_writes_nothing() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;

    sys.product_faults.set_fail_all(true);
    let status = sys.order("alice", &[("p-widget", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("product"), "{}", status.message());
    // The peer's own message stays in the logs: it may describe the peer's internals.
    assert!(!status.message().contains("injected"), "{}", status.message());

    assert_eq!(sys.order_count().await?, 0);
    assert!(sys.ledger.charges().is_empty());
    Ok(())
}

#[tokio::test]
async fn an_order_placed_while_the_inventory_is_down_waits_for_it() -> anyhow::Result<()> {
    let mut sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    sys.stop_inventory().await?;

    // Priced and written; its reserve waits for the inventory, like any step of the saga.
    let order = sys.order("alice", &[("p-widget", 2)]).await??;
    assert_eq!(order.status, "PENDING", "{order:?}");
    let row = sys.saga_row(&order.id).await?;
    assert_eq!(row.next_action.as_deref(), Some("reserve"));
    assert!(row.last_error.is_some(), "{row:?}");
    assert!(sys.ledger.charges().is_empty(), "nothing charged without a hold");

    sys.restart_inventory().await?;
    let settled = sys.wait_settled(&order.id).await?;
    assert_eq!(settled.status, "CONFIRMED", "{settled:?}");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0));

    // The customer may also change their mind while it waits: nothing was charged, and
    // whatever its reserve may have held is released once the inventory is back.
    sys.stop_inventory().await?;
    let waiting = sys.order("bob", &[("p-widget", 1)]).await??;
    assert_eq!(waiting.status, "PENDING", "{waiting:?}");
    let cancelled = sys.cancel(&waiting.id, "too slow").await??;
    assert_eq!(cancelled.status, "CANCELLED", "{cancelled:?}");
    sys.restart_inventory().await?;
    sys.wait_settled(&waiting.id).await?;
    assert_eq!(sys.item("WIDGET").await?.reserved, 0);
    assert!(sys.ledger.charges_for_order(&waiting.id).is_empty());
    Ok(())
}
