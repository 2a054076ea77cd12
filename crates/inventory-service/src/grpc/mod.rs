//! The `inventory.v1.InventoryService` handlers: parse, call the store, answer, count.

pub mod convert;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::auth::AdminGuard;
use common::events::{EventStream, WatchRequest, Watchers};
use proto::inventory::v1::{self as pb, inventory_service_server::InventoryService};
use tonic::{Request, Response, Status};

use crate::access::{Access, Authorized};
use crate::domain::{ReservationId, commands::Settle};
use crate::error::InventoryError;
use crate::metrics;
use crate::reconciler;
use crate::store::{ReserveOutcome, Store};
use convert::{HoldName, Limits};

/// The gRPC face of the inventory store.
#[derive(Debug, Clone)]
pub struct InventoryApi {
    store: Store,
    limits: Limits,
    /// Guards the admin RPCs (UpsertInventoryItem, AdjustStock, SetStockPolicy, VerifyLedger);
    /// open by default.
    admin: AdminGuard,
    /// Who may call which RPC, and whose holds; open by default.
    access: Access,
    /// What VerifyLedger counts as a lapsed hold (`RECONCILE_LAPSE_GRACE_MS`).
    lapse_grace: Duration,
    /// WatchEvents' streams; none: the RPC is UNAVAILABLE (a handler set without a relay).
    events: Option<Watchers>,
}

impl InventoryApi {
    /// A handler set over `store`, bounded by `limits`.
    pub fn new(store: Store, limits: Limits) -> Self {
        Self {
            store,
            limits,
            admin: AdminGuard::open(),
            access: Access::open(),
            lapse_grace: Duration::from_secs(60),
            events: None,
        }
    }

    /// The same handlers streaming WatchEvents from `events`.
    pub fn with_events(self, events: Watchers) -> Self {
        Self { events: Some(events), ..self }
    }

    /// The same handlers, VerifyLedger counting holds lapsed for longer than `lapse_grace`.
    pub fn with_lapse_grace(self, lapse_grace: Duration) -> Self {
        Self { lapse_grace, ..self }
    }

    /// The same handlers with the admin RPCs guarded by `admin`.
    pub fn with_admin_guard(self, admin: AdminGuard) -> Self {
        Self { admin, ..self }
    }

    /// The same handlers with callers authorized by `access`.
    pub fn with_access(self, access: Access) -> Self {
        Self { access, ..self }
    }

    /// Lets the caller of `request` call `rpc`, first thing in every handler, so refusals
    /// reveal nothing.
    fn authorize<T>(&self, request: &Request<T>, rpc: &str) -> Result<Authorized, InventoryError> {
        self.access.authorize(rpc, || common::auth::client_names(request))
    }

    /// An admin RPC: the caller policy's permission, then the admin guard.
    fn authorize_admin<T>(&self, request: &Request<T>, rpc: &str) -> Result<Authorized, Status> {
        let caller = self.authorize(request, rpc)?;
        self.admin.check(request)?;
        Ok(caller)
    }

    /// The id of the hold `name` names: as given, or the live hold of the reference (NOT_FOUND
    /// when it has none), after the caller policy allowed the reference type. Whose hold it
    /// is, is checked by the store under the hold's lock, as for an id.
    async fn hold_id(
        &self,
        name: HoldName,
        caller: &Authorized,
    ) -> Result<ReservationId, InventoryError> {
        match name {
            HoldName::Id(id) => Ok(id),
            HoldName::Reference(reference) => {
                caller.check_reference_type(&reference.kind)?;
                self.store.live_hold(&reference).await
            }
        }
    }

    /// Commits or cancels for `caller`, counting the outcome under `counter`.
    async fn settle(
        &self,
        name: Result<HoldName, InventoryError>,
        caller: Result<Authorized, InventoryError>,
        op: fn(ReservationId) -> Settle,
        counter: &prometheus::IntCounterVec,
    ) -> Result<pb::ReservationResponse, InventoryError> {
        let result = async {
            let caller = caller?;
            let op = op(self.hold_id(name?, &caller).await?);
            let caller = caller.hold;
            let outcome = self.store.settle(op, &caller).await?;
            Ok((op, outcome))
        }
        .await;
        let label = match &result {
            Ok((op, outcome)) => metrics::settle_outcome(*op, outcome),
            Err(e) => metrics::error_outcome(e),
        };
        counter.with_label_values(&[label]).inc();
        let (op, outcome) = result?;
        Ok(convert::settle_reply(op, outcome))
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    type WatchEventsStream = EventStream<pb::WatchEventsResponse>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = self.authorize(&request, "WatchEvents")?;
        let pb::WatchEventsRequest { from_position, types, from_now } = request.into_inner();
        let types = caller.check_event_types(types)?;
        let Some(events) = &self.events else {
            return Err(Status::unavailable("this server streams no events"));
        };
        let stream = events
            .open(WatchRequest { from_position, types, from_now }, |event| {
                pb::WatchEventsResponse { event: Some(event) }
            })
            .await?;
        Ok(Response::new(stream))
    }

    async fn check_inventory_availability(
        &self,
        request: Request<pb::CheckInventoryAvailabilityRequest>,
    ) -> Result<Response<pb::InventoryAvailabilityResponse>, Status> {
        let started = Instant::now();
        self.authorize(&request, "CheckInventoryAvailability")?;
        let req = request.into_inner();
        let lines = convert::check_lines(&req, &self.limits)?;
        let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
        let found: HashMap<String, _> =
            self.store.availability(&skus).await?.into_iter().map(|a| (a.sku.clone(), a)).collect();

        let items: Vec<pb::ItemAvailability> = req
            .items
            .into_iter()
            .zip(&lines)
            .map(|(asked, line)| {
                convert::item_availability(asked, line, found.get(line.sku.as_str()))
            })
            .collect();
        let all_available = items.iter().all(|i| i.is_available);
        metrics::CHECK_DURATION
            .with_label_values(&[] as &[&str])
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(pb::InventoryAvailabilityResponse { items, all_available }))
    }

    async fn reserve_inventory(
        &self,
        request: Request<pb::ReserveInventoryRequest>,
    ) -> Result<Response<pb::ReservationResponse>, Status> {
        let result = async {
            let caller = self.authorize(&request, "ReserveInventory")?;
            let cmd = convert::reserve(request.get_ref(), &self.limits, caller.hold.clone())?;
            caller.check_reference_type(&cmd.reference.kind)?;
            self.store.reserve(&cmd).await
        }
        .await;
        let outcome = match &result {
            Ok(outcome) => metrics::reserve_outcome(outcome),
            Err(e) => metrics::error_outcome(e),
        };
        metrics::RESERVATIONS.with_label_values(&[outcome]).inc();
        let outcome = result?;
        // The lines on backorder: read only for a hold that took some, or one found again (a
        // retry answers what the first call answered).
        let backordered = match &outcome {
            ReserveOutcome::ReservedOnBackorder(id) | ReserveOutcome::Existing(id, _) => {
                self.store.backordered(*id).await?
            }
            ReserveOutcome::Reserved(_) | ReserveOutcome::Short(_) => Vec::new(),
        };
        Ok(Response::new(convert::reserve_reply(outcome, backordered)))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::ReservationResponse>, Status> {
        let caller = self.authorize(&request, "CommitReservation");
        let name = convert::reservation_id(&request.get_ref().reservation_id).map(HoldName::Id);
        let reply = self.settle(name, caller, Settle::Commit, &metrics::COMMITS).await?;
        Ok(Response::new(reply))
    }

    async fn cancel_reservation(
        &self,
        request: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::ReservationResponse>, Status> {
        let caller = self.authorize(&request, "CancelReservation");
        let name = convert::cancel_hold(request.get_ref());
        let reply = self.settle(name, caller, Settle::Cancel, &metrics::CANCELLATIONS).await?;
        Ok(Response::new(reply))
    }

    async fn return_stock(
        &self,
        request: Request<pb::ReturnStockRequest>,
    ) -> Result<Response<pb::ReturnStockResponse>, Status> {
        let result = async {
            let caller = self.authorize(&request, "ReturnStock")?;
            let req = request.get_ref();
            let name = convert::return_hold(req);
            let parsed = convert::return_lines(req);
            let reservation = self.hold_id(name?, &caller).await?;
            let cmd = parsed?.into_command(reservation, caller.hold);
            self.store.return_stock(&cmd).await
        }
        .await;
        let outcome = match &result {
            Ok(view) if view.replayed => "replayed",
            Ok(view) => {
                for line in &view.lines {
                    let restocked = if line.restock { "true" } else { "false" };
                    metrics::RETURNED_UNITS
                        .with_label_values(&[restocked])
                        .inc_by(u64::try_from(line.quantity).unwrap_or(0));
                }
                "returned"
            }
            Err(e) => metrics::error_outcome(e),
        };
        metrics::RETURNS.with_label_values(&[outcome]).inc();
        Ok(Response::new(convert::return_reply(result?)))
    }

    async fn upsert_inventory_item(
        &self,
        request: Request<pb::UpsertInventoryItemRequest>,
    ) -> Result<Response<pb::InventoryItem>, Status> {
        self.authorize_admin(&request, "UpsertInventoryItem")?;
        let cmd = convert::upsert(request.get_ref())?;
        Ok(Response::new(convert::item(self.store.upsert(&cmd).await?)))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::InventoryItem>, Status> {
        self.authorize_admin(&request, "AdjustStock")?;
        let cmd = convert::adjust(request.get_ref())?;
        Ok(Response::new(convert::item(self.store.adjust(&cmd).await?)))
    }

    async fn set_stock_policy(
        &self,
        request: Request<pb::SetStockPolicyRequest>,
    ) -> Result<Response<pb::SetStockPolicyResponse>, Status> {
        let caller = self.authorize_admin(&request, "SetStockPolicy")?;
        let cmd = convert::set_policy(request.get_ref(), caller.hold.principal)?;
        let item = convert::item(self.store.set_policy(&cmd).await?);
        Ok(Response::new(pb::SetStockPolicyResponse { item: Some(item) }))
    }

    async fn list_low_stock(
        &self,
        request: Request<pb::ListLowStockRequest>,
    ) -> Result<Response<pb::ListLowStockResponse>, Status> {
        self.authorize(&request, "ListLowStock")?;
        let page = convert::low_stock_page(request.get_ref())?;
        let (rows, more) = self.store.low_stock(&page).await?;
        let next_page_token = match rows.last() {
            Some(last) if more => convert::low_stock_token(&last.sku, &last.level.warehouse_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListLowStockResponse {
            rows: rows.into_iter().map(convert::low_stock_row).collect(),
            next_page_token,
        }))
    }

    async fn verify_ledger(
        &self,
        request: Request<pb::VerifyLedgerRequest>,
    ) -> Result<Response<pb::VerifyLedgerResponse>, Status> {
        self.authorize_admin(&request, "VerifyLedger")?;
        let found = reconciler::verify_full(&self.store, self.lapse_grace).await?;
        tracing::info!(
            total = found.total(),
            elapsed_ms = u64::try_from(found.elapsed.as_millis()).unwrap_or(u64::MAX),
            "ledger verified in full on request"
        );
        Ok(Response::new(pb::VerifyLedgerResponse {
            inconsistencies: found
                .kinds
                .iter()
                .map(|k| pb::InconsistencyCount {
                    kind: k.kind.as_str().to_owned(),
                    count: i64::try_from(k.count).unwrap_or(i64::MAX),
                })
                .collect(),
            elapsed_ms: i64::try_from(found.elapsed.as_millis()).unwrap_or(i64::MAX),
        }))
    }

    async fn get_inventory_item(
        &self,
        request: Request<pb::GetInventoryItemRequest>,
    ) -> Result<Response<pb::InventoryItem>, Status> {
        self.authorize(&request, "GetInventoryItem")?;
        let sku = convert::sku(&request.get_ref().sku)?;
        Ok(Response::new(convert::item(self.store.item(&sku).await?)))
    }

    async fn list_inventory_items(
        &self,
        request: Request<pb::ListInventoryItemsRequest>,
    ) -> Result<Response<pb::ListInventoryItemsResponse>, Status> {
        self.authorize(&request, "ListInventoryItems")?;
        let page = convert::list_page(request.get_ref())?;
        let (items, more) = self.store.list(&page).await?;
        let next_page_token = match items.last() {
            Some(last) if more => convert::page_token(&last.sku),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListInventoryItemsResponse {
            items: items.into_iter().map(convert::item).collect(),
            next_page_token,
        }))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let caller = self.authorize(&request, "GetReservation")?;
        let id = self.hold_id(convert::get_hold(request.get_ref())?, &caller).await?;
        Ok(Response::new(convert::reservation(self.store.reservation(id, &caller.hold).await?)))
    }
}
