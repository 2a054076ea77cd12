//! The one error type of the inventory server and its one mapping to a gRPC status.

use common::db::DbError;
use proto::status::{CallError, Details, describe};
use tonic::{Code, Status};

use crate::domain::{FieldViolation, Reference};

/// `google.rpc.ErrorInfo.domain` of this service's errors.
pub const ERROR_DOMAIN: &str = "inventory.v1";
/// ErrorInfo reason: the reference already holds a different request (ALREADY_EXISTS).
pub const REFERENCE_IN_USE: &str = "RESERVATION_REFERENCE_IN_USE";
/// ErrorInfo reason: the hold (or the reference's hold) was taken by another client identity.
pub const HOLD_OF_ANOTHER_CALLER: &str = "HOLD_OWNED_BY_ANOTHER_CALLER";
/// ErrorInfo reason: the return's idempotency key was used by a different request.
pub const RETURN_KEY_IN_USE: &str = "RETURN_KEY_IN_USE";
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
    /// The reference already holds a live reservation of a different request; nothing was
    /// written.
    #[error(
        "reference_id {:?} (reference_type {:?}) already holds a reservation of a different \
         request (other items, warehouses or quantities); repeat the first request exactly, or \
         use a new reference",
        .0.id, .0.kind
    )]
    ReferenceInUse(Reference),
    /// The return's idempotency key was used by a different request; nothing was written.
    #[error(
        "idempotency_key {0:?} was used by a different return (another hold or other lines); \
         repeat the first request exactly, or use a new key"
    )]
    ReturnKeyInUse(String),
    /// The caller is identified but not allowed this; `reason` is the ErrorInfo reason.
    #[error("{message}")]
    PermissionDenied { reason: &'static str, message: String },
    /// The caller did not prove who it is, and this needs it.
    #[error("{0}")]
    Unauthenticated(String),
    /// The database failed the call; what that means is decided once, in `common::db`.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A bug; details are logged, never sent.
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
        Self::Database(err.into())
    }
}

impl InventoryError {
    /// Shorthand for a single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation::new(field, description).into()
    }
}

impl CallError for InventoryError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::ReferenceInUse(_) | Self::ReturnKeyInUse(_) => Code::AlreadyExists,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::Database(db) => db.code(),
            Self::Internal(_) => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Database(db) => db.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::InvalidArgument(violations) => Details::bad_request(violations),
            Self::NotFound { what, key } => Details::resource(what, key),
            Self::ReferenceInUse(reference) => Details::reason(
                REFERENCE_IN_USE,
                ERROR_DOMAIN,
                [
                    ("reference_type", reference.kind.as_str()),
                    ("reference_id", reference.id.as_str()),
                ],
            ),
            Self::ReturnKeyInUse(key) => Details::reason(
                RETURN_KEY_IN_USE,
                ERROR_DOMAIN,
                [("idempotency_key", key.as_str())],
            ),
            Self::PermissionDenied { reason, .. } => Details::reason(reason, ERROR_DOMAIN, []),
            _ => Details::default(),
        }
    }

    fn log(&self) {
        match self {
            Self::PermissionDenied { reason, message } => {
                tracing::warn!(reason, message, "call refused: permission denied");
            }
            Self::Unauthenticated(message) => {
                tracing::warn!(message, "call refused: caller not authenticated");
            }
            Self::Database(db) => db.log(),
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            _ => {}
        }
    }
}

impl From<InventoryError> for Status {
    fn from(err: InventoryError) -> Self {
        proto::status::status(&err)
    }
}
