//! A stock row's policy: what it keeps back (safety stock), how far it may sell beyond what it
//! has (backorders, with a pre-order's restock date), and when it counts as low.
//!
//! The same rule is written in SQL where rows are locked (the reservation functions, the
//! availability query, the stock.low trigger, the low-stock queries, the row's CHECK); this is
//! its Rust form for the rows the server reads back, and the unit tests pin it.

use chrono::NaiveDate;

/// A stock row's policy; the default is a row without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockPolicy {
    /// Units never offered for sale.
    pub safety_stock: i32,
    /// The row is low while what it has in stock is below this; 0: no threshold.
    pub low_stock_threshold: i32,
    /// Units that may be sold beyond on_hand; 0: none.
    pub backorder_limit: i32,
    /// When the next delivery is expected (pre-orders).
    pub restock_date: Option<NaiveDate>,
}

impl StockPolicy {
    /// Units offered for sale: in stock, then on backorder; never below zero.
    pub fn offered(self, on_hand: i32, reserved: i32) -> i32 {
        clamp(self.free(on_hand, reserved) + i64::from(self.backorder_limit))
    }

    /// Units in stock and offered: on_hand - reserved - safety_stock, never below zero.
    pub fn in_stock(self, on_hand: i32, reserved: i32) -> i32 {
        clamp(self.free(on_hand, reserved))
    }

    /// Whether a row with these levels is below its threshold (what it has in stock).
    pub fn is_low(self, on_hand: i32, reserved: i32) -> bool {
        self.low_stock_threshold > 0
            && self.free(on_hand, reserved) < i64::from(self.low_stock_threshold)
    }

    fn free(self, on_hand: i32, reserved: i32) -> i64 {
        i64::from(on_hand) - i64::from(reserved) - i64::from(self.safety_stock)
    }
}

fn clamp(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::StockPolicy;

    #[test]
    fn no_policy_offers_what_is_not_reserved_and_is_never_low() {
        let none = StockPolicy::default();
        assert_eq!(none.offered(10, 3), 7);
        assert_eq!(none.in_stock(10, 3), 7);
        assert_eq!(none.offered(0, 0), 0);
        assert!(!none.is_low(0, 0));
    }

    #[test]
    fn safety_stock_is_kept_back_and_offers_never_go_negative() {
        let p = StockPolicy { safety_stock: 4, ..Default::default() };
        assert_eq!(p.offered(10, 3), 3);
        assert_eq!(p.offered(10, 8), 0);
        assert_eq!(p.offered(i32::MAX, 0), i32::MAX - 4);
    }

    #[test]
    fn low_means_in_stock_below_the_threshold() {
        let p = StockPolicy { safety_stock: 2, low_stock_threshold: 5, ..Default::default() };
        assert!(!p.is_low(10, 3), "10 - 3 - 2 = 5 is not below 5");
        assert!(p.is_low(10, 4));
        assert!(p.is_low(1, 0), "below safety stock is low too");
    }

    #[test]
    fn a_backorder_limit_offers_beyond_on_hand_but_not_in_stock() {
        let p = StockPolicy { backorder_limit: 5, ..Default::default() };
        assert_eq!((p.offered(3, 0), p.in_stock(3, 0)), (8, 3));
        assert_eq!((p.offered(3, 6), p.in_stock(3, 6)), (2, 0));
        assert_eq!((p.offered(-5, 0), p.in_stock(-5, 0)), (0, 0), "sold to the bound");
        let both = StockPolicy { safety_stock: 2, backorder_limit: 5, ..Default::default() };
        assert_eq!((both.offered(3, 0), both.in_stock(3, 0)), (6, 1));
        assert_eq!(
            StockPolicy { backorder_limit: i32::MAX, ..both }.offered(i32::MAX, 0),
            i32::MAX
        );
    }
}
