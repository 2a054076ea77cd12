//! Properties of the inventory's pure rules: warehouse allocation and request validation.
//!
//! Each property runs a fixed number of generated cases (see
//! `test_support::properties::config`); `PROPTEST_CASES` overrides it and `PROPTEST_RNG_SEED`
//! replays a run. A failure prints the smallest input proptest could shrink it to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use inventory_service::domain::allocation::{Allocation, LevelSnapshot, Line, Refusal, allocate};
use inventory_service::domain::{HoldCaller, ItemRef, Quantity, WarehouseId};
use inventory_service::grpc::convert::{self, Limits};
use proptest::prelude::*;
use proto::inventory::v1 as pb;
use test_support::properties::{self, TEXT_WEIGHT, valid_text};
use test_support::violations::{fields, invalid, violated};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------------------

/// Items 0..ITEMS may have stock; item ITEMS never does (an unknown reference).
const ITEMS: usize = 4;
const WAREHOUSES: [&str; 4] = ["central", "east", "north", "west"];
/// A warehouse no item is stocked in.
const NOWHERE: &str = "nowhere";

fn sku_of(item: usize) -> String {
    if item < ITEMS { format!("SKU-{item}") } else { "GHOST".to_owned() }
}

fn uuid_of(item: usize) -> Uuid {
    Uuid::from_u128(0xA11C_0000 + item as u128)
}

/// How a line spells its item: by SKU or by id, in any form `Uuid::parse_str` accepts.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    Sku,
    Hyphenated,
    Simple,
    Upper,
    Urn,
}

fn spell(item: usize, spelling: Spelling) -> String {
    let id = uuid_of(item);
    match spelling {
        Spelling::Sku => sku_of(item),
        Spelling::Hyphenated => id.hyphenated().to_string(),
        Spelling::Simple => id.simple().to_string(),
        Spelling::Upper => id.hyphenated().to_string().to_uppercase(),
        Spelling::Urn => id.urn().to_string(),
    }
}

#[derive(Debug, Clone)]
struct LineSpec {
    item: usize,
    spelling: Spelling,
    /// Index into WAREHOUSES; WAREHOUSES.len() means NOWHERE.
    warehouse: Option<usize>,
    quantity: i32,
}

#[derive(Debug, Clone)]
struct Scenario {
    levels: Vec<LevelSnapshot>,
    specs: Vec<LineSpec>,
}

impl Scenario {
    fn lines(&self) -> Vec<Line> {
        self.specs
            .iter()
            .map(|s| Line {
                item: ItemRef::parse("item", &spell(s.item, s.spelling)).unwrap(),
                warehouse: s.warehouse.map(|w| {
                    WarehouseId::parse("warehouse", WAREHOUSES.get(w).copied().unwrap_or(NOWHERE))
                        .unwrap()
                }),
                quantity: Quantity::parse("quantity", s.quantity).unwrap(),
            })
            .collect()
    }

    fn level(&self, id: i64) -> &LevelSnapshot {
        self.levels.iter().find(|l| l.level_id == id).expect("allocated a level that exists")
    }

    /// Available units of `item` in `warehouse` (0 where it has no row), as allocate sees them.
    fn available(&self, item: usize, warehouse: &str) -> i64 {
        self.levels
            .iter()
            .filter(|l| l.item_id == uuid_of(item) && l.warehouse_id == warehouse)
            .map(|l| i64::from(l.available.max(0)))
            .sum()
    }

    fn known(&self, item: usize) -> bool {
        self.levels.iter().any(|l| l.item_id == uuid_of(item))
    }

    fn demand(&self, item: usize) -> Demand {
        let mut d = Demand::default();
        for s in self.specs.iter().filter(|s| s.item == item) {
            match s.warehouse {
                Some(w) => {
                    let name = WAREHOUSES.get(w).copied().unwrap_or(NOWHERE);
                    *d.named.entry(name).or_default() += i64::from(s.quantity);
                }
                None => d.unnamed += i64::from(s.quantity),
            }
        }
        d
    }

    /// Whether some allocation covers every line of `item`: each named warehouse has what
    /// its lines ask, and what is left over all warehouses covers the unnamed lines.
    fn feasible(&self, item: usize) -> bool {
        let d = self.demand(item);
        let named_fit = d.named.iter().all(|(w, n)| *n <= self.available(item, w));
        let left: i64 = WAREHOUSES
            .iter()
            .map(|w| self.available(item, w) - d.named.get(w).copied().unwrap_or(0))
            .sum();
        named_fit && d.unnamed <= left
    }
}

/// What the lines of one item ask for: per named warehouse, and from anywhere.
#[derive(Debug, Default)]
struct Demand {
    named: BTreeMap<&'static str, i64>,
    unnamed: i64,
}

impl Demand {
    fn total(&self) -> i64 {
        self.named.values().sum::<i64>() + self.unnamed
    }
}

fn spelling() -> impl Strategy<Value = Spelling> {
    prop_oneof![
        4 => Just(Spelling::Sku),
        2 => Just(Spelling::Hyphenated),
        1 => Just(Spelling::Simple),
        1 => Just(Spelling::Upper),
        1 => Just(Spelling::Urn),
    ]
}

fn line_spec() -> impl Strategy<Value = LineSpec> {
    // Weights keep a useful mix of outcomes: roughly a third each allocated, short, and
    // short or unknown for several reasons at once.
    (
        prop_oneof![30 => 0..ITEMS, 1 => Just(ITEMS)],
        spelling(),
        prop_oneof![
            10 => Just(None),
            8 => (0..WAREHOUSES.len()).prop_map(Some),
            1 => Just(Some(WAREHOUSES.len())),
        ],
        prop_oneof![1 => 1..1500i32, 2 => 1..300i32, 1 => 1..20i32],
    )
        .prop_map(|(item, spelling, warehouse, quantity)| LineSpec {
            item,
            spelling,
            warehouse,
            quantity,
        })
}

/// Stock rows (a random subset of item x warehouse, ids in shuffled order) and 1 to 8 lines.
fn scenario() -> impl Strategy<Value = Scenario> {
    let grid = prop::collection::vec(
        prop::collection::vec(prop::option::weighted(0.7, 0..1000i32), WAREHOUSES.len()),
        ITEMS,
    );
    let levels = grid
        .prop_map(|grid| {
            let mut levels = Vec::new();
            for (item, row) in grid.into_iter().enumerate() {
                for (w, available) in row.into_iter().enumerate() {
                    if let Some(available) = available {
                        levels.push(LevelSnapshot {
                            level_id: 100 + (levels.len() as i64) * 3,
                            item_id: uuid_of(item),
                            sku: sku_of(item),
                            warehouse_id: WAREHOUSES[w].to_owned(),
                            available,
                        });
                    }
                }
            }
            levels
        })
        .prop_shuffle();
    (levels, prop::collection::vec(line_spec(), 1..=8))
        .prop_map(|(levels, specs)| Scenario { levels, specs })
}

/// Checks a successful allocation against the scenario; returns why it is wrong, if it is.
fn check_allocation(s: &Scenario, got: &Allocation) -> Result<(), TestCaseError> {
    // (a) No row gives more than it has, nor a non-positive amount.
    for (&id, &units) in got {
        let level = s.level(id);
        prop_assert!(units > 0, "row {id} listed with {units} units");
        prop_assert!(
            units <= level.available.max(0),
            "row {id} gives {units} of its {} available",
            level.available
        );
    }
    for item in 0..=ITEMS {
        let d = s.demand(item);
        let rows = |w: Option<&str>| -> i64 {
            got.iter()
                .filter(|(id, _)| {
                    let l = s.level(**id);
                    l.item_id == uuid_of(item) && w.is_none_or(|w| l.warehouse_id == w)
                })
                .map(|(_, u)| i64::from(*u))
                .sum()
        };
        // (b) What the item's rows give is exactly what its lines ask.
        prop_assert_eq!(rows(None), d.total(), "item {} total", item);
        // (c) Named lines take only from their warehouse: it gives at least their sum, and
        // exactly that when no unnamed line of the item could add to it.
        for w in WAREHOUSES {
            let named = d.named.get(w).copied().unwrap_or(0);
            let given = rows(Some(w));
            prop_assert!(
                given >= named,
                "item {item} in {w}: gives {given}, named lines ask {named}"
            );
            if d.unnamed == 0 {
                prop_assert_eq!(given, named, "item {} in {} without unnamed lines", item, w);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(properties::config(1024))]

    /// (a)-(d): an allocation is within stock, covers each item exactly and respects named
    /// warehouses; a refusal names exactly the unknown items, or exactly the items that no
    /// allocation could cover (so a coverable request is always allocated).
    #[test]
    fn allocation_is_within_stock_and_exact_or_refused_for_cause(s in scenario()) {
        let lines = s.lines();
        let unknown: Vec<String> = s
            .specs
            .iter()
            .filter(|l| !s.known(l.item))
            .map(|l| spell(l.item, l.spelling))
            .collect();
        match allocate(&lines, &s.levels) {
            Ok(got) => {
                prop_assert!(unknown.is_empty(), "allocated despite unknown items {:?}", unknown);
                check_allocation(&s, &got)?;
            }
            Err(Refusal::UnknownItems(mut refs)) => {
                // Exactly the unknown lines' refs, in any order.
                let mut unknown = unknown;
                refs.sort();
                unknown.sort();
                prop_assert_eq!(refs, unknown);
            }
            Err(Refusal::Short(shortages)) => {
                prop_assert!(unknown.is_empty(), "short instead of unknown {:?}", unknown);
                prop_assert!(!shortages.is_empty());
                let short: BTreeSet<&str> = shortages.iter().map(|x| x.sku.as_str()).collect();
                for x in &shortages {
                    prop_assert!(x.available < i64::from(x.requested), "{:?} is not short", x);
                    prop_assert!(
                        s.specs.iter().any(|l| sku_of(l.item) == x.sku
                            && l.quantity == x.requested
                            && l.warehouse.map(|w| WAREHOUSES.get(w).copied().unwrap_or(NOWHERE))
                                == x.warehouse.as_deref()),
                        "{:?} matches no line", x
                    );
                }
                for item in (0..ITEMS).filter(|i| s.specs.iter().any(|l| l.item == *i)) {
                    // Reported exactly when no allocation could cover the item's lines.
                    prop_assert_eq!(
                        short.contains(sku_of(item).as_str()),
                        !s.feasible(item),
                        "item {} reported short: {:?}",
                        item,
                        shortages
                    );
                }
            }
        }
    }

    /// (e) The same input gives the same allocation, whatever the order of the rows.
    #[test]
    fn allocation_is_deterministic(s in scenario(), seed in any::<u64>()) {
        let lines = s.lines();
        let first = allocate(&lines, &s.levels);
        prop_assert_eq!(&first, &allocate(&lines, &s.levels));
        let mut shuffled = s.levels.clone();
        // A cheap deterministic permutation from the seed.
        shuffled.sort_by_key(|l| (l.level_id as u64).wrapping_mul(seed | 1).rotate_left(17));
        prop_assert_eq!(&first, &allocate(&lines, &shuffled));
    }

    /// Negative `available` (a row the ledger got wrong) gives nothing and panics nowhere.
    #[test]
    fn negative_available_rows_give_nothing(
        s in scenario(),
        negatives in prop::collection::vec(any::<i32>().prop_map(|n| n.min(-1)), 0..4),
    ) {
        let mut s = s;
        for (level, n) in s.levels.iter_mut().zip(negatives) {
            level.available = n;
        }
        if let Ok(got) = allocate(&s.lines(), &s.levels) {
            check_allocation(&s, &got)?;
        }
    }
}

/// Regression (finding 1, fixed): an unnamed line placed before a named line of the same
/// item must not take the named warehouse's stock when another warehouse can serve it.
#[test]
fn mixed_named_and_unnamed_lines_are_allocated() {
    let levels = [
        LevelSnapshot {
            level_id: 1,
            item_id: uuid_of(0),
            sku: sku_of(0),
            warehouse_id: "east".into(),
            available: 10,
        },
        LevelSnapshot {
            level_id: 2,
            item_id: uuid_of(0),
            sku: sku_of(0),
            warehouse_id: "west".into(),
            available: 10,
        },
    ];
    let line = |wh: Option<&str>, q| Line {
        item: ItemRef::parse("i", &sku_of(0)).unwrap(),
        warehouse: wh.map(|w| WarehouseId::parse("w", w).unwrap()),
        quantity: Quantity::parse("q", q).unwrap(),
    };
    let got = allocate(&[line(None, 8), line(Some("east"), 10)], &levels);
    assert_eq!(got, Ok(Allocation::from([(1, 10), (2, 8)])));
}

/// Finding 2: a reference that is one item's id and another item's SKU (SKUs may be
/// UUID-shaped) draws one line from the rows of both items.
#[test]
fn a_line_draws_from_one_item_only() {
    let b = uuid_of(1);
    let levels = [
        LevelSnapshot {
            level_id: 1,
            item_id: uuid_of(0),
            sku: b.to_string(),
            warehouse_id: "east".into(),
            available: 5,
        },
        LevelSnapshot {
            level_id: 2,
            item_id: b,
            sku: "B".into(),
            warehouse_id: "east".into(),
            available: 5,
        },
    ];
    let line = Line {
        item: ItemRef::parse("i", &b.to_string()).unwrap(),
        warehouse: None,
        quantity: Quantity::parse("q", 8).unwrap(),
    };
    let got = allocate(&[line], &levels);
    let items: BTreeSet<Uuid> = got
        .iter()
        .flat_map(|a| a.keys())
        .map(|id| levels.iter().find(|l| l.level_id == *id).unwrap().item_id)
        .collect();
    assert!(items.len() <= 1, "one line drew from items {items:?}: {got:?}");
}

// ---------------------------------------------------------------------------------------
// Request validation
// ---------------------------------------------------------------------------------------

const LIMITS: Limits =
    Limits { max_items: 5, default_expiry_minutes: 30, max_expiry_minutes: 10_080 };

/// The documented rule for SKUs, warehouse ids, item refs and keys: 1 to `max` characters,
/// none of them whitespace or control.
fn key_ok(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.chars().count() <= max
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Characters that sit on the edges of the rules: whitespace and control characters of
/// every kind, multi-byte letters, and plain ones.
const EDGE_CHARS: &[char] = &[
    'a', 'Z', '7', '-', '_', '.', ':', ' ', '\t', '\n', '\r', '\0', '\u{7f}', '\u{85}', '\u{a0}',
    '\u{2028}', '\u{3000}', '\u{feff}', '\u{200b}', 'é', '漢', '😀',
];

/// Strings for a field whose limit is `max` characters (`properties::text` over
/// [`EDGE_CHARS`]), and UUIDs: an item is named by its SKU or its id.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        TEXT_WEIGHT => properties::text(max, EDGE_CHARS),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
    ]
}

/// Integers, some of them around `max_expiry_minutes`.
fn int() -> impl Strategy<Value = i32> {
    properties::int(10_070..10_090)
}

fn count_violation(expected: &mut Vec<String>, len: usize) {
    if len == 0 || len > LIMITS.max_items {
        expected.push("items".to_owned());
    }
}

fn check_item() -> impl Strategy<Value = pb::AvailabilityCheckItem> {
    (text(64), int(), any::<Option<String>>()).prop_map(|(sku, quantity, variant_id)| {
        pb::AvailabilityCheckItem { product_id: String::new(), variant_id, sku, quantity }
    })
}

fn reservation_item() -> impl Strategy<Value = pb::ReservationItem> {
    (text(64), prop_oneof![Just(String::new()), text(64)], int()).prop_map(
        |(inventory_item_id, warehouse_id, quantity)| pb::ReservationItem {
            inventory_item_id,
            warehouse_id,
            quantity,
        },
    )
}

proptest! {
    #![proptest_config(properties::config(512))]

    #[test]
    fn check_lines_accepts_exactly_the_valid(
        items in prop::collection::vec(check_item(), 0..=LIMITS.max_items + 2),
    ) {
        let req = pb::CheckInventoryAvailabilityRequest { items: items.clone() };
        let mut expected = Vec::new();
        count_violation(&mut expected, items.len());
        for (i, item) in items.iter().enumerate() {
            if !key_ok(&item.sku, 64) {
                expected.push(format!("items[{i}].sku"));
            }
            if item.quantity <= 0 {
                expected.push(format!("items[{i}].quantity"));
            }
        }
        match convert::check_lines(&req, &LIMITS) {
            Ok(lines) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(lines.len(), items.len());
                for (line, item) in lines.iter().zip(&items) {
                    prop_assert_eq!(line.sku.as_str(), item.sku.as_str());
                    prop_assert_eq!(line.quantity.get(), item.quantity);
                }
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn reserve_accepts_exactly_the_valid(
        items in prop::collection::vec(reservation_item(), 0..=LIMITS.max_items + 2),
        reference_type in text(64),
        reference_id in text(128),
        expiration_minutes in int(),
    ) {
        let req = pb::ReserveInventoryRequest {
            items: items.clone(),
            reference_id: reference_id.clone(),
            reference_type: reference_type.clone(),
            expiration_minutes,
        };
        let mut expected = Vec::new();
        count_violation(&mut expected, items.len());
        for (i, item) in items.iter().enumerate() {
            if !key_ok(&item.inventory_item_id, 64) {
                expected.push(format!("items[{i}].inventory_item_id"));
            }
            if !item.warehouse_id.is_empty() && !key_ok(&item.warehouse_id, 64) {
                expected.push(format!("items[{i}].warehouse_id"));
            }
            if item.quantity <= 0 {
                expected.push(format!("items[{i}].quantity"));
            }
        }
        // Both reference fields are reported (see `reserve_names_both_reference_fields`).
        if !key_ok(&reference_type, 64) {
            expected.push("reference_type".to_owned());
        }
        if !key_ok(&reference_id, 128) {
            expected.push("reference_id".to_owned());
        }
        let max = i32::try_from(LIMITS.max_expiry_minutes).unwrap();
        if !(0..=max).contains(&expiration_minutes) {
            expected.push("expiration_minutes".to_owned());
        }
        match convert::reserve(&req, &LIMITS, HoldCaller::anonymous()) {
            Ok(cmd) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(cmd.lines.len(), items.len());
                for (line, item) in cmd.lines.iter().zip(&items) {
                    prop_assert_eq!(line.item.as_str(), item.inventory_item_id.as_str());
                    prop_assert_eq!(line.item.id(), Uuid::parse_str(&item.inventory_item_id).ok());
                    prop_assert_eq!(
                        line.warehouse.as_ref().map(WarehouseId::as_str),
                        Some(item.warehouse_id.as_str()).filter(|w| !w.is_empty())
                    );
                    prop_assert_eq!(line.quantity.get(), item.quantity);
                }
                prop_assert_eq!(&cmd.reference.kind, &reference_type);
                prop_assert_eq!(&cmd.reference.id, &reference_id);
                let want = if expiration_minutes == 0 {
                    LIMITS.default_expiry_minutes
                } else {
                    u32::try_from(expiration_minutes).unwrap()
                };
                prop_assert_eq!(cmd.expires_in_minutes, want);
                prop_assert!((1..=LIMITS.max_expiry_minutes).contains(&cmd.expires_in_minutes));
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn upsert_accepts_exactly_the_valid(
        sku in text(64),
        product_id in text(64),
        variant_id in prop::option::of(text(64)),
        warehouse_id in prop_oneof![Just(String::new()), text(64)],
        on_hand in int(),
    ) {
        let req = pb::UpsertInventoryItemRequest {
            sku: sku.clone(),
            product_id: product_id.clone(),
            variant_id: variant_id.clone(),
            warehouse_id: warehouse_id.clone(),
            on_hand,
        };
        let mut expected = Vec::new();
        for (field, value) in [("sku", &sku), ("product_id", &product_id)] {
            if !key_ok(value, 64) {
                expected.push(field.to_owned());
            }
        }
        if variant_id.as_ref().is_some_and(|v| !key_ok(v, 64)) {
            expected.push("variant_id".to_owned());
        }
        if !warehouse_id.is_empty() && !key_ok(&warehouse_id, 64) {
            expected.push("warehouse_id".to_owned());
        }
        if on_hand < 0 {
            expected.push("on_hand".to_owned());
        }
        match convert::upsert(&req) {
            Ok(cmd) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(cmd.sku.as_str(), sku.as_str());
                prop_assert_eq!(cmd.product_id, product_id);
                prop_assert_eq!(cmd.variant_id, variant_id);
                let wh = if warehouse_id.is_empty() { WarehouseId::DEFAULT } else { &warehouse_id };
                prop_assert_eq!(cmd.warehouse.as_str(), wh);
                prop_assert_eq!(cmd.on_hand, on_hand);
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn adjust_accepts_exactly_the_valid(
        sku in text(64),
        warehouse_id in prop_oneof![Just(String::new()), text(64)],
        delta in int(),
        reason in prop_oneof![text(500), "\\s{0,3}[a-z ]{0,10}\\s{0,3}"],
        idempotency_key in prop_oneof![Just(String::new()), text(128)],
    ) {
        let req = pb::AdjustStockRequest {
            sku: sku.clone(),
            warehouse_id: warehouse_id.clone(),
            delta,
            reason: reason.clone(),
            idempotency_key: idempotency_key.clone(),
        };
        let mut expected = Vec::new();
        if !key_ok(&sku, 64) {
            expected.push("sku".to_owned());
        }
        if !warehouse_id.is_empty() && !key_ok(&warehouse_id, 64) {
            expected.push("warehouse_id".to_owned());
        }
        if delta == 0 {
            expected.push("delta".to_owned());
        }
        let trimmed = reason.trim();
        if trimmed.is_empty()
            || trimmed.chars().count() > 500
            || trimmed.chars().any(char::is_control)
        {
            expected.push("reason".to_owned());
        }
        if !idempotency_key.is_empty() && !key_ok(&idempotency_key, 128) {
            expected.push("idempotency_key".to_owned());
        }
        match convert::adjust(&req) {
            Ok(cmd) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                prop_assert_eq!(cmd.sku.as_str(), sku.as_str());
                let wh = if warehouse_id.is_empty() { WarehouseId::DEFAULT } else { &warehouse_id };
                prop_assert_eq!(cmd.warehouse.as_str(), wh);
                prop_assert_eq!(cmd.delta, delta);
                prop_assert_eq!(cmd.reason.as_str(), trimmed);
                prop_assert_eq!(
                    cmd.key.as_ref().map(|k| k.as_str()),
                    Some(idempotency_key.as_str()).filter(|k| !k.is_empty())
                );
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn sku_and_reservation_id_accept_exactly_the_valid(value in text(64)) {
        match convert::sku(&value) {
            Ok(sku) => {
                prop_assert!(key_ok(&value, 64));
                prop_assert_eq!(sku.as_str(), value.as_str());
            }
            Err(err) => {
                prop_assert!(!key_ok(&value, 64));
                prop_assert_eq!(violated(err, invalid)?, vec!["sku".to_owned()]);
            }
        }
        match convert::reservation_id(&value) {
            Ok(id) => prop_assert_eq!(Ok(id.uuid()), Uuid::parse_str(&value)),
            Err(err) => {
                prop_assert!(Uuid::parse_str(&value).is_err());
                prop_assert_eq!(violated(err, invalid)?, vec!["reservation_id".to_owned()]);
            }
        }
    }

    #[test]
    fn reservation_ids_round_trip(n in any::<u128>(), upper in any::<bool>()) {
        let id = Uuid::from_u128(n);
        let text = if upper { id.to_string().to_uppercase() } else { id.to_string() };
        prop_assert_eq!(convert::reservation_id(&text).map(|r| r.uuid()).ok(), Some(id));
    }

    #[test]
    fn list_page_clamps_size_and_refuses_foreign_tokens(
        page_size in int(),
        page_token in prop_oneof![Just(String::new()), text(64), "[A-Za-z0-9_-]{1,40}"],
    ) {
        let req = pb::ListInventoryItemsRequest { page_size, page_token: page_token.clone() };
        // A token is accepted when it decodes to a valid SKU (what the server issues).
        let decoded = (!page_token.is_empty()).then(|| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&page_token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|t| key_ok(t, 64))
        });
        let mut expected: Vec<String> = Vec::new();
        if page_size < 0 {
            expected.push("page_size".into());
        }
        if matches!(decoded, Some(None)) {
            expected.push("page_token".into());
        }
        match convert::list_page(&req) {
            Ok(page) => {
                prop_assert!(expected.is_empty(), "accepted, but {:?} are invalid", expected);
                let want = match page_size {
                    0 => 50,
                    n => u32::try_from(n).unwrap().min(500),
                };
                prop_assert_eq!(page.size.get(), want);
                prop_assert!((1..=500).contains(&page.size.get()));
                prop_assert_eq!(page.after, decoded.flatten());
            }
            Err(err) => prop_assert_eq!(violated(err, invalid)?, expected),
        }
    }

    #[test]
    fn page_tokens_round_trip(sku in valid_text(64)) {
        let req = pb::ListInventoryItemsRequest { page_size: 0, page_token: convert::page_token(&sku) };
        prop_assert_eq!(convert::list_page(&req).unwrap().after, Some(sku));
    }

    /// Valid requests, generated from the documented rules, are always accepted as given.
    #[test]
    fn valid_requests_are_accepted(
        lines in prop::collection::vec(
            (valid_text(64), prop::option::of(valid_text(64)), 1..=i32::MAX),
            1..=LIMITS.max_items,
        ),
        reference in (valid_text(64), valid_text(128)),
        expiration_minutes in 0..=10_080i32,
        on_hand in 0..=i32::MAX,
        delta in any::<i32>().prop_filter("non-zero", |d| *d != 0),
        reason in "[^\\s\\p{C}]([^\\p{C}]{0,40}[^\\s\\p{C}])?",
    ) {
        let check = pb::CheckInventoryAvailabilityRequest {
            items: lines
                .iter()
                .map(|(sku, _, q)| pb::AvailabilityCheckItem { sku: sku.clone(), quantity: *q, ..Default::default() })
                .collect(),
        };
        prop_assert!(convert::check_lines(&check, &LIMITS).is_ok());
        let reserve = pb::ReserveInventoryRequest {
            items: lines
                .iter()
                .map(|(sku, wh, q)| pb::ReservationItem {
                    inventory_item_id: sku.clone(),
                    warehouse_id: wh.clone().unwrap_or_default(),
                    quantity: *q,
                })
                .collect(),
            reference_type: reference.0.clone(),
            reference_id: reference.1.clone(),
            expiration_minutes,
        };
        let cmd = convert::reserve(&reserve, &LIMITS, HoldCaller::anonymous()).unwrap();
        prop_assert_eq!(cmd.lines.len(), lines.len());
        for (line, (sku, wh, q)) in cmd.lines.iter().zip(&lines) {
            prop_assert_eq!(line.item.as_str(), sku.as_str());
            prop_assert_eq!(line.warehouse.as_ref().map(|w| w.as_str().to_owned()), wh.clone());
            prop_assert_eq!(line.quantity.get(), *q);
        }
        prop_assert_eq!((cmd.reference.kind, cmd.reference.id), reference.clone());
        let (sku, wh, _) = &lines[0];
        let upsert = pb::UpsertInventoryItemRequest {
            sku: sku.clone(),
            product_id: reference.0.clone(),
            variant_id: wh.clone(),
            warehouse_id: wh.clone().unwrap_or_default(),
            on_hand,
        };
        prop_assert!(convert::upsert(&upsert).is_ok());
        let adjust = pb::AdjustStockRequest {
            sku: sku.clone(),
            warehouse_id: wh.clone().unwrap_or_default(),
            delta,
            reason: reason.clone(),
            idempotency_key: reference.1.clone(),
        };
        let cmd = convert::adjust(&adjust).unwrap();
        prop_assert_eq!(cmd.reason.as_str(), reason.as_str());
    }
}

/// Finding 3: "collect every violation" stops early for the reference pair of a reserve.
#[test]
fn reserve_names_both_reference_fields() {
    let req = pb::ReserveInventoryRequest {
        items: vec![pb::ReservationItem {
            inventory_item_id: "A".into(),
            warehouse_id: String::new(),
            quantity: 1,
        }],
        reference_id: String::new(),
        reference_type: String::new(),
        expiration_minutes: 0,
    };
    assert_eq!(
        fields(convert::reserve(&req, &LIMITS, HoldCaller::anonymous()).unwrap_err(), invalid),
        ["reference_type", "reference_id"]
    );
}

/// Finding 3: list_page returns on the page size before looking at the token.
#[test]
fn list_page_names_both_fields() {
    let req = pb::ListInventoryItemsRequest { page_size: -1, page_token: "%%%".into() };
    assert_eq!(fields(convert::list_page(&req).unwrap_err(), invalid), ["page_size", "page_token"]);
}

/// Finding 4: text PostgreSQL cannot store (NUL) passes validation and would fail in the
/// store as an INTERNAL error instead of INVALID_ARGUMENT.
#[test]
fn text_with_nul_is_refused() {
    let adjust = pb::AdjustStockRequest {
        sku: "A".into(),
        warehouse_id: String::new(),
        delta: 1,
        reason: "recount\0".into(),
        idempotency_key: String::new(),
    };
    assert!(convert::adjust(&adjust).is_err(), "reason with NUL accepted");
    let list =
        pb::ListInventoryItemsRequest { page_size: 0, page_token: convert::page_token("A\0") };
    assert!(convert::list_page(&list).is_err(), "page token with NUL accepted");
}
