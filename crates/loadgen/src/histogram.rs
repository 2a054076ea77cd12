//! Latency histograms (HDR, microseconds, 3 significant digits) and outcome counters.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// What one operation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done as asked.
    Ok,
    /// A clean business refusal the scenario expects (e.g. sold out: `success=false`).
    Refused,
    /// Anything else: a gRPC error or an answer the scenario does not accept. The text is a
    /// short, low-cardinality kind (`grpc Unavailable`, `unexpected refusal`, ...).
    Error(String),
}

impl Outcome {
    /// An error for a gRPC status: its code only (messages would explode the kinds).
    pub fn grpc(status: &tonic::Status) -> Self {
        Self::Error(format!("grpc {:?}", status.code()))
    }
}

/// Latencies and outcomes of a run (or of one worker, merged at the end).
#[derive(Debug, Clone)]
pub struct Stats {
    latency_us: Histogram<u64>,
    /// Operations done as asked.
    pub ok: u64,
    /// Expected refusals.
    pub refused: u64,
    /// Errors of every kind.
    pub errors: u64,
    error_kinds: BTreeMap<String, u64>,
}

/// Longest latency the histogram tells apart (one hour); longer ones are clamped to it.
const MAX_US: u64 = 3_600_000_000;

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty counters.
    pub fn new() -> Self {
        // Constant bounds that satisfy the constructor's rules (1 <= low, 2 * low <= high,
        // sigfig <= 5): this cannot fail.
        let latency_us =
            Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid");
        Self { latency_us, ok: 0, refused: 0, errors: 0, error_kinds: BTreeMap::new() }
    }

    /// Counts one operation that took `latency`.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_US);
        self.latency_us.saturating_record(us);
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Error(kind) => {
                self.errors += 1;
                *self.error_kinds.entry(kind).or_default() += 1;
            }
        }
    }

    /// Adds `other`'s operations to these.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail; count what could not be added.
        if self.latency_us.add(&other.latency_us).is_err() {
            for v in other.latency_us.iter_recorded() {
                self.latency_us.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.ok += other.ok;
        self.refused += other.refused;
        self.errors += other.errors;
        for (kind, n) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_default() += n;
        }
    }

    /// Every operation counted.
    pub fn count(&self) -> u64 {
        self.ok + self.refused + self.errors
    }

    /// The latency at quantile `q` (0.0..=1.0) in milliseconds; 0 when nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency_us.is_empty() {
            return 0.0;
        }
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// Error kinds with their counts, most frequent first.
    pub fn error_kinds(&self) -> Vec<(String, u64)> {
        let mut kinds: Vec<_> = self.error_kinds.iter().map(|(k, n)| (k.clone(), *n)).collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_recorded_latencies() {
        let mut s = Stats::new();
        assert_eq!(s.quantile_ms(0.99), 0.0);
        for ms in 1..=1000u64 {
            s.record(Outcome::Ok, Duration::from_millis(ms));
        }
        assert_eq!(s.count(), 1000);
        let p50 = s.quantile_ms(0.5);
        let p99 = s.quantile_ms(0.99);
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        assert!((989.0..=991.0).contains(&p99), "{p99}");
        assert!(s.quantile_ms(0.999) <= 1001.0);
    }

    #[test]
    fn merging_adds_counts_and_kinds() {
        let mut a = Stats::new();
        a.record(Outcome::Ok, Duration::from_micros(300));
        a.record(Outcome::Error("grpc Unavailable".into()), Duration::from_millis(2));
        let mut b = Stats::new();
        b.record(Outcome::Refused, Duration::from_millis(1));
        b.record(Outcome::Error("grpc Unavailable".into()), Duration::from_millis(2));
        b.record(Outcome::Error("unexpected refusal".into()), Duration::from_millis(2));
        a.merge(&b);
        assert_eq!((a.ok, a.refused, a.errors, a.count()), (1, 1, 3, 5));
        assert_eq!(
            a.error_kinds(),
            vec![("grpc Unavailable".to_owned(), 2), ("unexpected refusal".to_owned(), 1)]
        );
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut s = Stats::new();
        s.record(Outcome::Ok, Duration::ZERO);
        s.record(Outcome::Ok, Duration::from_secs(100_000));
        assert_eq!(s.count(), 2);
        assert!(s.quantile_ms(1.0) >= 3_600_000.0 * 0.999);
    }

    #[test]
    fn grpc_errors_are_kinded_by_code() {
        let o = Outcome::grpc(&tonic::Status::unavailable("db down at 10.0.0.1"));
        assert_eq!(o, Outcome::Error("grpc Unavailable".into()));
    }
}
