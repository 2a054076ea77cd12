//! Everything a command can fail with, how it reads on stderr, and its exit code.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use prost::Message;
use proto::order::v1 as order_pb;
use proto::status::code_name;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with an error status, or could not be reached in time.
    Rpc {
        /// The status as received (a client-side timeout is turned into `DEADLINE_EXCEEDED`).
        status: Status,
        /// The URL that was called, named when the server looks unreachable.
        url: String,
    },
    /// A reservation call was answered with `success=false`; holds the server's message.
    Refused(String),
    /// The command line cannot be used as given (e.g. a malformed URL).
    Usage(String),
    /// Writing the output failed.
    Output(io::Error),
    /// `events watch` stopped before it was done: the stream failed or was closed by the
    /// server, or printing failed.
    WatchEnded {
        /// Why (`None`: the server closed the stream without an error).
        cause: Option<Box<CliError>>,
        /// The last position printed, else the `--from` position (`None`: neither, a watch
        /// from now that printed nothing).
        last_position: Option<u64>,
    },
}

impl CliError {
    /// An error status from a call to `url` made with `deadline`.
    pub fn rpc(status: Status, url: &str, deadline: Duration) -> Self {
        // tonic reports its own deadline as CANCELLED "Timeout expired"; callers and the gRPC
        // spec call that DEADLINE_EXCEEDED.
        let status = if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
            Status::deadline_exceeded(format!("no answer within {} ms", deadline.as_millis()))
        } else {
            status
        };
        Self::Rpc { status, url: url.to_owned() }
    }

    /// The process exit code: 2 for a request the server judged wrong (invalid, unknown,
    /// not allowed now) or an unusable command line, 3 for a refused reservation, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Rpc { status, .. } => match status.code() {
                Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition => 2,
                _ => 1,
            },
            Self::Refused(_) => 3,
            Self::Usage(_) => 2,
            Self::Output(_) => 1,
            Self::WatchEnded { cause, .. } => cause.as_ref().map_or(1, |cause| cause.exit_code()),
        }
    }

    /// The lines to print on stderr, each ending in a newline.
    pub fn report(&self) -> String {
        match self {
            Self::Rpc { status, url } => report_status(status, url),
            Self::Refused(message) => format!("refused: {message}\n"),
            Self::Usage(message) => format!("error: {message}\n"),
            Self::Output(err) => format!("error: writing output: {err}\n"),
            Self::WatchEnded { cause, last_position } => {
                let mut out = match cause {
                    Some(cause) => cause.report(),
                    None => "error: the server closed the event stream\n".to_owned(),
                };
                match last_position {
                    Some(p) => {
                        let _ = writeln!(out, "  last position: {p} (resume with --from {p})");
                    }
                    None => out.push_str("  last position: none (no event printed yet)\n"),
                }
                out
            }
        }
    }
}

fn report_status(status: &Status, url: &str) -> String {
    let mut out = format!("error: {}", code_name(status.code()));
    if !status.message().is_empty() {
        let _ = write!(out, ": {}", status.message());
    }
    // Transport failures keep the useful part ("Connection refused") in the source chain.
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = cause.source();
    }
    out.push('\n');
    if let Some(bad_request) = status.get_details_bad_request() {
        for v in &bad_request.field_violations {
            let _ = writeln!(out, "  {}: {}", v.field, v.description);
        }
    }
    if let Some(info) = status.get_details_error_info() {
        let _ = writeln!(out, "  reason: {} ({})", info.reason, info.domain);
        if info.reason == INVENTORY_UNAVAILABLE {
            for i in inventory_unavailable(status) {
                let _ = writeln!(
                    out,
                    "  unavailable: {} (sku {}): requested {}, available {}",
                    i.product_id, i.sku, i.requested_quantity, i.available_quantity
                );
            }
        }
    }
    if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) {
        let _ = writeln!(out, "  is the service at {url} up? (scripts/up starts it)");
    }
    out
}

/// `ErrorInfo.reason` of a CreateOrder refused for lack of stock.
const INVENTORY_UNAVAILABLE: &str = "INVENTORY_UNAVAILABLE";

/// The items of the typed `order.v1.InventoryUnavailable` detail, if the status carries one
/// (none when the details do not decode: the message still says what happened).
fn inventory_unavailable(status: &Status) -> Vec<order_pb::UnavailableItem> {
    let Ok(rpc_status) = tonic_types::pb::Status::decode(status.details()) else {
        return Vec::new();
    };
    rpc_status
        .details
        .iter()
        .filter(|any| any.type_url.ends_with("order.v1.InventoryUnavailable"))
        .filter_map(|any| order_pb::InventoryUnavailable::decode(any.value.as_slice()).ok())
        .flat_map(|detail| detail.items)
        .collect()
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    const URL: &str = "http://127.0.0.1:50051";

    fn rpc(status: Status) -> CliError {
        CliError::rpc(status, URL, Duration::from_millis(5000))
    }

    #[test]
    fn field_violations_are_listed_one_per_line() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("items[0].quantity", "must be at least 1");
        details.add_bad_request_violation("reference_id", "must not be empty");
        let err = rpc(Status::with_error_details(Code::InvalidArgument, "invalid", details));
        assert_eq!(
            err.report(),
            "error: INVALID_ARGUMENT: invalid\n  items[0].quantity: must be at least 1\n  \
             reference_id: must not be empty\n"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn exit_codes_follow_the_kind_of_failure() {
        assert_eq!(rpc(Status::not_found("x")).exit_code(), 2);
        assert_eq!(rpc(Status::failed_precondition("x")).exit_code(), 2);
        assert_eq!(rpc(Status::unavailable("x")).exit_code(), 1);
        assert_eq!(rpc(Status::internal("x")).exit_code(), 1);
        assert_eq!(CliError::Refused("short".into()).exit_code(), 3);
    }

    #[test]
    fn an_ended_watch_names_where_to_resume() {
        let ended = CliError::WatchEnded {
            cause: Some(Box::new(rpc(Status::resource_exhausted("consumer too slow")))),
            last_position: Some(42),
        };
        assert_eq!(
            ended.report(),
            "error: RESOURCE_EXHAUSTED: consumer too slow\n  last position: 42 (resume with --from \
             42)\n"
        );
        assert_eq!(ended.exit_code(), 1);
        let invalid = CliError::WatchEnded {
            cause: Some(Box::new(rpc(Status::invalid_argument("types[0]")))),
            last_position: None,
        };
        assert_eq!(invalid.exit_code(), 2);
        assert!(invalid.report().ends_with("  last position: none (no event printed yet)\n"));
        let closed = CliError::WatchEnded { cause: None, last_position: Some(3) };
        assert!(closed.report().starts_with("error: the server closed the event stream\n"));
        assert_eq!(closed.exit_code(), 1);
    }

    #[test]
    fn a_client_timeout_reads_as_deadline_exceeded() {
        let err = rpc(Status::cancelled("Timeout expired"));
        let report = err.report();
        assert!(report.starts_with("error: DEADLINE_EXCEEDED: no answer within 5000 ms\n"));
        assert!(report.contains(URL), "{report}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn inventory_unavailable_lists_the_short_items() {
        let detail = order_pb::InventoryUnavailable {
            items: vec![order_pb::UnavailableItem {
                product_id: "prod-poster".into(),
                sku: "POSTER-ORBIT".into(),
                requested_quantity: 5,
                available_quantity: 3,
            }],
        };
        let rpc_status = tonic_types::pb::Status {
            code: Code::FailedPrecondition as i32,
            message: "not enough stock".into(),
            details: vec![
                prost_types::Any {
                    type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                    value: tonic_types::pb::ErrorInfo {
                        reason: INVENTORY_UNAVAILABLE.into(),
                        domain: "order.v1".into(),
                        metadata: Default::default(),
                    }
                    .encode_to_vec(),
                },
                prost_types::Any {
                    type_url: "type.googleapis.com/order.v1.InventoryUnavailable".into(),
                    value: detail.encode_to_vec(),
                },
            ],
        };
        let status = Status::with_details(
            Code::FailedPrecondition,
            "not enough stock",
            rpc_status.encode_to_vec().into(),
        );
        let err = rpc(status);
        assert_eq!(
            err.report(),
            "error: FAILED_PRECONDITION: not enough stock\n  reason: INVENTORY_UNAVAILABLE \
             (order.v1)\n  unavailable: prod-poster (sku POSTER-ORBIT): requested 5, available 3\n"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
