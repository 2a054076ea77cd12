//! Fuzzing without cargo-fuzz (the machinery is `crates/test-support`): arbitrary bytes,
//! protobuf-shaped field soups and mutated encodings of valid requests are decoded as every `order.v1` request message and, when
//! they decode, parsed by the server's conversion. No input may panic, and a refusal is
//! always INVALID_ARGUMENT naming at least one field.
//!
//! `TARGETS` is the one list to extend when the service gains an RPC;
//! `every_request_message_has_a_target` fails until it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use order_service::error::OrderError;
use order_service::grpc::convert;
use proptest::prelude::*;
use proptest::sample::Index;
use proto::order::v1 as pb;
use test_support::fuzz::{mutate, mutation, run_all, soup};

test_support::targets! {
    pb, "order.v1", run;
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
}

const ORDER: &str = "0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f";
/// URL-safe base64 of `1700000000123456:0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f`.
const TOKEN: &str = "MTcwMDAwMDAwMDEyMzQ1NjowMTkwYTVjMi03ZDRlLTdjM2EtOWIxZS0yZjhhMWMwZDNlNGY";

/// Decodes `bytes` as `M` and parses it; panics (the finding) are left to proptest.
fn run<M: prost::Message + Default>(
    bytes: &[u8],
    convert: fn(&M) -> Result<(), OrderError>,
) -> test_support::fuzz::Outcome {
    test_support::fuzz::decode_and_parse(bytes, convert, |err| match err {
        OrderError::InvalidArgument(violations) => {
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

/// Every RPC's request type of `order.v1` is in `TARGETS`.
#[test]
fn every_request_message_has_a_target() {
    test_support::fuzz::assert_every_request_has_a_target(TARGETS, "order.v1");
}
