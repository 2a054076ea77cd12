//! `shopctl`: a command-line client for the shop's gRPC services, for people at a terminal.
//!
//! `main.rs` only parses, calls [`run`] and maps the result to an exit code; each service has
//! its own module of commands (`inventory.rs`, `order.rs`), and `events/` watches either
//! service's event log.

/// The command tree (clap types) and the parsers of item arguments.
pub mod cli;
/// Channels to the services: URL handling and per-call deadlines.
pub mod client;
/// Failures, their stderr report and exit codes.
pub mod error;
/// An open WatchEvents stream of either service.
pub mod event_stream;
/// `events watch`: a service's event log as it grows, as table lines or NDJSON.
pub mod events;
/// Inventory commands: stock, reservations.
pub mod inventory;
/// Responses as JSON.
pub mod json;
/// Order commands: place, show, list, cancel, return.
pub mod order;
/// Printing responses: JSON or tables.
pub mod output;
/// `order return`: the request and the return as a table or JSON.
pub mod returns;
/// A tiny plain-text table formatter.
pub mod table;

use cli::{Cli, Command};
use error::CliError;
use inventory::Inventory;
use order::Orders;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Stock(command) => Inventory::new(&cli.global)?.stock(command).await,
        Command::Reserve(args) => Inventory::new(&cli.global)?.reserve(args).await,
        Command::Commit(arg) => Inventory::new(&cli.global)?.commit(arg.reservation_id).await,
        Command::Cancel(arg) => Inventory::new(&cli.global)?.cancel(arg.reservation_id).await,
        Command::Reservation(command) => Inventory::new(&cli.global)?.reservation(command).await,
        Command::VerifyLedger => Inventory::new(&cli.global)?.verify_ledger().await,
        Command::Order(command) => Orders::new(&cli.global)?.run(command).await,
        Command::Events(command) => events::run(&cli.global, command, &mut std::io::stdout()).await,
    }
}
