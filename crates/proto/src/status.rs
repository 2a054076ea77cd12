//! Rich gRPC errors every server builds the same way: google.rpc `BadRequest` field
//! violations for `INVALID_ARGUMENT`, `ResourceInfo` for `NOT_FOUND`, `ErrorInfo` where a
//! client must tell one refusal from another by a stable reason.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One reason a request field was refused; `field` is the proto path, e.g. `items[2].quantity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field` described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// `field: description; ...`, for messages and logs.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `INVALID_ARGUMENT` naming every violated field in the message and in `BadRequest`.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    let message = format!("invalid argument: {}", describe(violations));
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// `NOT_FOUND` for the `what` named `key`, with `ResourceInfo`.
pub fn not_found(what: &str, key: &str) -> Status {
    let details = ErrorDetails::with_resource_info(what, key, "", "");
    Status::with_error_details(Code::NotFound, format!("{what} not found: {key}"), details)
}

/// `code` with a google.rpc `ErrorInfo`: a stable, machine-readable `reason` (UPPER_SNAKE)
/// in `domain` (e.g. `inventory.v1`), with `metadata`, beside the human `message`.
pub fn with_reason<'a>(
    code: Code,
    reason: &str,
    domain: &str,
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
    message: impl Into<String>,
) -> Status {
    let metadata: std::collections::HashMap<String, String> =
        metadata.into_iter().map(|(key, value)| (key.to_owned(), value.to_owned())).collect();
    let details = ErrorDetails::with_error_info(reason, domain, metadata);
    Status::with_error_details(code, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_every_field() {
        let status = invalid_argument(&[
            FieldViolation::new("items[0].quantity", "must be greater than 0"),
            FieldViolation::new("reference_id", "must not be empty"),
        ]);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid argument: items[0].quantity: must be greater than 0; reference_id: must not be empty"
        );
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["items[0].quantity", "reference_id"]);
    }

    #[test]
    fn not_found_carries_resource_info() {
        let status = not_found("reservation", "abc");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "reservation not found: abc");
        assert_eq!(status.get_details_resource_info().map(|r| r.resource_name), Some("abc".into()));
    }

    #[test]
    fn with_reason_carries_error_info() {
        let status = with_reason(
            Code::AlreadyExists,
            "SOME_REASON",
            "inventory.v1",
            [("reference_id", "o-1")],
            "taken",
        );
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(status.message(), "taken");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("SOME_REASON", "inventory.v1"));
        assert_eq!(info.metadata.get("reference_id").map(String::as_str), Some("o-1"));
    }
}
