//! Every malformed request is INVALID_ARGUMENT with a BadRequest violation naming its field.

use proto::inventory::v1 as pb;
use system_tests::{TestInventory, assert_invalid, reserve_request};
use tonic_types::StatusExt;

#[tokio::test]
async fn reserve_requests() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    let mut c = inv.client.clone();

    assert_invalid(c.reserve_inventory(reserve_request("o", &[])).await, "items");
    assert_invalid(
        c.reserve_inventory(reserve_request("o", &[("A", 0)])).await,
        "items[0].quantity",
    );
    assert_invalid(
        c.reserve_inventory(reserve_request("o", &[("A", 1), ("A", -2)])).await,
        "items[1].quantity",
    );
    assert_invalid(
        c.reserve_inventory(reserve_request("o", &[("", 1)])).await,
        "items[0].inventory_item_id",
    );
    let long = "X".repeat(65);
    assert_invalid(
        c.reserve_inventory(reserve_request("o", &[(&long, 1)])).await,
        "items[0].inventory_item_id",
    );
    assert_invalid(c.reserve_inventory(reserve_request("", &[("A", 1)])).await, "reference_id");

    let mut no_type = reserve_request("o", &[("A", 1)]);
    no_type.reference_type.clear();
    assert_invalid(c.reserve_inventory(no_type).await, "reference_type");

    let mut negative = reserve_request("o", &[("A", 1)]);
    negative.expiration_minutes = -1;
    assert_invalid(c.reserve_inventory(negative).await, "expiration_minutes");

    let many: Vec<(&str, i32)> = (0..101).map(|_| ("A", 1)).collect();
    assert_invalid(c.reserve_inventory(reserve_request("o", &many)).await, "items");

    let mut bad_wh = reserve_request("o", &[("A", 1)]);
    bad_wh.items[0].warehouse_id = "has space".into();
    assert_invalid(c.reserve_inventory(bad_wh).await, "items[0].warehouse_id");

    assert_eq!(inv.item("A").await?.reserved, 0, "no refused request took anything");
    Ok(())
}

#[tokio::test]
async fn every_violation_is_reported_at_once() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut req = reserve_request("", &[("", 0)]);
    req.expiration_minutes = -5;
    let status = inv.client.clone().reserve_inventory(req).await.err();
    let fields: Vec<String> = status
        .and_then(|s| s.get_details_bad_request())
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    for field in
        ["items[0].inventory_item_id", "items[0].quantity", "reference_id", "expiration_minutes"]
    {
        assert!(fields.iter().any(|f| f == field), "{fields:?} lacks {field}");
    }
    Ok(())
}

#[tokio::test]
async fn check_requests() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut c = inv.client.clone();
    let check = |sku: &str, quantity| pb::CheckInventoryAvailabilityRequest {
        items: vec![pb::AvailabilityCheckItem { sku: sku.into(), quantity, ..Default::default() }],
    };
    assert_invalid(
        c.check_inventory_availability(pb::CheckInventoryAvailabilityRequest::default()).await,
        "items",
    );
    assert_invalid(c.check_inventory_availability(check("A", 0)).await, "items[0].quantity");
    assert_invalid(c.check_inventory_availability(check("", 1)).await, "items[0].sku");
    assert_invalid(c.check_inventory_availability(check(&"S".repeat(65), 1)).await, "items[0].sku");
    Ok(())
}

#[tokio::test]
async fn reservation_ids_must_be_uuids() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut c = inv.client.clone();
    let id = || "not-a-uuid".to_owned();
    assert_invalid(
        c.commit_reservation(pb::CommitReservationRequest { reservation_id: id() }).await,
        "reservation_id",
    );
    assert_invalid(
        c.cancel_reservation(pb::CancelReservationRequest::by_id(id())).await,
        "reservation_id",
    );
    assert_invalid(
        c.get_reservation(pb::GetReservationRequest::by_id(id())).await,
        "reservation_id",
    );
    assert_invalid(
        c.get_reservation(pb::GetReservationRequest::by_id(String::new())).await,
        "reservation_id",
    );
    Ok(())
}

#[tokio::test]
async fn admin_requests() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 1).await?;
    let mut c = inv.client.clone();
    let upsert = |sku: &str, product: &str, on_hand| pb::UpsertInventoryItemRequest {
        sku: sku.into(),
        product_id: product.into(),
        variant_id: None,
        warehouse_id: String::new(),
        on_hand,
    };
    assert_invalid(c.upsert_inventory_item(upsert("", "p", 1)).await, "sku");
    assert_invalid(c.upsert_inventory_item(upsert("A", "", 1)).await, "product_id");
    assert_invalid(c.upsert_inventory_item(upsert("A", "p", -1)).await, "on_hand");

    let adjust = |delta, reason: &str| pb::AdjustStockRequest {
        sku: "A".into(),
        warehouse_id: String::new(),
        delta,
        reason: reason.into(),
        idempotency_key: String::new(),
    };
    assert_invalid(c.adjust_stock(adjust(0, "why")).await, "delta");
    assert_invalid(c.adjust_stock(adjust(1, "  ")).await, "reason");
    assert_invalid(
        c.get_inventory_item(pb::GetInventoryItemRequest { sku: String::new() }).await,
        "sku",
    );
    assert_invalid(
        c.list_inventory_items(pb::ListInventoryItemsRequest {
            page_size: -1,
            page_token: String::new(),
        })
        .await,
        "page_size",
    );
    Ok(())
}
