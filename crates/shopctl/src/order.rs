//! The order commands: build the request, call `order.v1.OrderService` with the deadline,
//! print the answer.

use std::io::{self, Write};
use std::time::Duration;

use pb::order_service_client::OrderServiceClient;
use proto::order::v1 as pb;
use serde_json::{Value, json};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::cli::{GlobalArgs, OrderCommand, OrderListArgs, PlaceArgs, ResolutionArg, ResolveArgs};
use crate::client;
use crate::error::CliError;
use crate::event_stream::EventStream;
use crate::output::Output;
use crate::table::{Align, Table, key_values};

/// A connection to the order service plus how to call it and print the answers.
#[derive(Debug, Clone)]
pub struct Orders {
    client: OrderServiceClient<Channel>,
    /// `Bearer <token>`, sent with the operator RPCs only.
    authorization: Option<MetadataValue<Ascii>>,
    url: String,
    deadline: Duration,
    out: Output,
}

impl Orders {
    /// A client for `--order-url`; it connects on the first call, within the deadline.
    pub fn new(global: &GlobalArgs) -> Result<Self, CliError> {
        let url = client::normalize_url(&global.order_url);
        let deadline = global.timeout();
        let channel = client::channel("order-url", &url, &global.tls()?, deadline)?;
        Ok(Self {
            client: OrderServiceClient::new(channel),
            authorization: client::bearer(global)?,
            url,
            deadline,
            out: Output::new(global.json),
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        client::request(message, self.deadline)
    }

    /// A request of an operator RPC: with the admin token.
    fn operator_request<T>(&self, message: T) -> Request<T> {
        self.as_operator(self.request(message))
    }

    /// `request` with the admin token, if one is given.
    fn as_operator<T>(&self, mut request: Request<T>) -> Request<T> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        request
    }

    /// Opens WatchEvents (an operator RPC: with the admin token). The stream lasts as long as
    /// it is read: the deadline bounds connecting and the server's first answer, not the
    /// stream (no `grpc-timeout` is sent).
    pub async fn watch_events(
        &mut self,
        message: pb::WatchEventsRequest,
    ) -> Result<EventStream, CliError> {
        let request = self.as_operator(Request::new(message));
        let answer = self.client.watch_events(request).await;
        let stream = answer.map_err(|s| self.rpc_error(s))?.into_inner();
        Ok(EventStream::order(stream, &self.url, self.deadline))
    }

    fn rpc_error(&self, status: tonic::Status) -> CliError {
        CliError::rpc(status, &self.url, self.deadline)
    }

    /// Runs an `order ...` command.
    pub async fn run(&mut self, command: OrderCommand) -> Result<(), CliError> {
        match command {
            OrderCommand::Place(args) => self.place(args).await,
            OrderCommand::Show { order_id } => {
                let request = self.request(pb::GetOrderRequest { order_id });
                let order = self.client.get_order(request).await;
                self.print_order(order)
            }
            OrderCommand::List(args) => self.list(args).await,
            OrderCommand::Return(args) => {
                let request = self.request(crate::returns::return_request(args));
                let answer = self.client.return_order(request).await;
                let ret = answer.map_err(|s| self.rpc_error(s))?.into_inner();
                self.out.emit(
                    || crate::returns::return_json(&ret),
                    || crate::returns::return_text(&ret),
                )
            }
            OrderCommand::Cancel { order_id, reason } => {
                let request = self.request(pb::CancelOrderRequest {
                    order_id,
                    reason: reason.unwrap_or_default(),
                });
                let order = self.client.cancel_order(request).await;
                self.print_order(order)
            }
            OrderCommand::Parked { limit } => {
                let request = self.operator_request(pb::ListParkedOrdersRequest {
                    page_size: limit.unwrap_or(0),
                });
                let answer = self.client.list_parked_orders(request).await;
                let parked = answer.map_err(|s| self.rpc_error(s))?.into_inner();
                self.out.emit(|| parked_json(&parked), || parked_text(&parked.orders))
            }
            OrderCommand::Resolve(args) => self.resolve(args).await,
        }
    }

    async fn resolve(&mut self, args: ResolveArgs) -> Result<(), CliError> {
        let resolution = match args.resolution {
            ResolutionArg::Retry => pb::Resolution::Retry,
            ResolutionArg::RefundedByHand => pb::Resolution::RefundedByHand,
            ResolutionArg::StockSettledByHand => pb::Resolution::StockSettledByHand,
            ResolutionArg::Cancelled => pb::Resolution::Cancelled,
        };
        let request = self.operator_request(pb::ResolveParkedOrderRequest {
            order_id: args.order_id,
            resolution: resolution.into(),
            note: args.note,
        });
        let order = self.client.resolve_parked_order(request).await;
        self.print_order(order)
    }

    fn print_order(
        &self,
        answer: Result<tonic::Response<pb::Order>, tonic::Status>,
    ) -> Result<(), CliError> {
        let order = answer.map_err(|s| self.rpc_error(s))?.into_inner();
        self.out.emit(|| order_json(&order), || order_text(&order))
    }

    async fn place(&mut self, args: PlaceArgs) -> Result<(), CliError> {
        let request = self.request(pb::CreateOrderRequest {
            user_id: args.user,
            items: args
                .items
                .into_iter()
                .map(|i| pb::OrderItemInput {
                    product_id: i.product_id,
                    variant_id: i.variant_id,
                    quantity: i.quantity,
                })
                .collect(),
            currency: args.currency,
            payment_method: args.payment,
            idempotency_key: args.key.unwrap_or_default(),
        });
        let order = self.client.create_order(request).await;
        self.print_order(order)
    }

    async fn list(&mut self, args: OrderListArgs) -> Result<(), CliError> {
        let request = self.request(pb::ListOrdersRequest {
            user_id: args.user,
            page_size: args.page_size.unwrap_or(0),
            page_token: String::new(),
        });
        let page = self.client.list_orders(request).await;
        let page = page.map_err(|s| self.rpc_error(s))?.into_inner();
        self.out.emit(|| list_json(&page), || orders_text(&page.orders))?;
        if !self.out.is_json() && !page.next_page_token.is_empty() {
            let _ = writeln!(io::stderr(), "(more orders: raise --page-size to see them)");
        }
        Ok(())
    }
}

pub use crate::table::money;

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".to_owned() } else { s.to_owned() }
}

/// One order: its state, then its items.
pub fn order_text(o: &pb::Order) -> String {
    let mut out = key_values(&[
        ("id", o.id.clone()),
        ("user", o.user_id.clone()),
        ("status", o.status.clone()),
        ("total", money(o.total_amount_minor, &o.currency)),
        ("payment", or_dash(&o.payment_method)),
        ("payment_status", or_dash(&o.payment_status)),
        ("reservation", or_dash(&o.inventory_reservation_id)),
        ("reason", or_dash(&o.status_reason)),
    ]);
    out.push('\n');
    let mut t = Table::new(&[
        ("PRODUCT", Align::Left),
        ("VARIANT", Align::Left),
        ("SKU", Align::Left),
        ("QTY", Align::Right),
        ("UNIT_PRICE", Align::Right),
    ]);
    for i in &o.items {
        t.row([
            i.product_id.clone(),
            or_dash(i.variant_id.as_deref().unwrap_or_default()),
            or_dash(&i.sku),
            i.quantity.to_string(),
            money(i.unit_price_minor, &o.currency),
        ]);
    }
    out.push_str(&t.to_string());
    out
}

/// One row per order.
pub fn orders_text(orders: &[pb::Order]) -> String {
    if orders.is_empty() {
        return "no orders\n".to_owned();
    }
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("STATUS", Align::Left),
        ("TOTAL", Align::Right),
        ("PAYMENT_STATUS", Align::Left),
        ("RESERVATION", Align::Left),
        ("ITEMS", Align::Left),
        ("REASON", Align::Left),
    ]);
    for o in orders {
        let items: Vec<String> = o
            .items
            .iter()
            .map(|i| match i.variant_id.as_deref() {
                Some(v) if !v.is_empty() => format!("{}={}:{v}", i.product_id, i.quantity),
                _ => format!("{}={}", i.product_id, i.quantity),
            })
            .collect();
        t.row([
            o.id.clone(),
            o.status.clone(),
            money(o.total_amount_minor, &o.currency),
            or_dash(&o.payment_status),
            or_dash(&o.inventory_reservation_id),
            items.join(" "),
            or_dash(&o.status_reason),
        ]);
    }
    t.to_string()
}

/// One row per parked order.
pub fn parked_text(parked: &[pb::ParkedOrder]) -> String {
    if parked.is_empty() {
        return "no parked orders\n".to_owned();
    }
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("STATUS", Align::Left),
        ("PAYMENT_STATUS", Align::Left),
        ("PARKED_AT", Align::Left),
        ("STEP", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("LAST_ERROR", Align::Left),
    ]);
    for p in parked {
        let (id, status, payment) = match &p.order {
            Some(o) => (o.id.clone(), o.status.clone(), or_dash(&o.payment_status)),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        t.row([
            id,
            status,
            payment,
            p.parked_at.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
            p.next_action.clone(),
            p.attempts.to_string(),
            or_dash(&p.last_error),
        ]);
    }
    t.to_string()
}

/// `order.v1.ListParkedOrdersResponse`.
pub fn parked_json(r: &pb::ListParkedOrdersResponse) -> Value {
    let orders: Vec<Value> = r
        .orders
        .iter()
        .map(|p| {
            json!({
                "order": p.order.as_ref().map(order_json),
                "nextAction": p.next_action,
                "lastError": p.last_error,
                "parkedAt": p.parked_at.as_ref().map(ToString::to_string),
                "attempts": p.attempts,
            })
        })
        .collect();
    json!({ "orders": orders })
}

/// `order.v1.OrderItem` in the proto3 JSON mapping (every field printed).
pub fn order_item_json(i: &pb::OrderItem) -> Value {
    json!({
        "productId": i.product_id,
        "variantId": i.variant_id,
        "sku": i.sku,
        "quantity": i.quantity,
        // int64 is a string in the proto3 JSON mapping.
        "unitPriceMinor": i.unit_price_minor.to_string(),
    })
}

/// `order.v1.Order`.
pub fn order_json(o: &pb::Order) -> Value {
    json!({
        "id": o.id,
        "userId": o.user_id,
        "status": o.status,
        "items": o.items.iter().map(order_item_json).collect::<Vec<_>>(),
        "totalAmountMinor": o.total_amount_minor.to_string(),
        "currency": o.currency,
        "paymentMethod": o.payment_method,
        "paymentStatus": o.payment_status,
        "inventoryReservationId": o.inventory_reservation_id,
        "statusReason": o.status_reason,
        "createdAt": o.created_at.as_ref().map(ToString::to_string),
        "updatedAt": o.updated_at.as_ref().map(ToString::to_string),
    })
}

/// `order.v1.ListOrdersResponse`.
pub fn list_json(r: &pb::ListOrdersResponse) -> Value {
    json!({
        "orders": r.orders.iter().map(order_json).collect::<Vec<_>>(),
        "nextPageToken": r.next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_the_currency() {
        assert_eq!(money(1999, "EUR"), "19.99 EUR");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(-250, "USD"), "-2.50 USD");
        assert_eq!(money(100, ""), "1.00");
    }

    #[test]
    fn an_order_shows_its_state_and_items() {
        let o = pb::Order {
            id: "o1".into(),
            user_id: "u".into(),
            status: "CONFIRMED".into(),
            items: vec![pb::OrderItem {
                product_id: "prod-mug".into(),
                sku: "MUG-CLASSIC".into(),
                quantity: 2,
                unit_price_minor: 1250,
                ..Default::default()
            }],
            total_amount_minor: 2500,
            currency: "EUR".into(),
            payment_status: "CAPTURED".into(),
            ..Default::default()
        };
        let text = order_text(&o);
        assert!(text.contains("total:           25.00 EUR"), "{text}");
        assert!(text.contains("reservation:     -"), "{text}");
        assert!(text.contains("prod-mug  -        MUG-CLASSIC    2   12.50 EUR"), "{text}");
        assert_eq!(order_json(&o)["totalAmountMinor"], json!("2500"));
    }
}
