//! `events watch`: open the stream of the service asked for, print each event as it arrives
//! (flushed, for whoever reads the pipe), stop after `--count` events or when the reader goes.
//! A stream that ends before (an error, or the server closing it) is a failure that names
//! the last position printed, so the operator can resume with `--from`.

use std::io::Write;

use proto::events::v1::Event;
use proto::inventory::v1 as inventory_pb;
use proto::order::v1 as order_pb;

use super::{json, text};
use crate::cli::{EventService, EventsCommand, GlobalArgs, WatchArgs};
use crate::error::CliError;
use crate::event_stream::EventStream;
use crate::inventory::Inventory;
use crate::order::Orders;
use crate::output::{Written, write_flushed};

/// Runs an `events ...` command, writing to `out` (stdout in the binary).
pub async fn run(
    global: &GlobalArgs,
    command: EventsCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        EventsCommand::Watch(args) => watch(global, args, out).await,
    }
}

/// Watches until `--count` events are printed (else until the stream ends or the reader of
/// `out` goes). Without `--from`, only events from now on.
async fn watch(global: &GlobalArgs, args: WatchArgs, out: &mut impl Write) -> Result<(), CliError> {
    let mut stream = open(global, &args).await?;
    let mut last_position = args.from_position;
    let ended = |cause: Option<CliError>, last_position| CliError::WatchEnded {
        cause: cause.map(Box::new),
        last_position,
    };
    if !global.json && write_flushed(out, &text::header())? == Written::ReaderGone {
        return Ok(());
    }
    let mut printed: u64 = 0;
    while args.count.is_none_or(|count| printed < count) {
        let event = match stream.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Err(ended(None, last_position)),
            Err(err) => return Err(ended(Some(err), last_position)),
        };
        match write_flushed(out, &line(&event, global.json)) {
            Ok(Written::Delivered) => {}
            Ok(Written::ReaderGone) => return Ok(()),
            Err(err) => return Err(ended(Some(err), last_position)),
        }
        last_position = Some(event.position);
        printed += 1;
    }
    Ok(())
}

/// Opens WatchEvents on the service `args` name; a refusal (an unknown type, a position
/// retention removed, no admin token for the order service) is the call's error as is.
async fn open(global: &GlobalArgs, args: &WatchArgs) -> Result<EventStream, CliError> {
    let from_now = args.from_position.is_none();
    let from_position = args.from_position.unwrap_or(0);
    let types = args.types.clone();
    match args.service {
        EventService::Inventory => {
            let request = inventory_pb::WatchEventsRequest { from_position, types, from_now };
            Inventory::new(global)?.watch_events(request).await
        }
        EventService::Order => {
            let request = order_pb::WatchEventsRequest { from_position, types, from_now };
            Orders::new(global)?.watch_events(request).await
        }
    }
}

/// One event as a table line or an NDJSON line.
fn line(event: &Event, as_json: bool) -> String {
    if as_json { json::event_line(event) } else { text::event_line(event) }
}
