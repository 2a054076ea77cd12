//! The inventory service client: check, reserve, commit, cancel and read a hold, each counted
//! and timed.

use std::future::Future;
use std::time::Instant;

use proto::inventory::v1::{self as pb, inventory_service_client::InventoryServiceClient};
use tonic::{Code, Response, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

use super::{PeerChannel, PeerError, request, retrying, with_deadline};
use crate::domain::pricing::SkuDemand;
use crate::domain::returns::RestockLine;
use crate::domain::{Backordered, OrderId};
use crate::metrics::{self, InventoryOutcome};
use crate::settings::CallPolicy;

const PEER: &str = "inventory";
/// `reference_type` of every hold the order server takes; `reference_id` is the order id.
pub const REFERENCE_TYPE: &str = "ORDER";
/// `google.rpc.ErrorInfo.domain` of the inventory's errors.
pub const ERROR_DOMAIN: &str = "inventory.v1";
/// ErrorInfo reason: the reference already holds a different request (ALREADY_EXISTS).
pub const REFERENCE_IN_USE: &str = "RESERVATION_REFERENCE_IN_USE";
/// ErrorInfo reason: the hold or reference belongs to another client identity
/// (PERMISSION_DENIED).
pub const OWNED_BY_ANOTHER_CALLER: &str = "HOLD_OWNED_BY_ANOTHER_CALLER";

/// Availability of one SKU as the inventory reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub sku: String,
    pub available: i32,
    pub is_available: bool,
}

/// What a reserve call achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveReply {
    /// The order's hold (new, or the one it already had), and its units on backorder.
    Held(Uuid, Vec<Backordered>),
    /// Not enough stock; nothing held. The message names each short SKU; `lines` gives, per
    /// short SKU, what was asked and what was left.
    Short { message: String, lines: Vec<ShortLine> },
}

/// One SKU a refused reserve could not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortLine {
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}

/// What a commit or cancel call achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleReply {
    pub success: bool,
    pub message: String,
    /// The hold's status after the call (`ReservationResponse.status`; empty from an
    /// inventory older than that field).
    pub status: String,
    /// The hold the call settled, as the inventory names it (None when it sent no UUID).
    pub reservation_id: Option<Uuid>,
}

impl From<pb::ReservationResponse> for SettleReply {
    fn from(reply: pb::ReservationResponse) -> Self {
        Self {
            success: reply.success,
            reservation_id: Uuid::parse_str(&reply.reservation_id).ok(),
            message: reply.message,
            status: reply.status,
        }
    }
}

/// A hold's status, as a refused commit or cancel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Pending,
    Committed,
    Cancelled,
    Expired,
    /// Not reported, or a status this client does not know.
    Unknown,
}

impl SettleReply {
    /// The hold's status after the call: the `status` field, or, from an inventory that does
    /// not send it, what its message says ("cannot commit a reservation that is cancelled").
    pub fn hold_status(&self) -> HoldStatus {
        match self.status.as_str() {
            "PENDING" => HoldStatus::Pending,
            "COMMITTED" => HoldStatus::Committed,
            "CANCELLED" => HoldStatus::Cancelled,
            "EXPIRED" => HoldStatus::Expired,
            "" => {
                let message = self.message.to_lowercase();
                // Expired first: an expired hold is the ordinary case and must never be taken
                // for a foreign settlement.
                if message.contains("expired") {
                    HoldStatus::Expired
                } else if message.contains("cancelled") {
                    HoldStatus::Cancelled
                } else if message.contains("committed") {
                    HoldStatus::Committed
                } else {
                    HoldStatus::Unknown
                }
            }
            _ => HoldStatus::Unknown,
        }
    }
}

/// What a failed ReserveInventory means for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveFailure {
    /// The inventory refused the items themselves (unknown SKU, malformed request): retrying
    /// the same request cannot help.
    ItemsRefused,
    /// Another caller holds the order's reference (`ORDER`, order id): a different request
    /// under it, or a hold that belongs to another client identity.
    ReferenceTaken,
    /// Anything else, including a caller policy that does not allow this service
    /// (`CALLER_NOT_ALLOWED`, a deployment mistake that a person fixes): try again later.
    Retry,
}

/// The one rule for a failed reserve.
pub fn classify_reserve_failure(status: &Status) -> ReserveFailure {
    let reason = status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
        .map(|info| info.reason);
    match (status.code(), reason.as_deref()) {
        (Code::NotFound | Code::InvalidArgument, _) => ReserveFailure::ItemsRefused,
        (Code::AlreadyExists, Some(REFERENCE_IN_USE))
        | (Code::PermissionDenied, Some(OWNED_BY_ANOTHER_CALLER)) => ReserveFailure::ReferenceTaken,
        _ => ReserveFailure::Retry,
    }
}

/// What a failed ReturnStock means for the return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnFailure {
    /// The inventory refuses this return for good (no such hold, not committed, more than
    /// committed, the key used for another return, another identity's hold, a malformed or
    /// unserved request): a person must look.
    Refused,
    /// Anything else, including a caller policy that does not allow this service
    /// (`CALLER_NOT_ALLOWED`, fixed by a person, retried meanwhile): try again later.
    Retry,
}

/// The one rule for a failed ReturnStock.
pub fn classify_return_failure(status: &Status) -> ReturnFailure {
    let reason = status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
        .map(|info| info.reason);
    match (status.code(), reason.as_deref()) {
        (
            Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::InvalidArgument
            | Code::OutOfRange
            | Code::Unimplemented,
            _,
        )
        | (Code::PermissionDenied, Some(OWNED_BY_ANOTHER_CALLER)) => ReturnFailure::Refused,
        _ => ReturnFailure::Retry,
    }
}

/// What a ReturnStock call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnStockReply {
    /// The inventory's id of the return.
    pub return_id: String,
    /// The key had been used by this same request before: nothing was applied now.
    pub replayed: bool,
}

/// The idempotency key of the ReturnStock of order return `return_id`.
pub fn return_stock_key(return_id: Uuid) -> String {
    format!("order-return:{return_id}")
}

/// A hold as the inventory reports it (what the reconciler compares orders with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldView {
    /// `PENDING`, `COMMITTED`, `CANCELLED` or `EXPIRED`.
    pub status: String,
    pub reference_type: String,
    pub reference_id: String,
}

/// Client of `inventory.v1.InventoryService`.
#[derive(Debug, Clone)]
pub struct InventoryPeer {
    client: InventoryServiceClient<PeerChannel>,
    policy: CallPolicy,
}

impl InventoryPeer {
    /// A client over `channel`.
    pub fn new(channel: PeerChannel, policy: CallPolicy) -> Self {
        Self { client: InventoryServiceClient::new(channel), policy }
    }

    /// Availability of each SKU of `demand`, in the same order.
    pub async fn check(&self, demand: &[SkuDemand]) -> Result<Vec<Availability>, PeerError> {
        let msg = pb::CheckInventoryAvailabilityRequest {
            items: demand
                .iter()
                .map(|d| pb::AvailabilityCheckItem {
                    product_id: d.product_id.clone(),
                    variant_id: None,
                    sku: d.sku.clone(),
                    quantity: d.quantity,
                })
                .collect(),
        };
        let reply = retrying(self.policy, PEER, "check", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt(
                "check",
                async move { client.check_inventory_availability(req).await },
                |r| !r.all_available,
            )
        })
        .await?;
        Ok(reply
            .items
            .into_iter()
            .map(|i| Availability {
                sku: i.sku,
                available: i.available_quantity.max(0),
                is_available: i.is_available,
            })
            .collect())
    }

    /// Holds `demand` for the order, keyed by `(ORDER, order id)`: repeating it returns the
    /// same hold while it is pending or committed.
    pub async fn reserve(
        &self,
        order: OrderId,
        demand: &[SkuDemand],
        hold_minutes: u32,
    ) -> Result<ReserveReply, PeerError> {
        let msg = pb::ReserveInventoryRequest {
            items: demand
                .iter()
                .map(|d| pb::ReservationItem {
                    inventory_item_id: d.sku.clone(),
                    warehouse_id: String::new(),
                    quantity: d.quantity,
                })
                .collect(),
            reference_id: order.to_string(),
            reference_type: REFERENCE_TYPE.to_owned(),
            expiration_minutes: i32::try_from(hold_minutes).unwrap_or(i32::MAX),
        };
        let reply = retrying(self.policy, PEER, "reserve", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt("reserve", async move { client.reserve_inventory(req).await }, |r| {
                !r.success
            })
        })
        .await?;
        if !reply.success {
            let lines = reply
                .shortages
                .into_iter()
                .map(|s| ShortLine {
                    sku: s.sku,
                    requested: s.requested_quantity,
                    available: s.available_quantity,
                })
                .collect();
            return Ok(ReserveReply::Short { message: reply.message, lines });
        }
        let id = Uuid::parse_str(&reply.reservation_id).map_err(|_| PeerError {
            peer: PEER,
            call: "reserve",
            status: Status::internal(format!(
                "reservation id {:?} is not a UUID",
                reply.reservation_id
            )),
        })?;
        // Per SKU: the order asks for any warehouse, so a SKU may be backordered in several.
        let mut backordered: Vec<Backordered> = Vec::new();
        for line in reply.backordered {
            match backordered.iter_mut().find(|b| b.sku == line.sku) {
                Some(b) => {
                    b.quantity = b.quantity.saturating_add(line.quantity);
                    if b.expected_restock_date.is_empty()
                        || (!line.expected_restock_date.is_empty()
                            && line.expected_restock_date < b.expected_restock_date)
                    {
                        b.expected_restock_date = line.expected_restock_date;
                    }
                }
                None => backordered.push(Backordered {
                    sku: line.sku,
                    quantity: line.quantity,
                    expected_restock_date: line.expected_restock_date,
                }),
            }
        }
        Ok(ReserveReply::Held(id, backordered))
    }

    /// Commits the hold (repeating a commit is success).
    pub async fn commit(&self, reservation: Uuid) -> Result<SettleReply, PeerError> {
        let msg = pb::CommitReservationRequest { reservation_id: reservation.to_string() };
        let reply = retrying(self.policy, PEER, "commit", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt("commit", async move { client.commit_reservation(req).await }, |r| {
                !r.success
            })
        })
        .await?;
        Ok(SettleReply::from(reply))
    }

    /// Cancels the hold (repeating a cancel, or cancelling an expired hold, is success).
    pub async fn cancel(&self, reservation: Uuid) -> Result<SettleReply, PeerError> {
        self.cancel_hold(pb::CancelReservationRequest::by_id(reservation.to_string())).await
    }

    /// Cancels the hold the order's reference `(ORDER, order id)` names, taking nothing to
    /// find it: its live hold, else its latest settled one (so a repeat answers like a cancel
    /// by id). NOT_FOUND when the reference never held anything.
    pub async fn cancel_by_reference(&self, order: OrderId) -> Result<SettleReply, PeerError> {
        self.cancel_hold(pb::CancelReservationRequest::by_reference(
            REFERENCE_TYPE,
            order.to_string(),
        ))
        .await
    }

    /// One CancelReservation, however it names the hold, with the client's retries.
    async fn cancel_hold(
        &self,
        msg: pb::CancelReservationRequest,
    ) -> Result<SettleReply, PeerError> {
        let reply = retrying(self.policy, PEER, "cancel", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt("cancel", async move { client.cancel_reservation(req).await }, |r| {
                !r.success
            })
        })
        .await?;
        Ok(SettleReply::from(reply))
    }

    /// Puts `lines` of the order's committed hold back (the recorded hold `reservation`, else
    /// the order's reference), once per `key`: a retry answers the same return, applied once.
    pub async fn return_stock(
        &self,
        order: OrderId,
        reservation: Option<Uuid>,
        key: String,
        lines: &[RestockLine],
        reason: &str,
    ) -> Result<ReturnStockReply, PeerError> {
        let mut msg = match reservation {
            Some(id) => pb::ReturnStockRequest::by_id(id.to_string()),
            None => pb::ReturnStockRequest::by_reference(REFERENCE_TYPE, order.to_string()),
        };
        msg.lines = lines
            .iter()
            .map(|l| pb::ReturnLine {
                sku: l.sku.clone(),
                warehouse_id: String::new(),
                quantity: l.quantity,
                do_not_restock: l.do_not_restock,
            })
            .collect();
        msg.idempotency_key = key;
        msg.reason = reason.to_owned();
        let reply = retrying(self.policy, PEER, "return_stock", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt("return_stock", async move { client.return_stock(req).await }, |_| false)
        })
        .await?;
        Ok(ReturnStockReply { return_id: reply.return_id, replayed: reply.replayed })
    }

    /// Reads the hold `reservation`; None when the inventory has no such hold.
    pub async fn get_reservation(&self, reservation: Uuid) -> Result<Option<HoldView>, PeerError> {
        let msg = pb::GetReservationRequest::by_id(reservation.to_string());
        let result = retrying(self.policy, PEER, "get_reservation", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt(
                "get_reservation",
                async move { client.get_reservation(req).await },
                |_| false,
            )
        })
        .await;
        match result {
            Ok(reply) => Ok(Some(HoldView {
                status: reply.status,
                reference_type: reply.reference_type,
                reference_id: reply.reference_id,
            })),
            Err(err) if err.peer_code() == tonic::Code::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// One attempt with its deadline, timed and counted by outcome.
    async fn attempt<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = Result<Response<T>, Status>>,
        refused: impl Fn(&T) -> bool,
    ) -> Result<T, Status> {
        let started = Instant::now();
        let result = with_deadline(self.policy.timeout, fut).await;
        let outcome = match &result {
            Ok(reply) if refused(reply) => InventoryOutcome::Refused,
            Ok(_) => InventoryOutcome::Ok,
            Err(status) => InventoryOutcome::Error(status.code()),
        };
        metrics::observe_inventory(call, outcome, started.elapsed());
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    fn with_reason(code: Code, domain: &str, reason: &str) -> Status {
        let details =
            ErrorDetails::with_error_info(reason, domain, std::collections::HashMap::new());
        Status::with_error_details(code, "refused", details)
    }

    #[test]
    fn reserve_failures() {
        use ReserveFailure::*;
        let cases = [
            (Status::not_found("no such item"), ItemsRefused),
            (Status::invalid_argument("items[0].quantity"), ItemsRefused),
            (with_reason(Code::AlreadyExists, ERROR_DOMAIN, REFERENCE_IN_USE), ReferenceTaken),
            (
                with_reason(Code::PermissionDenied, ERROR_DOMAIN, OWNED_BY_ANOTHER_CALLER),
                ReferenceTaken,
            ),
            // A caller policy that does not allow this service: fixed by a person, retried.
            (with_reason(Code::PermissionDenied, ERROR_DOMAIN, "CALLER_NOT_ALLOWED"), Retry),
            (Status::permission_denied("no"), Retry),
            (Status::unauthenticated("no"), Retry),
            // Without the reason that says so, ALREADY_EXISTS proves nothing about who holds it.
            (Status::already_exists("exists"), Retry),
            (with_reason(Code::AlreadyExists, "elsewhere.v1", REFERENCE_IN_USE), Retry),
            (with_reason(Code::AlreadyExists, ERROR_DOMAIN, OWNED_BY_ANOTHER_CALLER), Retry),
            (Status::unavailable("down"), Retry),
            (Status::internal("bug"), Retry),
        ];
        for (status, expected) in cases {
            assert_eq!(classify_reserve_failure(&status), expected, "{status:?}");
        }
    }

    #[test]
    fn return_failures() {
        use ReturnFailure::*;
        let cases = [
            (Status::not_found("no hold"), Refused),
            (Status::failed_precondition("not committed"), Refused),
            (with_reason(Code::AlreadyExists, ERROR_DOMAIN, "RETURN_KEY_IN_USE"), Refused),
            (with_reason(Code::PermissionDenied, ERROR_DOMAIN, OWNED_BY_ANOTHER_CALLER), Refused),
            (Status::unimplemented("older inventory"), Refused),
            (Status::invalid_argument("lines[0].sku"), Refused),
            // A caller policy that does not allow this service: fixed by a person, retried.
            (with_reason(Code::PermissionDenied, ERROR_DOMAIN, "CALLER_NOT_ALLOWED"), Retry),
            (Status::permission_denied("no"), Retry),
            (Status::unavailable("down"), Retry),
            (Status::deadline_exceeded("slow"), Retry),
            (Status::aborted("serialization"), Retry),
            (Status::resource_exhausted("busy"), Retry),
            (Status::unknown("?"), Retry),
            (Status::internal("bug"), Retry),
        ];
        for (status, expected) in cases {
            assert_eq!(classify_return_failure(&status), expected, "{status:?}");
        }
    }

    #[test]
    fn hold_status_from_the_field_or_an_older_inventory_s_message() {
        let reply = |status: &str, message: &str| SettleReply {
            success: false,
            message: message.to_owned(),
            status: status.to_owned(),
            reservation_id: None,
        };
        assert_eq!(reply("COMMITTED", "").hold_status(), HoldStatus::Committed);
        assert_eq!(reply("CANCELLED", "").hold_status(), HoldStatus::Cancelled);
        assert_eq!(reply("EXPIRED", "").hold_status(), HoldStatus::Expired);
        assert_eq!(reply("PENDING", "").hold_status(), HoldStatus::Pending);
        assert_eq!(reply("SHIPPED", "").hold_status(), HoldStatus::Unknown);
        // The field wins over the message.
        assert_eq!(
            reply("EXPIRED", "cannot commit a reservation that is cancelled").hold_status(),
            HoldStatus::Expired
        );
        let old = |message: &str| reply("", message).hold_status();
        assert_eq!(old("cannot commit a reservation that is cancelled"), HoldStatus::Cancelled);
        assert_eq!(old("cannot commit a reservation that is expired"), HoldStatus::Expired);
        assert_eq!(old("cannot cancel a reservation that is committed"), HoldStatus::Committed);
        assert_eq!(old("no"), HoldStatus::Unknown);
    }
}
