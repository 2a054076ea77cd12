//! Deciding which warehouse rows a reservation takes its units from.
//!
//! Pure and deterministic: the store locks the candidate rows, hands their snapshot here, and
//! applies the result. All-or-nothing: either every line is covered or nothing is taken.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{ItemRef, Quantity, WarehouseId};

/// One locked stock row: a warehouse's stock of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSnapshot {
    pub level_id: i64,
    pub item_id: Uuid,
    pub sku: String,
    pub warehouse_id: String,
    pub available: i32,
}

/// One requested line of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub item: ItemRef,
    pub warehouse: Option<WarehouseId>,
    pub quantity: Quantity,
}

/// A line that cannot be covered: what was asked and what was left for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub sku: String,
    pub warehouse: Option<String>,
    pub requested: i32,
    pub available: i64,
}

/// Why nothing was allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Lines naming items that do not exist (the refs as given).
    UnknownItems(Vec<String>),
    /// Lines that exist but lack stock.
    Short(Vec<Shortage>),
}

/// Units taken from each stock row, keyed and ordered by row id.
pub type Allocation = BTreeMap<i64, i32>;

/// Covers every line from `levels` or explains why not.
///
/// A line with a warehouse takes only from that warehouse. A line without one takes from the
/// warehouses with the most available first (fewest splits), ties broken by warehouse id, so
/// the same input always gives the same allocation. Several lines for one item draw on the
/// same remaining stock: lines naming a warehouse are served before "any warehouse" lines,
/// because their demand is fixed while the others can take the remainder from anywhere; so a
/// request is refused only when no allocation could cover it.
pub fn allocate(lines: &[Line], levels: &[LevelSnapshot]) -> Result<Allocation, Refusal> {
    let mut remaining: BTreeMap<i64, i64> =
        levels.iter().map(|l| (l.level_id, i64::from(l.available.max(0)))).collect();
    let mut taken = Allocation::new();
    let mut unknown = Vec::new();
    let mut short = Vec::new();

    let named = lines.iter().filter(|l| l.warehouse.is_some());
    let any = lines.iter().filter(|l| l.warehouse.is_none());
    for line in named.chain(any) {
        let Some(item_id) = resolve_item(&line.item, levels) else {
            unknown.push(line.item.as_str().to_owned());
            continue;
        };
        let mut candidates: Vec<&LevelSnapshot> =
            levels.iter().filter(|l| l.item_id == item_id).collect();
        let Some(first) = candidates.first() else {
            unknown.push(line.item.as_str().to_owned());
            continue;
        };
        let sku = first.sku.clone();
        if let Some(wh) = &line.warehouse {
            candidates.retain(|l| l.warehouse_id == wh.as_str());
        }
        candidates.sort_by(|a, b| {
            let (ra, rb) = (remaining[&a.level_id], remaining[&b.level_id]);
            rb.cmp(&ra).then_with(|| a.warehouse_id.cmp(&b.warehouse_id))
        });

        let wanted = i64::from(line.quantity.get());
        let available: i64 = candidates.iter().map(|l| remaining[&l.level_id]).sum();
        if available < wanted {
            short.push(Shortage {
                sku,
                warehouse: line.warehouse.as_ref().map(|w| w.as_str().to_owned()),
                requested: line.quantity.get(),
                available,
            });
            continue;
        }
        let mut left = wanted;
        for level in candidates {
            if left == 0 {
                break;
            }
            let slot = remaining.entry(level.level_id).or_default();
            let take = left.min(*slot);
            if take > 0 {
                *slot -= take;
                left -= take;
                // `take` <= the line's i32 quantity, so the sum per row stays within what the
                // row had available, itself an i32.
                *taken.entry(level.level_id).or_default() += take as i32;
            }
        }
    }

    if !unknown.is_empty() {
        return Err(Refusal::UnknownItems(unknown));
    }
    if !short.is_empty() {
        return Err(Refusal::Short(short));
    }
    Ok(taken)
}

/// Of what a hold took from each row, the units on backorder: beyond what the row had in
/// stock (`in_stock`: on_hand - reserved - safety_stock before the hold, which may be
/// negative; a row missing from it has nothing in stock). A row's units count as one: which
/// of the hold's lines took them does not change how many were beyond the row's stock.
pub fn backordered(taken: &Allocation, in_stock: &BTreeMap<i64, i64>) -> BTreeMap<i64, i32> {
    taken
        .iter()
        .map(|(&row, &units)| {
            let from_stock = in_stock.get(&row).copied().unwrap_or(0).clamp(0, i64::from(units));
            // from_stock is within 0..=units, an i32.
            (row, units - from_stock as i32)
        })
        .collect()
}

/// The one item a line names: the item with that id when the ref is an item's id, else the
/// item with that SKU. A UUID-shaped SKU of one item can equal another item's id; the id wins,
/// so a line never draws on two items.
fn resolve_item(item: &ItemRef, levels: &[LevelSnapshot]) -> Option<Uuid> {
    let by_id = item.id().filter(|id| levels.iter().any(|l| l.item_id == *id));
    by_id.or_else(|| levels.iter().find(|l| l.sku == item.as_str()).map(|l| l.item_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(id: i64, item: u128, sku: &str, wh: &str, available: i32) -> LevelSnapshot {
        LevelSnapshot {
            level_id: id,
            item_id: Uuid::from_u128(item),
            sku: sku.into(),
            warehouse_id: wh.into(),
            available,
        }
    }

    fn line(item: &str, wh: Option<&str>, q: i32) -> Line {
        Line {
            item: ItemRef::parse("i", item).unwrap(),
            warehouse: wh.map(|w| WarehouseId::parse("w", w).unwrap()),
            quantity: Quantity::parse("q", q).unwrap(),
        }
    }

    #[test]
    fn takes_from_the_fullest_warehouse_first() {
        let levels = [level(1, 1, "A", "east", 3), level(2, 1, "A", "west", 10)];
        let got = allocate(&[line("A", None, 5)], &levels).unwrap();
        assert_eq!(got, Allocation::from([(2, 5)]));
    }

    #[test]
    fn splits_across_warehouses_when_one_is_not_enough() {
        let levels = [level(1, 1, "A", "east", 3), level(2, 1, "A", "west", 4)];
        let got = allocate(&[line("A", None, 6)], &levels).unwrap();
        assert_eq!(got, Allocation::from([(1, 2), (2, 4)]));
    }

    #[test]
    fn named_warehouse_takes_only_from_it() {
        let levels = [level(1, 1, "A", "east", 3), level(2, 1, "A", "west", 40)];
        let err = allocate(&[line("A", Some("east"), 5)], &levels).unwrap_err();
        assert_eq!(
            err,
            Refusal::Short(vec![Shortage {
                sku: "A".into(),
                warehouse: Some("east".into()),
                requested: 5,
                available: 3
            }])
        );
    }

    #[test]
    fn lines_for_one_item_share_its_stock() {
        let levels = [level(1, 1, "A", "default", 5)];
        let err = allocate(&[line("A", None, 3), line("A", None, 3)], &levels).unwrap_err();
        assert!(matches!(err, Refusal::Short(s) if s[0].available == 2));
    }

    #[test]
    fn named_lines_are_served_before_any_warehouse_lines() {
        // Fullest-first would give the unnamed line east's units and starve the named line.
        let levels = [level(1, 1, "A", "east", 928), level(2, 1, "A", "west", 886)];
        let got = allocate(&[line("A", None, 276), line("A", Some("east"), 653)], &levels).unwrap();
        assert_eq!(got, Allocation::from([(1, 653), (2, 276)]));
    }

    #[test]
    fn unknown_items_are_named() {
        let levels = [level(1, 1, "A", "default", 5)];
        let err = allocate(&[line("A", None, 1), line("B", None, 1)], &levels).unwrap_err();
        assert_eq!(err, Refusal::UnknownItems(vec!["B".into()]));
    }

    #[test]
    fn items_match_by_id_too() {
        let levels = [level(1, 7, "A", "default", 5)];
        let id = Uuid::from_u128(7).to_string();
        assert_eq!(allocate(&[line(&id, None, 2)], &levels).unwrap(), Allocation::from([(1, 2)]));
    }

    #[test]
    fn backordered_units_are_those_beyond_the_row_s_stock() {
        let taken = Allocation::from([(1, 5), (2, 3), (3, 4)]);
        let in_stock = BTreeMap::from([(1, 2), (2, 10), (3, -6)]);
        assert_eq!(backordered(&taken, &in_stock), BTreeMap::from([(1, 3), (2, 0), (3, 4)]));
    }

    #[test]
    fn every_short_line_is_reported() {
        let levels = [level(1, 1, "A", "default", 1), level(2, 2, "B", "default", 0)];
        let err = allocate(&[line("A", None, 2), line("B", None, 1)], &levels).unwrap_err();
        assert!(matches!(err, Refusal::Short(s) if s.len() == 2));
    }
}
