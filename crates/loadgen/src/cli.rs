//! Flags of every subcommand, and the dispatch.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::conn::Channels;
use crate::run_args::{EXIT_VIOLATIONS, RunArgs};
use crate::{charts, invariants, lanes, ready, report, run, seed};

/// Load generator of the benchmark (scripts/bench): closed- and open-loop gRPC load against
/// the inventory and order servers, HDR latency histograms, its own CPU use.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Cli {
    /// Threads of the main async runtime: 0 = multi-threaded, one worker per core (the
    /// default: it measured best in closed loops on the shared 2 cores, BENCHMARKS.md);
    /// 1 = one current-thread runtime (cheapest per call, but slower when descheduled);
    /// N = multi-threaded with N workers.
    #[arg(long, global = true, env = "LOADGEN_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Lanes: threads with a current-thread runtime each; connection `i` and the workers
    /// using it run on lane `i % lanes` (0, the default: everything on the main runtime).
    #[arg(long, global = true, env = "LOADGEN_LANES", default_value_t = 0)]
    pub lanes: usize,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stock SKU-000001.. through the inventory API and write an old-hold history.
    Seed(SeedArgs),
    /// Write the product stand-in's catalogue for the bench SKUs (prod-000001 sells SKU-000001).
    Catalog {
        #[arg(long, default_value_t = 10_000)]
        skus: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one scenario (closed loop, then open loop at fractions of its maximum).
    Run(Box<RunArgs>),
    /// Print the results file as a table.
    Report {
        #[arg(long, default_value = "target/bench/results.json")]
        results: PathBuf,
        /// Also print the costs table (write transactions, WAL, CPU per operation).
        #[arg(long)]
        costs: bool,
    },
    /// Draw the results file as SVG charts (latency, service vs anchor, flash sale).
    Charts {
        #[arg(long, default_value = "target/bench/results.json")]
        results: PathBuf,
        #[arg(long, default_value = "target/bench")]
        out_dir: PathBuf,
    },
    /// Check the inventory invariants in a database; exit 3 on any violation.
    Invariants {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Print COUNT free loopback ports, space-separated.
    FreePorts { count: usize },
    /// Wait until ADDR (host:port) reports SERVING on grpc.health.v1.
    WaitReady {
        addr: String,
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
}

/// Where history holds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryVia {
    /// SQL in the bench database: cancelled holds with zero-sum movements (fast).
    Sql,
    /// Reserve + cancel through the API (slow; for measuring that cost).
    Api,
    /// No history.
    None,
}

/// `loadgen seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub inventory_url: String,
    #[arg(long, default_value_t = 10_000)]
    pub skus: u32,
    /// on_hand of every SKU: plenty, so no hold of a run is ever short.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub on_hand: i32,
    /// Upserts (or history holds) in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// Old holds to write.
    #[arg(long, default_value_t = 100_000)]
    pub history: u32,
    #[arg(long, value_enum, default_value_t = HistoryVia::Sql)]
    pub history_via: HistoryVia,
    /// The bench database (needed for --history-via sql).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Parses the command line and runs it on a multi-threaded runtime.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = match cli.threads {
        0 => tokio::runtime::Builder::new_multi_thread(),
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = lanes::install(cli.lanes) {
        eprintln!("loadgen: error: cannot start {} lanes: {e}", cli.lanes);
        return ExitCode::FAILURE;
    }
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Seed(args) => seed_command(args).await,
        Command::Catalog { skus, out } => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, seed::catalog_json(skus)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run::run(*args).await,
        Command::Report { results, costs } => {
            let rows = report::read_rows(&results)?;
            print!("{}", report::format_table(&rows));
            if costs {
                print!(
                    "\nWhere the time goes (per operation, and cores used during the phase):\n\n{}",
                    report::format_costs(&rows)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Charts { results, out_dir } => {
            let rows = report::read_rows(&results)?;
            for path in charts::write_all(&rows, &out_dir)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Invariants { database_url } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&database_url)
                .await?;
            let findings = invariants::check(&pool).await?;
            pool.close().await;
            println!("{}", invariants::describe(&findings));
            Ok(if invariants::total(&findings) == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_VIOLATIONS)
            })
        }
        Command::FreePorts { count } => {
            let ports = ready::free_ports(count)?;
            println!("{}", ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" "));
            Ok(ExitCode::SUCCESS)
        }
        Command::WaitReady { addr, timeout_s } => {
            ready::wait_serving(&addr, Duration::from_secs(timeout_s)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn seed_command(args: SeedArgs) -> anyhow::Result<ExitCode> {
    let inventory = Channels::connect(&args.inventory_url, args.channels, seed::DEADLINE).await?;
    let took = seed::items(&inventory, args.skus, args.on_hand, args.concurrency).await?;
    eprintln!(
        "seeded {} SKUs (on_hand {}) through the API in {:.1} s ({:.0} upserts/s)",
        args.skus,
        args.on_hand,
        took.as_secs_f64(),
        f64::from(args.skus) / took.as_secs_f64().max(1e-9)
    );
    match args.history_via {
        HistoryVia::None => {}
        HistoryVia::Sql => {
            let url = args
                .database_url
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("--history-via sql needs --database-url"))?;
            let start = std::time::Instant::now();
            let written = seed::history_sql(url, args.history, args.skus).await?;
            if written == 0 {
                eprintln!("history: already present, left as it is");
            } else {
                eprintln!(
                    "history: {written} cancelled holds (3 lines, zero-sum movements) in SQL + VACUUM ANALYZE in {:.1} s",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        HistoryVia::Api => {
            let took =
                seed::history_api(&inventory, args.history, args.skus, args.concurrency).await?;
            eprintln!(
                "history: {} reserve+cancel pairs through the API in {:.1} s ({:.0} pairs/s)",
                args.history,
                took.as_secs_f64(),
                f64::from(args.history) / took.as_secs_f64().max(1e-9)
            );
            if let Some(url) = args.database_url.as_deref() {
                let pool =
                    sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
                seed::analyze(&pool).await?;
                pool.close().await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
