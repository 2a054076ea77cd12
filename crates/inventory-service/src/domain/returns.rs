//! Returns of committed stock: which of a hold's stock rows each returned line takes its
//! units back from, and the request's fingerprint. Pure, so the store only reads and writes.

use super::commands::Fingerprint;
use super::{HoldCaller, IdempotencyKey, Quantity, Reason, ReservationId, Sku, WarehouseId};

/// One line of a return request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnLine {
    pub sku: Sku,
    /// None: from the hold's rows of this SKU, ascending stock row id.
    pub warehouse: Option<WarehouseId>,
    pub quantity: Quantity,
    /// False for damaged goods: recorded as returned, on_hand unchanged.
    pub restock: bool,
}

/// A validated ReturnStock request, its hold already resolved to an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnStock {
    pub reservation: ReservationId,
    pub lines: Vec<ReturnLine>,
    pub key: IdempotencyKey,
    pub reason: Option<Reason>,
    pub caller: HoldCaller,
}

impl ReturnStock {
    /// A hash of the hold and the lines, the same whatever the lines' order: a retry under
    /// the key must carry the same request to get the stored return back.
    pub fn fingerprint(&self) -> String {
        let mut lines: Vec<(&str, &str, i32, bool)> = self
            .lines
            .iter()
            .map(|l| {
                let warehouse = l.warehouse.as_ref().map_or("", |w| w.as_str());
                (l.sku.as_str(), warehouse, l.quantity.get(), l.restock)
            })
            .collect();
        lines.sort_unstable();
        let mut hash = Fingerprint::new(b"return-v1");
        hash.field(self.reservation.uuid().as_bytes());
        for (sku, warehouse, quantity, restock) in lines {
            hash.field(sku.as_bytes())
                .field(warehouse.as_bytes())
                .field(&quantity.to_be_bytes())
                .field(&[u8::from(restock)]);
        }
        hash.finish()
    }
}

/// One stock row of a committed hold, with what earlier returns took back of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    pub stock_level_id: i64,
    pub sku: String,
    pub warehouse_id: String,
    pub committed: i32,
    pub returned: i32,
}

/// Units a return takes back from one stock row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub stock_level_id: i64,
    pub quantity: i32,
    pub restock: bool,
}

/// Why a return cannot be applied: line `line` asks more than its rows have left to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverReturn {
    pub line: usize,
    pub requested: i32,
    /// What was left to return for that line when it came (earlier lines of the same request
    /// already counted).
    pub returnable: i32,
}

/// Takes each line's units from the hold's matching rows, lowest stock row id first, each
/// row never past its committed quantity minus what was returned of it (earlier lines of
/// this request included). Takes of the same row and restock flag are merged; the result is
/// in stock row order, the order the store locks rows in.
pub fn take_back(rows: &[HeldRow], lines: &[ReturnLine]) -> Result<Vec<Taken>, OverReturn> {
    let mut rows: Vec<HeldRow> = rows.to_vec();
    rows.sort_by_key(|r| r.stock_level_id);
    let mut taken: Vec<Taken> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let matches = |r: &HeldRow| {
            r.sku == line.sku.as_str()
                && line.warehouse.as_ref().is_none_or(|w| w.as_str() == r.warehouse_id)
        };
        let returnable: i32 =
            rows.iter().filter(|r| matches(r)).map(|r| r.committed - r.returned).sum();
        let requested = line.quantity.get();
        if requested > returnable {
            return Err(OverReturn { line: i, requested, returnable: returnable.max(0) });
        }
        let mut left = requested;
        for row in rows.iter_mut().filter(|r| matches(r)) {
            let take = left.min(row.committed - row.returned);
            if take <= 0 {
                continue;
            }
            row.returned += take;
            left -= take;
            match taken
                .iter_mut()
                .find(|t| t.stock_level_id == row.stock_level_id && t.restock == line.restock)
            {
                Some(t) => t.quantity += take,
                None => taken.push(Taken {
                    stock_level_id: row.stock_level_id,
                    quantity: take,
                    restock: line.restock,
                }),
            }
            if left == 0 {
                break;
            }
        }
    }
    taken.sort_by_key(|t| (t.stock_level_id, !t.restock));
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, sku: &str, warehouse: &str, committed: i32, returned: i32) -> HeldRow {
        HeldRow {
            stock_level_id: id,
            sku: sku.into(),
            warehouse_id: warehouse.into(),
            committed,
            returned,
        }
    }

    fn line(sku: &str, warehouse: &str, quantity: i32, restock: bool) -> ReturnLine {
        ReturnLine {
            sku: Sku::parse("sku", sku).unwrap(),
            warehouse: WarehouseId::parse_optional("warehouse_id", warehouse).unwrap(),
            quantity: Quantity::parse("quantity", quantity).unwrap(),
            restock,
        }
    }

    fn take(id: i64, quantity: i32, restock: bool) -> Taken {
        Taken { stock_level_id: id, quantity, restock }
    }

    #[test]
    fn a_line_takes_from_its_rows_lowest_id_first() {
        let rows =
            [row(9, "A", "west", 2, 0), row(3, "A", "east", 3, 1), row(5, "B", "east", 4, 0)];
        assert_eq!(
            take_back(&rows, &[line("A", "", 3, true)]),
            Ok(vec![take(3, 2, true), take(9, 1, true)])
        );
        assert_eq!(take_back(&rows, &[line("A", "west", 2, false)]), Ok(vec![take(9, 2, false)]));
    }

    #[test]
    fn never_more_than_committed_minus_returned() {
        let rows = [row(1, "A", "east", 3, 1), row(2, "B", "east", 1, 0)];
        assert_eq!(
            take_back(&rows, &[line("B", "", 1, true), line("A", "", 3, true)]),
            Err(OverReturn { line: 1, requested: 3, returnable: 2 })
        );
        // Earlier lines of the same request count.
        assert_eq!(
            take_back(&rows, &[line("A", "", 1, true), line("A", "", 2, false)]),
            Err(OverReturn { line: 1, requested: 2, returnable: 1 })
        );
        assert_eq!(
            take_back(&rows, &[line("C", "", 1, true)]),
            Err(OverReturn { line: 0, requested: 1, returnable: 0 })
        );
        assert_eq!(
            take_back(&rows, &[line("A", "west", 1, true)]),
            Err(OverReturn { line: 0, requested: 1, returnable: 0 })
        );
    }

    #[test]
    fn takes_of_one_row_merge_per_restock_flag() {
        let rows = [row(4, "A", "east", 5, 0)];
        assert_eq!(
            take_back(
                &rows,
                &[line("A", "", 1, true), line("A", "", 2, false), line("A", "east", 1, true)]
            ),
            Ok(vec![take(4, 2, true), take(4, 2, false)])
        );
    }

    fn request(lines: Vec<ReturnLine>) -> ReturnStock {
        ReturnStock {
            reservation: ReservationId::parse("r", "0191e7b6-8a8e-7c3b-9f00-000000000001").unwrap(),
            lines,
            key: IdempotencyKey::parse("k", "key-1").unwrap(),
            reason: None,
            caller: HoldCaller::anonymous(),
        }
    }

    #[test]
    fn the_fingerprint_is_the_hold_and_lines_in_any_order() {
        let first = request(vec![line("A", "", 1, true), line("B", "east", 2, false)]);
        let same = request(vec![line("B", "east", 2, false), line("A", "", 1, true)]);
        assert_eq!(first.fingerprint(), same.fingerprint());
        for other in [
            request(vec![line("A", "", 1, true)]),
            request(vec![line("A", "", 1, true), line("B", "east", 2, true)]),
            request(vec![line("A", "", 1, true), line("B", "", 2, false)]),
            request(vec![line("A", "", 1, true), line("B", "east", 3, false)]),
        ] {
            assert_ne!(first.fingerprint(), other.fingerprint(), "{:?}", other.lines);
        }
        let mut elsewhere = first.clone();
        elsewhere.reservation = ReservationId::new();
        assert_ne!(first.fingerprint(), elsewhere.fingerprint());
    }
}
