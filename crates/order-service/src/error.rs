//! The one error type of the order server and its one mapping to a gRPC status.

use std::collections::HashMap;

use common::db::DbFailure;
use prost::Message;
use proto::order::v1 as pb;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{FieldViolation, Shortage};

/// `google.rpc.ErrorInfo.reason` of an order refused for lack of stock.
pub const INVENTORY_UNAVAILABLE: &str = "INVENTORY_UNAVAILABLE";
/// `google.rpc.ErrorInfo.domain` of this service's errors.
pub const ERROR_DOMAIN: &str = "order.v1";
/// `Any.type_url` of the typed `order.v1.InventoryUnavailable` detail.
pub const INVENTORY_UNAVAILABLE_TYPE_URL: &str =
    "type.googleapis.com/order.v1.InventoryUnavailable";

/// Everything an order operation can fail with. Business outcomes that are not errors (a
/// declined payment, a rejected order) are order states, not variants here.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request is malformed; each violation names its field.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// A named thing does not exist.
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    /// The request is well-formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller has not proven who it is (or for which user it acts).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Not enough stock for the order; nothing was written.
    #[error("insufficient stock: {}", describe_shortages(.0))]
    InventoryUnavailable(Vec<Shortage>),
    /// A peer service cannot be reached (or kept failing transiently); the caller may retry.
    /// Only the code is kept: the peer's message may describe its internals.
    #[error("{peer} service unavailable ({}), retry later", crate::clients::code_name(*.code))]
    PeerUnavailable { peer: &'static str, code: Code },
    /// The database cannot be reached right now; the caller may retry.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The database rolled the call's transaction back after a conflict (serialization
    /// failure, deadlock); nothing was written and the caller may retry at once.
    #[error("database conflict")]
    Conflict(#[source] sqlx::Error),
    /// A bug, an unexpected database failure or a peer answer that breaks its contract;
    /// details are logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_shortages(shortages: &[Shortage]) -> String {
    shortages
        .iter()
        .map(|s| format!("{}: requested {}, available {}", s.sku, s.requested, s.available))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<FieldViolation> for OrderError {
    fn from(v: FieldViolation) -> Self {
        Self::InvalidArgument(vec![v])
    }
}

impl From<sqlx::Error> for OrderError {
    fn from(err: sqlx::Error) -> Self {
        match common::db::classify(&err) {
            DbFailure::Unavailable => Self::Unavailable(err),
            DbFailure::Conflict => Self::Conflict(err),
            DbFailure::Other => Self::Internal(err.into()),
        }
    }
}

impl OrderError {
    /// Shorthand for a single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation::new(field, description).into()
    }

    /// The order `id` does not exist (or, to a caller bound to another user, is not theirs:
    /// both answers must be the same, so this one error serves both).
    pub fn order_not_found(id: crate::domain::OrderId) -> Self {
        Self::NotFound { what: "order", key: id.to_string() }
    }

    /// Shorthand for a bug or broken invariant.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(anyhow::anyhow!(message.into()))
    }

    /// The status code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition(_) | Self::InventoryUnavailable(_) => Code::FailedPrecondition,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::PeerUnavailable { .. } | Self::Unavailable(_) => Code::Unavailable,
            Self::Conflict(_) => Code::Aborted,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Self {
        match &err {
            OrderError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, err.to_string(), details)
            }
            OrderError::NotFound { what, key } => {
                let details = ErrorDetails::with_resource_info(*what, key.clone(), "", "");
                Status::with_error_details(Code::NotFound, err.to_string(), details)
            }
            OrderError::FailedPrecondition(message) => Status::failed_precondition(message),
            OrderError::Unauthenticated(message) => Status::unauthenticated(message),
            OrderError::PermissionDenied(message) => Status::permission_denied(message),
            OrderError::InventoryUnavailable(shortages) => {
                inventory_unavailable(err.to_string(), shortages)
            }
            OrderError::PeerUnavailable { .. } => {
                tracing::warn!(error = %err, "peer unavailable");
                Status::unavailable(err.to_string())
            }
            OrderError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Status::unavailable("database unavailable, retry later")
            }
            OrderError::Conflict(cause) => {
                tracing::warn!(error = %cause, "database conflict, transaction rolled back");
                Status::aborted("the database rolled the call back after a conflict; retry")
            }
            OrderError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// FAILED_PRECONDITION carrying a google.rpc `ErrorInfo` and the typed
/// `order.v1.InventoryUnavailable` detail. tonic-types only packs its standard details, so
/// the `google.rpc.Status` is built here with both `Any`s.
fn inventory_unavailable(message: String, shortages: &[Shortage]) -> Status {
    let skus: Vec<&str> = shortages.iter().map(|s| s.sku.as_str()).collect();
    let info = tonic_types::pb::ErrorInfo {
        reason: INVENTORY_UNAVAILABLE.to_owned(),
        domain: ERROR_DOMAIN.to_owned(),
        metadata: HashMap::from([("skus".to_owned(), skus.join(","))]),
    };
    let typed = pb::InventoryUnavailable {
        items: shortages
            .iter()
            .map(|s| pb::UnavailableItem {
                product_id: s.product_id.clone(),
                sku: s.sku.clone(),
                requested_quantity: s.requested,
                available_quantity: s.available,
            })
            .collect(),
    };
    let status = tonic_types::pb::Status {
        code: Code::FailedPrecondition as i32,
        message: message.clone(),
        details: vec![
            prost_types::Any {
                type_url: tonic_types::ErrorInfo::TYPE_URL.to_owned(),
                value: info.encode_to_vec(),
            },
            prost_types::Any {
                type_url: INVENTORY_UNAVAILABLE_TYPE_URL.to_owned(),
                value: typed.encode_to_vec(),
            },
        ],
    };
    Status::with_details(Code::FailedPrecondition, message, status.encode_to_vec().into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inventory_unavailable_carries_error_info_and_the_typed_detail() {
        let status: Status = OrderError::InventoryUnavailable(vec![Shortage {
            product_id: "p1".into(),
            sku: "A".into(),
            requested: 3,
            available: 1,
        }])
        .into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("A: requested 3, available 1"), "{}", status.message());
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            (INVENTORY_UNAVAILABLE, ERROR_DOMAIN)
        );
        let raw = tonic_types::pb::Status::decode(status.details()).unwrap();
        let any =
            raw.details.iter().find(|a| a.type_url == INVENTORY_UNAVAILABLE_TYPE_URL).unwrap();
        let typed = pb::InventoryUnavailable::decode(any.value.as_slice()).unwrap();
        assert_eq!(typed.items[0].requested_quantity, 3);
        assert_eq!(typed.items[0].available_quantity, 1);
    }
}
