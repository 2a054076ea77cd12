//! Fuzzing without cargo-fuzz: arbitrary bytes, protobuf-shaped field soups and mutated
//! encodings of valid requests are decoded as every `inventory.v1` request message and, when
//! they decode, parsed by the server's conversion. No input may panic, and a refusal is
//! always INVALID_ARGUMENT naming at least one field.
//!
//! `TARGETS` is the one list to extend when the service gains an RPC;
//! `every_request_message_has_a_target` fails until it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use common::proto::inventory::v1 as pb;
use inventory_service::error::InventoryError;
use inventory_service::grpc::convert::{self, Limits};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::Config as ProptestConfig;
use prost::Message;

/// The server's default limits.
const LIMITS: Limits =
    Limits { max_items: 100, default_expiry_minutes: 30, max_expiry_minutes: 7 * 24 * 60 };

/// One request message: how to decode and parse it, and a valid example to mutate.
struct Target {
    name: &'static str,
    run: fn(&[u8]) -> Outcome,
    seed: fn() -> Vec<u8>,
}

/// What became of one input for one target.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Undecodable,
    Accepted,
    Refused,
}

/// `Message => |request| conversion, seed: valid example;` for each request of the service.
macro_rules! targets {
    ($($msg:ident => $convert:expr, seed: $seed:expr;)*) => {
        const TARGETS: &[Target] = &[$(Target {
            name: concat!("inventory.v1.", stringify!($msg)),
            run: |bytes| run::<pb::$msg>(bytes, $convert),
            seed: || {
                let seed: pb::$msg = $seed;
                seed.encode_to_vec()
            },
        }),*];
    };
}

targets! {
    CheckInventoryAvailabilityRequest => |r| convert::check_lines(r, &LIMITS).map(drop),
        seed: pb::CheckInventoryAvailabilityRequest { items: vec![check_item("SKU-1", 2), check_item("SKU-2", 1)] };
    ReserveInventoryRequest => |r| convert::reserve(r, &LIMITS).map(drop),
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
fn run<M: Message + Default>(
    bytes: &[u8],
    convert: fn(&M) -> Result<(), InventoryError>,
) -> Outcome {
    let Ok(request) = M::decode(bytes) else {
        return Outcome::Undecodable;
    };
    match convert(&request) {
        Ok(()) => Outcome::Accepted,
        Err(InventoryError::InvalidArgument(violations)) => {
            assert!(!violations.is_empty(), "INVALID_ARGUMENT without a violation");
            for v in &violations {
                assert!(!v.field.is_empty() && !v.description.is_empty(), "{v:?}");
            }
            Outcome::Refused
        }
        Err(other) => panic!("a conversion failed with {other:?}, not INVALID_ARGUMENT"),
    }
}

fn run_all(bytes: &[u8]) {
    for target in TARGETS {
        (target.run)(bytes);
    }
}

/// `PROPTEST_CASES` or `cases`.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

// --- Inputs ----------------------------------------------------------------------------

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One protobuf field, well- or ill-formed: a key (any field number, any of the 8 wire
/// types) and a payload that may or may not fit it.
#[derive(Debug, Clone)]
struct Field {
    number: u32,
    wire: u8,
    payload: Payload,
}

#[derive(Debug, Clone)]
enum Payload {
    Varint(u64),
    Bytes(Vec<u8>),
    /// A length prefix that lies about what follows.
    BadLength(u64, Vec<u8>),
    Fixed32(u32),
    Fixed64(u64),
    Nothing,
}

fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        varint((u64::from(f.number) << 3) | u64::from(f.wire), &mut out);
        match &f.payload {
            Payload::Varint(v) => varint(*v, &mut out),
            Payload::Bytes(b) => {
                varint(b.len() as u64, &mut out);
                out.extend_from_slice(b);
            }
            Payload::BadLength(len, b) => {
                varint(*len, &mut out);
                out.extend_from_slice(b);
            }
            Payload::Fixed32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Payload::Fixed64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Payload::Nothing => {}
        }
    }
    out
}

fn varint_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..8u64,
        any::<i32>().prop_map(|n| i64::from(n) as u64),
        Just(u64::from(u32::MAX)),
        Just(i64::MAX as u64),
        any::<u64>(),
    ]
}

fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[A-Za-z0-9._-]{0,70}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().into_bytes()),
    ]
}

fn field(nested: Option<BoxedStrategy<Vec<u8>>>) -> impl Strategy<Value = Field> {
    let bytes = match nested {
        Some(nested) => prop_oneof![3 => text_bytes(), 2 => nested].boxed(),
        None => text_bytes().boxed(),
    };
    let payload = prop_oneof![
        4 => (Just(0u8), varint_value().prop_map(Payload::Varint)),
        5 => (Just(2u8), bytes.prop_map(Payload::Bytes)),
        1 => (Just(2u8), (any::<u64>(), text_bytes()).prop_map(|(n, b)| Payload::BadLength(n, b))),
        1 => (Just(5u8), any::<u32>().prop_map(Payload::Fixed32)),
        1 => (Just(1u8), any::<u64>().prop_map(Payload::Fixed64)),
        1 => (0..8u8, Just(Payload::Nothing)),
    ];
    let number =
        prop_oneof![8 => 1..=10u32, 1 => Just(0u32), 1 => any::<u32>().prop_map(|n| n >> 3)];
    (number, payload).prop_map(|(number, (wire, payload))| Field { number, wire, payload })
}

/// Field soups two levels deep (repeated messages and wrappers hold nested fields).
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let inner = prop::collection::vec(field(None), 0..6).prop_map(|f| encode(&f)).boxed();
    prop::collection::vec(field(Some(inner)), 0..12).prop_map(|f| encode(&f))
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    Duplicate(Index, Index),
    Splice(Index, Index),
    /// Concatenation is a protobuf merge: still decodable, with repeated fields doubled.
    Append(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        // Printable, blank and control characters keep UTF-8 valid and hit the text rules.
        (any::<Index>(), prop::sample::select(b" \t\n\0\x7f-_:0aZ".to_vec()))
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(t, a)| Mutation::Splice(t, a)),
        any::<Index>().prop_map(Mutation::Append),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Mutation::Remove(i) if len > 0 => {
                bytes.remove(i.index(len));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Mutation::Duplicate(a, b) if len > 0 => {
                let (a, b) = (a.index(len), b.index(len));
                let chunk = bytes[a.min(b)..=a.max(b)].to_vec();
                bytes.extend(chunk);
            }
            Mutation::Splice(t, at) => {
                let other = (TARGETS[t.index(TARGETS.len())].seed)();
                let at = at.index(len + 1);
                bytes.splice(at..at, other);
            }
            Mutation::Append(t) => bytes.extend((TARGETS[t.index(TARGETS.len())].seed)()),
            _ => {}
        }
    }
    bytes
}

// --- Properties --------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        run_all(&bytes);
    }

    #[test]
    fn field_soups_never_panic(bytes in soup()) {
        run_all(&bytes);
    }
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn mutated_valid_requests_never_panic(
        target in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let seed = (TARGETS[target.index(TARGETS.len())].seed)();
        run_all(&mutate(seed, &mutations));
    }
}

/// The seeds are accepted as they are, so mutations start from the accepting paths.
#[test]
fn seeds_are_valid_requests() {
    for target in TARGETS {
        assert_eq!((target.run)(&(target.seed)()), Outcome::Accepted, "{}", target.name);
    }
}

/// The mutation and soup strategies reach the conversions, not just the decoder.
#[test]
fn fuzz_inputs_reach_every_conversion() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let inputs = (any::<Index>(), prop::collection::vec(mutation(), 1..4));
    let mut reached = BTreeSet::new();
    for _ in 0..2_000 {
        let (target, mutations) = inputs.new_tree(&mut runner).unwrap().current();
        let t = &TARGETS[target.index(TARGETS.len())];
        if (t.run)(&mutate((t.seed)(), &mutations)) != Outcome::Undecodable {
            reached.insert(t.name);
        }
    }
    let all: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(reached, all);
}

/// Every RPC's request type of `inventory.v1.InventoryService` is in `TARGETS`.
#[test]
fn every_request_message_has_a_target() {
    let set = prost_types::FileDescriptorSet::decode(common::proto::FILE_DESCRIPTOR_SET).unwrap();
    let inputs: BTreeSet<String> = set
        .file
        .iter()
        .filter(|f| f.package() == "inventory.v1")
        .flat_map(|f| &f.service)
        .flat_map(|s| &s.method)
        .map(|m| m.input_type().trim_start_matches('.').to_owned())
        .collect();
    assert!(!inputs.is_empty());
    let targets: BTreeSet<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(targets, inputs);
}
