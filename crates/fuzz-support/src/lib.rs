//! The request fuzzing both servers run without cargo-fuzz: arbitrary bytes,
//! protobuf-shaped field soups and mutated encodings of valid requests, decoded as each
//! request message of a service and, when they decode, parsed by the server's conversion. No
//! input may panic, and a refusal is always INVALID_ARGUMENT naming at least one field.
//!
//! A service's test lists its [`Target`]s with [`targets!`], runs the proptest properties over
//! [`run_all`], [`soup`] and [`mutate`], and calls the `assert_*` checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::Config as ProptestConfig;
pub use prost;
use prost::Message;

/// One request message: how to decode and parse it, and a valid example to mutate.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> Outcome,
    pub seed: fn() -> Vec<u8>,
}

/// What became of one input for one target.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Undecodable,
    Accepted,
    Refused,
}

/// `targets!(pb, "pkg.v1", run; Message => |request| conversion, seed: valid example; ...)`
/// defines `const TARGETS: &[Target]`, one per request message of the service (`pb` is the
/// module of its messages, `run` its `fn(&[u8], fn(&M) -> Result<(), E>) -> Outcome`).
#[macro_export]
macro_rules! targets {
    ($pb:ident, $package:literal, $run:ident; $($msg:ident => $convert:expr, seed: $seed:expr;)*) => {
        const TARGETS: &[$crate::Target] = &[$($crate::Target {
            name: concat!($package, ".", stringify!($msg)),
            run: |bytes| $run::<$pb::$msg>(bytes, $convert),
            seed: || {
                let seed: $pb::$msg = $seed;
                $crate::prost::Message::encode_to_vec(&seed)
            },
        }),*];
    };
}

/// The (field, description) pairs of an INVALID_ARGUMENT error.
pub type Violations = Vec<(String, String)>;

/// Decodes `bytes` as `M` and parses it with `convert`; `invalid` gives the field violations
/// of an INVALID_ARGUMENT error back as (field, description) (any other error is the
/// finding, as is a panic).
pub fn decode_and_parse<M: Message + Default, E: std::fmt::Debug>(
    bytes: &[u8],
    convert: fn(&M) -> Result<(), E>,
    invalid: fn(E) -> Result<Violations, E>,
) -> Outcome {
    let Ok(request) = M::decode(bytes) else {
        return Outcome::Undecodable;
    };
    match convert(&request).map_err(invalid) {
        Ok(()) => Outcome::Accepted,
        Err(Ok(violations)) => {
            assert!(!violations.is_empty(), "INVALID_ARGUMENT without a violation");
            for (field, description) in &violations {
                assert!(!field.is_empty() && !description.is_empty(), "{field:?}: {description:?}");
            }
            Outcome::Refused
        }
        Err(Err(other)) => panic!("a conversion failed with {other:?}, not INVALID_ARGUMENT"),
    }
}

/// Feeds `bytes` to every target.
pub fn run_all(targets: &[Target], bytes: &[u8]) {
    for target in targets {
        (target.run)(bytes);
    }
}

/// `PROPTEST_CASES` or `cases`.
pub fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// The seeds are accepted as they are, so mutations start from the accepting paths.
pub fn assert_seeds_accepted(targets: &[Target]) {
    for target in targets {
        assert_eq!((target.run)(&(target.seed)()), Outcome::Accepted, "{}", target.name);
    }
}

/// The mutation strategy reaches the conversions, not just the decoder.
pub fn assert_inputs_reach_every_conversion(targets: &[Target]) {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let inputs = (any::<Index>(), prop::collection::vec(mutation(), 1..4));
    let mut reached = BTreeSet::new();
    for _ in 0..2_000 {
        let (target, mutations) = inputs.new_tree(&mut runner).unwrap().current();
        let t = &targets[target.index(targets.len())];
        if (t.run)(&mutate(targets, (t.seed)(), &mutations)) != Outcome::Undecodable {
            reached.insert(t.name);
        }
    }
    let all: BTreeSet<&str> = targets.iter().map(|t| t.name).collect();
    assert_eq!(reached, all);
}

/// Every RPC's request type of the services in proto package `package` is in `targets`.
pub fn assert_every_request_has_a_target(targets: &[Target], package: &str) {
    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
    let inputs: BTreeSet<String> = set
        .file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| &f.service)
        .flat_map(|s| &s.method)
        .map(|m| m.input_type().trim_start_matches('.').to_owned())
        .collect();
    assert!(!inputs.is_empty());
    let names: BTreeSet<String> = targets.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(names, inputs);
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
pub fn soup() -> impl Strategy<Value = Vec<u8>> {
    let inner = prop::collection::vec(field(None), 0..6).prop_map(|f| encode(&f)).boxed();
    prop::collection::vec(field(Some(inner)), 0..12).prop_map(|f| encode(&f))
}

/// One edit of an encoded request.
#[derive(Debug, Clone)]
pub enum Mutation {
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

/// Any one [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> {
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

/// `bytes` after `mutations`; splices and appends take the seed of one of `targets`.
pub fn mutate(targets: &[Target], mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
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
                let other = (targets[t.index(targets.len())].seed)();
                let at = at.index(len + 1);
                bytes.splice(at..at, other);
            }
            Mutation::Append(t) => bytes.extend((targets[t.index(targets.len())].seed)()),
            _ => {}
        }
    }
    bytes
}
