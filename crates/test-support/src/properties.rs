//! What both servers' properties share: their case counts, and the generators of request
//! fields (text around a length limit, integers around a limit, valid ids). Each server adds
//! the characters and the limits of its own rules.

use std::ops::Range;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// `PROPTEST_CASES` or `cases`.
pub fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// The summed weight of [`text`]'s arms: a server that adds arms of its own gives `text` this
/// weight, so that every arm keeps its share.
pub const TEXT_WEIGHT: u32 = 11;

/// Strings for a field whose limit is `max` characters: plain ids, lengths around the limit
/// (ASCII and multi-byte), empty, strings of `edge` characters (those on the edges of the
/// server's rules: blanks, controls, multi-byte letters, ...), and arbitrary Unicode.
pub fn text(max: usize, edge: &'static [char]) -> impl Strategy<Value = String> {
    let edge = prop::collection::vec(prop::sample::select(edge), 0..12).prop_map(String::from_iter);
    let around = |c: char| (max - 2..=max + 2).prop_map(move |n| c.to_string().repeat(n));
    prop_oneof![
        4 => "[A-Za-z0-9._:-]{1,24}",
        1 => around('x'),
        1 => around('漢'),
        1 => Just(String::new()),
        2 => edge,
        2 => any::<String>(),
    ]
}

/// Integers for a quantity, size or duration field: small ones on both sides of zero,
/// ordinary ones, the values `near` one of the server's limits, the extremes, and any.
pub fn int(near: Range<i32>) -> impl Strategy<Value = i32> {
    prop_oneof![
        2 => -2..=3i32,
        2 => 1..2_000i32,
        1 => near,
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
        2 => any::<i32>(),
    ]
}

/// The summed weight of [`valid_text`]'s arms (see [`TEXT_WEIGHT`]).
pub const VALID_TEXT_WEIGHT: u32 = 2;

/// Valid ids of at most `max` characters (at most 70, which keeps generation cheap): ASCII
/// id characters, or letters, digits and symbols of any script.
pub fn valid_text(max: usize) -> impl Strategy<Value = String> {
    let max = max.min(70);
    prop_oneof![
        regex(&format!("[A-Za-z0-9._:/#-]{{1,{max}}}")),
        regex(&format!("[\\p{{L}}\\p{{N}}\\p{{S}}]{{1,{max}}}")),
    ]
}

/// Strings matching `pattern`.
pub fn regex(pattern: &str) -> prop::string::RegexGeneratorStrategy<String> {
    prop::string::string_regex(pattern).expect("a valid regex")
}
