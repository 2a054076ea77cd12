//! The benchmark's load generator: gRPC load against the inventory and order servers,
//! closed-loop (maximum throughput) and open-loop (constant rate, timed from each request's
//! intended start, so no coordinated omission), HDR latency histograms, its own CPU use, and
//! the result table that `scripts/bench` prints and writes as JSON.

/// The pgbench anchor of each scenario, and medians of repeated anchor runs.
pub mod anchors;
/// SVG charts of a results file: latency, service vs anchor, the flash sale over time.
pub mod charts;
/// Every subcommand's flags and what runs them.
pub mod cli;
/// gRPC channels shared by the workers (several connections, reused for every call).
pub mod conn;
/// The load generator's own CPU time (it shares the machine with the servers).
pub mod cpu;
/// The h2load cross-check of `check`: request framing, arguments, output parsing.
pub mod h2load;
/// Latency histograms and outcome counters.
pub mod histogram;
/// Invariant checks against the bench database (no oversell, holds, ledger).
pub mod invariants;
/// Lanes: threads with a current-thread runtime each, for connections and their workers.
pub mod lanes;
/// Write transactions, WAL and CPU per phase.
pub mod probe;
/// CPU time of the servers and PostgreSQL from /proc.
pub mod procstat;
/// Open-loop schedule: when each request is meant to start.
pub mod rate;
/// Free ports and readiness for `scripts/bench`.
pub mod ready;
/// Result rows, the JSON results file and the printed table.
pub mod report;
/// Peak resident memory of the server processes.
pub mod rss;
/// `loadgen run`: phases of one scenario and their result rows.
pub mod run;
/// The flags of `loadgen run` and its exit codes.
pub mod run_args;
/// Closed- and open-loop drivers.
pub mod runner;
/// The workloads: one module per scenario.
pub mod scenarios;
/// Stock and history for a benchmark database.
pub mod seed;
/// SKU naming and the random picks of each scenario.
pub mod skus;
/// The client stacks: hyper's HTTP/2 sender directly, or tonic's buffered channel.
pub mod transport;
