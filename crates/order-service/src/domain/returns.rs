//! Returns of confirmed orders, as rules: what a return may take (never more than bought minus
//! every earlier return), the refund it owes (exact, in minor units, from the order's own unit
//! prices), the fingerprint that tells a retry from a different request, and the return's
//! states. No SQL, no protobuf.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{IdempotencyKey, OrderId, Quantity};

/// Where a return stands, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnStatus {
    /// Written; the stock is not back yet.
    Requested,
    /// The stock is back (or recorded as not restocked); the refund is under way.
    Restocked,
    /// Stock back and refunded.
    Completed,
    /// A step was refused for good: a person must fix the cause, then the same ReturnOrder
    /// request re-arms it.
    NeedsOperator,
}

impl ReturnStatus {
    /// Every status.
    pub const ALL: [Self; 4] =
        [Self::Requested, Self::Restocked, Self::Completed, Self::NeedsOperator];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Restocked => "RESTOCKED",
            Self::Completed => "COMPLETED",
            Self::NeedsOperator => "NEEDS_OPERATOR",
        }
    }

    /// Parses a stored name.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// The status a return has while `action` is its next step (not refused).
    pub fn before(action: ReturnAction) -> Self {
        match action {
            ReturnAction::Restock => Self::Requested,
            ReturnAction::Refund => Self::Restocked,
        }
    }
}

/// The step a return still has to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnAction {
    /// Put the units back at the inventory (ReturnStock).
    Restock,
    /// Refund their price (RefundPayment).
    Refund,
}

impl ReturnAction {
    /// Every action.
    pub const ALL: [Self; 2] = [Self::Restock, Self::Refund];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restock => "restock",
            Self::Refund => "refund",
        }
    }

    /// Parses a stored name.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// One line of a ReturnOrder request: units of one of the order's SKUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnLineRequest {
    pub sku: String,
    pub quantity: Quantity,
    /// Damaged goods: refunded, recorded by the inventory, not put back on hand.
    pub do_not_restock: bool,
}

/// A validated ReturnOrder request. Each SKU appears at most once in `lines`; no lines means
/// everything not yet returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnOrder {
    pub order_id: OrderId,
    pub lines: Vec<ReturnLineRequest>,
    pub reason: String,
    pub idempotency_key: IdempotencyKey,
}

impl ReturnOrder {
    /// A hash of the request's lines as sent (in any order; none = "everything left"). The
    /// reason is not part of it: a retry that words its reason differently is the same
    /// return. Neither is the key: it is what the fingerprint is compared under.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut lines: Vec<&ReturnLineRequest> = self.lines.iter().collect();
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        let mut hash = Sha256::new();
        // Length-prefixed fields, so that no two different requests encode the same bytes.
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        };
        field("return-v1");
        if lines.is_empty() {
            field("\u{0}everything-left");
        }
        for line in lines {
            field(&line.sku);
            field(&line.quantity.get().to_string());
            field(if line.do_not_restock { "no-restock" } else { "restock" });
        }
        hash.finalize().to_vec()
    }
}

/// One line of the order as bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoughtLine {
    /// The order line's number.
    pub line: i32,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// Units a return takes from one order line, at that line's price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnItem {
    pub order_line: i32,
    pub sku: String,
    pub quantity: i32,
    pub do_not_restock: bool,
    pub unit_price_minor: i64,
}

/// Why a return cannot be planned. `index` is the request line's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnRefusal {
    /// The SKU is not one of the order's.
    UnknownSku { index: usize, sku: String },
    /// More units than bought minus what earlier returns took.
    TooMany { index: usize, sku: String, bought: i64, returned: i64, asked: i32 },
    /// A return of "everything left" when nothing is left.
    NothingLeft,
}

/// The items a return of `asked` takes from an order bought as `bought`, of which earlier
/// returns already took `returned` (units per order line, whatever those returns' status):
/// each SKU's units come from its order lines in line order, so an SKU on two lines at two
/// prices is refunded at the price of the units it takes. No lines asked: everything left.
pub fn plan(
    bought: &[BoughtLine],
    returned: &HashMap<i32, i64>,
    asked: &[ReturnLineRequest],
) -> Result<Vec<ReturnItem>, ReturnRefusal> {
    let left = |line: &BoughtLine| {
        i64::from(line.quantity) - returned.get(&line.line).copied().unwrap_or(0).max(0)
    };
    if asked.is_empty() {
        let items: Vec<ReturnItem> = bought
            .iter()
            .filter_map(|line| {
                let quantity = i32::try_from(left(line)).ok().filter(|q| *q > 0)?;
                Some(ReturnItem {
                    order_line: line.line,
                    sku: line.sku.clone(),
                    quantity,
                    do_not_restock: false,
                    unit_price_minor: line.unit_price_minor,
                })
            })
            .collect();
        return if items.is_empty() { Err(ReturnRefusal::NothingLeft) } else { Ok(items) };
    }
    let mut items = Vec::new();
    for (index, request) in asked.iter().enumerate() {
        let lines: Vec<&BoughtLine> = bought.iter().filter(|l| l.sku == request.sku).collect();
        if lines.is_empty() {
            return Err(ReturnRefusal::UnknownSku { index, sku: request.sku.clone() });
        }
        let bought_units: i64 = lines.iter().map(|l| i64::from(l.quantity)).sum();
        let left_units: i64 = lines.iter().map(|l| left(l).max(0)).sum();
        let asked_units = request.quantity.get();
        if i64::from(asked_units) > left_units {
            return Err(ReturnRefusal::TooMany {
                index,
                sku: request.sku.clone(),
                bought: bought_units,
                returned: bought_units - left_units,
                asked: asked_units,
            });
        }
        let mut wanted = asked_units;
        for line in lines {
            let take = i32::try_from(left(line).max(0)).unwrap_or(i32::MAX).min(wanted);
            if take == 0 {
                continue;
            }
            items.push(ReturnItem {
                order_line: line.line,
                sku: line.sku.clone(),
                quantity: take,
                do_not_restock: request.do_not_restock,
                unit_price_minor: line.unit_price_minor,
            });
            wanted -= take;
            if wanted == 0 {
                break;
            }
        }
    }
    Ok(items)
}

/// The refund a return owes: the sum of quantity x unit price of its items, exact in minor
/// units; None if it does not fit in 64 bits (it never does for a subset of an order whose
/// total fit).
pub fn refund_amount(items: &[ReturnItem]) -> Option<i64> {
    items.iter().try_fold(0i64, |sum, item| {
        item.unit_price_minor.checked_mul(i64::from(item.quantity))?.checked_add(sum)
    })
}

/// One line of the inventory's ReturnStock: units of one SKU (from any of the hold's lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestockLine {
    pub sku: String,
    pub quantity: i32,
    pub do_not_restock: bool,
}

/// The return's items as ReturnStock lines: one per SKU and flag, in first-seen order (an
/// SKU on two order lines is one inventory line). None if a sum overflows.
pub fn restock_lines(items: &[ReturnItem]) -> Option<Vec<RestockLine>> {
    let mut lines: Vec<RestockLine> = Vec::new();
    for item in items {
        match lines
            .iter_mut()
            .find(|l| l.sku == item.sku && l.do_not_restock == item.do_not_restock)
        {
            Some(line) => line.quantity = line.quantity.checked_add(item.quantity)?,
            None => lines.push(RestockLine {
                sku: item.sku.clone(),
                quantity: item.quantity,
                do_not_restock: item.do_not_restock,
            }),
        }
    }
    Some(lines)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bought(lines: &[(&str, i32, i64)]) -> Vec<BoughtLine> {
        lines
            .iter()
            .zip(0..)
            .map(|((sku, quantity, price), line)| BoughtLine {
                line,
                sku: (*sku).to_owned(),
                quantity: *quantity,
                unit_price_minor: *price,
            })
            .collect()
    }

    fn ask(sku: &str, quantity: i32, do_not_restock: bool) -> ReturnLineRequest {
        ReturnLineRequest {
            sku: sku.to_owned(),
            quantity: Quantity::parse("q", quantity).unwrap(),
            do_not_restock,
        }
    }

    fn request(lines: Vec<ReturnLineRequest>, reason: &str) -> ReturnOrder {
        ReturnOrder {
            order_id: OrderId::from(uuid::Uuid::nil()),
            lines,
            reason: reason.to_owned(),
            idempotency_key: IdempotencyKey::parse("k", "k1").unwrap(),
        }
    }

    #[test]
    fn a_partial_return_is_refunded_exactly_at_the_order_s_prices() {
        let order = bought(&[("ODD", 3, 333), ("W", 1, 250)]);
        let items = plan(&order, &HashMap::new(), &[ask("ODD", 2, false)]).unwrap();
        assert_eq!(refund_amount(&items), Some(666));
        // The second partial takes what is left, and no more.
        let returned = HashMap::from([(0, 2)]);
        let items = plan(&order, &returned, &[ask("ODD", 1, false)]).unwrap();
        assert_eq!(refund_amount(&items), Some(333));
        assert_eq!(
            plan(&order, &returned, &[ask("ODD", 2, false)]),
            Err(ReturnRefusal::TooMany {
                index: 0,
                sku: "ODD".into(),
                bought: 3,
                returned: 2,
                asked: 2
            })
        );
    }

    #[test]
    fn everything_left_skips_what_earlier_returns_took() {
        let order = bought(&[("A", 2, 100), ("B", 1, 999)]);
        let items = plan(&order, &HashMap::from([(0, 1)]), &[]).unwrap();
        assert_eq!(
            items.iter().map(|i| (i.sku.as_str(), i.quantity)).collect::<Vec<_>>(),
            [("A", 1), ("B", 1)]
        );
        assert_eq!(refund_amount(&items), Some(1099));
        let all = HashMap::from([(0, 2), (1, 1)]);
        assert_eq!(plan(&order, &all, &[]), Err(ReturnRefusal::NothingLeft));
    }

    #[test]
    fn unknown_skus_are_named_by_their_index() {
        let order = bought(&[("A", 2, 100)]);
        assert_eq!(
            plan(&order, &HashMap::new(), &[ask("A", 1, false), ask("Z", 1, false)]),
            Err(ReturnRefusal::UnknownSku { index: 1, sku: "Z".into() })
        );
    }

    #[test]
    fn an_sku_on_two_lines_takes_units_line_by_line_at_each_line_s_price() {
        let order = bought(&[("A", 1, 100), ("A", 2, 150)]);
        let items = plan(&order, &HashMap::new(), &[ask("A", 2, true)]).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(refund_amount(&items), Some(250));
        assert!(items.iter().all(|i| i.do_not_restock));
        assert_eq!(
            restock_lines(&items).unwrap(),
            [RestockLine { sku: "A".into(), quantity: 2, do_not_restock: true }]
        );
        let items = plan(&order, &HashMap::from([(0, 1)]), &[ask("A", 2, false)]).unwrap();
        assert_eq!(refund_amount(&items), Some(300));
    }

    #[test]
    fn amounts_never_overflow_silently() {
        let item = |quantity, unit_price_minor| ReturnItem {
            order_line: 0,
            sku: "A".into(),
            quantity,
            do_not_restock: false,
            unit_price_minor,
        };
        assert_eq!(refund_amount(&[item(2, i64::MAX)]), None);
        assert_eq!(refund_amount(&[item(1, i64::MAX), item(1, 1)]), None);
        assert_eq!(refund_amount(&[]), Some(0));
    }

    #[test]
    fn the_fingerprint_sees_the_lines_not_their_order_nor_the_reason() {
        let ab = request(vec![ask("A", 1, false), ask("B", 2, true)], "broken");
        let ba = request(vec![ask("B", 2, true), ask("A", 1, false)], "other words");
        assert_eq!(ab.fingerprint(), ba.fingerprint());
        let flag = request(vec![ask("A", 1, true), ask("B", 2, true)], "broken");
        assert_ne!(ab.fingerprint(), flag.fingerprint());
        let qty = request(vec![ask("A", 2, false), ask("B", 2, true)], "broken");
        assert_ne!(ab.fingerprint(), qty.fingerprint());
        assert_ne!(request(vec![], "x").fingerprint(), ab.fingerprint());
    }

    #[test]
    fn stored_names_round_trip() {
        for status in ReturnStatus::ALL {
            assert_eq!(ReturnStatus::from_db(status.as_str()), Some(status));
        }
        for action in ReturnAction::ALL {
            assert_eq!(ReturnAction::from_db(action.as_str()), Some(action));
        }
        assert_eq!(ReturnStatus::before(ReturnAction::Refund), ReturnStatus::Restocked);
    }
}
