//! Properties of the order service's pure rules: request validation, and the pricing and
//! demand arithmetic at the extremes of i64 prices and i32 quantities.
//!
//! Each property runs a fixed number of generated cases (see
//! `test_support::properties::config`); `PROPTEST_CASES` overrides it and `PROPTEST_RNG_SEED`
//! replays a run. A failure prints the smallest input proptest could shrink it to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use order_service::domain::commands::{Cursor, OrderLine};
use order_service::domain::currency;
use order_service::domain::pricing::{self, PricingError, Product, Variant};
use order_service::domain::{Currency, ProductId, Quantity, VariantId};
use order_service::error::OrderError;
use order_service::grpc::convert::{self, DEFAULT_CANCEL_REASON, MAX_ITEMS};
use proptest::prelude::*;
use proto::order::v1 as pb;
use test_support::properties::{self, VALID_TEXT_WEIGHT};
use test_support::violations::{fields, invalid, violated};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Request validation
// ---------------------------------------------------------------------------------------

/// The documented rule for ids, keys and payment methods: not blank, at most `max`
/// characters, no control characters.
fn id_ok(value: &str, max: usize) -> bool {
    !value.trim().is_empty() && value.chars().count() <= max && !value.chars().any(char::is_control)
}

fn currency_ok(value: &str) -> bool {
    currency::is_known(&value.trim().to_ascii_uppercase())
}

const EDGE_CHARS: &[char] = &[
    'a', 'Z', '7', '-', '_', ' ', '\t', '\n', '\r', '\0', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}',
    '\u{3000}', '\u{feff}', 'é', '漢', '😀',
];

/// Strings for a field whose limit is `max` characters (`properties::text` over
/// [`EDGE_CHARS`]).
fn text(max: usize) -> impl Strategy<Value = String> {
    properties::text(max, EDGE_CHARS)
}

fn currency_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::sample::select(vec!["EUR", "usd", "Jpy", "chf"]), "[ \t]{0,2}", "[ \t]{0,2}")
            .prop_map(|(c, l, r)| format!("{l}{c}{r}")),
        2 => "[A-Z]{3}",
        1 => "[a-zA-Z]{0,5}",
        1 => Just(String::new()),
        1 => any::<String>(),
    ]
}

/// Integers, some of them around the largest page size (100).
fn int() -> impl Strategy<Value = i32> {
    properties::int(95..105)
}

fn uuid_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).braced().to_string().to_uppercase()),
        2 => text(40),
    ]
}

fn order_item() -> impl Strategy<Value = pb::OrderItemInput> {
    (text(128), prop::option::of(text(128)), int()).prop_map(
        |(product_id, variant_id, quantity)| pb::OrderItemInput {
            product_id,
            variant_id,
            quantity,
        },
    )
}

/// A token in the documented format: URL-safe base64 of `<micros>:<uuid>`.
fn token(micros: i64, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{micros}:{id}"))
}

/// Valid ids (`properties::valid_text`), and words with blanks inside and maybe one before
/// (an id is refused only when it is all blank).
fn valid_id(max: usize) -> impl Strategy<Value = String> {
    let words = format!(" ?[a-z][a-z ]{{0,{}}}", max.min(70) - 2);
    prop_oneof![
        VALID_TEXT_WEIGHT => properties::valid_text(max),
        1 => properties::regex(&words),
    ]
}

proptest! {
    #![proptest_config(properties::config(512))]

    #[test]
    fn create_order_accepts_exactly_the_valid(
        user_id in text(128),
        items in prop::collection::vec(order_item(), 0..=6),
        many in any::<bool>(),
        currency in currency_text(),
        payment_method in text(64),
        idempotency_key in prop_oneof![Just(String::new()), text(128)],
    ) {
        let mut items = items;
        if many && !items.is_empty() {
            // Past the item limit now and then; cheap, since the lines repeat.
            let n = MAX_ITEMS + 1 - items.len().min(MAX_ITEMS);
            items.extend(std::iter::repeat_n(items[0].clone(), n));
        }
        let req = pb::CreateOrderRequest {
            user_id: user_id.clone(),
            items: items.clone(),
            currency: currency.clone(),
            payment_method: payment_method.clone(),
            idempotency_key: idempotency_key.clone(),
        };
        let mut expected = Vec::new();
        if !id_ok(&user_id, 128) {
            expected.push("user_id".to_owned());
        }
        if items.is_empty() || items.len() > MAX_ITEMS {
            expected.push("items".to_owned());
        }
        for (i, item) in items.iter().enumerate() {
            if !id_ok(&item.product_id, 128) {
                expected.push(format!("items[{i}].product_id"));
            }
            if item.variant_id.as_ref().is_some_and(|v| !id_ok(v, 128)) {
                expected.push(format!("items[{i}].variant_id"));
            }
            if item.quantity <= 0 {
                expected.push(format!("items[{i}].quantity"));
            }
        }
        if !currency_ok(&currency) {
            expected.push("currency".to_owned());
        }
        if !id_ok(&payment_method, 64) {
            expected.push("payment_method".to_owned());
        }
        if !idempotency_key.is_empty() && !id_ok(&idempotency_key, 128) {
            expected.push("idempotency_key".to_owned());
        }
        match convert::create_order(&req) {
            Ok(cmd) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(cmd.user_id.as_str(), user_id.as_str());
                prop_assert_eq!(cmd.lines.len(), items.len());
                for (line, item) in cmd.lines.iter().zip(&items) {
                    prop_assert_eq!(line.product_id.as_str(), item.product_id.as_str());
                    prop_assert_eq!(
                        line.variant_id.as_ref().map(|v| v.as_str().to_owned()),
                        item.variant_id.clone()
                    );
                    prop_assert_eq!(line.quantity.get(), item.quantity);
                }
                prop_assert_eq!(cmd.currency.as_str(), currency.trim().to_ascii_uppercase());
                prop_assert_eq!(cmd.payment_method.as_str(), payment_method.as_str());
                prop_assert_eq!(
                    cmd.idempotency_key.as_ref().map(|k| k.as_str()),
                    Some(idempotency_key.as_str()).filter(|k| !k.is_empty())
                );
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn order_ids_accept_exactly_uuids(value in uuid_text()) {
        match convert::order_id(&value) {
            Ok(id) => prop_assert_eq!(Ok(id.uuid()), Uuid::parse_str(&value)),
            Err(err) => {
                prop_assert!(Uuid::parse_str(&value).is_err());
                prop_assert_eq!(violated(err, invalid)?, vec!["order_id".to_owned()]);
            }
        }
    }

    #[test]
    fn cancel_order_accepts_exactly_the_valid(
        order_id in uuid_text(),
        reason in prop_oneof![text(500), "\\s{0,3}[a-z ]{0,10}\\s{0,3}"],
    ) {
        let req = pb::CancelOrderRequest { order_id: order_id.clone(), reason: reason.clone() };
        let mut expected = Vec::new();
        if Uuid::parse_str(&order_id).is_err() {
            expected.push("order_id".to_owned());
        }
        let trimmed = reason.trim();
        if trimmed.chars().count() > 500 || trimmed.chars().any(char::is_control) {
            expected.push("reason".to_owned());
        }
        match convert::cancel_order(&req) {
            Ok(cmd) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(Ok(cmd.order_id.uuid()), Uuid::parse_str(&order_id));
                let want = if trimmed.is_empty() { DEFAULT_CANCEL_REASON } else { trimmed };
                prop_assert_eq!(cmd.reason, want);
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn list_page_bounds_size_and_collects_every_violation(
        user_id in text(128),
        page_size in int(),
        page_token in prop_oneof![
            Just(String::new()),
            text(64),
            "[A-Za-z0-9_-]{1,60}",
            (any::<i64>(), any::<u128>()).prop_map(|(m, id)| token(m, Uuid::from_u128(id))),
        ],
    ) {
        // Whether the token alone is acceptable, from the same request with good other fields.
        let alone = pb::ListOrdersRequest { user_id: "u".into(), page_size: 0, page_token: page_token.clone() };
        let token_ok = convert::list_page(&alone).is_ok();
        if page_token.is_empty() {
            prop_assert!(token_ok);
        }
        let req = pb::ListOrdersRequest { user_id: user_id.clone(), page_size, page_token: page_token.clone() };
        let mut expected = Vec::new();
        if !id_ok(&user_id, 128) {
            expected.push("user_id".to_owned());
        }
        if !(0..=100).contains(&page_size) {
            expected.push("page_size".to_owned());
        }
        if !token_ok {
            expected.push("page_token".to_owned());
        }
        match convert::list_page(&req) {
            Ok(page) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(page.user_id.as_str(), user_id.as_str());
                let want = if page_size == 0 { 20 } else { u32::try_from(page_size).unwrap() };
                prop_assert_eq!(page.size.get(), want);
                prop_assert!((1..=100).contains(&page.size.get()));
                // A cursor read from a token reads back the same from its canonical token.
                if let Some(c) = page.after {
                    let again = pb::ListOrdersRequest {
                        page_token: token(c.created_at.timestamp_micros(), c.id),
                        ..alone
                    };
                    prop_assert_eq!(convert::list_page(&again).unwrap().after, Some(c));
                } else {
                    prop_assert!(page_token.is_empty());
                }
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn page_tokens_round_trip(micros in any::<i64>(), id in any::<u128>()) {
        let id = Uuid::from_u128(id);
        let req = pb::ListOrdersRequest { user_id: "u".into(), page_size: 0, page_token: token(micros, id) };
        let got = convert::list_page(&req);
        match DateTime::<Utc>::from_timestamp_micros(micros) {
            Some(created_at) => prop_assert_eq!(got.unwrap().after, Some(Cursor { created_at, id })),
            None => prop_assert_eq!(violated(got.unwrap_err(), invalid)?, vec!["page_token".to_owned()]),
        }
    }

    /// Valid requests, generated from the documented rules, are always accepted as given.
    #[test]
    fn valid_requests_are_accepted(
        user_id in valid_id(128),
        lines in prop::collection::vec(
            (valid_id(128), prop::option::of(valid_id(128)), 1..=i32::MAX),
            1..=8,
        ),
        currency in currency_text().prop_filter("known", |c| currency_ok(c)),
        payment_method in valid_id(64),
        idempotency_key in prop_oneof![Just(String::new()), valid_id(128)],
        page_size in 0..=100i32,
    ) {
        let req = pb::CreateOrderRequest {
            user_id: user_id.clone(),
            items: lines
                .iter()
                .map(|(p, v, q)| pb::OrderItemInput { product_id: p.clone(), variant_id: v.clone(), quantity: *q })
                .collect(),
            currency,
            payment_method,
            idempotency_key,
        };
        let cmd = convert::create_order(&req).unwrap();
        prop_assert_eq!(cmd.lines.len(), lines.len());
        let list = pb::ListOrdersRequest { user_id, page_size, page_token: String::new() };
        prop_assert!(convert::list_page(&list).is_ok());
    }
}

/// Finding 4: a cancel reason with NUL passes validation; PostgreSQL text cannot hold it, so
/// the store would fail with INTERNAL instead of INVALID_ARGUMENT.
#[test]
fn cancel_reason_with_nul_is_refused() {
    let req = pb::CancelOrderRequest { order_id: Uuid::nil().to_string(), reason: "oops\0".into() };
    assert_eq!(fields(convert::cancel_order(&req).unwrap_err(), invalid), ["reason"]);
}

/// Finding 5: the currency violation echoes the whole input, so a megabyte of currency
/// becomes a megabyte of `grpc-message`.
#[test]
fn violation_descriptions_stay_short() {
    let req = pb::CreateOrderRequest {
        user_id: "u".into(),
        items: vec![pb::OrderItemInput { product_id: "p".into(), variant_id: None, quantity: 1 }],
        currency: "X".repeat(100_000),
        payment_method: "card".into(),
        idempotency_key: String::new(),
    };
    match convert::create_order(&req) {
        Err(OrderError::InvalidArgument(v)) => {
            assert!(v.iter().all(|v| v.description.len() <= 200), "{}", v[0].description.len());
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Pricing and demand arithmetic
// ---------------------------------------------------------------------------------------

/// Prices near the edges of i64 (and some ordinary and negative ones).
fn price_minor() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0..10_000i64,
        3 => (i64::MAX / 3)..=i64::MAX,
        2 => (i64::MAX / i64::from(i32::MAX) - 2)..=(i64::MAX / i64::from(i32::MAX) + 2),
        1 => Just(i64::MAX),
        1 => Just(0i64),
        1 => prop_oneof![-3..0i64, Just(i64::MIN), any::<i64>()],
    ]
}

/// Quantities near the edges of i32.
fn quantity() -> impl Strategy<Value = i32> {
    prop_oneof![3 => 1..10i32, 2 => (i32::MAX - 3)..=i32::MAX, 1 => 1..=i32::MAX]
}

const PRODUCTS: usize = 3;

fn catalog() -> impl Strategy<Value = HashMap<String, Product>> {
    let variant = |v: usize| {
        (price_minor(), prop::bool::weighted(0.02)).prop_map(move |(price_minor, no_sku)| Variant {
            id: format!("v{v}"),
            sku: if no_sku { String::new() } else { format!("SKU-v{v}") },
            price_minor,
        })
    };
    let product = move |p: usize| {
        (
            price_minor(),
            prop::sample::select(vec![
                "EUR", "eur", "Eur", "EUR", "EUR", "EUR", "EUR", "EUR", "EUR", "USD",
            ]),
            prop::bool::weighted(0.02),
            (variant(0), variant(1)),
        )
            .prop_map(move |(price_minor, currency, no_sku, (v0, v1))| Product {
                id: format!("p{p}"),
                sku: if no_sku { String::new() } else { format!("SKU-p{p}") },
                price_minor,
                currency: currency.to_owned(),
                variants: vec![v0, v1],
            })
    };
    (
        prop::option::weighted(0.95, product(0)),
        prop::option::weighted(0.95, product(1)),
        prop::option::weighted(0.95, product(2)),
    )
        .prop_map(|(a, b, c)| [a, b, c].into_iter().flatten().map(|p| (p.id.clone(), p)).collect())
}

fn order_lines() -> impl Strategy<Value = Vec<OrderLine>> {
    let line = (
        prop_oneof![15 => 0..PRODUCTS, 1 => Just(PRODUCTS)],
        prop::option::weighted(0.3, prop_oneof![8 => 0..2usize, 1 => Just(2usize)]),
        quantity(),
    )
        .prop_map(|(p, v, q)| OrderLine {
            product_id: ProductId::parse("p", &format!("p{p}")).unwrap(),
            variant_id: v.map(|v| VariantId::parse("v", &format!("v{v}")).unwrap()),
            quantity: Quantity::parse("q", q).unwrap(),
        });
    prop::collection::vec(line, 1..=6)
}

/// What `price` must answer, computed in i128 so nothing can wrap: the first line that is
/// unknown, in another currency, or badly listed refuses the order; otherwise the total, or
/// Overflow as soon as the running total passes i64::MAX.
fn expected_price(
    lines: &[OrderLine],
    catalog: &HashMap<String, Product>,
    currency: &str,
) -> Result<i128, PricingError> {
    let mut total: i128 = 0;
    for (i, line) in lines.iter().enumerate() {
        let id = line.product_id.as_str();
        let Some(product) = catalog.get(id) else {
            return Err(PricingError::UnknownProduct { line: i, product_id: id.into() });
        };
        if !product.currency.eq_ignore_ascii_case(currency) {
            return Err(PricingError::CurrencyMismatch {
                product_id: id.into(),
                product_currency: product.currency.clone(),
                order_currency: currency.to_owned(),
            });
        }
        let (sku, unit) = match &line.variant_id {
            None => (&product.sku, product.price_minor),
            Some(v) => match product.variants.iter().find(|pv| pv.id == v.as_str()) {
                Some(pv) => (&pv.sku, pv.price_minor),
                None => {
                    return Err(PricingError::UnknownVariant {
                        line: i,
                        product_id: id.into(),
                        variant_id: v.as_str().into(),
                    });
                }
            },
        };
        if sku.is_empty() {
            return Err(PricingError::BadCatalogEntry {
                product_id: id.into(),
                problem: "has no SKU",
            });
        }
        if unit < 0 {
            return Err(PricingError::BadCatalogEntry {
                product_id: id.into(),
                problem: "has a negative price",
            });
        }
        total += i128::from(unit) * i128::from(line.quantity.get());
        if total > i128::from(i64::MAX) {
            return Err(PricingError::Overflow);
        }
    }
    Ok(total)
}

proptest! {
    #![proptest_config(properties::config(1024))]

    /// Never panics; a total is exact (no wrapping) and overflow is an error.
    #[test]
    fn pricing_is_exact_or_reports_overflow(catalog in catalog(), lines in order_lines()) {
        let eur = Currency::parse("currency", "EUR").unwrap();
        let got = pricing::price(&lines, &catalog, &eur);
        match expected_price(&lines, &catalog, "EUR") {
            Ok(total) => {
                let priced = got.unwrap();
                prop_assert_eq!(i128::from(priced.total_minor), total);
                prop_assert!(priced.total_minor >= 0);
                prop_assert_eq!(priced.lines.len(), lines.len());
                let sum: i128 = priced
                    .lines
                    .iter()
                    .map(|l| i128::from(l.unit_price_minor) * i128::from(l.quantity.get()))
                    .sum();
                prop_assert_eq!(sum, total);
                for (p, l) in priced.lines.iter().zip(&lines) {
                    prop_assert_eq!(&p.product_id, &l.product_id);
                    prop_assert_eq!(&p.variant_id, &l.variant_id);
                    prop_assert_eq!(p.quantity, l.quantity);
                    prop_assert!(!p.sku.is_empty() && p.unit_price_minor >= 0);
                }
            }
            Err(want) => prop_assert_eq!(got, Err(want)),
        }
    }

    /// Per-SKU demand is the exact sum in first-seen order, or None when one does not fit
    /// the inventory's i32 quantities; never a wrapped number.
    #[test]
    fn demand_is_exact_or_refused(
        lines in prop::collection::vec((0..4usize, quantity()), 0..8),
    ) {
        let owned: Vec<(String, String, i32)> =
            lines.iter().map(|(s, q)| (format!("SKU-{s}"), format!("p{s}"), *q)).collect();
        let got = pricing::demand(owned.iter().map(|(s, p, q)| (s.as_str(), p.as_str(), *q)));
        let mut want: Vec<(String, i64)> = Vec::new();
        for (sku, _, q) in &owned {
            match want.iter_mut().find(|(s, _)| s == sku) {
                Some((_, total)) => *total += i64::from(*q),
                None => want.push((sku.clone(), i64::from(*q))),
            }
        }
        if want.iter().any(|(_, total)| *total > i64::from(i32::MAX)) {
            prop_assert_eq!(got, None);
        } else {
            let got = got.unwrap();
            let got: Vec<(String, i64)> =
                got.into_iter().map(|d| (d.sku, i64::from(d.quantity))).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn pricing_extremes_by_example() {
    let product = |price_minor| Product {
        id: "p".into(),
        sku: "SKU".into(),
        price_minor,
        currency: "EUR".into(),
        variants: vec![],
    };
    let line = |q| OrderLine {
        product_id: ProductId::parse("p", "p").unwrap(),
        variant_id: None,
        quantity: Quantity::parse("q", q).unwrap(),
    };
    let eur = Currency::parse("c", "EUR").unwrap();
    let priced = |price, qs: &[i32]| {
        let catalog = HashMap::from([("p".to_owned(), product(price))]);
        let lines: Vec<OrderLine> = qs.iter().map(|q| line(*q)).collect();
        pricing::price(&lines, &catalog, &eur).map(|p| p.total_minor)
    };
    assert_eq!(priced(i64::MAX, &[1]), Ok(i64::MAX));
    assert_eq!(priced(i64::MAX, &[2]), Err(PricingError::Overflow));
    assert_eq!(priced(i64::MAX, &[1, 1]), Err(PricingError::Overflow));
    assert_eq!(priced(0, &[i32::MAX, i32::MAX]), Ok(0));
    let unit = i64::MAX / i64::from(i32::MAX);
    assert_eq!(priced(unit, &[i32::MAX]), Ok(unit * i64::from(i32::MAX)));
    assert_eq!(priced(unit + 1, &[i32::MAX]), Err(PricingError::Overflow));
    assert!(matches!(priced(i64::MIN, &[1]), Err(PricingError::BadCatalogEntry { .. })));
}
