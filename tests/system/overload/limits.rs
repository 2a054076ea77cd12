//! MAX_MESSAGE_BYTES and MAX_ITEMS_PER_REQUEST, on both servers.

use proto::inventory::v1 as inv;
use system_tests::{
    SystemOptions, TestDb, TestInventory, TestOrderServer, TestSystem, assert_invalid,
    order_request, reserve_request, test_settings,
};
use tonic::Code;

/// A request over the limit is refused by tonic's decoder before any handler runs: tonic
/// answers OUT_OF_RANGE naming the size and the limit.
fn assert_too_large<T: std::fmt::Debug>(result: Result<T, tonic::Status>) {
    let status = result.expect_err("an oversized request must be refused");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
}

#[tokio::test]
async fn an_oversized_request_is_refused_by_both_servers() -> anyhow::Result<()> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    let mut settings = sys.order_settings.clone();
    settings.overload.max_message_bytes = 4 * 1024;
    sys.order_settings = settings;
    sys.start_order_server().await?;
    let big = "x".repeat(8 * 1024);

    // The inventory's default limit (256 KiB) is far above any legitimate request...
    let mut client = sys.inventory()?.client.clone();
    let many: Vec<(&str, i32)> = (0..100).map(|_| ("SKU-WITH-A-LONG-NAME-0123456789", 1)).collect();
    if let Err(status) = client.reserve_inventory(reserve_request("o-1", &many)).await {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    // ...and refuses what exceeds it.
    let huge = "y".repeat(300 * 1024);
    let req = inv::CheckInventoryAvailabilityRequest {
        items: vec![inv::AvailabilityCheckItem { sku: huge, quantity: 1, ..Default::default() }],
    };
    assert_too_large(client.check_inventory_availability(req).await);

    let mut req = order_request("u-1", &[("p-widget", 1)]);
    req.idempotency_key = big;
    assert_too_large(sys.client()?.create_order(req).await);
    // The server keeps serving.
    let ok = sys.order("u-1", &[("p-widget", 1)]).await?;
    assert!(ok.is_ok() || ok.as_ref().is_err_and(|s| s.code() == Code::FailedPrecondition));
    Ok(())
}

#[tokio::test]
async fn too_many_items_are_refused_naming_the_field() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.max_items_per_request = 2;
    let inv = TestInventory::start_with(db, settings).await?;
    let mut client = inv.client.clone();
    let three = [("A", 1), ("B", 1), ("C", 1)];
    assert_invalid(client.reserve_inventory(reserve_request("o", &three)).await, "items");

    let sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    let mut settings = sys.order_settings.clone();
    settings.max_items_per_request = 2;
    let order = TestOrderServer::start(settings).await?;
    let req = order_request("u", &[("p-widget", 1), ("p-gadget", 1), ("p-hot", 1)]);
    assert_invalid(order.client.clone().create_order(req).await, "items");
    Ok(())
}
