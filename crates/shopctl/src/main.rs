//! `shopctl`: parse the command line, run it, turn the outcome into an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use shopctl::cli::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match shopctl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = std::io::stderr().write_all(err.report().as_bytes());
            ExitCode::from(err.exit_code())
        }
    }
}
