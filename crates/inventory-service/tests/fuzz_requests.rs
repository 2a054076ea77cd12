//! Fuzzing without cargo-fuzz (the machinery, and the tests it writes, are
//! `test_support::fuzz_requests!`): arbitrary bytes, protobuf-shaped field soups and mutated
//! encodings of valid requests are decoded as every `inventory.v1` request message and, when they
//! decode, parsed by the server's conversion. No input may panic, and a refusal is always
//! INVALID_ARGUMENT naming at least one field.
//!
//! The list of targets below is the one to extend when the service gains an RPC;
//! `every_request_message_has_a_target` fails until it is.

use inventory_service::domain::HoldCaller;
use inventory_service::grpc::convert::{self, Limits};
use proto::inventory::v1 as pb;
use test_support::violations::invalid;

/// The server's default limits.
const LIMITS: Limits =
    Limits { max_items: 100, default_expiry_minutes: 30, max_expiry_minutes: 7 * 24 * 60 };

test_support::fuzz_requests! {
    pb, "inventory.v1", invalid;
    CheckInventoryAvailabilityRequest => |r| convert::check_lines(r, &LIMITS).map(drop),
        seed: pb::CheckInventoryAvailabilityRequest { items: vec![check_item("SKU-1", 2), check_item("SKU-2", 1)] };
    ReserveInventoryRequest => |r| convert::reserve(r, &LIMITS, HoldCaller::anonymous()).map(drop),
        seed: pb::ReserveInventoryRequest {
            items: vec![reserve_item("SKU-1", "", 2), reserve_item("0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f", "east", 1)],
            reference_id: "order-1".into(),
            reference_type: "ORDER".into(),
            expiration_minutes: 15,
        };
    CommitReservationRequest => |r| convert::reservation_id(&r.reservation_id).map(drop),
        seed: pb::CommitReservationRequest { reservation_id: RESERVATION.into() };
    CancelReservationRequest => |r| convert::cancel_hold(r).map(drop),
        seed: pb::CancelReservationRequest::by_id(RESERVATION);
    ReturnStockRequest => |r| convert::return_hold(r).and_then(|_| convert::return_lines(r)).map(drop),
        seed: pb::ReturnStockRequest {
            lines: vec![
                pb::ReturnLine { sku: "SKU-1".into(), warehouse_id: String::new(), quantity: 2, do_not_restock: false },
                pb::ReturnLine { sku: "SKU-2".into(), warehouse_id: "east".into(), quantity: 1, do_not_restock: true },
            ],
            idempotency_key: "return-1".into(),
            reason: "customer return".into(),
            ..pb::ReturnStockRequest::by_id(RESERVATION)
        };
    UpsertInventoryItemRequest => |r| convert::upsert(r).map(drop),
        seed: pb::UpsertInventoryItemRequest {
            sku: "SKU-1".into(),
            product_id: "prod-1".into(),
            variant_id: Some("red".into()),
            warehouse_id: "east".into(),
            on_hand: 40,
        };
    AdjustStockRequest => |r| convert::adjust(r).map(drop),
        seed: pb::AdjustStockRequest {
            sku: "SKU-1".into(),
            warehouse_id: String::new(),
            delta: -3,
            reason: "recount".into(),
            idempotency_key: "adj-1".into(),
        };
    GetInventoryItemRequest => |r| convert::sku(&r.sku).map(drop),
        seed: pb::GetInventoryItemRequest { sku: "SKU-1".into() };
    ListInventoryItemsRequest => |r| convert::list_page(r).map(drop),
        seed: pb::ListInventoryItemsRequest { page_size: 20, page_token: convert::page_token("SKU-1") };
    GetReservationRequest => |r| convert::get_hold(r).map(drop),
        seed: pb::GetReservationRequest::by_id(RESERVATION);
    SetStockPolicyRequest => |r| convert::set_policy(r, None).map(drop),
        seed: pb::SetStockPolicyRequest {
            sku: "SKU-1".into(),
            warehouse_id: "east".into(),
            safety_stock: Some(3),
            low_stock_threshold: Some(5),
            reason: "keep three for the shop floor".into(),
            backorder_limit: Some(20),
            expected_restock_date: Some("2027-01-15".into()),
        };
    ListLowStockRequest => |r| convert::low_stock_page(r).map(drop),
        seed: pb::ListLowStockRequest {
            warehouse_id: "east".into(),
            page_size: 20,
            page_token: convert::low_stock_token("SKU-1", "east"),
        };
    // No fields: nothing to refuse.
    VerifyLedgerRequest => |_r| Ok::<(), inventory_service::error::InventoryError>(()),
        seed: pb::VerifyLedgerRequest {};
    WatchEventsRequest => |r| common::events::check_types(common::events::INVENTORY_TYPES, r.types.clone()).map(drop),
        seed: pb::WatchEventsRequest { from_position: 7, types: vec!["stock.changed".into()], from_now: false };
}

const RESERVATION: &str = "0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f";

fn check_item(sku: &str, quantity: i32) -> pb::AvailabilityCheckItem {
    pb::AvailabilityCheckItem {
        product_id: "prod".into(),
        variant_id: Some("v".into()),
        sku: sku.into(),
        quantity,
    }
}

fn reserve_item(item: &str, warehouse: &str, quantity: i32) -> pb::ReservationItem {
    pb::ReservationItem { inventory_item_id: item.into(), warehouse_id: warehouse.into(), quantity }
}
