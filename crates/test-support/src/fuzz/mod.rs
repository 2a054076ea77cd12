//! The request fuzzing both servers run without cargo-fuzz: arbitrary bytes,
//! protobuf-shaped field soups and mutated encodings of valid requests, decoded as each
//! request message of a service and, when they decode, parsed by the server's conversion. No
//! input may panic, and a refusal is always INVALID_ARGUMENT naming at least one field.
//!
//! A service's test names its request messages, their conversions and a valid example of each
//! in one [`fuzz_requests!`](crate::fuzz_requests), with its error mapping; the macro writes
//! the [`Target`]s and the tests over them.

mod inputs;

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use prost::Message;

pub use inputs::{Mutation, mutate, mutation, soup};

use crate::violations::Invalid;

/// One request message: how to decode and parse it, and a valid example to mutate.
pub struct Target {
    /// The message's full name, `package.Message`.
    pub name: &'static str,
    /// Decodes and parses one input.
    pub run: fn(&[u8]) -> Outcome,
    /// A valid example, encoded.
    pub seed: fn() -> Vec<u8>,
}

/// What became of one input for one target.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a message of the target's type.
    Undecodable,
    /// Decoded and parsed.
    Accepted,
    /// Decoded, then refused with INVALID_ARGUMENT naming a field.
    Refused,
}

/// `fuzz_requests!(pb, "pkg.v1", invalid; Message => |request| conversion, seed: valid example; ...)`
/// defines `const TARGETS: &[Target]`, one per request message of the service (`pb` is the
/// module of its messages, `invalid` its error mapping: the field violations of an
/// INVALID_ARGUMENT error, any other error handed back), and the fuzz tests over them:
/// arbitrary bytes, field soups and mutated seeds never panic, the seeds are accepted, the
/// mutations reach every conversion, and every request message of the package has a target.
#[macro_export]
macro_rules! fuzz_requests {
    ($pb:ident, $package:literal, $invalid:path; $($msg:ident => $convert:expr, seed: $seed:expr;)*) => {
        const TARGETS: &[$crate::fuzz::Target] = &[$($crate::fuzz::Target {
            name: concat!($package, ".", stringify!($msg)),
            run: |bytes| $crate::fuzz::decode_and_parse::<$pb::$msg, _>(bytes, $convert, $invalid),
            seed: || {
                let seed: $pb::$msg = $seed;
                $crate::prost::Message::encode_to_vec(&seed)
            },
        }),*];

        $crate::proptest::proptest! {
            #![proptest_config($crate::properties::config(512))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in $crate::fuzz::arbitrary_bytes()) {
                $crate::fuzz::run_all(TARGETS, &bytes);
            }

            #[test]
            fn field_soups_never_panic(bytes in $crate::fuzz::soup()) {
                $crate::fuzz::run_all(TARGETS, &bytes);
            }
        }

        $crate::proptest::proptest! {
            #![proptest_config($crate::properties::config(4096))]

            #[test]
            fn mutated_valid_requests_never_panic(
                target in $crate::proptest::prelude::any::<$crate::proptest::sample::Index>(),
                mutations in $crate::fuzz::mutations(),
            ) {
                $crate::fuzz::run_mutated(TARGETS, target, &mutations);
            }
        }

        /// The seeds are accepted as they are, so mutations start from the accepting paths.
        #[test]
        fn seeds_are_valid_requests() {
            $crate::fuzz::assert_seeds_accepted(TARGETS);
        }

        /// The mutation strategy reaches the conversions, not just the decoder.
        #[test]
        fn fuzz_inputs_reach_every_conversion() {
            $crate::fuzz::assert_inputs_reach_every_conversion(TARGETS);
        }

        #[doc = concat!("Every RPC's request type of `", $package, "` is in `TARGETS`.")]
        #[test]
        fn every_request_message_has_a_target() {
            $crate::fuzz::assert_every_request_has_a_target(TARGETS, $package);
        }
    };
}

/// Decodes `bytes` as `M` and parses it with `convert`; `invalid` gives the field violations
/// of an INVALID_ARGUMENT error back as (field, description) (any other error is the
/// finding, as is a panic).
pub fn decode_and_parse<M: Message + Default, E: std::fmt::Debug>(
    bytes: &[u8],
    convert: fn(&M) -> Result<(), E>,
    invalid: Invalid<E>,
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

/// Up to 2 KiB of arbitrary bytes.
pub fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

/// One to three [`Mutation`]s.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

/// Feeds every target the seed of the one `target` picks, after `mutations`.
pub fn run_mutated(targets: &[Target], target: Index, mutations: &[Mutation]) {
    let seed = (targets[target.index(targets.len())].seed)();
    run_all(targets, &mutate(targets, seed, mutations));
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
    let inputs = (any::<Index>(), mutations());
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
