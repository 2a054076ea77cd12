//! The inventory commands: build the request, call `inventory.v1.InventoryService` with the
//! deadline, print the answer.

use std::io::{self, Write};
use std::time::Duration;

use pb::inventory_service_client::InventoryServiceClient;
use proto::inventory::v1 as pb;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::cli::{
    AdjustArgs, GlobalArgs, ItemSpec, ListArgs, LowArgs, PolicyArgs, ReservationCommand,
    ReserveArgs, SetArgs, StockCommand,
};
use crate::client;
use crate::error::CliError;
use crate::event_stream::EventStream;
use crate::json;
use crate::output::{self, Output};

/// A connection to the inventory service plus how to call it and print the answers.
#[derive(Debug, Clone)]
pub struct Inventory {
    client: InventoryServiceClient<Channel>,
    /// `Bearer <token>` for every call (marked sensitive: its Debug shows no token).
    authorization: Option<MetadataValue<Ascii>>,
    url: String,
    deadline: Duration,
    out: Output,
}

impl Inventory {
    /// A client for `--inventory-url`; it connects on the first call, within the deadline.
    pub fn new(global: &GlobalArgs) -> Result<Self, CliError> {
        let url = client::normalize_url(&global.inventory_url);
        let deadline = global.timeout();
        let channel = client::channel("inventory-url", &url, &global.tls()?, deadline)?;
        let authorization = client::bearer(global)?;
        Ok(Self {
            client: InventoryServiceClient::new(channel),
            authorization,
            url,
            deadline,
            out: Output::new(global.json),
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        self.authorized(client::request(message, self.deadline))
    }

    /// `request` with the admin token, if one is given.
    fn authorized<T>(&self, mut request: Request<T>) -> Request<T> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        request
    }

    /// Opens WatchEvents. The stream lasts as long as it is read: the deadline bounds
    /// connecting and the server's first answer, not the stream (no `grpc-timeout` is sent).
    pub async fn watch_events(
        &mut self,
        message: pb::WatchEventsRequest,
    ) -> Result<EventStream, CliError> {
        let request = self.authorized(Request::new(message));
        let answer = self.client.watch_events(request).await;
        let stream = answer.map_err(|s| self.rpc_error(s))?.into_inner();
        Ok(EventStream::inventory(stream, &self.url, self.deadline))
    }

    fn rpc_error(&self, status: tonic::Status) -> CliError {
        CliError::rpc(status, &self.url, self.deadline)
    }

    /// Runs a `stock ...` command.
    pub async fn stock(&mut self, command: StockCommand) -> Result<(), CliError> {
        match command {
            StockCommand::Set(args) => self.set(args).await,
            StockCommand::Adjust(args) => self.adjust(args).await,
            StockCommand::Policy(args) => self.policy(args).await,
            StockCommand::Show { sku } => self.show(sku).await,
            StockCommand::List(args) => self.list(args).await,
            StockCommand::Low(args) => self.low(args).await,
            StockCommand::Check { items } => self.check(items).await,
        }
    }

    /// Runs a `reservation ...` command.
    pub async fn reservation(&mut self, command: ReservationCommand) -> Result<(), CliError> {
        match command {
            ReservationCommand::Show(arg) => self.show_reservation(arg.reservation_id).await,
        }
    }

    fn print_item(&self, item: &pb::InventoryItem) -> Result<(), CliError> {
        self.out.emit(|| json::inventory_item(item), || output::item_text(item))
    }

    async fn set(&mut self, args: SetArgs) -> Result<(), CliError> {
        // The upsert replaces the item's product and variant: an operator who only sets a
        // count keeps what the item already has (a new item's product defaults to its SKU).
        let (mut product_id, mut variant_id) = (args.product_id, args.variant_id);
        if product_id.is_none() || variant_id.is_none() {
            let request = self.request(pb::GetInventoryItemRequest { sku: args.sku.clone() });
            match self.client.get_inventory_item(request).await {
                Ok(known) => {
                    let known = known.into_inner();
                    product_id.get_or_insert(known.product_id);
                    if variant_id.is_none() {
                        variant_id = known.variant_id;
                    }
                }
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => return Err(self.rpc_error(status)),
            }
        }
        let request = self.request(pb::UpsertInventoryItemRequest {
            product_id: product_id.unwrap_or_else(|| args.sku.clone()),
            sku: args.sku,
            variant_id,
            warehouse_id: args.warehouse.unwrap_or_default(),
            on_hand: args.on_hand,
        });
        let item = self.client.upsert_inventory_item(request).await;
        let item = item.map_err(|s| self.rpc_error(s))?.into_inner();
        self.print_item(&item)
    }

    async fn adjust(&mut self, args: AdjustArgs) -> Result<(), CliError> {
        let request = self.request(pb::AdjustStockRequest {
            sku: args.sku,
            warehouse_id: args.warehouse.unwrap_or_default(),
            delta: args.delta,
            reason: args.reason,
            idempotency_key: args.idempotency_key.unwrap_or_default(),
        });
        let item = self.client.adjust_stock(request).await;
        let item = item.map_err(|s| self.rpc_error(s))?.into_inner();
        self.print_item(&item)
    }

    /// SetStockPolicy (an admin call, as adjust): a value not given is sent unset, so the
    /// server keeps it.
    async fn policy(&mut self, args: PolicyArgs) -> Result<(), CliError> {
        let request = self.request(pb::SetStockPolicyRequest {
            sku: args.sku,
            warehouse_id: args.warehouse.unwrap_or_default(),
            safety_stock: args.safety_stock,
            low_stock_threshold: args.low_stock_threshold,
            backorder_limit: args.backorder_limit,
            expected_restock_date: args.restock_date,
            reason: args.reason,
        });
        let reply = self.client.set_stock_policy(request).await;
        let reply = reply.map_err(|s| self.rpc_error(s))?.into_inner();
        self.print_item(&reply.item.unwrap_or_default())
    }

    async fn show(&mut self, sku: String) -> Result<(), CliError> {
        let request = self.request(pb::GetInventoryItemRequest { sku });
        let item = self.client.get_inventory_item(request).await;
        let item = item.map_err(|s| self.rpc_error(s))?.into_inner();
        self.print_item(&item)
    }

    /// One page, or with `--all` every page concatenated (then `nextPageToken` is empty).
    async fn list(&mut self, args: ListArgs) -> Result<(), CliError> {
        let mut all = pb::ListInventoryItemsResponse::default();
        let mut page_token = String::new();
        loop {
            let request = self.request(pb::ListInventoryItemsRequest {
                page_size: args.page_size.unwrap_or(0),
                page_token,
            });
            let page = self.client.list_inventory_items(request).await;
            let page = page.map_err(|s| self.rpc_error(s))?.into_inner();
            all.items.extend(page.items);
            all.next_page_token = page.next_page_token;
            if !args.all || all.next_page_token.is_empty() {
                break;
            }
            page_token = std::mem::take(&mut all.next_page_token);
        }
        self.out.emit(|| json::list_response(&all), || output::items_text(&all.items))?;
        if !self.out.is_json() && !all.next_page_token.is_empty() {
            let _ = writeln!(io::stderr(), "(more items: add --all to list every page)");
        }
        Ok(())
    }

    /// Every page of ListLowStock concatenated (`nextPageToken` is then empty).
    async fn low(&mut self, args: LowArgs) -> Result<(), CliError> {
        let mut all = pb::ListLowStockResponse::default();
        let warehouse_id = args.warehouse.unwrap_or_default();
        loop {
            let request = self.request(pb::ListLowStockRequest {
                warehouse_id: warehouse_id.clone(),
                page_size: args.page_size.unwrap_or(0),
                page_token: std::mem::take(&mut all.next_page_token),
            });
            let page = self.client.list_low_stock(request).await;
            let page = page.map_err(|s| self.rpc_error(s))?.into_inner();
            all.rows.extend(page.rows);
            all.next_page_token = page.next_page_token;
            if all.next_page_token.is_empty() {
                break;
            }
        }
        self.out.emit(|| json::low_stock_response(&all), || output::low_stock_text(&all.rows))
    }

    async fn check(&mut self, items: Vec<ItemSpec>) -> Result<(), CliError> {
        let request = self.request(pb::CheckInventoryAvailabilityRequest {
            items: items
                .into_iter()
                .map(|i| pb::AvailabilityCheckItem {
                    sku: i.sku,
                    quantity: i.quantity,
                    ..Default::default()
                })
                .collect(),
        });
        let answer = self.client.check_inventory_availability(request).await;
        let answer = answer.map_err(|s| self.rpc_error(s))?.into_inner();
        self.out
            .emit(|| json::availability_response(&answer), || output::availability_text(&answer))
    }

    /// Runs `reserve`.
    pub async fn reserve(&mut self, args: ReserveArgs) -> Result<(), CliError> {
        let request = self.request(pb::ReserveInventoryRequest {
            items: args
                .items
                .into_iter()
                .map(|i| pb::ReservationItem {
                    inventory_item_id: i.sku,
                    warehouse_id: i.warehouse.unwrap_or_default(),
                    quantity: i.quantity,
                })
                .collect(),
            reference_id: args.reference_id,
            reference_type: args.reference_type,
            expiration_minutes: args.minutes.unwrap_or(0),
        });
        let answer = self.client.reserve_inventory(request).await;
        self.settled(answer)
    }

    /// Runs `commit`.
    pub async fn commit(&mut self, reservation_id: String) -> Result<(), CliError> {
        let request = self.request(pb::CommitReservationRequest { reservation_id });
        let answer = self.client.commit_reservation(request).await;
        self.settled(answer)
    }

    /// Runs `verify-ledger`: prints each kind's count; any inconsistency is exit code 2.
    pub async fn verify_ledger(&mut self) -> Result<(), CliError> {
        let request = self.request(pb::VerifyLedgerRequest {});
        let answer = self.client.verify_ledger(request).await;
        let report = answer.map_err(|s| self.rpc_error(s))?.into_inner();
        self.out.emit(
            || {
                serde_json::json!({
                    "inconsistencies": report.inconsistencies.iter().map(|c| serde_json::json!({
                        "kind": c.kind, "count": c.count.to_string(),
                    })).collect::<Vec<_>>(),
                    "elapsedMs": report.elapsed_ms.to_string(),
                })
            },
            || {
                let mut text: String = report
                    .inconsistencies
                    .iter()
                    .map(|c| format!("{:<22} {}\n", c.kind, c.count))
                    .collect();
                text.push_str(&format!("verified in {} ms\n", report.elapsed_ms));
                text
            },
        )?;
        let total: i64 = report.inconsistencies.iter().map(|c| c.count).sum();
        if total > 0 {
            return Err(CliError::Usage(format!(
                "the ledger has {total} inconsistencies (see the runbook, InventoryInconsistency)"
            )));
        }
        Ok(())
    }

    /// Runs `cancel`.
    pub async fn cancel(&mut self, reservation_id: String) -> Result<(), CliError> {
        let request = self.request(pb::CancelReservationRequest::by_id(reservation_id));
        let answer = self.client.cancel_reservation(request).await;
        self.settled(answer)
    }

    /// Prints a reserve/commit/cancel answer; `success=false` becomes [`CliError::Refused`]
    /// (with `--json` the answer is printed first, so scripts still get it).
    fn settled(
        &self,
        answer: Result<tonic::Response<pb::ReservationResponse>, tonic::Status>,
    ) -> Result<(), CliError> {
        let answer = answer.map_err(|s| self.rpc_error(s))?.into_inner();
        if answer.success {
            self.out.emit(
                || json::reservation_response(&answer),
                || output::reservation_response_text(&answer),
            )
        } else {
            if self.out.is_json() {
                self.out.emit(|| json::reservation_response(&answer), String::new)?;
            }
            Err(CliError::Refused(answer.message))
        }
    }

    async fn show_reservation(&mut self, reservation_id: String) -> Result<(), CliError> {
        let request = self.request(pb::GetReservationRequest::by_id(reservation_id));
        let r = self.client.get_reservation(request).await;
        let r = r.map_err(|s| self.rpc_error(s))?.into_inner();
        self.out.emit(|| json::reservation(&r), || output::reservation_text(&r))
    }
}
