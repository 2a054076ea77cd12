//! The flags of `loadgen run`, shared by the command line (which parses them) and the run
//! (which reads them), and the exit code of a run whose checks failed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::scenarios::Scenario;
use crate::transport::Transport;

/// `loadgen run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Name in the results (default: the scenario's), e.g. `create-order/pay20ms`.
    #[arg(long)]
    pub label: Option<String>,
    /// The inventory server, or its replicas as a comma-separated list (workers alternate).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub inventory_url: String,
    /// The order server, or its replicas as a comma-separated list (workers alternate).
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    pub order_url: String,
    /// Concurrent closed-loop workers (the anchors' pgbench clients).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// HTTP/2 connections per server (per replica of a list).
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// The client stack: hyper's HTTP/2 sender directly (h2), or tonic's buffered channel.
    #[arg(long, value_enum, default_value_t = Transport::H2)]
    pub transport: Transport,
    /// Measured closed-loop window, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Unmeasured closed-loop warm-up, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_s: f64,
    /// Closed-loop runs; the median (by throughput) is reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Open-loop rates after the closed loop, as fractions of its throughput (0.25,0.5,0.75).
    #[arg(long, value_delimiter = ',')]
    pub open_loop: Vec<f64>,
    /// Open loop at these absolute rates (ops/s) INSTEAD of the closed loop and its fractions:
    /// the same offered load for every build, to compare the load generator's CPU per call.
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// Open-loop window, seconds (default: --duration-s).
    #[arg(long)]
    pub open_duration_s: Option<f64>,
    /// Open loop: most requests in flight; past it the schedule waits (and that counts).
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Anchor throughput NAME=TPS (repeatable; repeats of a name give the median).
    #[arg(long)]
    pub anchor: Vec<String>,
    /// Server process whose peak RSS (VmHWM) is reported (repeatable; the largest is shown).
    /// Each phase resets the peak first (`/proc/<pid>/clear_refs`), so rows show their own.
    #[arg(long)]
    pub rss_pid: Vec<u32>,
    /// Append the rows to this JSON list.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Bench database: check the invariants after every phase (violations: exit 3).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// SKUs seeded (SKU-000001..).
    #[arg(long, default_value_t = 10_000)]
    pub skus: u32,
    /// Deadline of every call, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Random seed (default: a random one).
    #[arg(long)]
    pub seed: Option<u64>,
    /// check-h2load: requests in flight on each of the `--clients` connections.
    #[arg(long, default_value_t = 1)]
    pub h2load_streams: usize,
    /// sell-out, flash-sale: concurrent buyers (default 64 for sell-out, 256 for flash-sale).
    #[arg(long)]
    pub buyers: Option<usize>,
    /// sell-out: attempts of each buyer (one unit each).
    #[arg(long, default_value_t = 32)]
    pub attempts_per_buyer: u32,
    /// sell-out, flash-sale: units on sale.
    #[arg(long, default_value_t = 1_000)]
    pub stock: i32,
}

impl RunArgs {
    /// The measured closed-loop window.
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s.max(0.1))
    }

    /// The closed-loop warm-up.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s.max(0.0))
    }

    /// The open-loop window.
    pub fn open_window(&self) -> Duration {
        Duration::from_secs_f64(self.open_duration_s.unwrap_or(self.duration_s).max(0.1))
    }

    /// Every call's deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// Concurrent buyers of a sale: `--buyers`, else the scenario's default.
    pub fn buyers(&self) -> usize {
        self.buyers.unwrap_or(match self.scenario {
            Scenario::FlashSale => 256,
            _ => 64,
        })
    }

    /// The name rows carry (`check/h2load 8x16` for h2load: connections x streams).
    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| match self.scenario {
            Scenario::CheckH2load => {
                format!("{} {}x{}", self.scenario.name(), self.clients, self.h2load_streams)
            }
            _ => self.scenario.name().to_owned(),
        })
    }
}

/// Exit code of a run whose checks found violations.
pub const EXIT_VIOLATIONS: u8 = 3;
