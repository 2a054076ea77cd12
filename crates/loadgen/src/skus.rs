//! SKU naming shared with the pgbench anchors (`SKU-000001` ..) and the random picks of each
//! scenario, drawn like the anchors draw them.

use fastrand::Rng;

/// The hot SKU of the flash-sale scenarios (the anchors' `SKU-000001`).
pub const HOT: u32 = 1;

/// `SKU-000042` for 42.
pub fn sku(n: u32) -> String {
    format!("SKU-{n:06}")
}

/// The product that sells SKU `n` in the bench catalog: `prod-000042`.
pub fn product(n: u32) -> String {
    format!("prod-{n:06}")
}

/// Three distinct SKU numbers in `1..=nskus`, uniformly (`A_fn_reserve`). `nskus` >= 3.
pub fn uniform_distinct(rng: &mut Rng, nskus: u32) -> [u32; 3] {
    let a = rng.u32(1..=nskus);
    let mut b = rng.u32(1..=nskus);
    while b == a {
        b = rng.u32(1..=nskus);
    }
    let mut c = rng.u32(1..=nskus);
    while c == a || c == b {
        c = rng.u32(1..=nskus);
    }
    [a, b, c]
}

/// Three SKU numbers in `1..=nskus`, independent, repeats allowed (`C_availability`).
pub fn uniform_any(rng: &mut Rng, nskus: u32) -> [u32; 3] {
    [rng.u32(1..=nskus), rng.u32(1..=nskus), rng.u32(1..=nskus)]
}

/// The hot SKU, one SKU of the lower half and one of the upper half (`B_fn_reserve`:
/// `random(2, n/2)` and `random(n/2 + 1, n)`). `nskus` >= 4.
pub fn hot_plus_two(rng: &mut Rng, nskus: u32) -> [u32; 3] {
    let half = nskus / 2;
    [HOT, rng.u32(2..=half), rng.u32(half + 1..=nskus)]
}

/// A line quantity, 1 to 5 like the anchors.
pub fn quantity(rng: &mut Rng) -> i32 {
    rng.i32(1..=5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_anchors() {
        assert_eq!(sku(1), "SKU-000001");
        assert_eq!(sku(10_000), "SKU-010000");
        assert_eq!(product(42), "prod-000042");
    }

    #[test]
    fn picks_stay_in_range_and_apart() {
        let mut rng = Rng::with_seed(7);
        for _ in 0..10_000 {
            let [a, b, c] = uniform_distinct(&mut rng, 10);
            assert!(a != b && b != c && a != c);
            assert!([a, b, c].iter().all(|n| (1..=10).contains(n)));
            let [h, lo, hi] = hot_plus_two(&mut rng, 10_000);
            assert_eq!(h, HOT);
            assert!((2..=5_000).contains(&lo) && (5_001..=10_000).contains(&hi));
            assert!(uniform_any(&mut rng, 3).iter().all(|n| (1..=3).contains(n)));
            assert!((1..=5).contains(&quantity(&mut rng)));
        }
        // The smallest catalogue still yields three distinct SKUs.
        let mut seen = uniform_distinct(&mut rng, 3);
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3]);
    }
}
