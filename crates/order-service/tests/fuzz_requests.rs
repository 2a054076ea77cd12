//! Fuzzing without cargo-fuzz (the machinery, and the tests it writes, are
//! `test_support::fuzz_requests!`): arbitrary bytes, protobuf-shaped field soups and mutated
//! encodings of valid requests are decoded as every `order.v1` request message and, when they
//! decode, parsed by the server's conversion. No input may panic, and a refusal is always
//! INVALID_ARGUMENT naming at least one field.
//!
//! The list of targets below is the one to extend when the service gains an RPC;
//! `every_request_message_has_a_target` fails until it is.

use order_service::grpc::convert;
use proto::order::v1 as pb;
use test_support::violations::invalid;

test_support::fuzz_requests! {
    pb, "order.v1", invalid;
    CreateOrderRequest => |r| convert::create_order(r).map(drop),
        seed: pb::CreateOrderRequest {
            user_id: "user-1".into(),
            items: vec![
                pb::OrderItemInput { product_id: "shirt".into(), variant_id: Some("red".into()), quantity: 2 },
                pb::OrderItemInput { product_id: "mug".into(), variant_id: None, quantity: 1 },
            ],
            currency: "eur".into(),
            payment_method: "card".into(),
            idempotency_key: "key-1".into(),
        };
    GetOrderRequest => |r| convert::order_id(&r.order_id).map(drop),
        seed: pb::GetOrderRequest { order_id: ORDER.into() };
    ListOrdersRequest => |r| convert::list_page(r).map(drop),
        seed: pb::ListOrdersRequest { user_id: "user-1".into(), page_size: 10, page_token: TOKEN.into() };
    CancelOrderRequest => |r| convert::cancel_order(r).map(drop),
        seed: pb::CancelOrderRequest { order_id: ORDER.into(), reason: "changed my mind".into() };
    ReturnOrderRequest => |r| convert::return_order(r).map(drop),
        seed: pb::ReturnOrderRequest {
            order_id: ORDER.into(),
            items: vec![
                pb::ReturnItemInput { sku: "MUG".into(), quantity: 1, do_not_restock: false },
                pb::ReturnItemInput { sku: "SHIRT-RED".into(), quantity: 2, do_not_restock: true },
            ],
            reason: "arrived broken".into(),
            idempotency_key: "return-1".into(),
        };
    ListParkedOrdersRequest => |r| convert::parked_page(r).map(drop),
        seed: pb::ListParkedOrdersRequest { page_size: 20 };
    ResolveParkedOrderRequest => |r| convert::resolve_parked(r).map(drop),
        seed: pb::ResolveParkedOrderRequest {
            order_id: ORDER.into(),
            resolution: pb::Resolution::RefundedByHand.into(),
            note: "refunded by the bank".into(),
        };
    WatchEventsRequest => |r| common::events::check_types(common::events::ORDER_TYPES, r.types.clone()).map(drop),
        seed: pb::WatchEventsRequest { from_position: 7, types: vec!["order.confirmed".into()], from_now: false };
}

const ORDER: &str = "0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f";
/// URL-safe base64 of `1700000000123456:0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f`.
const TOKEN: &str = "MTcwMDAwMDAwMDEyMzQ1NjowMTkwYTVjMi03ZDRlLTdjM2EtOWIxZS0yZjhhMWMwZDNlNGY";
