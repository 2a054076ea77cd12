//! The raw-SQL limit beside each scenario: which pgbench anchor of `bench/anchors` a scenario
//! is compared with, and the median of repeated anchor runs.

use std::collections::BTreeMap;

use crate::scenarios::Scenario;

/// Share of checks in `mixed` (the rest are a reserve plus its commit or cancel).
const MIXED_CHECK_SHARE: f64 = 0.9;

/// Parses `NAME=TPS` values; a name given several times (repeated runs) gets the median.
pub fn parse(specs: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut runs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for spec in specs {
        let (name, tps) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--anchor {spec:?}: expected NAME=TPS"))?;
        let tps: f64 = tps
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--anchor {spec:?}: {tps:?} is not a number"))?;
        if !tps.is_finite() || tps <= 0.0 {
            anyhow::bail!("--anchor {spec:?}: throughput must be positive");
        }
        runs.entry(name.trim().to_owned()).or_default().push(tps);
    }
    Ok(runs.into_iter().map(|(name, mut v)| (name, median(&mut v))).collect())
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The anchor a scenario's throughput is divided by, with its label; None when the scenario
/// has no raw-SQL counterpart (sell-out, flash-sale) or the anchor was not run.
///
/// `create-order` is compared with `O_order_min`, the least an order can write durably (order
/// and lines, the hold, its commit, the order's final state) with no payment work: with a
/// payment latency above zero the ratio also carries that wait, which the anchor lacks.
///
/// `mixed` has no exact anchor. Its estimate charges each operation what the anchors do:
/// 90% a `C_availability` transaction, 10% two `A_fn_reserve`-sized write transactions (the
/// reserve, then its commit or cancel), i.e. `1 / (0.9 / C + 0.1 * 2 / A)`.
pub fn for_scenario(scenario: Scenario, anchors: &BTreeMap<String, f64>) -> Option<(String, f64)> {
    let named = |name: &str| anchors.get(name).map(|&tps| (name.to_owned(), tps));
    match scenario {
        Scenario::Check | Scenario::CheckH2load => named("C_availability"),
        Scenario::ReserveUniform => named("A_fn_reserve"),
        Scenario::ReserveHot => named("B_fn_reserve"),
        Scenario::ReserveHotOnly => named("B2_fn_single"),
        Scenario::Mixed => {
            let c = *anchors.get("C_availability")?;
            let a = *anchors.get("A_fn_reserve")?;
            Some(("est. 0.9 C + 0.1 x 2 A_fn".to_owned(), mixed_estimate(c, a)))
        }
        Scenario::CreateOrder => named("O_order_min"),
        Scenario::SellOut | Scenario::FlashSale => None,
    }
}

/// Operations per second of the mixed workload if each part ran at its anchor's rate.
pub fn mixed_estimate(check_tps: f64, reserve_tps: f64) -> f64 {
    1.0 / (MIXED_CHECK_SHARE / check_tps + (1.0 - MIXED_CHECK_SHARE) * 2.0 / reserve_tps)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repeated_anchors_give_their_median() {
        let a = parse(&[
            "B_fn_reserve=1300".into(),
            "B_fn_reserve=900".into(),
            "B_fn_reserve=1244.5".into(),
            "C_availability=26324".into(),
        ])
        .unwrap();
        assert_eq!(a["B_fn_reserve"], 1244.5);
        assert_eq!(a["C_availability"], 26324.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn bad_anchors_are_refused() {
        assert!(parse(&["A_fn_reserve".into()]).is_err());
        assert!(parse(&["A_fn_reserve=fast".into()]).is_err());
        assert!(parse(&["A_fn_reserve=0".into()]).is_err());
    }

    #[test]
    fn scenarios_map_to_their_anchor() {
        let a = parse(&[
            "A_fn_reserve=4000".into(),
            "B_fn_reserve=1244".into(),
            "B2_fn_single=1745".into(),
            "C_availability=26000".into(),
        ])
        .unwrap();
        assert_eq!(for_scenario(Scenario::Check, &a), Some(("C_availability".into(), 26000.0)));
        assert_eq!(for_scenario(Scenario::CheckH2load, &a).unwrap().1, 26000.0);
        assert_eq!(for_scenario(Scenario::ReserveUniform, &a).unwrap().1, 4000.0);
        assert_eq!(for_scenario(Scenario::ReserveHot, &a).unwrap().1, 1244.0);
        assert_eq!(for_scenario(Scenario::ReserveHotOnly, &a).unwrap().1, 1745.0);
        assert_eq!(for_scenario(Scenario::CreateOrder, &a), None, "O_order_min was not run");
        assert_eq!(for_scenario(Scenario::SellOut, &a), None);
        assert_eq!(for_scenario(Scenario::FlashSale, &a), None);
        let o = parse(&["O_order_min=1945".into()]).unwrap();
        assert_eq!(for_scenario(Scenario::CreateOrder, &o), Some(("O_order_min".into(), 1945.0)));
        let (_, mixed) = for_scenario(Scenario::Mixed, &a).unwrap();
        // 0.9 / 26000 + 0.2 / 4000 = 3.4615e-5 + 5e-5 s per op -> ~11,818 ops/s.
        assert!((mixed - 11_818.0).abs() < 1.0, "{mixed}");
        assert_eq!(for_scenario(Scenario::Mixed, &BTreeMap::new()), None);
    }
}
