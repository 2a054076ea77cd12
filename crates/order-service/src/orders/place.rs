//! CreateOrder: validate -> idempotent replay -> user -> prices -> order row -> the saga,
//! driven inline for the request's budget.
//!
//! There is no availability check before the order row: the reserve answers the same
//! question (with the same figures when it refuses), one call later. An order whose first
//! reserve takes nothing is withdrawn (deleted) while its request still waits, so a refusal
//! for lack of stock writes nothing, as a failed check did.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::telemetry::W3cTraceContext;
use futures::future::try_join_all;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Orders, Reached};
use crate::clients::user::UserStanding;
use crate::domain::commands::CreateOrder;
use crate::domain::pricing::{self, Product, SkuDemand};
use crate::domain::{OrderId, Shortage};
use crate::error::OrderError;
use crate::metrics;
use crate::saga::{Refusal, Withdrawal};
use crate::store::{NewOrder, OrderItemView, OrderView, SagaState};

impl Orders {
    /// Places an order, or returns the one the same idempotency key already placed.
    #[tracing::instrument(skip_all, fields(user_id = %cmd.user_id, order_id))]
    pub async fn create(&self, cmd: CreateOrder) -> Result<OrderView, OrderError> {
        let fingerprint = cmd.fingerprint();
        if let Some(key) = &cmd.idempotency_key
            && let Some(existing) =
                self.store.order_by_key(cmd.user_id.as_str(), key.as_str()).await?
        {
            return self.replay(existing, &fingerprint).await;
        }

        self.check_user(&cmd).await?;
        let catalog = self.products(&cmd).await?;
        let priced = pricing::price(&cmd.lines, &catalog, &cmd.currency)?;
        let demand = pricing::demand(
            priced.lines.iter().map(|l| (l.sku.as_str(), l.product_id.as_str(), l.quantity.get())),
        )
        .ok_or_else(|| {
            OrderError::invalid("items", "the quantities of one SKU add up past 2147483647")
        })?;

        let id = OrderId::new();
        tracing::Span::current().record("order_id", tracing::field::display(id));
        // A per-request lease owner: this request drives the saga it creates.
        let owner = Uuid::new_v4();
        let order = NewOrder {
            id,
            user_id: cmd.user_id.as_str().to_owned(),
            idempotency_key: cmd.idempotency_key.as_ref().map(|k| k.as_str().to_owned()),
            fingerprint: fingerprint.clone(),
            currency: cmd.currency.as_str().to_owned(),
            payment_method: cmd.payment_method.as_str().to_owned(),
            total_amount_minor: priced.total_minor,
            lines: priced.lines,
            lease_owner: owner,
            lease: self.config.lease,
            // This request's span: a run the recovery worker resumes links back to it.
            trace: W3cTraceContext::current(),
        };
        // Measured before the write that takes the lease, so the lease surely holds until
        // then plus its length on this clock.
        let leased_at = Instant::now();
        let Some((version, created_at)) = self.store.insert_order(&order).await? else {
            // A racing call with the same key inserted first: answer with its order.
            let key = order.idempotency_key.as_deref().unwrap_or_default();
            return match self.store.order_by_key(&order.user_id, key).await? {
                Some(winner) => self.replay(winner, &fingerprint).await,
                None => Err(withdrawn_twin()),
            };
        };
        tracing::info!(total_amount_minor = order.total_amount_minor, currency = %order.currency, "order created");
        let engine = self.engine.clone();
        let state = SagaState::placed(&order, version);
        let withdrawal = Withdrawal::open();
        let drive = {
            let (demand, withdrawal) = (demand.clone(), withdrawal.clone());
            async move { engine.drive_new(state, demand, owner, leased_at, withdrawal).await }
        };
        let placed = match self.drive_within_budget(id, drive, Some(&withdrawal)).await? {
            Reached::Read(view) => view,
            Reached::Written(state, updated_at) => {
                written_view(order, state, created_at, updated_at)
            }
            Reached::Withdrawn(refusal) => return Err(self.refused(refusal, &demand).await),
        };
        metrics::ORDERS_CREATED.with_label_values(&[placed.status.as_str()]).inc();
        Ok(placed)
    }

    /// The answer to a repeated key: the same order (once its saga settles, within the
    /// budget), or INVALID_ARGUMENT when the key was used for a different request.
    async fn replay(
        &self,
        existing: OrderView,
        fingerprint: &str,
    ) -> Result<OrderView, OrderError> {
        tracing::Span::current().record("order_id", tracing::field::display(existing.id));
        if existing.fingerprint != fingerprint {
            return Err(OrderError::invalid(
                "idempotency_key",
                "was already used by this user for a different request",
            ));
        }
        match self.wait_settled(existing.id, self.answer_by()).await {
            Err(OrderError::NotFound { what: "order", .. }) => Err(withdrawn_twin()),
            answer => answer,
        }
    }

    /// The error of an order withdrawn for lack of stock, with the figures of each short line:
    /// the reserve's own, or (when the inventory refused the items outright, e.g. an SKU it
    /// does not know) an availability check's, as before any order was written. Withdrawn
    /// orders are rare enough for that second call not to matter.
    async fn refused(&self, refusal: Refusal, demand: &[SkuDemand]) -> OrderError {
        let lines = match refusal {
            Refusal::Short(lines) if !lines.is_empty() => lines,
            // An inventory that does not itemise its refusal (an older version) is asked.
            Refusal::Short(_) | Refusal::ItemsRefused => {
                return match self.check_stock(demand).await {
                    Err(err) => err,
                    Ok(()) => OrderError::FailedPrecondition(
                        "the inventory refused the order's items".to_owned(),
                    ),
                };
            }
        };
        let shortages = demand
            .iter()
            .filter_map(|d| {
                let line = lines.iter().find(|l| l.sku == d.sku)?;
                Some(Shortage {
                    product_id: d.product_id.clone(),
                    sku: d.sku.clone(),
                    requested: d.quantity,
                    available: line.available,
                })
            })
            .collect();
        OrderError::InventoryUnavailable(shortages)
    }

    async fn check_user(&self, cmd: &CreateOrder) -> Result<(), OrderError> {
        let Some(users) = &self.peers.user else {
            return Ok(());
        };
        let user = cmd.user_id.as_str();
        match users.standing(user).await? {
            UserStanding::Active => Ok(()),
            UserStanding::Unknown => {
                Err(OrderError::NotFound { what: "user", key: user.to_owned() })
            }
            UserStanding::Blocked => {
                Err(OrderError::FailedPrecondition(format!("user {user} is blocked")))
            }
            // The status text is the user service's, of any length: logged, not answered.
            UserStanding::Other(status) => {
                tracing::warn!(user_status = %status, "user with an unknown status refused");
                Err(OrderError::FailedPrecondition(format!(
                    "user {user} is not active and cannot order"
                )))
            }
        }
    }

    /// Every distinct product of the order, looked up concurrently.
    async fn products(&self, cmd: &CreateOrder) -> Result<HashMap<String, Product>, OrderError> {
        let mut ids: Vec<&str> = Vec::new();
        for line in &cmd.lines {
            if !ids.contains(&line.product_id.as_str()) {
                ids.push(line.product_id.as_str());
            }
        }
        let found = try_join_all(ids.iter().map(|id| async move {
            match self.peers.product.get(id).await {
                Ok(Some(product)) => Ok(((*id).to_owned(), product)),
                Ok(None) => Err(OrderError::NotFound { what: "product", key: (*id).to_owned() }),
                Err(err) => Err(OrderError::from(err)),
            }
        }))
        .await?;
        Ok(found.into_iter().collect())
    }

    /// Refuses the order when the inventory cannot supply all of it now.
    async fn check_stock(&self, demand: &[SkuDemand]) -> Result<(), OrderError> {
        let answers = self.peers.inventory.check(demand).await?;
        let by_sku: HashMap<&str, _> = answers.iter().map(|a| (a.sku.as_str(), a)).collect();
        let shortages: Vec<Shortage> = demand
            .iter()
            .filter_map(|d| {
                let answer = by_sku.get(d.sku.as_str());
                let available = answer.map_or(0, |a| a.available);
                let enough = answer.is_some_and(|a| a.is_available && a.available >= d.quantity);
                (!enough).then(|| Shortage {
                    product_id: d.product_id.clone(),
                    sku: d.sku.clone(),
                    requested: d.quantity,
                    available,
                })
            })
            .collect();
        if shortages.is_empty() { Ok(()) } else { Err(OrderError::InventoryUnavailable(shortages)) }
    }
}

/// The answer to a call that repeated the key of an order withdrawn while it waited: the key
/// is free again, and a retry places the order afresh (and gets its own answer).
fn withdrawn_twin() -> OrderError {
    OrderError::Aborted(
        "a concurrent request with the same idempotency key was refused for lack of stock; \
         retry to get this request's answer"
            .to_owned(),
    )
}

/// The order this request wrote, as its drive last wrote it: what a read would return, without
/// the read.
fn written_view(
    order: NewOrder,
    state: SagaState,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> OrderView {
    OrderView {
        id: order.id,
        user_id: order.user_id,
        status: state.status,
        status_reason: state.status_reason,
        items: order
            .lines
            .into_iter()
            .map(|l| OrderItemView {
                product_id: l.product_id.as_str().to_owned(),
                variant_id: l.variant_id.map(|v| v.as_str().to_owned()),
                sku: l.sku,
                quantity: l.quantity.get(),
                unit_price_minor: l.unit_price_minor,
            })
            .collect(),
        total_amount_minor: order.total_amount_minor,
        currency: order.currency,
        payment_method: order.payment_method,
        payment_status: state.payment_status,
        reservation_id: state.reservation_id,
        next_action: state.next_action,
        fingerprint: order.fingerprint,
        created_at,
        updated_at,
        // A return needs a confirmed order, and this request just placed it.
        returns: Vec::new(),
        backordered: state.backordered.unwrap_or_default(),
    }
}
