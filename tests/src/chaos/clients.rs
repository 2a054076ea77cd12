//! The workload: concurrent clients placing orders over a few hot and many cold products,
//! each with its own idempotency key, retried with the same key on UNAVAILABLE / DEADLINE,
//! some cancelled, some sent twice on purpose, some confirmed ones returned (whole or in
//! part, some returns sent twice at once).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::order::v1 as pb;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use super::rng::Rng;

/// Deadline of one CreateOrder / CancelOrder call (grpc-timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a client keeps retrying one key before giving up on it.
const KEY_BUDGET: Duration = Duration::from_secs(60);
/// Percent of orders paid with the always-declining test card.
const DECLINE_CARD_PERCENT: u64 = 5;
/// Percent of placed orders the client then tries to cancel.
const CANCEL_PERCENT: u64 = 15;
/// Percent of orders a concurrent task tries to cancel while CreateOrder is still running.
const RACE_CANCEL_PERCENT: u64 = 10;
/// Percent of placed orders sent a second time with the same key (must be the same order).
const DUPLICATE_PERCENT: u64 = 10;
/// Percent of orders answered CONFIRMED (and not cancelled) the client then returns.
const RETURN_PERCENT: u64 = 20;
/// Percent of returns that are whole (the others return part of one line).
const WHOLE_RETURN_PERCENT: u64 = 50;

/// The products clients order.
#[derive(Debug, Clone)]
pub struct Products {
    /// Few, with little stock: contention and "no stock" refusals.
    pub hot: Vec<String>,
    /// Many, with plenty of stock.
    pub cold: Vec<String>,
}

/// The answer a client got for one order it placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub user_id: String,
    pub key: String,
    pub order_id: String,
}

/// What clients did and saw.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    /// Distinct idempotency keys tried.
    pub attempted: u64,
    /// CreateOrder calls, retries included.
    pub create_calls: u64,
    /// Calls repeated with the same key after a transient error.
    pub retries: u64,
    /// Final outcome per key: "order <status at answer>", "refused <code>", "gave up".
    pub outcomes: BTreeMap<String, u64>,
    /// Transient errors seen, by gRPC code.
    pub transient: BTreeMap<String, u64>,
    /// CancelOrder outcomes.
    pub cancels: BTreeMap<String, u64>,
    /// ReturnOrder outcomes.
    pub returns: BTreeMap<String, u64>,
    /// Same-key duplicates sent after an answer.
    pub duplicates: u64,
    /// Things that should not happen (a different order for one key, INTERNAL, ...), counted.
    pub anomalies: BTreeMap<String, u64>,
    /// Every order a client got back, for the cross-check with the database.
    pub placed: Vec<Placed>,
}

impl ClientStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: ClientStats) {
        self.attempted += other.attempted;
        self.create_calls += other.create_calls;
        self.retries += other.retries;
        self.duplicates += other.duplicates;
        for (into, from) in [
            (&mut self.outcomes, other.outcomes),
            (&mut self.transient, other.transient),
            (&mut self.cancels, other.cancels),
            (&mut self.returns, other.returns),
            (&mut self.anomalies, other.anomalies),
        ] {
            for (k, v) in from {
                *into.entry(k).or_default() += v;
            }
        }
        self.placed.extend(other.placed);
    }

    fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
        *map.entry(key.into()).or_default() += 1;
    }
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Internal
    )
}

/// One client: places orders until `stop` turns true, then finishes the key in hand.
pub async fn run_client(
    id: usize,
    seed: u64,
    order_addr: SocketAddr,
    products: Arc<Products>,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let mut rng = Rng::derive(seed, 1_000 + u64::try_from(id).unwrap_or(0));
    let mut stats = ClientStats::default();
    let channel = match Endpoint::from_shared(format!("http://{order_addr}")) {
        Ok(endpoint) => endpoint.connect_timeout(Duration::from_secs(1)).connect_lazy(),
        Err(err) => {
            ClientStats::bump(&mut stats.anomalies, format!("bad order address: {err}"));
            return stats;
        }
    };
    let mut client = pb::order_service_client::OrderServiceClient::new(channel);
    let user = format!("chaos-user-{id}");
    let mut n = 0u64;
    // The newest order this client knows of (a racing cancel looks for a newer one).
    let mut last_seen: Option<String> = None;
    while !*stop.borrow() {
        n += 1;
        let req = order(&mut rng, &products, &user, format!("c{id}-{n}"));
        stats.attempted += 1;
        let racer = rng.chance(RACE_CANCEL_PERCENT).then(|| {
            let delay = Duration::from_millis(rng.range(0, 200));
            let mut racer_rng = Rng::new(rng.next_u64());
            let (mut client, user, known) = (client.clone(), user.clone(), last_seen.clone());
            tokio::spawn(async move {
                let mut stats = ClientStats::default();
                tokio::time::sleep(delay).await;
                race_cancel(&mut client, &user, known.as_deref(), &mut racer_rng, &mut stats).await;
                stats
            })
        });
        let placed = place(&mut client, &req, &mut rng, &mut stats).await;
        if let Some(racer) = racer {
            match racer.await {
                Ok(racer_stats) => stats.merge(racer_stats),
                Err(err) => {
                    ClientStats::bump(&mut stats.anomalies, format!("racer panicked: {err}"))
                }
            }
        }
        if let Some(order) = placed {
            last_seen = Some(order.id.clone());
            stats.placed.push(Placed {
                user_id: user.clone(),
                key: req.idempotency_key.clone(),
                order_id: order.id.clone(),
            });
            if rng.chance(DUPLICATE_PERCENT) {
                stats.duplicates += 1;
                if let Some(again) =
                    place(&mut client, &req, &mut rng, &mut ClientStats::default()).await
                    && again.id != order.id
                {
                    ClientStats::bump(
                        &mut stats.anomalies,
                        "a repeated idempotency key returned a different order",
                    );
                }
            }
            if rng.chance(CANCEL_PERCENT) {
                let pause = Duration::from_millis(rng.range(0, 300));
                tokio::time::sleep(pause).await;
                cancel(&mut client, &order.id, "after answer", &mut rng, &mut stats).await;
            } else if order.status == "CONFIRMED" && rng.chance(RETURN_PERCENT) {
                give_back(&mut client, &order, &mut rng, &mut stats).await;
            }
        }
        let think = Duration::from_millis(rng.range(0, 100));
        tokio::select! {
            () = tokio::time::sleep(think) => {}
            _ = stop.changed() => {}
        }
    }
    stats
}

fn order(rng: &mut Rng, products: &Products, user: &str, key: String) -> pb::CreateOrderRequest {
    let lines = rng.range(1, 3);
    let mut chosen: Vec<&String> = Vec::new();
    for line in 0..lines {
        let pool = if line == 0 && rng.chance(60) { &products.hot } else { &products.cold };
        let product = &pool[rng.index(pool.len())];
        if !chosen.contains(&product) {
            chosen.push(product);
        }
    }
    pb::CreateOrderRequest {
        user_id: user.to_owned(),
        items: chosen
            .into_iter()
            .map(|p| pb::OrderItemInput {
                product_id: p.clone(),
                variant_id: None,
                quantity: i32::try_from(rng.range(1, 3)).unwrap_or(1),
            })
            .collect(),
        currency: "EUR".to_owned(),
        payment_method: if rng.chance(DECLINE_CARD_PERCENT) { "card_decline" } else { "card" }
            .to_owned(),
        idempotency_key: key,
    }
}

fn backoff(rng: &mut Rng, attempt: u32) -> Duration {
    let base = 100u64 << attempt.min(4);
    Duration::from_millis(base.min(1_500) / 2 + rng.range(0, base.min(1_500) / 2))
}

/// CreateOrder with retries under the same key; the order, or None when refused / given up.
async fn place(
    client: &mut pb::order_service_client::OrderServiceClient<Channel>,
    req: &pb::CreateOrderRequest,
    rng: &mut Rng,
    stats: &mut ClientStats,
) -> Option<pb::Order> {
    let give_up = Instant::now() + KEY_BUDGET;
    let mut attempt = 0u32;
    loop {
        stats.create_calls += 1;
        let mut call = tonic::Request::new(req.clone());
        call.set_timeout(CALL_TIMEOUT);
        let result =
            tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(2), client.create_order(call))
                .await
                .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("client-side timeout")));
        match result {
            Ok(reply) => {
                let order = reply.into_inner();
                ClientStats::bump(&mut stats.outcomes, format!("order answered {}", order.status));
                return Some(order);
            }
            Err(status) if transient(status.code()) => {
                ClientStats::bump(&mut stats.transient, format!("{:?}", status.code()));
                if status.code() == Code::Internal {
                    ClientStats::bump(
                        &mut stats.anomalies,
                        format!("CreateOrder INTERNAL: {}", status.message()),
                    );
                }
                if Instant::now() >= give_up {
                    ClientStats::bump(&mut stats.outcomes, "gave up after retries");
                    return None;
                }
                stats.retries += 1;
                tokio::time::sleep(backoff(rng, attempt)).await;
                attempt += 1;
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                ClientStats::bump(&mut stats.outcomes, "refused FAILED_PRECONDITION (no stock)");
                return None;
            }
            Err(status) => {
                ClientStats::bump(&mut stats.outcomes, format!("refused {:?}", status.code()));
                ClientStats::bump(
                    &mut stats.anomalies,
                    format!(
                        "CreateOrder {:?} on attempt {}: {}",
                        status.code(),
                        attempt + 1,
                        status.message()
                    ),
                );
                return None;
            }
        }
    }
}

/// Looks up the user's newest order while its CreateOrder may still run, and cancels it if
/// it is not `known` (the newest one the client already had an answer for).
async fn race_cancel(
    client: &mut pb::order_service_client::OrderServiceClient<Channel>,
    user: &str,
    known: Option<&str>,
    rng: &mut Rng,
    stats: &mut ClientStats,
) {
    for attempt in 0..5u32 {
        let mut call = tonic::Request::new(pb::ListOrdersRequest {
            user_id: user.to_owned(),
            page_size: 1,
            page_token: String::new(),
        });
        call.set_timeout(CALL_TIMEOUT);
        match client.list_orders(call).await {
            Ok(reply) => {
                match reply.into_inner().orders.into_iter().next() {
                    Some(newest) if Some(newest.id.as_str()) != known => {
                        cancel(client, &newest.id, "racing create", rng, stats).await;
                        return;
                    }
                    // Not written yet: try again a little later.
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            Err(status) if transient(status.code()) => {
                tokio::time::sleep(backoff(rng, attempt)).await;
            }
            Err(status) => {
                ClientStats::bump(&mut stats.anomalies, format!("ListOrders {status}"));
                return;
            }
        }
    }
    ClientStats::bump(&mut stats.cancels, "racing create: no new order seen");
}

/// CancelOrder, retried a few times on transient errors; outcomes counted under `label`.
async fn cancel(
    client: &mut pb::order_service_client::OrderServiceClient<Channel>,
    order_id: &str,
    label: &str,
    rng: &mut Rng,
    stats: &mut ClientStats,
) {
    for attempt in 0..8u32 {
        let mut call = tonic::Request::new(pb::CancelOrderRequest {
            order_id: order_id.to_owned(),
            reason: "chaos client changed its mind".to_owned(),
        });
        call.set_timeout(CALL_TIMEOUT);
        match client.cancel_order(call).await {
            Ok(reply) => {
                let status = reply.into_inner().status;
                ClientStats::bump(&mut stats.cancels, format!("{label}: answered {status}"));
                return;
            }
            Err(status) if transient(status.code()) => {
                tokio::time::sleep(backoff(rng, attempt)).await;
            }
            Err(status) => {
                let why = status.message().split(';').next().unwrap_or_default().to_owned();
                let why: String = why.chars().take(40).collect();
                ClientStats::bump(
                    &mut stats.cancels,
                    format!("{label}: refused {:?}: {why}", status.code()),
                );
                return;
            }
        }
    }
    ClientStats::bump(&mut stats.cancels, format!("{label}: gave up after retries"));
}

/// ReturnOrder of a confirmed order, whole or one line in part, retried with the same key on
/// transient errors and while the order's commit is still under way; sometimes sent twice
/// at once (both must get the same return).
async fn give_back(
    client: &mut pb::order_service_client::OrderServiceClient<Channel>,
    order: &pb::Order,
    rng: &mut Rng,
    stats: &mut ClientStats,
) {
    let items = if rng.chance(WHOLE_RETURN_PERCENT) || order.items.is_empty() {
        Vec::new()
    } else {
        let line = &order.items[rng.index(order.items.len())];
        let most = u64::try_from(line.quantity.max(1)).unwrap_or(1);
        vec![pb::ReturnItemInput {
            sku: line.sku.clone(),
            quantity: i32::try_from(rng.range(1, most)).unwrap_or(1),
            do_not_restock: rng.chance(20),
        }]
    };
    let req = pb::ReturnOrderRequest {
        order_id: order.id.clone(),
        items,
        reason: "chaos client sends it back".to_owned(),
        idempotency_key: format!("return-{}", order.id),
    };
    let twice = rng.chance(DUPLICATE_PERCENT);
    let (first, second) = if twice {
        let (mut a, mut b) = (client.clone(), client.clone());
        let (mut ra, mut rb) = (Rng::new(rng.next_u64()), Rng::new(rng.next_u64()));
        let (mut sa, mut sb) = (ClientStats::default(), ClientStats::default());
        let (x, y) = tokio::join!(
            return_once(&mut a, &req, &mut ra, &mut sa),
            return_once(&mut b, &req, &mut rb, &mut sb)
        );
        stats.merge(sa);
        stats.merge(sb);
        (x, y)
    } else {
        (return_once(client, &req, rng, stats).await, None)
    };
    if let (Some(a), Some(b)) = (&first, &second)
        && a != b
    {
        ClientStats::bump(&mut stats.anomalies, "one return key answered two different returns");
    }
}

/// One ReturnOrder request until it is answered, refused or given up; the return's id.
async fn return_once(
    client: &mut pb::order_service_client::OrderServiceClient<Channel>,
    req: &pb::ReturnOrderRequest,
    rng: &mut Rng,
    stats: &mut ClientStats,
) -> Option<String> {
    let give_up = Instant::now() + KEY_BUDGET;
    let mut attempt = 0u32;
    loop {
        let mut call = tonic::Request::new(req.clone());
        call.set_timeout(CALL_TIMEOUT);
        let result =
            tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(2), client.return_order(call))
                .await
                .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("client-side timeout")));
        let again = match result {
            Ok(reply) => {
                let answer = reply.into_inner();
                ClientStats::bump(&mut stats.returns, format!("answered {}", answer.status));
                return Some(answer.id);
            }
            Err(status) if transient(status.code()) => {
                ClientStats::bump(&mut stats.transient, format!("{:?}", status.code()));
                true
            }
            // The order's commit is still under way (its saga has a step left): later.
            Err(status) if status.code() == Code::FailedPrecondition => {
                ClientStats::bump(&mut stats.returns, "refused FAILED_PRECONDITION (retried)");
                true
            }
            Err(status) => {
                ClientStats::bump(&mut stats.returns, format!("refused {:?}", status.code()));
                ClientStats::bump(
                    &mut stats.anomalies,
                    format!("ReturnOrder {:?}: {}", status.code(), status.message()),
                );
                false
            }
        };
        if !again {
            return None;
        }
        if Instant::now() >= give_up {
            ClientStats::bump(&mut stats.returns, "gave up after retries");
            return None;
        }
        tokio::time::sleep(backoff(rng, attempt)).await;
        attempt += 1;
    }
}
