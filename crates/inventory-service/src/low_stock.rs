//! The background count of rows below their low-stock threshold (`inventory_low_stock_rows`).
//!
//! Every replica counts (a cheap read through the rows that have a threshold), so each one's
//! gauge is right on its own and the alert takes the max over replicas.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::LOW_STOCK_ROWS;
use crate::store::Store;

/// Counts every `interval` until `stop` is cancelled. A warehouse that has no low row any
/// more is set to 0, never dropped between two scrapes, so an alert pending on it sees it
/// clear rather than vanish; it is removed at the count after that.
pub async fn run(store: Store, interval: Duration, stop: CancellationToken) {
    let mut shown: BTreeSet<String> = BTreeSet::new();
    let mut failing = false;
    while !stop.is_cancelled() {
        match store.low_stock_counts().await {
            Ok(counts) => {
                if failing {
                    tracing::info!("low-stock count recovered");
                    failing = false;
                }
                shown = publish(&shown, &counts);
            }
            // Once per outage: the database being down shows through health and every RPC. The
            // gauge keeps its last figures meanwhile.
            Err(err) if !failing => {
                tracing::warn!(error = %err, "low-stock count failed; retrying every interval");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Sets the gauge to `counts`; returns the warehouses it shows now.
fn publish(shown: &BTreeSet<String>, counts: &[(String, i64)]) -> BTreeSet<String> {
    let now: BTreeSet<String> = counts.iter().map(|(wh, _)| wh.clone()).collect();
    for (wh, n) in counts {
        LOW_STOCK_ROWS.with_label_values(&[wh.as_str()]).set(*n);
    }
    let mut kept = now.clone();
    for wh in shown.difference(&now) {
        let gauge = LOW_STOCK_ROWS.with_label_values(&[wh.as_str()]);
        if gauge.get() != 0 {
            gauge.set(0);
            kept.insert(wh.clone());
        } else {
            let _ = LOW_STOCK_ROWS.remove_label_values(&[wh.as_str()]);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleared_warehouse_shows_zero_once_then_goes() {
        let wh = "low-stock-unit-test";
        let counts = vec![(wh.to_owned(), 3)];
        let shown = publish(&BTreeSet::new(), &counts);
        assert_eq!(LOW_STOCK_ROWS.with_label_values(&[wh]).get(), 3);
        let shown = publish(&shown, &[]);
        assert!(shown.contains(wh));
        assert_eq!(LOW_STOCK_ROWS.with_label_values(&[wh]).get(), 0);
        let shown = publish(&shown, &[]);
        assert!(shown.is_empty());
    }
}
