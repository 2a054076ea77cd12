//! The one error type of the inventory server and its one mapping to a gRPC status.

use common::db::DbFailure;
use proto::status::describe;
use tonic::{Code, Status};

use crate::domain::{FieldViolation, Reference};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
pub const ERROR_DOMAIN: &str = "inventory.v1";
/// ErrorInfo reason: the reference already holds a different request (ALREADY_EXISTS).
pub const REFERENCE_IN_USE: &str = "RESERVATION_REFERENCE_IN_USE";
/// ErrorInfo reason: the hold (or the reference's hold) was taken by another client identity.
pub const HOLD_OF_ANOTHER_CALLER: &str = "HOLD_OWNED_BY_ANOTHER_CALLER";
/// ErrorInfo reason: the caller policy does not allow this RPC or reference type.
pub const CALLER_NOT_ALLOWED: &str = "CALLER_NOT_ALLOWED";

/// Everything an inventory operation can fail with. Business outcomes that are not errors
/// (a short reservation, a refused commit) are results, not variants here.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The request is malformed; each violation names its field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A named thing does not exist.
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    /// The request is well-formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database cannot be reached right now; the caller may retry.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database rolled the call's transaction back after a conflict (serialization
    /// failure, deadlock); nothing was written and the caller may retry at once.
    #[error("database conflict")]
    Conflict(#[source] sqlx::Error),
    /// The call's deadline came before the locks it needed; nothing was written.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The reference already holds a live reservation of a different request; nothing was
    /// written.
    #[error(
        "reference_id {:?} (reference_type {:?}) already holds a reservation of a different \
         request (other items, warehouses or quantities); repeat the first request exactly, or \
         use a new reference",
        .0.id, .0.kind
    )]
    ReferenceInUse(Reference),
    /// The caller is identified but not allowed this; `reason` is the ErrorInfo reason.
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
    /// The caller did not prove who it is, and this needs it.
    #[error("{0}")]
    Unauthenticated(String),
    /// A bug or an unexpected database failure; details are logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<FieldViolation> for InventoryError {
    fn from(v: FieldViolation) -> Self {
        Self::InvalidArgument(vec![v])
    }
}

impl From<sqlx::Error> for InventoryError {
    fn from(err: sqlx::Error) -> Self {
        match common::db::classify(&err) {
            DbFailure::Unavailable => Self::Unavailable(err),
            DbFailure::Conflict => Self::Conflict(err),
            DbFailure::Other => Self::Internal(err.into()),
        }
    }
}

impl InventoryError {
    /// Shorthand for a single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation::new(field, description).into()
    }

    /// The status code this error maps to (also used as a metrics label).
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Conflict(_) => Code::Aborted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::ReferenceInUse(_) => Code::AlreadyExists,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<InventoryError> for Status {
    fn from(err: InventoryError) -> Self {
        match &err {
            InventoryError::InvalidArgument(violations) => {
                proto::status::invalid_argument(violations)
            }
            InventoryError::NotFound { what, key } => proto::status::not_found(what, key),
            InventoryError::FailedPrecondition(message) => Status::failed_precondition(message),
            InventoryError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Status::unavailable("database unavailable, retry later")
            }
            InventoryError::Conflict(cause) => {
                tracing::warn!(error = %cause, "database conflict, transaction rolled back");
                Status::aborted("the database rolled the call back after a conflict; retry")
            }
            InventoryError::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            InventoryError::ReferenceInUse(reference) => proto::status::with_reason(
                Code::AlreadyExists,
                REFERENCE_IN_USE,
                ERROR_DOMAIN,
                [
                    ("reference_type", reference.kind.as_str()),
                    ("reference_id", reference.id.as_str()),
                ],
                err.to_string(),
            ),
            InventoryError::PermissionDenied { reason, message } => {
                tracing::warn!(reason, message, "call refused: permission denied");
                proto::status::with_reason(
                    Code::PermissionDenied,
                    reason,
                    ERROR_DOMAIN,
                    [],
                    message.clone(),
                )
            }
            InventoryError::Unauthenticated(message) => {
                tracing::warn!(message, "call refused: caller not authenticated");
                Status::unauthenticated(message)
            }
            InventoryError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
