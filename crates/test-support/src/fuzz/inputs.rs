//! The fuzz inputs: protobuf-shaped field soups (well- and ill-formed keys and payloads, two
//! levels deep) and the edits that mutate a valid request's encoding.

use proptest::prelude::*;
use proptest::sample::Index;

use super::Target;

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
