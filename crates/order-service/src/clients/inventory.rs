//! The inventory service client: check, reserve, commit, cancel and read a hold, each counted
//! and timed.

use std::future::Future;
use std::time::Instant;

use common::proto::inventory::v1::{self as pb, inventory_service_client::InventoryServiceClient};
use tonic::transport::Channel;
use tonic::{Response, Status};
use uuid::Uuid;

use super::{CallPolicy, PeerError, request, retrying, with_deadline};
use crate::domain::OrderId;
use crate::domain::pricing::SkuDemand;
use crate::metrics::{self, InventoryOutcome};

const PEER: &str = "inventory";
/// `reference_type` of every hold the order server takes; `reference_id` is the order id.
pub const REFERENCE_TYPE: &str = "ORDER";

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
    /// The order's hold (new, or the one it already had).
    Held(Uuid),
    /// Not enough stock; nothing held. The message names each short SKU.
    Short(String),
}

/// What a commit or cancel call achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleReply {
    pub success: bool,
    pub message: String,
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
    client: InventoryServiceClient<Channel>,
    policy: CallPolicy,
}

impl InventoryPeer {
    /// A client over `channel`.
    pub fn new(channel: Channel, policy: CallPolicy) -> Self {
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
            return Ok(ReserveReply::Short(reply.message));
        }
        let id = Uuid::parse_str(&reply.reservation_id).map_err(|_| PeerError {
            peer: PEER,
            call: "reserve",
            status: Status::internal(format!(
                "reservation id {:?} is not a UUID",
                reply.reservation_id
            )),
        })?;
        Ok(ReserveReply::Held(id))
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
        Ok(SettleReply { success: reply.success, message: reply.message })
    }

    /// Cancels the hold (repeating a cancel, or cancelling an expired hold, is success).
    pub async fn cancel(&self, reservation: Uuid) -> Result<SettleReply, PeerError> {
        let msg = pb::CancelReservationRequest { reservation_id: reservation.to_string() };
        let reply = retrying(self.policy, PEER, "cancel", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            self.attempt("cancel", async move { client.cancel_reservation(req).await }, |r| {
                !r.success
            })
        })
        .await?;
        Ok(SettleReply { success: reply.success, message: reply.message })
    }

    /// Reads the hold `reservation`; None when the inventory has no such hold.
    pub async fn get_reservation(&self, reservation: Uuid) -> Result<Option<HoldView>, PeerError> {
        let msg = pb::GetReservationRequest { reservation_id: reservation.to_string() };
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
            Err(err) if err.code() == tonic::Code::NotFound => Ok(None),
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
