//! Capped, jittered exponential backoff, shared by inline peer retries and saga steps.

use std::time::Duration;

/// The wait before retry number `attempt` (0-based): `first * 2^attempt`, capped at `max`,
/// with "equal jitter" (half fixed, half random) so that replicas and orders that failed
/// together do not retry in lockstep.
pub fn delay(first: Duration, attempt: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    let capped = first.saturating_mul(factor).min(max);
    let half = capped / 2;
    let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let jitter = if half_ms == 0 { 0 } else { random_u64() % (half_ms + 1) };
    half + Duration::from_millis(jitter)
}

/// Random bits from a v4 UUID (the `uuid` crate already draws them from the OS), which spares
/// a random-number crate for the one place that needs randomness.
fn random_u64() -> u64 {
    let bits = uuid::Uuid::new_v4().as_u128();
    (bits >> 64) as u64 ^ bits as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_stays_within_the_cap() {
        let first = Duration::from_millis(50);
        let max = Duration::from_millis(30_000);
        for _ in 0..100 {
            let d0 = delay(first, 0, max);
            assert!(d0 >= Duration::from_millis(25) && d0 <= first, "{d0:?}");
            let d3 = delay(first, 3, max);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let big = delay(first, 1_000, max);
            assert!(big >= max / 2 && big <= max, "{big:?}");
        }
    }
}
