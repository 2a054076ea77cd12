//! What a chaos run reports: what it did, what the clients and the database saw, how long each
//! phase took, and every violation it found.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::ChaosConfig;
use super::clients::ClientStats;
use super::events::ConsumerStats;
use super::schedule::Planned;
use crate::invariants::{self, Violation};

/// Wall-clock time of each phase.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub setup: Duration,
    pub faults: Duration,
    pub quiesce: Duration,
    pub check: Duration,
}

/// Everything a run counted, and every violation it found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub seed: u64,
    pub config: ChaosConfig,
    pub schedule: Vec<Planned>,
    /// Faults applied, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Faults that could not be applied or healed (harness problems, not violations).
    pub fault_errors: Vec<String>,
    pub clients: ClientStats,
    /// Orders in the database by status.
    pub orders_by_status: BTreeMap<String, u64>,
    /// Orders that did not confirm, by status and reason.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Saga steps recorded by the order server, as "action/outcome".
    pub saga_steps: BTreeMap<String, u64>,
    /// Orders still unsettled when the checker ran.
    pub unsettled: i64,
    /// Invariant violations (must be empty).
    pub violations: Vec<Violation>,
    /// Client answers that disagree with the database (idempotency).
    pub mismatches: Vec<String>,
    /// Server processes that exited without being killed.
    pub unexpected_exits: Vec<String>,
    /// Server restarts by binary.
    pub starts: BTreeMap<&'static str, u32>,
    /// What each event consumer received and how often it had to reconnect.
    pub events: Vec<ConsumerStats>,
    pub timings: Timings,
    /// Where the servers' logs are (deleted after a clean run unless kept).
    pub log_dir: PathBuf,
}

impl ChaosReport {
    /// Whether the run found nothing wrong.
    pub fn clean(&self) -> bool {
        self.violations.is_empty() && self.mismatches.is_empty() && self.unexpected_exits.is_empty()
    }
}

/// A duration as seconds with one decimal.
pub(super) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.clients;
        writeln!(f, "==== chaos run, seed {} (replay: CHAOS_SEED={}) ====", self.seed, self.seed)?;
        writeln!(
            f,
            "fault phase {}, {} clients, {} hot SKUs x {} units, {} cold SKUs",
            secs(self.config.duration),
            self.config.clients,
            self.config.hot_skus,
            self.config.hot_stock,
            self.config.cold_skus
        )?;
        writeln!(
            f,
            "timings: setup {}, faults {}, quiesce {}, check {}",
            secs(self.timings.setup),
            secs(self.timings.faults),
            secs(self.timings.quiesce),
            secs(self.timings.check)
        )?;
        writeln!(
            f,
            "orders attempted (distinct keys): {}; CreateOrder calls {} ({} retries with the same \
             key); same-key duplicates sent: {}",
            c.attempted, c.create_calls, c.retries, c.duplicates
        )?;
        writeln!(f, "client outcomes per key:")?;
        for (k, v) in &c.outcomes {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        writeln!(f, "transient errors seen by clients: {:?}", c.transient)?;
        writeln!(f, "cancels: {:?}", c.cancels)?;
        writeln!(f, "returns: {:?}", c.returns)?;
        let total: u64 = self.orders_by_status.values().sum();
        writeln!(
            f,
            "orders in the database: {total}; confirmed: {}",
            self.orders_by_status.get("CONFIRMED").copied().unwrap_or(0)
        )?;
        for (k, v) in &self.orders_by_status {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        writeln!(f, "failed by reason:")?;
        for (k, v) in &self.failed_by_reason {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        let injected: u64 =
            self.faults.iter().filter(|(k, _)| **k != "admin_adjust").map(|(_, v)| v).sum();
        writeln!(f, "faults injected: {injected} (+ admin adjustments)")?;
        for (k, v) in &self.faults {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        writeln!(f, "server starts: {:?}", self.starts)?;
        for c in &self.events {
            writeln!(
                f,
                "{} events: {} received (through position {}), {} reconnects; streams ended: \
                 {:?}",
                c.service, c.received, c.last_position, c.reconnects, c.ends
            )?;
        }
        writeln!(f, "saga steps (action/outcome): {:?}", self.saga_steps)?;
        if !self.fault_errors.is_empty() {
            writeln!(f, "harness errors while injecting/healing faults:")?;
            for e in &self.fault_errors {
                writeln!(f, "  {e}")?;
            }
        }
        if !c.anomalies.is_empty() {
            writeln!(f, "client anomalies:")?;
            for (k, v) in &c.anomalies {
                writeln!(f, "  {v:>6}  {k}")?;
            }
        }
        for e in &self.unexpected_exits {
            writeln!(f, "UNEXPECTED EXIT: {e}")?;
        }
        for m in &self.mismatches {
            writeln!(f, "IDEMPOTENCY MISMATCH: {m}")?;
        }
        writeln!(f, "orders unsettled at check: {}", self.unsettled)?;
        if self.violations.is_empty() {
            writeln!(f, "violations: 0")?;
        } else {
            writeln!(f, "violations:\n{}", invariants::report(&self.violations))?;
        }
        write!(f, "server logs: {}", self.log_dir.display())
    }
}
