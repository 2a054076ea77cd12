//! The one error type of the stand-ins and its one mapping to a gRPC status.

use proto::status::describe;
use tonic::Status;

use crate::fields::FieldViolation;

/// Everything a stand-in call can fail with. Business outcomes (a declined payment) are
/// responses, not variants here.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StandinError {
    /// The request is malformed; each violation names its field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A named thing does not exist.
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    /// The request is well-formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A failure injected through [`crate::Faults`], answered with its code.
    #[error("{1}")]
    Injected(tonic::Code, &'static str),
    /// A bug in the stand-in; logged and answered INTERNAL.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<FieldViolation> for StandinError {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl StandinError {
    /// Shorthand for a single field violation.
    pub(crate) fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        FieldViolation::new(field, description).into()
    }

    /// Shorthand for a missing thing.
    pub(crate) fn not_found(what: &'static str, key: impl Into<String>) -> Self {
        Self::NotFound { what, key: key.into() }
    }
}

impl From<StandinError> for Status {
    fn from(err: StandinError) -> Self {
        let message = err.to_string();
        match err {
            StandinError::InvalidArgument(violations) => {
                proto::status::invalid_argument(&violations)
            }
            StandinError::NotFound { what, key } => proto::status::not_found(what, &key),
            StandinError::FailedPrecondition(_) => Status::failed_precondition(message),
            StandinError::Injected(code, _) => Status::new(code, message),
            StandinError::Internal(_) => {
                tracing::error!(error = %message, "stand-in bug");
                Status::internal(message)
            }
        }
    }
}
