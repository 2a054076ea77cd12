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

/// One item: its identity and totals, then a row per warehouse.
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
    ]);
    for l in &item.levels {
        levels.row([
            l.warehouse_id.clone(),
            l.on_hand.to_string(),
            l.reserved.to_string(),
            l.available.to_string(),
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
/// under its total (WAREHOUSE `*`).
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
    ]);
    for item in items {
        let warehouse = match item.levels.as_slice() {
            [] => "-",
            [only] => only.warehouse_id.as_str(),
            _ => "*",
        };
        t.row([
            item.sku.as_str(),
            item.product_id.as_str(),
            or_dash(item.variant_id.as_deref()),
            warehouse,
            &item.on_hand.to_string(),
            &item.reserved.to_string(),
            &item.available.to_string(),
        ]);
        if item.levels.len() > 1 {
            for l in &item.levels {
                t.row([
                    "",
                    "",
                    "",
                    &format!("  {}", l.warehouse_id),
                    &l.on_hand.to_string(),
                    &l.reserved.to_string(),
                    &l.available.to_string(),
                ]);
            }
        }
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
        pb::StockLevel { warehouse_id: w.into(), on_hand, reserved, available: on_hand - reserved }
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
SKU           PRODUCT      VARIANT  WAREHOUSE  ON_HAND  RESERVED  AVAILABLE
MUG-CLASSIC   prod-mug     -        default        100         0        100
TSHIRT-RED-M  prod-tshirt  red-m    *               35         2         33
                                      default       25         2         23
                                      east          10         0         10
"
        );
    }
}
