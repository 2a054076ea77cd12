//! Fuzzing without cargo-fuzz (the machinery is `crates/test-support`): arbitrary bytes,
//! protobuf-shaped field soups and mutated encodings of valid requests are decoded as every `inventory.v1` request message and, when
//! they decode, parsed by the server's conversion. No input may panic, and a refusal is
//! always INVALID_ARGUMENT naming at least one field.
//!
//! `TARGETS` is the one list to extend when the service gains an RPC;
//! `every_request_message_has_a_target` fails until it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use inventory_service::domain::HoldCaller;
use inventory_service::error::InventoryError;
use inventory_service::grpc::convert::{self, Limits};
use proptest::prelude::*;
use proptest::sample::Index;
use proto::inventory::v1 as pb;
use test_support::fuzz::{mutate, mutation, run_all, soup};

/// The server's default limits.
const LIMITS: Limits =
    Limits { max_items: 100, default_expiry_minutes: 30, max_expiry_minutes: 7 * 24 * 60 };

test_support::targets! {
    pb, "inventory.v1", run;
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
    CancelReservationRequest => |r| convert::reservation_id(&r.reservation_id).map(drop),
        seed: pb::CancelReservationRequest { reservation_id: RESERVATION.into() };
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
    GetReservationRequest => |r| convert::reservation_id(&r.reservation_id).map(drop),
        seed: pb::GetReservationRequest { reservation_id: RESERVATION.into() };
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

/// Decodes `bytes` as `M` and parses it; panics (the finding) are left to proptest.
fn run<M: prost::Message + Default>(
    bytes: &[u8],
    convert: fn(&M) -> Result<(), InventoryError>,
) -> test_support::fuzz::Outcome {
    test_support::fuzz::decode_and_parse(bytes, convert, |err| match err {
        InventoryError::InvalidArgument(violations) => {
            Ok(violations.into_iter().map(|v| (v.field, v.description)).collect())
        }
        other => Err(other),
    })
}

fn run_targets(bytes: &[u8]) {
    run_all(TARGETS, bytes);
}

proptest! {
    #![proptest_config(test_support::fuzz::config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        run_targets(&bytes);
    }

    #[test]
    fn field_soups_never_panic(bytes in soup()) {
        run_targets(&bytes);
    }
}

proptest! {
    #![proptest_config(test_support::fuzz::config(4096))]

    #[test]
    fn mutated_valid_requests_never_panic(
        target in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let seed = (TARGETS[target.index(TARGETS.len())].seed)();
        run_targets(&mutate(TARGETS, seed, &mutations));
    }
}

/// The seeds are accepted as they are, so mutations start from the accepting paths.
#[test]
fn seeds_are_valid_requests() {
    test_support::fuzz::assert_seeds_accepted(TARGETS);
}

/// The mutation strategy reaches the conversions, not just the decoder.
#[test]
fn fuzz_inputs_reach_every_conversion() {
    test_support::fuzz::assert_inputs_reach_every_conversion(TARGETS);
}

/// Every RPC's request type of `inventory.v1` is in `TARGETS`.
#[test]
fn every_request_message_has_a_target() {
    test_support::fuzz::assert_every_request_has_a_target(TARGETS, "inventory.v1");
}
