//! The seeded chaos run: the real `inventory-service`, `order-service` and `product-standin`
//! binaries on a private PostgreSQL cluster, the payment stand-in in this process (for its
//! books and fault switchboard), a fault-injecting proxy between the order and inventory
//! servers, concurrent clients, and a scheduler that, from a printed seed, kill -9s and
//! restarts the servers, restarts or crashes PostgreSQL, makes payments slow, failing or
//! declining, and cuts or delays the order -> inventory connection. Then everything heals,
//! every order settles, and the [`crate::invariants`] checker runs. Throughout, a consumer per
//! service follows its event log (reconnecting across kills and crashes); at the end the events
//! must replay to the final stock, hold, order and return states the database holds
//! ([`crate::invariants::replay`]).
//!
//! Environment: `CHAOS_SEED` (replay a run), `CHAOS_DURATION_SECS` (fault phase, default 60),
//! `CHAOS_CLIENTS` (default 8), `CHAOS_SETTLE_SECS` (how long orders may take to settle
//! afterwards, default 120), `CHAOS_KEEP_LOGS=1` (keep the servers' logs after a clean run),
//! `CHAOS_ORDER_<NAME>` / `CHAOS_INVENTORY_<NAME>` (override a server setting, e.g.
//! `CHAOS_ORDER_PEER_RETRIES=6`).

pub mod clients;
mod events;
mod faults;
pub mod payment;
pub mod procs;
pub mod proxy;
mod report;
pub mod rng;
pub mod schedule;
mod stack;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::inventory::v1 as inv;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::invariants::{self, Baseline, Violation, replay};
use clients::{ClientStats, Placed, Products};
pub use events::ConsumerStats;
use events::Consumers;
use report::secs;
pub use report::{ChaosReport, Timings};
use schedule::{Lane, Planned};
use stack::{Stack, lock};

/// The inventory server's sweep interval in the run (also the checker's tolerance).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// How long the relays may take to drain their outboxes once the run is quiet.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the event consumers may take to reach the heads of the logs after the run.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// What a run does.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Seeds the fault schedule and the clients' choices.
    pub seed: u64,
    /// Length of the fault phase.
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Hot products (little stock, contended).
    pub hot_skus: usize,
    /// Cold products (plenty of stock).
    pub cold_skus: usize,
    /// Units of each hot SKU at the start.
    pub hot_stock: i32,
    /// Units of each cold SKU at the start.
    pub cold_stock: i32,
    /// How long every order may take to settle once the faults stop.
    pub settle_timeout: Duration,
    /// Keep the servers' logs after a clean run.
    pub keep_logs: bool,
}

fn env_u64(name: &str) -> anyhow::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(
            v.trim().parse().map_err(|e| anyhow::anyhow!("{name}={v:?} is not a number: {e}"))?,
        )),
        _ => Ok(None),
    }
}

impl ChaosConfig {
    /// The short run, adjusted by the `CHAOS_*` environment variables.
    pub fn from_env() -> anyhow::Result<Self> {
        let seed = match env_u64("CHAOS_SEED")? {
            Some(seed) => seed,
            // Random: the low bits of a fresh UUID.
            None => uuid::Uuid::new_v4().as_u64_pair().0 % 1_000_000_000,
        };
        Ok(Self {
            seed,
            duration: Duration::from_secs(env_u64("CHAOS_DURATION_SECS")?.unwrap_or(60)),
            clients: usize::try_from(env_u64("CHAOS_CLIENTS")?.unwrap_or(8))?.max(1),
            hot_skus: 3,
            cold_skus: 40,
            hot_stock: 100,
            cold_stock: 100_000,
            settle_timeout: Duration::from_secs(env_u64("CHAOS_SETTLE_SECS")?.unwrap_or(120)),
            keep_logs: std::env::var("CHAOS_KEEP_LOGS").is_ok_and(|v| v == "1"),
        })
    }
}

/// One whole run: plan it from the seed, start the stack, stock it, run the faults with the
/// clients, heal and let every order settle, then check. Errors only for harness failures
/// (the report carries the violations).
pub async fn run(config: ChaosConfig) -> anyhow::Result<ChaosReport> {
    let seed = config.seed;
    println!("chaos seed: {seed}   (replay with CHAOS_SEED={seed})");
    let t0 = Instant::now();
    let plan = Plan::new(&config)?;
    let stack = Arc::new(Stack::start(&plan).await?);
    // From position 0 before anything is stocked: the stock rows' creation is replayed too.
    let consumers =
        Consumers::start(stack.inventory_addr, stack.order_addr, stack.order_admin_token.clone());
    let baseline = stock(&stack, &plan, &config).await?;
    let setup = t0.elapsed();
    println!("setup done in {} (logs in {})", secs(setup), plan.log_dir.display());

    let t1 = Instant::now();
    let clients = run_faults(&stack, &plan, &config).await;
    let faults_took = t1.elapsed();

    let t2 = Instant::now();
    let healed = heal_and_settle(&stack, clients, config.settle_timeout).await?;
    let quiesce = t2.elapsed();

    let t3 = Instant::now();
    let found = check(&stack, &baseline, healed, consumers).await?;
    let check_took = t3.elapsed();

    let report = ChaosReport {
        seed,
        config: config.clone(),
        schedule: plan.schedule,
        faults: lock(&stack.faults).clone(),
        fault_errors: lock(&stack.fault_errors).clone(),
        clients: found.clients,
        orders_by_status: found.orders_by_status,
        failed_by_reason: found.failed_by_reason,
        saga_steps: found.saga_steps,
        unsettled: found.unsettled,
        violations: found.violations,
        mismatches: found.mismatches,
        unexpected_exits: found.exits,
        starts: found.starts,
        events: found.events,
        timings: Timings { setup, faults: faults_took, quiesce, check: check_took },
        log_dir: plan.log_dir.clone(),
    };
    // Stop the servers before deleting their logs (the stack drops the cluster last).
    drop(stack);
    if report.clean() && !config.keep_logs {
        let _ = std::fs::remove_dir_all(&plan.log_dir);
    }
    Ok(report)
}

/// What the seed decides before anything starts: the SKUs, the fault schedule, where the
/// servers' logs go, and the product catalog (its prices drawn from the seed).
struct Plan {
    hot: Vec<String>,
    cold: Vec<String>,
    schedule: Vec<Planned>,
    log_dir: PathBuf,
    catalog: PathBuf,
}

impl Plan {
    /// Plans `config`'s run, prints its schedule and writes the catalog into the log folder.
    fn new(config: &ChaosConfig) -> anyhow::Result<Self> {
        let seed = config.seed;
        let mut rng = rng::Rng::derive(seed, 0);
        let hot: Vec<String> = (0..config.hot_skus).map(|i| format!("HOT-{i}")).collect();
        let cold: Vec<String> = (0..config.cold_skus).map(|i| format!("COLD-{i:02}")).collect();
        let schedule = schedule::plan(seed, config.duration, hot.len());
        println!("schedule ({} faults over {}):", schedule.len(), secs(config.duration));
        for p in &schedule {
            println!("  +{:>6.1}s {:<9} {}", p.at.as_secs_f64(), format!("{:?}", p.lane), p.fault);
        }
        let log_dir = std::env::temp_dir()
            .join(format!("chaos-{seed}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        std::fs::create_dir_all(&log_dir)?;
        let catalog = log_dir.join("catalog.json");
        std::fs::write(&catalog, catalog_json(&hot, &cold, &mut rng))?;
        Ok(Self { hot, cold, schedule, log_dir, catalog })
    }
}

/// The catalog's product id of `sku`.
fn product_of(sku: &str) -> String {
    format!("p-{}", sku.to_lowercase())
}

fn catalog_json(hot: &[String], cold: &[String], rng: &mut rng::Rng) -> String {
    let entries: Vec<String> = hot
        .iter()
        .chain(cold)
        .map(|sku| {
            let price = rng.range(50, 2_500);
            format!(
                r#"{{"id":"p-{lower}","sku":"{sku}","name":"{sku}","price_minor":{price},"currency":"EUR"}}"#,
                lower = sku.to_lowercase()
            )
        })
        .collect();
    format!("[{}]", entries.join(","))
}

/// Stocks every hot and cold SKU, then takes the baseline the checker compares with.
async fn stock(stack: &Stack, plan: &Plan, config: &ChaosConfig) -> anyhow::Result<Baseline> {
    let mut admin = stack.inventory_client()?;
    let hot = plan.hot.iter().map(|s| (s, config.hot_stock));
    for (sku, units) in hot.chain(plan.cold.iter().map(|s| (s, config.cold_stock))) {
        admin
            .upsert_inventory_item(inv::UpsertInventoryItemRequest {
                sku: sku.clone(),
                product_id: product_of(sku),
                variant_id: None,
                warehouse_id: String::new(),
                on_hand: units,
            })
            .await?;
    }
    // Policies on some rows (issue 19): the first hot SKU keeps a tenth back, the second sells
    // a fifth of its stock again on backorder, every hot SKU has a low-stock threshold, and
    // one cold SKU keeps half back. The checker replays the ledger and finds any reserve that
    // sold into safety stock or beyond the backorder limit; the CHECK and the reconciler's
    // impossible_level hold the bound.
    for (k, sku) in plan.hot.iter().enumerate() {
        let policy = inv::SetStockPolicyRequest {
            safety_stock: (k == 0).then_some(config.hot_stock / 10),
            low_stock_threshold: Some(config.hot_stock / 4),
            backorder_limit: (k == 1).then_some(config.hot_stock / 5),
            ..policy(sku)
        };
        admin.set_stock_policy(policy).await?;
    }
    if let Some(cold) = plan.cold.first() {
        let policy = inv::SetStockPolicyRequest {
            safety_stock: Some(config.cold_stock / 2),
            ..policy(cold)
        };
        admin.set_stock_policy(policy).await?;
    }
    Baseline::capture(&stack.db.pool).await
}

/// A policy request for `sku` that changes nothing yet.
fn policy(sku: &str) -> inv::SetStockPolicyRequest {
    inv::SetStockPolicyRequest {
        sku: sku.to_owned(),
        reason: "chaos: a merchant's policy".to_owned(),
        ..Default::default()
    }
}

/// The fault phase: the clients place, retry and cancel orders while one task per lane
/// applies the schedule; after `config.duration` the lanes stop (healing the fault each
/// holds) and the clients are told to finish. Returns the clients, still finishing.
async fn run_faults(
    stack: &Arc<Stack>,
    plan: &Plan,
    config: &ChaosConfig,
) -> Vec<JoinHandle<ClientStats>> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let products = Arc::new(Products {
        hot: plan.hot.iter().map(|s| product_of(s)).collect(),
        cold: plan.cold.iter().map(|s| product_of(s)).collect(),
    });
    let client_tasks: Vec<_> = (0..config.clients)
        .map(|id| {
            tokio::spawn(clients::run_client(
                id,
                config.seed,
                stack.order_addr,
                Arc::clone(&products),
                stop_rx.clone(),
            ))
        })
        .collect();
    let start = Instant::now();
    let lane_tasks: Vec<_> = Lane::ALL
        .iter()
        .map(|lane| {
            let faults: Vec<(usize, Planned)> = plan
                .schedule
                .iter()
                .enumerate()
                .filter(|(_, p)| p.lane == *lane)
                .map(|(i, p)| (i, p.clone()))
                .collect();
            tokio::spawn(faults::run_lane(Arc::clone(stack), faults, start, stop_rx.clone()))
        })
        .collect();
    tokio::time::sleep(config.duration).await;
    stack.note("fault phase over: healing, letting clients finish");
    let _ = stop_tx.send(true);
    for lane in lane_tasks {
        if let Err(err) = lane.await {
            stack.error(format!("a fault lane panicked: {err}"));
        }
    }
    client_tasks
}

/// What the system looks like once healed and quiet.
struct Healed {
    /// Servers that exited by themselves during the faults.
    exits: Vec<String>,
    clients: ClientStats,
    /// Orders with a saga step left when the settle timeout ran out (-1: unknown).
    unsettled: i64,
}

/// Heals everything (PostgreSQL, every server, no faults), waits for the clients to finish,
/// then for every order to settle, at most `settle_timeout`.
async fn heal_and_settle(
    stack: &Stack,
    clients: Vec<JoinHandle<ClientStats>>,
    settle_timeout: Duration,
) -> anyhow::Result<Healed> {
    let mut exits = Vec::new();
    for server in stack.servers() {
        exits.extend(lock(server).unexpected_exits());
    }
    stack.heal_all().await?;
    crate::wait_serving(
        stack.inventory_addr,
        inventory_service::app::SERVICE_NAME,
        Duration::from_secs(60),
    )
    .await?;
    crate::wait_serving(
        stack.order_addr,
        order_service::app::SERVICE_NAME,
        Duration::from_secs(60),
    )
    .await?;
    let mut client_stats = ClientStats::default();
    for task in clients {
        match task.await {
            Ok(stats) => client_stats.merge(stats),
            Err(err) => stack.error(format!("a client panicked: {err}")),
        }
    }
    stack.note("clients done; waiting for every order to settle");
    let unsettled = wait_settled(stack, settle_timeout).await;
    stack.note(format!("settled (unsettled: {unsettled})"));
    Ok(Healed { exits, clients: client_stats, unsettled })
}

/// Polls until no order has a saga step left or `timeout` passes; returns how many still do
/// (-1 when the last poll failed).
async fn wait_settled(stack: &Stack, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let unsettled = match sqlx::query_scalar::<_, i64>(
            "select count(*) from orders.orders where next_action is not null",
        )
        .fetch_one(&stack.db.pool)
        .await
        {
            Ok(n) => n,
            Err(err) => {
                stack.note(format!("  settle poll failed: {err}"));
                -1
            }
        };
        if unsettled == 0 || Instant::now() > deadline {
            return unsettled;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the check found, with what the heal phase saw.
struct Findings {
    violations: Vec<Violation>,
    orders_by_status: BTreeMap<String, u64>,
    failed_by_reason: BTreeMap<String, u64>,
    saga_steps: BTreeMap<String, u64>,
    mismatches: Vec<String>,
    exits: Vec<String>,
    starts: BTreeMap<&'static str, u32>,
    events: Vec<ConsumerStats>,
    clients: ClientStats,
    unsettled: i64,
}

/// Runs the invariant checker and the event replay check, counts orders by status and reason
/// and saga steps, holds the clients' answers against the database (idempotency), and
/// collects unexpected exits.
async fn check(
    stack: &Stack,
    baseline: &Baseline,
    healed: Healed,
    consumers: Consumers,
) -> anyhow::Result<Findings> {
    let pool = &stack.db.pool;
    let mut violations =
        invariants::check(pool, baseline, &stack.payment.ledger(), SWEEP_INTERVAL).await?;
    let (events, replay_violations) = check_replay(stack, consumers).await?;
    violations.extend(replay_violations);
    let (orders_by_status, failed_by_reason) = orders_by_outcome(pool).await?;
    let saga_steps = saga_steps(pool).await?;
    let mismatches = idempotency_mismatches(pool, &healed.clients.placed).await?;
    let mut exits = healed.exits;
    for server in stack.servers() {
        for exit in lock(server).unexpected_exits() {
            if !exits.contains(&exit) {
                exits.push(exit);
            }
        }
    }
    let starts = BTreeMap::from([
        ("inventory-service", lock(&stack.inventory).generation()),
        ("order-service", lock(&stack.order).generation()),
    ]);
    Ok(Findings {
        violations,
        orders_by_status,
        failed_by_reason,
        saga_steps,
        mismatches,
        exits,
        starts,
        events,
        clients: healed.clients,
        unsettled: healed.unsettled,
    })
}

/// Lets the consumers catch up with the logs' heads, stops them, and replays their events
/// against the database: what each consumer took, and every gap, repeat or mismatch.
async fn check_replay(
    stack: &Stack,
    consumers: Consumers,
) -> anyhow::Result<(Vec<ConsumerStats>, Vec<Violation>)> {
    let db = replay::read_final(&stack.db.pool, DRAIN_TIMEOUT).await?;
    stack.note(format!(
        "event heads: inventory {}, order {}; letting the consumers catch up",
        db.inventory_head, db.orders_head
    ));
    let received = consumers.finish(&db, CATCH_UP_TIMEOUT).await;
    let mut violations = received.violations;
    violations.extend(replay::check(&received.inventory, &received.orders, &db));
    Ok((received.stats, violations))
}

/// Orders by status, and those that did not confirm by status and reason.
async fn orders_by_outcome(
    pool: &sqlx::PgPool,
) -> anyhow::Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
    let by_status: Vec<(String, String, i64)> =
        sqlx::query_as("select status, status_reason, count(*) from orders.orders group by 1, 2")
            .fetch_all(pool)
            .await?;
    let mut orders_by_status = BTreeMap::new();
    let mut failed_by_reason = BTreeMap::new();
    for (status, reason, n) in by_status {
        let n = u64::try_from(n).unwrap_or(0);
        *orders_by_status.entry(status.clone()).or_default() += n;
        if status != "CONFIRMED" {
            *failed_by_reason.entry(bucket(&status, &reason)).or_default() += n;
        }
    }
    Ok((orders_by_status, failed_by_reason))
}

/// Reduces a status reason to a bucket: numbers and ids become `N`, at most 90 characters.
fn bucket(status: &str, reason: &str) -> String {
    let words: Vec<String> = reason
        .split_whitespace()
        .map(|w| if w.chars().any(|c| c.is_ascii_digit()) { "N".to_owned() } else { w.to_owned() })
        .collect();
    let reason: String = words.join(" ").chars().take(90).collect();
    if reason.is_empty() { status.to_owned() } else { format!("{status}: {reason}") }
}

/// Saga steps recorded by the order server, as "action/outcome".
async fn saga_steps(pool: &sqlx::PgPool) -> anyhow::Result<BTreeMap<String, u64>> {
    let steps: Vec<(String, String, i64)> =
        sqlx::query_as("select action, outcome, count(*) from orders.saga_steps group by 1, 2")
            .fetch_all(pool)
            .await?;
    Ok(steps
        .into_iter()
        .map(|(action, outcome, n)| (format!("{action}/{outcome}"), u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// Each order a client was answered whose (user, key) names another order in the database.
async fn idempotency_mismatches(
    pool: &sqlx::PgPool,
    placed: &[Placed],
) -> anyhow::Result<Vec<String>> {
    let keyed: Vec<(String, Option<String>, uuid::Uuid)> =
        sqlx::query_as("select user_id, idempotency_key, id from orders.orders")
            .fetch_all(pool)
            .await?;
    let by_key: HashMap<(String, String), String> = keyed
        .into_iter()
        .filter_map(|(user, key, id)| Some(((user, key?), id.to_string())))
        .collect();
    let mut mismatches = Vec::new();
    for placed in placed {
        match by_key.get(&(placed.user_id.clone(), placed.key.clone())) {
            Some(id) if *id == placed.order_id => {}
            found => mismatches.push(format!(
                "{} key {}: client got order {}, database has {found:?}",
                placed.user_id, placed.key, placed.order_id
            )),
        }
    }
    Ok(mismatches)
}
