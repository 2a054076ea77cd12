//! Writing responses to stdout: JSON when asked, else tables and `key: value` blocks.

use std::io::{self, Write};

use proto::inventory::v1 as pb;
use serde_json::Value;

use crate::error::CliError;
use crate::table::{Align, Table, key_values};

/// Where and how responses are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// JSON output when `json`, human output otherwise.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether responses are printed as JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints one response, rendering only the form that is asked for.
    pub fn emit(
        &self,
        as_json: impl FnOnce() -> Value,
        as_text: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        let text = if self.json {
            // A Value always serializes; the fallback only keeps the code panic-free.
            let mut s = serde_json::to_string_pretty(&as_json()).unwrap_or_default();
            s.push('\n');
            s
        } else {
            as_text()
        };
        write_stdout(&text)
    }
}

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Written and flushed.
    Delivered,
    /// Nobody reads any more (a closed pipe): not an error, but there is no point in going on.
    ReaderGone,
}

/// Writes `text` to `out` and flushes it, so a reader at the other end of a pipe gets it now.
/// A closed pipe (`shopctl stock list | head -1`) is not an error: [`Written::ReaderGone`].
pub fn write_flushed(out: &mut impl Write, text: &str) -> Result<Written, CliError> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Written::Delivered),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Written::ReaderGone),
        Err(e) => Err(CliError::Output(e)),
    }
}

/// Writes `text` to stdout (see [`write_flushed`]).
fn write_stdout(text: &str) -> Result<(), CliError> {
    write_flushed(&mut io::stdout().lock(), text).map(|_| ())
}

fn or_dash(s: Option<&str>) -> &str {
    match s {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

/// The policy cells of a stock level, after its counts: SAFETY, THRESHOLD (0: none) and LOW.
fn policy_cells(l: &pb::StockLevel) -> [String; 3] {
    [
        l.safety_stock.to_string(),
        l.low_stock_threshold.to_string(),
        if l.low_stock { "yes" } else { "no" }.to_owned(),
    ]
}

/// The columns [`policy_cells`] fill.
const POLICY_COLUMNS: [(&str, Align); 3] =
    [("SAFETY", Align::Right), ("THRESHOLD", Align::Right), ("LOW", Align::Left)];

/// One item: its identity and totals, then a row per warehouse with its policy (the TOTAL row
/// has none: a policy belongs to one warehouse's stock).
pub fn item_text(item: &pb::InventoryItem) -> String {
    let mut out = key_values(&[
        ("sku", item.sku.clone()),
        ("product", item.product_id.clone()),
        ("variant", or_dash(item.variant_id.as_deref()).to_owned()),
        ("id", item.id.clone()),
    ]);
    out.push('\n');
    let mut levels = Table::new(&[
        ("WAREHOUSE", Align::Left),
        ("ON_HAND", Align::Right),
        ("RESERVED", Align::Right),
        ("AVAILABLE", Align::Right),
        POLICY_COLUMNS[0],
        POLICY_COLUMNS[1],
        POLICY_COLUMNS[2],
    ]);
    for l in &item.levels {
        let [safety, threshold, low] = policy_cells(l);
        levels.row([
            l.warehouse_id.clone(),
            l.on_hand.to_string(),
            l.reserved.to_string(),
            l.available.to_string(),
            safety,
            threshold,
            low,
        ]);
    }
    levels.row([
        "TOTAL".to_owned(),
        item.on_hand.to_string(),
        item.reserved.to_string(),
        item.available.to_string(),
    ]);
    out.push_str(&levels.to_string());
    out
}

/// Items with their totals; an item stocked in several warehouses gets a row per warehouse
/// under its total (WAREHOUSE `*`). The policy columns are a warehouse's: on the item's row
/// when it has one warehouse, else on the warehouses' rows.
pub fn items_text(items: &[pb::InventoryItem]) -> String {
    if items.is_empty() {
        return "no inventory items\n".to_owned();
    }
    let mut t = Table::new(&[
        ("SKU", Align::Left),
        ("PRODUCT", Align::Left),
        ("VARIANT", Align::Left),
        ("WAREHOUSE", Align::Left),
        ("ON_HAND", Align::Right),
        ("RESERVED", Align::Right),
        ("AVAILABLE", Align::Right),
        POLICY_COLUMNS[0],
        POLICY_COLUMNS[1],
        POLICY_COLUMNS[2],
    ]);
    for item in items {
        let (warehouse, [safety, threshold, low]) = match item.levels.as_slice() {
            [] => ("-", Default::default()),
            [only] => (only.warehouse_id.as_str(), policy_cells(only)),
            _ => ("*", Default::default()),
        };
        t.row([
            item.sku.as_str(),
            item.product_id.as_str(),
            or_dash(item.variant_id.as_deref()),
            warehouse,
            &item.on_hand.to_string(),
            &item.reserved.to_string(),
            &item.available.to_string(),
            &safety,
            &threshold,
            &low,
        ]);
        if item.levels.len() > 1 {
            for l in &item.levels {
                let [safety, threshold, low] = policy_cells(l);
                t.row([
                    "",
                    "",
                    "",
                    &format!("  {}", l.warehouse_id),
                    &l.on_hand.to_string(),
                    &l.reserved.to_string(),
                    &l.available.to_string(),
                    &safety,
                    &threshold,
                    &low,
                ]);
            }
        }
    }
    t.to_string()
}

/// The stock rows below their low-stock threshold, one per SKU and warehouse.
pub fn low_stock_text(rows: &[pb::LowStockRow]) -> String {
    if rows.is_empty() {
        return "no low-stock rows\n".to_owned();
    }
    let mut t = Table::new(&[
        ("SKU", Align::Left),
        ("WAREHOUSE", Align::Left),
        ("ON_HAND", Align::Right),
        ("RESERVED", Align::Right),
        ("SAFETY", Align::Right),
        ("THRESHOLD", Align::Right),
        ("AVAILABLE", Align::Right),
    ]);
    for row in rows {
        // The server always sends the level; a row without one shows its SKU and dashes.
        let Some(l) = &row.level else {
            t.row([row.sku.as_str(), "-", "-", "-", "-", "-", "-"]);
            continue;
        };
        t.row([
            row.sku.clone(),
            l.warehouse_id.clone(),
            l.on_hand.to_string(),
            l.reserved.to_string(),
            l.safety_stock.to_string(),
            l.low_stock_threshold.to_string(),
            l.available.to_string(),
        ]);
    }
    t.to_string()
}

/// One row per checked item, then the overall answer.
pub fn availability_text(r: &pb::InventoryAvailabilityResponse) -> String {
    let mut t = Table::new(&[
        ("SKU", Align::Left),
        ("REQUESTED", Align::Right),
        ("AVAILABLE", Align::Right),
        ("STATUS", Align::Left),
    ]);
    for a in &r.items {
        t.row([
            a.sku.clone(),
            a.requested_quantity.to_string(),
            a.available_quantity.to_string(),
            a.status.clone(),
        ]);
    }
    format!("{t}all available: {}\n", if r.all_available { "yes" } else { "no" })
}

/// The answer of reserve, commit or cancel.
pub fn reservation_response_text(r: &pb::ReservationResponse) -> String {
    key_values(&[("reservation", r.reservation_id.clone()), ("message", r.message.clone())])
}

/// A reservation: reference, status and expiry, then its held items.
pub fn reservation_text(r: &pb::Reservation) -> String {
    let expires = r.expires_at.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
    let mut out = key_values(&[
        ("reservation", r.reservation_id.clone()),
        ("reference", format!("{} {}", r.reference_type, r.reference_id)),
        ("status", r.status.clone()),
        ("expires_at", expires),
    ]);
    out.push('\n');
    let mut t =
        Table::new(&[("SKU", Align::Left), ("WAREHOUSE", Align::Left), ("QUANTITY", Align::Right)]);
    for i in &r.items {
        t.row([i.sku.clone(), i.warehouse_id.clone(), i.quantity.to_string()]);
    }
    out.push_str(&t.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(w: &str, on_hand: i32, reserved: i32) -> pb::StockLevel {
        pb::StockLevel {
            warehouse_id: w.into(),
            on_hand,
            reserved,
            available: on_hand - reserved,
            ..Default::default()
        }
    }

    /// A level under a policy, with available and low worked out as the server does.
    fn level_with_policy(
        w: &str,
        (on_hand, reserved): (i32, i32),
        (safety_stock, low_stock_threshold): (i32, i32),
    ) -> pb::StockLevel {
        let available = (on_hand - reserved - safety_stock).max(0);
        pb::StockLevel {
            warehouse_id: w.into(),
            on_hand,
            reserved,
            available,
            safety_stock,
            low_stock_threshold,
            low_stock: low_stock_threshold > 0
                && on_hand - reserved - safety_stock < low_stock_threshold,
            in_stock: available,
            ..Default::default()
        }
    }

    #[test]
    fn a_multi_warehouse_item_lists_its_levels_under_the_total() {
        let items = [
            pb::InventoryItem {
                sku: "MUG-CLASSIC".into(),
                product_id: "prod-mug".into(),
                on_hand: 100,
                available: 100,
                levels: vec![level("default", 100, 0)],
                ..Default::default()
            },
            pb::InventoryItem {
                sku: "TSHIRT-RED-M".into(),
                product_id: "prod-tshirt".into(),
                variant_id: Some("red-m".into()),
                on_hand: 35,
                reserved: 2,
                available: 33,
                levels: vec![level("default", 25, 2), level("east", 10, 0)],
                ..Default::default()
            },
        ];
        assert_eq!(
            items_text(&items),
            "\
SKU           PRODUCT      VARIANT  WAREHOUSE  ON_HAND  RESERVED  AVAILABLE  SAFETY  THRESHOLD  LOW
MUG-CLASSIC   prod-mug     -        default        100         0        100       0          0  no
TSHIRT-RED-M  prod-tshirt  red-m    *               35         2         33
                                      default       25         2         23       0          0  no
                                      east          10         0         10       0          0  no
"
        );
    }

    #[test]
    fn an_item_shows_each_warehouse_s_policy_and_no_total_of_it() {
        let item = pb::InventoryItem {
            sku: "MUG".into(),
            product_id: "prod-mug".into(),
            id: "i1".into(),
            on_hand: 110,
            reserved: 2,
            available: 103,
            levels: vec![
                level_with_policy("default", (100, 0), (0, 0)),
                level_with_policy("east", (10, 2), (5, 4)),
            ],
            ..Default::default()
        };
        assert_eq!(
            item_text(&item),
            "\
sku:      MUG
product:  prod-mug
variant:  -
id:       i1

WAREHOUSE  ON_HAND  RESERVED  AVAILABLE  SAFETY  THRESHOLD  LOW
default        100         0        100       0          0  no
east            10         2          3       5          4  yes
TOTAL          110         2        103
"
        );
        // One warehouse: the item's row carries its policy.
        let single = pb::InventoryItem {
            on_hand: 10,
            reserved: 2,
            available: 3,
            levels: vec![item.levels[1].clone()],
            ..item
        };
        assert_eq!(
            items_text(&[single]),
            "\
SKU  PRODUCT   VARIANT  WAREHOUSE  ON_HAND  RESERVED  AVAILABLE  SAFETY  THRESHOLD  LOW
MUG  prod-mug  -        east            10         2          3       5          4  yes
"
        );
    }

    #[test]
    fn low_stock_rows_show_their_policy_before_what_is_available() {
        let rows = [
            pb::LowStockRow {
                sku: "MUG-CLASSIC".into(),
                level: Some(level_with_policy("east", (10, 2), (5, 4))),
            },
            pb::LowStockRow {
                sku: "POSTER".into(),
                level: Some(level_with_policy("default", (1, 0), (0, 2))),
            },
        ];
        assert_eq!(
            low_stock_text(&rows),
            "\
SKU          WAREHOUSE  ON_HAND  RESERVED  SAFETY  THRESHOLD  AVAILABLE
MUG-CLASSIC  east            10         2       5          4          3
POSTER       default          1         0       0          2          1
"
        );
        assert_eq!(low_stock_text(&[]), "no low-stock rows\n");
    }
}
