//! `loadgen`: the benchmark client (see `scripts/bench` and BENCHMARKS.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    loadgen::cli::main()
}
