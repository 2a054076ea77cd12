//! The one error type of the stand-ins and its one mapping to a gRPC status.

use proto::status::{CallError, Details, describe};
use tonic::{Code, Status};

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

impl CallError for StandinError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Injected(code, _) => *code,
            Self::Internal(_) => Code::Internal,
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::InvalidArgument(violations) => Details::bad_request(violations),
            Self::NotFound { what, key } => Details::resource(what, key),
            _ => Details::default(),
        }
    }

    fn log(&self) {
        if let Self::Internal(_) = self {
            tracing::error!(error = %self, "stand-in bug");
        }
    }
}

impl From<StandinError> for Status {
    fn from(err: StandinError) -> Self {
        proto::status::status(&err)
    }
}
