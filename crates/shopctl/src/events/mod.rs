//! `shopctl events watch`: a service's event log (`events.v1.Event`) as it grows, one line
//! per event, as a table row or NDJSON.

/// An event in the proto3 JSON mapping, for NDJSON.
pub mod json;
/// An event as one table line with a short summary of its payload.
pub mod text;
/// The command: open the stream, print each event as it arrives, stop at `--count`.
pub mod watch;

pub use watch::run;
