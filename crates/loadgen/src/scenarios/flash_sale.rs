//! `flash-sale`: the sell-out through the whole order path. One SKU with 1,000 units (its own
//! product in the bench catalogue), 256 concurrent buyers each placing CreateOrder of one unit
//! (a payment method that succeeds) again and again until they are refused. Exactly 1,000
//! orders must end CONFIRMED, every other one refused cleanly (`FAILED_PRECONDITION` with
//! reason `INVENTORY_UNAVAILABLE`, or an order answered `REJECTED`), and the stock row must
//! end at on_hand 0, reserved 0. The time of every sale is kept for the sold-over-time chart.

use std::time::{Duration, Instant};

use proto::inventory::v1 as inv;
use proto::order::v1 as pb;
use tokio::task::JoinSet;
use tonic_types::StatusExt as _;

use crate::conn::{Channels, with_deadline};
use crate::cpu::{CpuSample, CpuUse};
use crate::histogram::{Outcome, Stats};

/// The flash sale's SKU: one fixed name, so the product stand-in's catalogue (written before
/// the servers start) can sell it. A new sale re-stocks it; each sale's orders are told apart
/// by their users (`flash-<run>-b<n>`).
pub const SKU: &str = "FLASH-SALE";
/// The product that sells [`SKU`] in the bench catalogue.
pub const PRODUCT: &str = "prod-flash-sale";
/// The order service's reason for a refused order (DESIGN.md's order contract).
pub const INVENTORY_UNAVAILABLE: &str = "INVENTORY_UNAVAILABLE";
/// A payment method the payment stand-in always approves.
pub const PAYMENT_METHOD: &str = "card_ok";
/// Attempts of one order (same idempotency key) when the call itself fails.
const TRIES: u32 = 3;

/// What one CreateOrder came to, as the sale judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// CONFIRMED: a unit sold.
    Sold,
    /// A clean refusal; the text says which kind (`INVENTORY_UNAVAILABLE` or `REJECTED`).
    Refused(&'static str),
    /// Anything else: a gRPC error, another reason, an order answered before it settled.
    Error(String),
}

/// Judges a CreateOrder answer.
pub fn classify(answer: Result<&pb::Order, &tonic::Status>) -> Verdict {
    match answer {
        Ok(order) => match order.status.as_str() {
            "CONFIRMED" => Verdict::Sold,
            "REJECTED" => Verdict::Refused("REJECTED"),
            other => Verdict::Error(format!("order answered {other}")),
        },
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            match status.get_details_error_info() {
                Some(info) if info.reason == INVENTORY_UNAVAILABLE => {
                    Verdict::Refused(INVENTORY_UNAVAILABLE)
                }
                Some(info) => Verdict::Error(format!("FailedPrecondition {}", info.reason)),
                None => Verdict::Error("FailedPrecondition without a reason".into()),
            }
        }
        Err(status) => Verdict::Error(format!("grpc {:?}", status.code())),
    }
}

/// The sale's books: every order's outcome and latency, and when each unit sold.
#[derive(Debug, Clone, Default)]
pub struct Book {
    /// Every order (retries of one key are one order).
    pub stats: Stats,
    /// Latencies of the confirmed orders only.
    pub sold_stats: Stats,
    /// Refusals by kind: `INVENTORY_UNAVAILABLE`, `REJECTED`.
    pub refused_unavailable: u64,
    pub refused_rejected: u64,
    /// When each unit sold, after the sale's start (unsorted until [`Book::sold_at_ms`]).
    sold_at: Vec<Duration>,
}

impl Book {
    /// Empty books.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one order that answered `verdict` after `latency`, `at` after the start.
    pub fn record(&mut self, verdict: &Verdict, latency: Duration, at: Duration) {
        let outcome = match verdict {
            Verdict::Sold => {
                self.sold_at.push(at);
                self.sold_stats.record(Outcome::Ok, latency);
                Outcome::Ok
            }
            Verdict::Refused(kind) => {
                if *kind == INVENTORY_UNAVAILABLE {
                    self.refused_unavailable += 1;
                } else {
                    self.refused_rejected += 1;
                }
                Outcome::Refused
            }
            Verdict::Error(kind) => Outcome::Error(kind.clone()),
        };
        self.stats.record(outcome, latency);
    }

    /// Adds another buyer's books to these.
    pub fn merge(&mut self, other: &Book) {
        self.stats.merge(&other.stats);
        self.sold_stats.merge(&other.sold_stats);
        self.refused_unavailable += other.refused_unavailable;
        self.refused_rejected += other.refused_rejected;
        self.sold_at.extend_from_slice(&other.sold_at);
    }

    /// Units sold (confirmed answers).
    pub fn sold(&self) -> u64 {
        self.sold_at.len() as u64
    }

    /// When each unit sold, in milliseconds after the start, earliest first.
    pub fn sold_at_ms(&self) -> Vec<f64> {
        let mut ms: Vec<f64> = self.sold_at.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    /// When the last unit sold; None before anything sold.
    pub fn sold_out_after(&self) -> Option<Duration> {
        self.sold_at.iter().max().copied()
    }
}

/// What the database says about one sale's orders (the auditor's view), once they settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Audit {
    /// CONFIRMED orders of the sale's buyers.
    pub confirmed: i64,
    /// REJECTED orders of the sale's buyers (refused at reserve, after the check passed).
    pub rejected: i64,
    /// Orders neither CONFIRMED nor REJECTED (still moving, or another end).
    pub other: i64,
}

/// Judges a finished sale: the books, the stock row afterwards and, when the database could
/// be read, its count of the sale's orders. Empty when every promise held.
pub fn judge(
    stock: i32,
    book: &Book,
    on_hand_after: i32,
    reserved_after: i32,
    audit: Option<Audit>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let stock_u = u64::try_from(stock).unwrap_or(0);
    if book.sold() != stock_u {
        violations.push(format!("{} orders answered CONFIRMED, want {stock}", book.sold()));
    }
    if on_hand_after != 0 || reserved_after != 0 {
        violations.push(format!(
            "stock row after the sale: on_hand {on_hand_after}, reserved {reserved_after} (want 0, 0)"
        ));
    }
    if book.stats.errors > 0 {
        violations.push(format!("{} orders failed instead of a clean answer", book.stats.errors));
    }
    if let Some(a) = audit {
        if a.confirmed != i64::from(stock) {
            violations
                .push(format!("{} CONFIRMED orders in the database, want {stock}", a.confirmed));
        }
        if a.other != 0 {
            violations.push(format!("{} orders neither CONFIRMED nor REJECTED", a.other));
        }
    }
    violations
}

/// The flash sale's shape.
#[derive(Debug, Clone)]
pub struct FlashSale {
    pub orders: Channels,
    pub inventory: Channels,
    pub buyers: usize,
    pub stock: i32,
    pub deadline: Duration,
}

/// What the sale came to.
#[derive(Debug, Clone)]
pub struct FlashSaleResult {
    pub book: Book,
    /// From the first order to the last answer.
    pub elapsed: Duration,
    pub cpu: CpuUse,
    pub on_hand_after: i32,
    pub reserved_after: i32,
    pub audit: Option<Audit>,
    /// Every broken promise, in words; empty when the sale was correct.
    pub violations: Vec<String>,
}

/// An order of one unit of the sale's product for `user` under `key`.
pub fn request(user: String, key: String) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        user_id: user,
        items: vec![pb::OrderItemInput {
            product_id: PRODUCT.to_owned(),
            variant_id: None,
            quantity: 1,
        }],
        currency: "EUR".into(),
        payment_method: PAYMENT_METHOD.into(),
        idempotency_key: key,
    }
}

/// The users of a sale share this prefix (its audit reads their orders by it).
pub fn user_prefix(run: &str) -> String {
    format!("flash-{run}-b")
}

impl FlashSale {
    /// Stocks [`SKU`] with `stock` units, runs the sale until every buyer was refused, then
    /// reads the stock row (and, with `pool`, the sale's orders once they settled) and judges.
    pub async fn run(
        &self,
        run: &str,
        pool: Option<&sqlx::PgPool>,
    ) -> anyhow::Result<FlashSaleResult> {
        self.stock_up().await?;
        let cpu0 = CpuSample::now()?;
        let start = Instant::now();
        let mut buyers = JoinSet::new();
        let prefix = user_prefix(run);
        // A buyer never needs more orders than there are units plus the refusal that ends it.
        let max_orders = u64::try_from(self.stock).unwrap_or(0) + 1;
        for b in 0..self.buyers {
            let mut client = self.orders.order(b);
            let deadline = self.deadline;
            let (user, key_prefix) = (format!("{prefix}{b}"), format!("{run}-b{b}-"));
            buyers.spawn(async move {
                let mut book = Book::new();
                for k in 0..max_orders {
                    let key = format!("{key_prefix}{k}");
                    let t0 = Instant::now();
                    let verdict = place(&mut client, &user, key, deadline).await;
                    book.record(&verdict, t0.elapsed(), start.elapsed());
                    if verdict != Verdict::Sold {
                        break;
                    }
                }
                book
            });
        }
        let mut book = Book::new();
        while let Some(done) = buyers.join_next().await {
            book.merge(&done?);
        }
        let elapsed = start.elapsed();
        let cpu = cpu0.until(&CpuSample::now()?);

        let item = self
            .inventory
            .inventory(0)
            .get_inventory_item(with_deadline(
                inv::GetInventoryItemRequest { sku: SKU.into() },
                self.deadline,
            ))
            .await
            .map_err(|s| anyhow::anyhow!("reading {SKU} after the sale: {s}"))?
            .into_inner();
        let audit = match pool {
            Some(pool) => Some(audit(pool, &prefix).await?),
            None => None,
        };
        let violations = judge(self.stock, &book, item.on_hand, item.reserved, audit);
        Ok(FlashSaleResult {
            book,
            elapsed,
            cpu,
            on_hand_after: item.on_hand,
            reserved_after: item.reserved,
            audit,
            violations,
        })
    }

    /// Sets [`SKU`]'s on_hand to the sale's stock (the previous sale, if any, left it at 0).
    async fn stock_up(&self) -> anyhow::Result<()> {
        let upsert = inv::UpsertInventoryItemRequest {
            sku: SKU.into(),
            product_id: PRODUCT.into(),
            variant_id: None,
            warehouse_id: String::new(),
            on_hand: self.stock,
        };
        self.inventory
            .inventory(0)
            .upsert_inventory_item(with_deadline(upsert, self.deadline))
            .await
            .map_err(|s| anyhow::anyhow!("stocking {SKU}: {s}"))?;
        Ok(())
    }
}

/// One order: CreateOrder, retried with the same idempotency key when the call itself failed
/// (so a retry can only ever return the same order, never place a second one).
async fn place(
    client: &mut pb::order_service_client::OrderServiceClient<crate::conn::Conn>,
    user: &str,
    key: String,
    deadline: Duration,
) -> Verdict {
    let mut verdict = Verdict::Error("not sent".into());
    for _ in 0..TRIES {
        let req = request(user.to_owned(), key.clone());
        let answer = client.create_order(with_deadline(req, deadline)).await;
        verdict = classify(answer.as_ref().map(tonic::Response::get_ref));
        let transient = matches!(
            &answer,
            Err(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
        );
        if !transient {
            break;
        }
    }
    verdict
}

/// How long the audit waits for the sale's orders to settle (a CreateOrder may answer before
/// its saga finished; the recovery worker then completes it).
const SETTLE: Duration = Duration::from_secs(30);

/// Counts the sale's orders by status, waiting up to [`SETTLE`] for none to be in flight.
async fn audit(pool: &sqlx::PgPool, prefix: &str) -> anyhow::Result<Audit> {
    let until = Instant::now() + SETTLE;
    loop {
        let (confirmed, rejected, other, moving): (i64, i64, i64, i64) = sqlx::query_as(
            "select count(*) filter (where status = 'CONFIRMED'),
                    count(*) filter (where status = 'REJECTED'),
                    count(*) filter (where status not in ('CONFIRMED', 'REJECTED')),
                    count(*) filter (where next_action is not null)
               from orders.orders where starts_with(user_id, $1)",
        )
        .bind(prefix)
        .fetch_one(pool)
        .await?;
        if moving == 0 || Instant::now() >= until {
            return Ok(Audit { confirmed, rejected, other });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt as _};

    use super::*;

    fn order(status: &str) -> pb::Order {
        pb::Order { status: status.into(), ..Default::default() }
    }

    fn refused(reason: &str) -> tonic::Status {
        tonic::Status::with_error_details(
            tonic::Code::FailedPrecondition,
            "FLASH-SALE: requested 1, available 0",
            ErrorDetails::with_error_info(reason, "order.v1", std::collections::HashMap::new()),
        )
    }

    #[test]
    fn answers_are_judged_by_status_and_reason() {
        assert_eq!(classify(Ok(&order("CONFIRMED"))), Verdict::Sold);
        assert_eq!(classify(Ok(&order("REJECTED"))), Verdict::Refused("REJECTED"));
        assert_eq!(
            classify(Ok(&order("RESERVED"))),
            Verdict::Error("order answered RESERVED".into())
        );
        assert_eq!(
            classify(Err(&refused(INVENTORY_UNAVAILABLE))),
            Verdict::Refused(INVENTORY_UNAVAILABLE)
        );
        assert_eq!(
            classify(Err(&refused("USER_BLOCKED"))),
            Verdict::Error("FailedPrecondition USER_BLOCKED".into())
        );
        let bare = tonic::Status::failed_precondition("no details");
        assert_eq!(
            classify(Err(&bare)),
            Verdict::Error("FailedPrecondition without a reason".into())
        );
        let busy = tonic::Status::resource_exhausted("too many calls");
        assert_eq!(classify(Err(&busy)), Verdict::Error("grpc ResourceExhausted".into()));
    }

    #[test]
    fn books_count_sales_refusals_and_sale_times() {
        let ms = Duration::from_millis;
        let mut a = Book::new();
        a.record(&Verdict::Sold, ms(3), ms(40));
        a.record(&Verdict::Refused(INVENTORY_UNAVAILABLE), ms(1), ms(50));
        let mut b = Book::new();
        b.record(&Verdict::Sold, ms(5), ms(10));
        b.record(&Verdict::Sold, ms(4), ms(25));
        b.record(&Verdict::Refused("REJECTED"), ms(6), ms(60));
        b.record(&Verdict::Error("grpc Unavailable".into()), ms(9), ms(61));
        a.merge(&b);
        assert_eq!(a.sold(), 3);
        assert_eq!((a.refused_unavailable, a.refused_rejected), (1, 1));
        assert_eq!((a.stats.ok, a.stats.refused, a.stats.errors), (3, 2, 1));
        assert_eq!(a.sold_stats.count(), 3);
        assert_eq!(a.sold_at_ms(), vec![10.0, 25.0, 40.0]);
        assert_eq!(a.sold_out_after(), Some(ms(40)));
        assert_eq!(Book::new().sold_out_after(), None);
    }

    fn sale(sold: u64, refusals: u64, errors: u64) -> Book {
        let mut book = Book::new();
        for i in 0..sold {
            book.record(&Verdict::Sold, Duration::from_millis(2), Duration::from_millis(i));
        }
        for _ in 0..refusals {
            book.record(&Verdict::Refused(INVENTORY_UNAVAILABLE), Duration::ZERO, Duration::ZERO);
        }
        for _ in 0..errors {
            book.record(&Verdict::Error("grpc Internal".into()), Duration::ZERO, Duration::ZERO);
        }
        book
    }

    #[test]
    fn a_correct_sale_has_no_violations() {
        let audit = Audit { confirmed: 1000, rejected: 12, other: 0 };
        assert!(judge(1000, &sale(1000, 256, 0), 0, 0, Some(audit)).is_empty());
        assert!(judge(1000, &sale(1000, 256, 0), 0, 0, None).is_empty());
    }

    #[test]
    fn every_broken_promise_is_named() {
        let audit = Audit { confirmed: 1001, rejected: 0, other: 2 };
        let v = judge(1000, &sale(999, 200, 3), 1, 1, Some(audit));
        assert_eq!(v.len(), 5, "{v:?}");
        assert_eq!(v[0], "999 orders answered CONFIRMED, want 1000");
        assert!(v[1].contains("on_hand 1, reserved 1"), "{}", v[1]);
        assert_eq!(v[2], "3 orders failed instead of a clean answer");
        assert_eq!(v[3], "1001 CONFIRMED orders in the database, want 1000");
        assert_eq!(v[4], "2 orders neither CONFIRMED nor REJECTED");
    }

    #[test]
    fn orders_buy_one_unit_of_the_sale_product() {
        let req = request(format!("{}7", user_prefix("r1")), "r1-b7-0".into());
        assert_eq!(req.user_id, "flash-r1-b7");
        assert_eq!(req.items.len(), 1);
        assert_eq!((req.items[0].product_id.as_str(), req.items[0].quantity), (PRODUCT, 1));
        assert_eq!(req.payment_method, PAYMENT_METHOD);
        assert_eq!(req.idempotency_key, "r1-b7-0");
    }
}
