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
async fn unreachable_peers_before_the_order_exists_are_unavailable_and_write_nothing()
-> anyhow::Result<()> {
    let mut sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;

    sys.product_faults.set_fail_all(true);
    let status = sys.order("alice", &[("p-widget", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("product"), "{}", status.message());
    // The peer's own message stays in the logs: it may describe the peer's internals.
    assert!(!status.message().contains("injected"), "{}", status.message());
    sys.product_faults.set_fail_all(false);

    sys.stop_inventory().await?;
    let status = sys.order("alice", &[("p-widget", 1)]).await?.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("inventory"), "{}", status.message());

    assert_eq!(sys.order_count().await?, 0);
    assert!(sys.ledger.charges().is_empty());
    Ok(())
}
