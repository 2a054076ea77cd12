//! The `order.v1.OrderService` handlers: identify the caller, parse, run the use case, answer.

pub mod convert;

use proto::order::v1::{self as pb, order_service_server::OrderService};
use tonic::{Request, Response, Status};

use common::auth::AdminGuard;
use common::events::{EventStream, WatchRequest, Watchers};

use crate::authz::{Caller, CallerPolicy};
use crate::domain::OrderId;
use crate::error::OrderError;
use crate::event_watchers::EventWatchers;
use crate::orders::Orders;

/// The gRPC face of the order use cases.
#[derive(Debug, Clone)]
pub struct OrderApi {
    orders: Orders,
    max_items: usize,
    callers: CallerPolicy,
    /// Who may call the operator RPCs; None: nobody (no admin credentials configured).
    operators: Option<AdminGuard>,
    /// WatchEvents' streams; none: the RPC is UNAVAILABLE (a handler set without a relay).
    events: Option<Watchers>,
    /// Who may watch besides operators, and which types (`EVENT_WATCHERS`).
    watchers: EventWatchers,
}

impl OrderApi {
    /// A handler set over `orders`, taking orders of up to [`convert::MAX_ITEMS`] lines, from
    /// any caller (user binding off).
    pub fn new(orders: Orders) -> Self {
        Self {
            orders,
            max_items: convert::MAX_ITEMS,
            callers: CallerPolicy::default(),
            operators: None,
            events: None,
            watchers: EventWatchers::default(),
        }
    }

    /// The same handlers streaming WatchEvents from `events` to operators and `watchers`.
    pub fn with_events(self, events: Watchers, watchers: EventWatchers) -> Self {
        Self { events: Some(events), watchers, ..self }
    }

    /// Lets the callers `guard` admits use the operator RPCs (None: nobody).
    pub fn with_operators(self, operators: Option<AdminGuard>) -> Self {
        Self { operators, ..self }
    }

    /// Refuses a call to an operator RPC unless the admin guard admits it.
    fn operator<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match &self.operators {
            Some(guard) => guard.check(request),
            None => Err(Status::permission_denied(
                "operator RPCs are off: set ADMIN_TOKEN, ADMIN_TOKEN_FILE or \
                 ADMIN_ALLOWED_IDENTITIES on the order service",
            )),
        }
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
    type WatchEventsStream = EventStream<pb::WatchEventsResponse>;

    /// Operators watch every type; an identity of `EVENT_WATCHERS` the types its entry lists.
    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let grant = match self.operator(&request) {
            Ok(()) => None,
            Err(denied) => {
                let names = common::auth::client_names(&request).unwrap_or_default();
                Some(self.watchers.grant(&names).cloned().ok_or(denied)?)
            }
        };
        let pb::WatchEventsRequest { from_position, types, from_now } = request.into_inner();
        let types = match grant {
            Some(grant) => grant.check(types)?,
            None => types,
        };
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
        let order = self.orders.read(id).await?;
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

    async fn return_order(
        &self,
        request: Request<pb::ReturnOrderRequest>,
    ) -> Result<Response<pb::OrderReturn>, Status> {
        let caller = self.callers.caller(&request)?;
        let cmd = convert::return_order(request.get_ref())?;
        self.visible(&caller, cmd.order_id).await?;
        Ok(Response::new(convert::order_return(self.orders.return_order(cmd).await?)))
    }

    async fn list_parked_orders(
        &self,
        request: Request<pb::ListParkedOrdersRequest>,
    ) -> Result<Response<pb::ListParkedOrdersResponse>, Status> {
        self.operator(&request)?;
        let limit = convert::parked_page(request.get_ref())?;
        let mut orders = Vec::new();
        for (view, parked) in self.orders.parked(limit).await? {
            orders.push(convert::parked_order(view, parked));
        }
        Ok(Response::new(pb::ListParkedOrdersResponse { orders }))
    }

    async fn resolve_parked_order(
        &self,
        request: Request<pb::ResolveParkedOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.operator(&request)?;
        let (id, resolution, note) = convert::resolve_parked(request.get_ref())?;
        Ok(Response::new(convert::order(self.orders.resolve_parked(id, resolution, &note).await?)))
    }
}
