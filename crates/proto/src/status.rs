//! The errors of the pair as callers see them: ONE mapping from any service error to a gRPC
//! status ([`status`], over the [`CallError`] trait every error type implements), and the rich
//! google.rpc details it can carry: `BadRequest` field violations for `INVALID_ARGUMENT`,
//! `ResourceInfo` for `NOT_FOUND`, `ErrorInfo` where a client must tell one refusal from
//! another by a stable reason, and typed details of a service's own.

use std::collections::HashMap;

use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::pb;

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

/// An error a call of the pair ends with. Every error type (each service's, the peer
/// clients', the stand-ins') says what its caller is told; [`status`] builds the answer.
pub trait CallError: std::fmt::Display {
    /// The gRPC code.
    fn code(&self) -> Code;

    /// What the caller reads: by default the error's own text. An error whose text carries
    /// internals (a database cause, a peer's message) says something fixed instead.
    fn public_message(&self) -> String {
        self.to_string()
    }

    /// Rich details for the caller; none by default.
    fn details(&self) -> Details {
        Details::default()
    }

    /// Logs what an operator must see and the caller must not (an internal cause); called
    /// once, when the error becomes a status.
    fn log(&self) {}
}

/// The rich details of a status: what a client can act on beyond code and message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    violations: Vec<FieldViolation>,
    resource: Option<(String, String)>,
    reason: Option<pb::ErrorInfo>,
    typed: Vec<prost_types::Any>,
}

impl Details {
    /// `BadRequest` naming every violated field.
    pub fn bad_request(violations: &[FieldViolation]) -> Self {
        Self { violations: violations.to_vec(), ..Self::default() }
    }

    /// `ResourceInfo` of the `what` named `key`.
    pub fn resource(what: &str, key: &str) -> Self {
        Self { resource: Some((what.to_owned(), key.to_owned())), ..Self::default() }
    }

    /// `ErrorInfo`: a stable, machine-readable `reason` (UPPER_SNAKE) in `domain` (e.g.
    /// `inventory.v1`), with `metadata`.
    pub fn reason<'a>(
        reason: &str,
        domain: &str,
        metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let metadata: HashMap<String, String> =
            metadata.into_iter().map(|(key, value)| (key.to_owned(), value.to_owned())).collect();
        let info = pb::ErrorInfo { reason: reason.to_owned(), domain: domain.to_owned(), metadata };
        Self { reason: Some(info), ..Self::default() }
    }

    /// The field violations (`BadRequest`) among these details.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// These details and a typed detail of the service's own contract, as `type_url`.
    pub fn with_typed(mut self, type_url: &str, detail: &impl prost::Message) -> Self {
        self.typed.push(prost_types::Any {
            type_url: type_url.to_owned(),
            value: detail.encode_to_vec(),
        });
        self
    }

    fn into_anys(self) -> Vec<prost_types::Any> {
        let any = |type_url: &str, message: &dyn Fn() -> Vec<u8>| prost_types::Any {
            type_url: type_url.to_owned(),
            value: message(),
        };
        let mut anys = Vec::new();
        if !self.violations.is_empty() {
            let bad = pb::BadRequest {
                field_violations: self
                    .violations
                    .iter()
                    .map(|v| pb::bad_request::FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                        ..Default::default()
                    })
                    .collect(),
            };
            anys.push(any(tonic_types::BadRequest::TYPE_URL, &|| bad.encode_to_vec()));
        }
        if let Some((resource_type, resource_name)) = self.resource {
            let info = pb::ResourceInfo { resource_type, resource_name, ..Default::default() };
            anys.push(any(tonic_types::ResourceInfo::TYPE_URL, &|| info.encode_to_vec()));
        }
        if let Some(info) = self.reason {
            anys.push(any(tonic_types::ErrorInfo::TYPE_URL, &|| info.encode_to_vec()));
        }
        anys.extend(self.typed);
        anys
    }
}

/// The status a caller gets for `err`: its code, its public message and its details (packed
/// as a `google.rpc.Status` in `grpc-status-details-bin`). Logs it first ([`CallError::log`]).
pub fn status<E: CallError + ?Sized>(err: &E) -> Status {
    err.log();
    with_details(err.code(), err.public_message(), err.details())
}

/// `INVALID_ARGUMENT` naming every violated field in the message and in `BadRequest`.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = format!("invalid argument: {}", describe(violations));
    with_details(Code::InvalidArgument, message, Details::bad_request(violations))
}

/// `NOT_FOUND` for the `what` named `key`, with `ResourceInfo`.
pub fn not_found(what: &str, key: &str) -> Status {
    with_details(Code::NotFound, format!("{what} not found: {key}"), Details::resource(what, key))
}

/// `code` with a google.rpc `ErrorInfo` (see [`Details::reason`]) beside the human `message`.
pub fn with_reason<'a>(
    code: Code,
    reason: &str,
    domain: &str,
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
    message: impl Into<String>,
) -> Status {
    with_details(code, message.into(), Details::reason(reason, domain, metadata))
}

/// A status with `details`; no details, a plain status.
fn with_details(code: Code, message: String, details: Details) -> Status {
    let details = details.into_anys();
    if details.is_empty() {
        return Status::new(code, message);
    }
    let packed = pb::Status { code: code as i32, message: message.clone(), details };
    Status::with_details(code, message, packed.encode_to_vec().into())
}

/// The canonical name of a gRPC status code, as the gRPC spec and other tools spell it
/// (`INVALID_ARGUMENT`), for messages people read.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

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

    #[test]
    fn typed_details_travel_beside_the_standard_ones() {
        let details = Details::reason("SHORT", "order.v1", [])
            .with_typed("type.googleapis.com/google.rpc.Help", &pb::Help::default());
        let status = with_details(Code::FailedPrecondition, "short".into(), details);
        assert_eq!(status.get_details_error_info().map(|i| i.reason), Some("SHORT".into()));
        let packed = pb::Status::decode(status.details()).expect("google.rpc.Status");
        let urls: Vec<&str> = packed.details.iter().map(|a| a.type_url.as_str()).collect();
        assert_eq!(
            urls,
            ["type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.Help"]
        );
    }

    #[test]
    fn code_names_are_the_specs() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::Cancelled), "CANCELLED");
    }
}
