//! The `order.v1.OrderService` handlers: identify the caller, parse, run the use case, answer.

pub mod convert;

use proto::order::v1::{self as pb, order_service_server::OrderService};
use tonic::{Request, Response, Status};

use crate::authz::{Caller, CallerPolicy};
use crate::domain::OrderId;
use crate::error::OrderError;
use crate::orders::Orders;

/// The gRPC face of the order use cases.
#[derive(Debug, Clone)]
pub struct OrderApi {
    orders: Orders,
    max_items: usize,
    callers: CallerPolicy,
}

impl OrderApi {
    /// A handler set over `orders`, taking orders of up to [`convert::MAX_ITEMS`] lines, from
    /// any caller (user binding off).
    pub fn new(orders: Orders) -> Self {
        Self { orders, max_items: convert::MAX_ITEMS, callers: CallerPolicy::default() }
    }

    /// Takes orders of up to `max_items` lines (`MAX_ITEMS_PER_REQUEST`; at least 1).
    pub fn with_max_items(self, max_items: usize) -> Self {
        Self { max_items: max_items.max(1), ..self }
    }

    /// Binds calls to users as `callers` says.
    pub fn with_callers(self, callers: CallerPolicy) -> Self {
        Self { callers, ..self }
    }

    /// Refuses, as NOT_FOUND, a caller bound to a user other than order `id`'s owner. Read
    /// before the use case runs: an order's user never changes.
    async fn visible(&self, caller: &Caller, id: OrderId) -> Result<(), OrderError> {
        if caller.is_bound() {
            let order = self.orders.get(id).await?;
            caller.may_see(id, &order.user_id)?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = self.callers.caller(&request)?;
        let cmd = convert::create_order_limited(request.get_ref(), self.max_items)?;
        caller.may_act_for(&cmd.user_id)?;
        Ok(Response::new(convert::order(self.orders.create(cmd).await?)))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = self.callers.caller(&request)?;
        let id = convert::order_id(&request.get_ref().order_id)?;
        let order = self.orders.get(id).await?;
        caller.may_see(id, &order.user_id)?;
        Ok(Response::new(convert::order(order)))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let caller = self.callers.caller(&request)?;
        let page = convert::list_page(request.get_ref())?;
        caller.may_act_for(&page.user_id)?;
        let (orders, more) = self.orders.list(&page).await?;
        let next_page_token = match orders.last() {
            Some(last) if more => convert::page_token(last),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.into_iter().map(convert::order).collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = self.callers.caller(&request)?;
        let cmd = convert::cancel_order(request.get_ref())?;
        self.visible(&caller, cmd.order_id).await?;
        Ok(Response::new(convert::order(self.orders.cancel(cmd).await?)))
    }
}
