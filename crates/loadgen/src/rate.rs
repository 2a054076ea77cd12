//! Open-loop schedule: request `i` is meant to start at `i / rate` seconds after the start.
//!
//! Each offset is computed from the index, never by adding intervals, so rounding never
//! accumulates into drift. Latency is measured from the intended start, so a request that
//! the scheduler (or a saturated server) dispatches late is charged for the wait: no
//! coordinated omission.

use std::time::{Duration, Instant};

/// A constant-rate schedule over a fixed window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate_per_s: f64,
    total: u64,
}

/// Why a schedule cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The rate is zero, negative, or not a number.
    #[error("rate must be a positive number, got {0}")]
    BadRate(f64),
}

impl Schedule {
    /// `rate_per_s` requests per second for `window`: requests `0..total()`, every one with an
    /// intended start inside the window.
    pub fn new(rate_per_s: f64, window: Duration) -> Result<Self, ScheduleError> {
        if !rate_per_s.is_finite() || rate_per_s <= 0.0 {
            return Err(ScheduleError::BadRate(rate_per_s));
        }
        // Requests with i / rate < window, i.e. i < rate * window (ceil: i = 0 starts at 0).
        let exact = rate_per_s * window.as_secs_f64();
        let total = exact.ceil() as u64;
        Ok(Self { rate_per_s, total })
    }

    /// Requests per second.
    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    /// How many requests the window holds.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When request `i` is meant to start, after the schedule's start.
    pub fn offset(&self, i: u64) -> Duration {
        let nanos = (i as f64) * 1e9 / self.rate_per_s;
        Duration::from_nanos(nanos.round() as u64)
    }

    /// The instant request `i` is meant to start, for a schedule started at `start`.
    pub fn intended(&self, start: Instant, i: u64) -> Instant {
        start + self.offset(i)
    }
}

/// Latency of a request as the open loop records it: from its intended start to `done`.
/// Never negative (a clock that reads `done` before `intended` gives zero).
pub fn latency_from_intended(intended: Instant, done: Instant) -> Duration {
    done.saturating_duration_since(intended)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_rate() {
        let s = Schedule::new(1000.0, Duration::from_secs(10)).unwrap();
        assert_eq!(s.total(), 10_000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1000), Duration::from_secs(1));
        assert_eq!(s.offset(9_999), Duration::from_micros(9_999_000));
    }

    #[test]
    fn uneven_intervals_do_not_drift() {
        // 1/3 s is not representable; summing intervals would drift, indexing does not.
        let s = Schedule::new(3.0, Duration::from_secs(1_000_000)).unwrap();
        assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.offset(2), Duration::from_nanos(666_666_667));
        assert_eq!(s.offset(3), Duration::from_secs(1));
        assert_eq!(s.offset(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(s.total(), 3_000_000);
    }

    #[test]
    fn every_request_starts_inside_the_window() {
        for (rate, window_ms) in [(0.5, 5_000u64), (7.0, 1_000), (2_500.0, 3_333), (1.0, 999)] {
            let window = Duration::from_millis(window_ms);
            let s = Schedule::new(rate, window).unwrap();
            assert!(s.total() >= 1, "rate {rate}");
            assert!(s.offset(s.total() - 1) < window, "rate {rate}: last inside");
            assert!(s.offset(s.total()) >= window, "rate {rate}: next one outside");
        }
    }

    #[test]
    fn fractional_rates_space_requests_out() {
        let s = Schedule::new(0.5, Duration::from_secs(10)).unwrap();
        assert_eq!(s.total(), 5);
        assert_eq!(s.offset(1), Duration::from_secs(2));
        assert_eq!(s.offset(4), Duration::from_secs(8));
    }

    #[test]
    fn bad_rates_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Schedule::new(rate, Duration::from_secs(1)).is_err(), "{rate}");
        }
        let err = Schedule::new(0.0, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.to_string(), "rate must be a positive number, got 0");
    }

    #[test]
    fn a_late_dispatch_is_charged_to_the_request() {
        let s = Schedule::new(100.0, Duration::from_secs(1)).unwrap();
        let start = Instant::now();
        let intended = s.intended(start, 5); // 50 ms after start
        assert_eq!(intended - start, Duration::from_millis(50));
        // Dispatched 30 ms late, served in 2 ms: the recorded latency is 32 ms, not 2.
        let done = intended + Duration::from_millis(32);
        assert_eq!(latency_from_intended(intended, done), Duration::from_millis(32));
        // A clock reading before the intended start never gives a negative latency.
        assert_eq!(latency_from_intended(intended, start), Duration::ZERO);
    }
}
