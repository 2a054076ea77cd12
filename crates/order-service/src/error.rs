//! The one error type of the order server and what its callers are told (through the one
//! mapping of `proto::status`).

use common::db::DbError;
use proto::order::v1 as pb;
use proto::status::{CallError, Details, describe};
use tonic::{Code, Status};

use crate::clients::PeerError;
use crate::domain::pricing::PricingError;
use crate::domain::returns::ReturnRefusal;
use crate::domain::{FieldViolation, Shortage};

/// `google.rpc.ErrorInfo.reason` of an order refused for lack of stock.
pub const INVENTORY_UNAVAILABLE: &str = "INVENTORY_UNAVAILABLE";
/// ErrorInfo reason: CancelOrder of a CONFIRMED order; undo it with ReturnOrder.
pub const ORDER_CONFIRMED_USE_RETURN: &str = "ORDER_CONFIRMED_USE_RETURN";
/// ErrorInfo reason: ReturnOrder of an order that is not (or not yet fully) CONFIRMED.
pub const ORDER_NOT_RETURNABLE: &str = "ORDER_NOT_RETURNABLE";
/// ErrorInfo reason: ReturnOrder asks more units than bought minus earlier returns, or
/// everything left when nothing is.
pub const RETURN_EXCEEDS_ORDER: &str = "RETURN_EXCEEDS_ORDER";
/// ErrorInfo reason: a ReturnOrder key already names a different return of the order.
pub const RETURN_KEY_IN_USE: &str = "RETURN_KEY_IN_USE";
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
    /// The current state forbids the request for a reason a client can act on: the
    /// FAILED_PRECONDITION carries an `ErrorInfo` with `reason` (and `field`, when one request
    /// field is at fault, in its metadata).
    #[error("{message}")]
    Refused { reason: &'static str, field: Option<String>, message: String },
    /// A ReturnOrder idempotency key already names a different return (ALREADY_EXISTS, with
    /// `ErrorInfo` reason [`RETURN_KEY_IN_USE`] naming `idempotency_key`).
    #[error("idempotency_key was already used on this order for a different return")]
    ReturnKeyInUse,
    /// The caller has not proven who it is (or for which user it acts).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Not enough stock for the order; nothing was written.
    #[error("insufficient stock: {}", describe_shortages(.0))]
    InventoryUnavailable(Vec<Shortage>),
    /// A concurrent call conflicted with this one; a retry gets a definite answer.
    #[error("{0}")]
    Aborted(String),
    /// A peer service failed the call before anything was written (its answer is decided by
    /// the peer error itself: UNAVAILABLE when worth a retry).
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The database failed the call; what that means is decided once, in `common::db`.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A bug or a broken invariant; details are logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
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
        Self::Database(err.into())
    }
}

/// A catalog answer the order cannot be priced from, as the caller sees it.
impl From<PricingError> for OrderError {
    fn from(err: PricingError) -> Self {
        match err {
            PricingError::UnknownProduct { product_id, .. } => {
                Self::NotFound { what: "product", key: product_id }
            }
            PricingError::UnknownVariant { product_id, variant_id, .. } => Self::NotFound {
                what: "product variant",
                key: format!("{product_id} variant {variant_id}"),
            },
            PricingError::CurrencyMismatch { product_id, product_currency, order_currency } => {
                Self::FailedPrecondition(format!(
                    "product {product_id} is sold in {product_currency}, not {order_currency}"
                ))
            }
            PricingError::BadCatalogEntry { product_id, problem } => Self::FailedPrecondition(
                format!("product {product_id} cannot be sold: the catalog entry {problem}"),
            ),
            PricingError::Overflow => {
                Self::invalid("items", "the order total is larger than this service can charge")
            }
        }
    }
}

/// A return that cannot be planned, as the caller sees it: nothing was written.
impl From<ReturnRefusal> for OrderError {
    fn from(refusal: ReturnRefusal) -> Self {
        match refusal {
            ReturnRefusal::UnknownSku { index, sku } => Self::invalid(
                format!("items[{index}].sku"),
                format!("{sku:?} is not an item of this order"),
            ),
            ReturnRefusal::TooMany { index, sku, bought, returned, asked } => {
                let field = format!("items[{index}].quantity");
                Self::Refused {
                    reason: RETURN_EXCEEDS_ORDER,
                    message: format!(
                        "{field}: {asked} units of {sku} asked, but {bought} were bought and \
                         {returned} already returned"
                    ),
                    field: Some(field),
                }
            }
            ReturnRefusal::NothingLeft => Self::Refused {
                reason: RETURN_EXCEEDS_ORDER,
                field: Some("items".to_owned()),
                message: "items: nothing of this order is left to return".to_owned(),
            },
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
}

impl CallError for OrderError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition(_) | Self::InventoryUnavailable(_) | Self::Refused { .. } => {
                Code::FailedPrecondition
            }
            Self::ReturnKeyInUse => Code::AlreadyExists,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Aborted(_) => Code::Aborted,
            Self::Peer(peer) => peer.code(),
            Self::Database(db) => db.code(),
            Self::Internal(_) => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Peer(peer) => peer.public_message(),
            Self::Database(db) => db.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::InvalidArgument(violations) => Details::bad_request(violations),
            Self::NotFound { what, key } => Details::resource(what, key),
            Self::InventoryUnavailable(shortages) => inventory_unavailable(shortages),
            Self::Refused { reason, field, .. } => {
                Details::reason(reason, ERROR_DOMAIN, field.as_deref().map(|f| ("field", f)))
            }
            Self::ReturnKeyInUse => {
                Details::reason(RETURN_KEY_IN_USE, ERROR_DOMAIN, [("field", "idempotency_key")])
            }
            _ => Details::default(),
        }
    }

    fn log(&self) {
        match self {
            Self::Peer(peer) => peer.log(),
            Self::Database(db) => db.log(),
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            _ => {}
        }
    }
}

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Self {
        proto::status::status(&err)
    }
}

/// An `ErrorInfo` naming the short SKUs, and the typed `order.v1.InventoryUnavailable` detail
/// with each short item's numbers.
fn inventory_unavailable(shortages: &[Shortage]) -> Details {
    let skus: Vec<&str> = shortages.iter().map(|s| s.sku.as_str()).collect();
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
    Details::reason(INVENTORY_UNAVAILABLE, ERROR_DOMAIN, [("skus", skus.join(",").as_str())])
        .with_typed(INVENTORY_UNAVAILABLE_TYPE_URL, &typed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message as _;
    use tonic_types::StatusExt as _;

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
