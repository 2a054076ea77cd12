//! The seeded chaos run: the real `inventory-service`, `order-service` and `product-standin`
//! binaries on a private PostgreSQL cluster, the payment stand-in in this process (for its
//! books and fault switchboard), a fault-injecting proxy between the order and inventory
//! servers, concurrent clients, and a scheduler that, from a printed seed, kill -9s and
//! restarts the servers, restarts or crashes PostgreSQL, makes payments slow, failing or
//! declining, and cuts or delays the order -> inventory connection. Then everything heals,
//! every order settles, and the [`crate::invariants`] checker runs.
//!
//! Environment: `CHAOS_SEED` (replay a run), `CHAOS_DURATION_SECS` (fault phase, default 60),
//! `CHAOS_CLIENTS` (default 8), `CHAOS_SETTLE_SECS` (how long orders may take to settle
//! afterwards, default 120), `CHAOS_KEEP_LOGS=1` (keep the servers' logs after a clean run),
//! `CHAOS_ORDER_<NAME>` / `CHAOS_INVENTORY_<NAME>` (override a server setting, e.g.
//! `CHAOS_ORDER_PEER_RETRIES=6`).

pub mod clients;
pub mod payment;
pub mod procs;
pub mod proxy;
pub mod rng;
pub mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::inventory::v1 as inv;
use test_support::binary::free_port;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Code;

use crate::cluster::Cluster;
use crate::invariants::{self, Baseline, Violation};
use crate::{InventoryClient, TestDb};
use clients::{ClientStats, Products};
use payment::Payment;
use procs::Server;
use proxy::{Proxy, ProxyMode};
use schedule::{Fault, Lane, Planned};

/// The inventory server's sweep interval in the run (also the checker's tolerance).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(200);

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

/// Wall-clock time of each phase.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub setup: Duration,
    pub faults: Duration,
    pub quiesce: Duration,
    pub check: Duration,
}

/// Everything a run counted, and every violation it found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub seed: u64,
    pub config: ChaosConfig,
    pub schedule: Vec<Planned>,
    /// Faults applied, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Faults that could not be applied or healed (harness problems, not violations).
    pub fault_errors: Vec<String>,
    pub clients: ClientStats,
    /// Orders in the database by status.
    pub orders_by_status: BTreeMap<String, u64>,
    /// Orders that did not confirm, by status and reason.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Saga steps recorded by the order server, as "action/outcome".
    pub saga_steps: BTreeMap<String, u64>,
    /// Orders still unsettled when the checker ran.
    pub unsettled: i64,
    /// Invariant violations (must be empty).
    pub violations: Vec<Violation>,
    /// Client answers that disagree with the database (idempotency).
    pub mismatches: Vec<String>,
    /// Server processes that exited without being killed.
    pub unexpected_exits: Vec<String>,
    /// Server restarts by binary.
    pub starts: BTreeMap<&'static str, u32>,
    pub timings: Timings,
    /// Where the servers' logs are (deleted after a clean run unless kept).
    pub log_dir: PathBuf,
}

impl ChaosReport {
    /// Whether the run found nothing wrong.
    pub fn clean(&self) -> bool {
        self.violations.is_empty() && self.mismatches.is_empty() && self.unexpected_exits.is_empty()
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.clients;
        writeln!(f, "==== chaos run, seed {} (replay: CHAOS_SEED={}) ====", self.seed, self.seed)?;
        writeln!(
            f,
            "fault phase {}, {} clients, {} hot SKUs x {} units, {} cold SKUs",
            secs(self.config.duration),
            self.config.clients,
            self.config.hot_skus,
            self.config.hot_stock,
            self.config.cold_skus
        )?;
        writeln!(
            f,
            "timings: setup {}, faults {}, quiesce {}, check {}",
            secs(self.timings.setup),
            secs(self.timings.faults),
            secs(self.timings.quiesce),
            secs(self.timings.check)
        )?;
        writeln!(
            f,
            "orders attempted (distinct keys): {}; CreateOrder calls {} ({} retries with the same \
             key); same-key duplicates sent: {}",
            c.attempted, c.create_calls, c.retries, c.duplicates
        )?;
        writeln!(f, "client outcomes per key:")?;
        for (k, v) in &c.outcomes {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        writeln!(f, "transient errors seen by clients: {:?}", c.transient)?;
        writeln!(f, "cancels: {:?}", c.cancels)?;
        let total: u64 = self.orders_by_status.values().sum();
        writeln!(
            f,
            "orders in the database: {total}; confirmed: {}",
            self.orders_by_status.get("CONFIRMED").copied().unwrap_or(0)
        )?;
        for (k, v) in &self.orders_by_status {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        writeln!(f, "failed by reason:")?;
        for (k, v) in &self.failed_by_reason {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        let injected: u64 =
            self.faults.iter().filter(|(k, _)| **k != "admin_adjust").map(|(_, v)| v).sum();
        writeln!(f, "faults injected: {injected} (+ admin adjustments)")?;
        for (k, v) in &self.faults {
            writeln!(f, "  {v:>6}  {k}")?;
        }
        writeln!(f, "server starts: {:?}", self.starts)?;
        writeln!(f, "saga steps (action/outcome): {:?}", self.saga_steps)?;
        if !self.fault_errors.is_empty() {
            writeln!(f, "harness errors while injecting/healing faults:")?;
            for e in &self.fault_errors {
                writeln!(f, "  {e}")?;
            }
        }
        if !c.anomalies.is_empty() {
            writeln!(f, "client anomalies:")?;
            for (k, v) in &c.anomalies {
                writeln!(f, "  {v:>6}  {k}")?;
            }
        }
        for e in &self.unexpected_exits {
            writeln!(f, "UNEXPECTED EXIT: {e}")?;
        }
        for m in &self.mismatches {
            writeln!(f, "IDEMPOTENCY MISMATCH: {m}")?;
        }
        writeln!(f, "orders unsettled at check: {}", self.unsettled)?;
        if self.violations.is_empty() {
            writeln!(f, "violations: 0")?;
        } else {
            writeln!(f, "violations:\n{}", invariants::report(&self.violations))?;
        }
        write!(f, "server logs: {}", self.log_dir.display())
    }
}

/// The running system the scheduler works on.
/// Fields drop in order: the servers go before the database they use.
struct Stack {
    inventory: Mutex<Server>,
    order: Mutex<Server>,
    product: Mutex<Server>,
    proxy: Proxy,
    payment: Payment,
    inventory_addr: SocketAddr,
    hot: Vec<String>,
    started: Instant,
    faults: Mutex<BTreeMap<&'static str, u64>>,
    fault_errors: Mutex<Vec<String>>,
    db: TestDb,
    cluster: Cluster,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stack {
    fn note(&self, what: impl fmt::Display) {
        println!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn error(&self, what: String) {
        self.note(format!("ERROR {what}"));
        lock(&self.fault_errors)
            .push(format!("{:.1}s {what}", self.started.elapsed().as_secs_f64()));
    }

    fn count(&self, kind: &'static str) {
        *lock(&self.faults).entry(kind).or_default() += 1;
    }

    fn inventory_client(&self) -> anyhow::Result<InventoryClient> {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", self.inventory_addr))?
                .connect_timeout(Duration::from_secs(1))
                .connect_lazy();
        Ok(InventoryClient::new(channel))
    }

    /// Applies `fault`, keeps it for its span (cut short when `stop` flips), then heals it.
    async fn inject(&self, index: usize, fault: &Fault, stop: &mut watch::Receiver<bool>) {
        self.note(fault);
        let result = self.apply(index, fault).await;
        match result {
            Ok(()) => self.count(fault.kind()),
            Err(err) => self.error(format!("applying {fault}: {err:#}")),
        }
        wait_or_stop(fault.span(), stop).await;
        if let Err(err) = self.heal(fault).await {
            self.error(format!("healing {fault}: {err:#}"));
        }
    }

    async fn apply(&self, index: usize, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::KillOrder { .. } => lock(&self.order).kill(),
            Fault::KillInventory { .. } => lock(&self.inventory).kill(),
            Fault::RestartPostgres { crash: true, .. } => self.cluster.kill().await,
            Fault::RestartPostgres { crash: false, .. } => self.cluster.stop().await,
            Fault::ProxyDelay { ms, .. } => {
                self.proxy.set_mode(ProxyMode::Delay(*ms));
                Ok(())
            }
            Fault::ProxyCut => {
                let n = self.proxy.cut();
                self.note(format!("  cut {n} connection(s)"));
                Ok(())
            }
            Fault::ProxyPartition { .. } => {
                self.proxy.set_mode(ProxyMode::Refuse);
                self.proxy.cut();
                Ok(())
            }
            Fault::PaymentLatency { ms, .. } => {
                self.payment_faults().await?.set_latency_ms(*ms);
                Ok(())
            }
            Fault::PaymentFailNext { n } => {
                self.payment_faults().await?.fail_next_n(*n);
                Ok(())
            }
            Fault::PaymentFailAfterApply { n } => {
                self.payment_faults().await?.fail_after_apply_next_n(*n);
                Ok(())
            }
            Fault::PaymentOutage { .. } => {
                self.payment_faults().await?.set_fail_all(true);
                Ok(())
            }
            Fault::PaymentDeclines { over_minor, .. } => {
                self.payment.restart(Some(*over_minor)).await
            }
            Fault::Adjust { hot, delta } => self.adjust(index, *hot, *delta).await,
            Fault::ExpireHolds => self.expire_holds().await,
        }
    }

    async fn heal(&self, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::KillOrder { .. } => lock(&self.order).spawn(),
            Fault::KillInventory { .. } => lock(&self.inventory).spawn(),
            Fault::RestartPostgres { .. } => self.cluster.start().await,
            Fault::ProxyDelay { .. } | Fault::ProxyPartition { .. } => {
                self.proxy.set_mode(ProxyMode::Pass);
                Ok(())
            }
            Fault::PaymentLatency { .. } => {
                self.payment_faults().await?.set_latency_ms(0);
                Ok(())
            }
            Fault::PaymentOutage { .. } => {
                self.payment_faults().await?.set_fail_all(false);
                Ok(())
            }
            Fault::PaymentDeclines { .. } => self.payment.restart(None).await,
            Fault::ProxyCut
            | Fault::PaymentFailNext { .. }
            | Fault::PaymentFailAfterApply { .. }
            | Fault::Adjust { .. }
            | Fault::ExpireHolds => Ok(()),
        }
    }

    async fn payment_faults(&self) -> anyhow::Result<dev_standins::Faults> {
        self.payment.faults().await.ok_or_else(|| anyhow::anyhow!("payment stand-in not running"))
    }

    /// AdjustStock with a key of its own, retried on transient errors (same key) for a while.
    async fn adjust(&self, index: usize, hot: usize, delta: i32) -> anyhow::Result<()> {
        let sku = self.hot.get(hot).cloned().unwrap_or_default();
        let req = inv::AdjustStockRequest {
            sku: sku.clone(),
            warehouse_id: String::new(),
            delta,
            reason: "chaos admin adjustment".to_owned(),
            idempotency_key: format!("chaos-adjust-{index}"),
        };
        let mut client = self.inventory_client()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut call = tonic::Request::new(req.clone());
            call.set_timeout(Duration::from_secs(3));
            match client.adjust_stock(call).await {
                Ok(item) => {
                    let item = item.into_inner();
                    self.note(format!(
                        "  {sku} now on_hand {} reserved {}",
                        item.on_hand, item.reserved
                    ));
                    return Ok(());
                }
                // Taking away more than is free is refused; that is a fine outcome.
                Err(status) if status.code() == Code::FailedPrecondition => {
                    self.note(format!("  refused: {}", status.message()));
                    return Ok(());
                }
                Err(status) if Instant::now() < deadline && is_transient(status.code()) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => anyhow::bail!("AdjustStock {sku}: {status}"),
            }
        }
    }

    /// Every PENDING hold expires now (retried while PostgreSQL is restarting).
    async fn expire_holds(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = sqlx::query(
                "update inventory.reservations set expires_at = now()
                  where status = 'PENDING' and expires_at > now()",
            )
            .execute(&self.db.pool)
            .await;
            match result {
                Ok(done) => {
                    self.note(format!("  {} hold(s) expired", done.rows_affected()));
                    return Ok(());
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Everything back to normal: PostgreSQL up, every server running, no faults.
    async fn heal_all(&self) -> anyhow::Result<()> {
        self.proxy.set_mode(ProxyMode::Pass);
        if let Some(faults) = self.payment.faults().await {
            faults.reset();
        }
        if !self.cluster.is_running() {
            self.cluster.start().await?;
        }
        for server in [&self.inventory, &self.order, &self.product] {
            lock(server).ensure_running()?;
        }
        Ok(())
    }
}

fn is_transient(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
}

/// Sleeps `span`, or less when `stop` turns true.
async fn wait_or_stop(span: Duration, stop: &mut watch::Receiver<bool>) {
    if *stop.borrow() || span.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(span) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Runs one lane's faults at their planned offsets from `start`.
async fn run_lane(
    stack: Arc<Stack>,
    faults: Vec<(usize, Planned)>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    for (index, planned) in faults {
        let at = start + planned.at;
        if Instant::now() > at + Duration::from_secs(1) {
            stack.note(format!(
                "  ({:?} lane is {} ms behind its schedule)",
                planned.lane,
                (Instant::now() - at).as_millis()
            ));
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        stack.inject(index, &planned.fault, &mut stop).await;
    }
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

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// Settings overridden from this process's environment: `<prefix>NAME=value` sets `NAME`
/// (e.g. `CHAOS_ORDER_PEER_RETRIES=6` gives the order server `PEER_RETRIES=6`).
fn overridden(mut envs: Vec<(String, String)>, prefix: &str) -> Vec<(String, String)> {
    for (key, value) in std::env::vars() {
        if let Some(name) = key.strip_prefix(prefix).filter(|n| !n.is_empty()) {
            println!("override: {name}={value} ({key})");
            envs.retain(|(k, _)| k != name);
            envs.push((name.to_owned(), value));
        }
    }
    envs
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

/// One whole run: set up, faults + clients, quiesce, check. Errors only for harness failures
/// (the report carries the violations).
pub async fn run(config: ChaosConfig) -> anyhow::Result<ChaosReport> {
    let seed = config.seed;
    println!("chaos seed: {seed}   (replay with CHAOS_SEED={seed})");
    let t0 = Instant::now();
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

    let cluster = Cluster::create().await?;
    let db = cluster.create_database().await?;
    let payment = Payment::start().await?;
    let (inventory_port, order_port, product_port) = (free_port()?, free_port()?, free_port()?);
    let inventory_addr: SocketAddr = ([127, 0, 0, 1], inventory_port).into();
    let order_addr: SocketAddr = ([127, 0, 0, 1], order_port).into();
    let product_addr: SocketAddr = ([127, 0, 0, 1], product_port).into();
    let proxy = Proxy::start(inventory_addr).await?;
    let common_env = [
        ("DATABASE_URL", db.url.clone()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("DB_ACQUIRE_TIMEOUT_MS", "1000".to_owned()),
        ("DB_MAX_CONNECTIONS", "10".to_owned()),
        ("RECONCILE_INTERVAL_MS", "5000".to_owned()),
    ];
    let mut inventory_env = env(&common_env);
    inventory_env.extend(env(&[
        ("GRPC_ADDR", inventory_addr.to_string()),
        ("SWEEP_INTERVAL_MS", SWEEP_INTERVAL.as_millis().to_string()),
        // The run's own admin adjustments are faults it injects, open on purpose.
        ("ADMIN_AUTH_DISABLED", "true".to_owned()),
    ]));
    let mut order_env = env(&common_env);
    order_env.extend(env(&[
        ("GRPC_ADDR", order_addr.to_string()),
        ("INVENTORY_SERVICE_URL", format!("http://{}", proxy.addr())),
        ("PRODUCT_SERVICE_URL", format!("http://{product_addr}")),
        ("PAYMENT_SERVICE_URL", format!("http://{}", payment.addr())),
        // Longer than PEER_TIMEOUT_MS x (PEER_RETRIES + 1) + backoff: the server refuses less.
        ("SAGA_LEASE_MS", "3500".to_owned()),
        ("RECOVERY_INTERVAL_MS", "100".to_owned()),
        ("RETRY_BACKOFF_MAX_MS", "500".to_owned()),
        ("ORDER_HOLD_MINUTES", "1".to_owned()),
        ("PEER_TIMEOUT_MS", "1000".to_owned()),
        ("PEER_RETRIES", "2".to_owned()),
        ("CREATE_ORDER_BUDGET_MS", "3000".to_owned()),
        ("RECONCILE_GRACE_MS", "30000".to_owned()),
    ]));
    let product_env = env(&[
        ("GRPC_ADDR", product_addr.to_string()),
        ("CATALOG_PATH", catalog.display().to_string()),
        ("LOG_FORMAT", "json".to_owned()),
    ]);
    let inventory_env = overridden(inventory_env, "CHAOS_INVENTORY_");
    let order_env = overridden(order_env, "CHAOS_ORDER_");
    let mut inventory = Server::new("inventory-service", inventory_env, &log_dir)?;
    let mut order = Server::new("order-service", order_env, &log_dir)?;
    let mut product = Server::new("product-standin", product_env, &log_dir)?;
    inventory.spawn()?;
    product.spawn()?;
    crate::wait_serving(
        inventory_addr,
        inventory_service::app::SERVICE_NAME,
        Duration::from_secs(30),
    )
    .await?;
    crate::wait_serving(product_addr, dev_standins::product::SERVICE_NAME, Duration::from_secs(30))
        .await?;
    order.spawn()?;
    crate::wait_serving(order_addr, order_service::app::SERVICE_NAME, Duration::from_secs(30))
        .await?;

    let stack = Arc::new(Stack {
        cluster,
        db,
        inventory: Mutex::new(inventory),
        order: Mutex::new(order),
        product: Mutex::new(product),
        proxy,
        payment,
        inventory_addr,
        hot: hot.clone(),
        started: Instant::now(),
        faults: Mutex::new(BTreeMap::new()),
        fault_errors: Mutex::new(Vec::new()),
    });
    let mut admin = stack.inventory_client()?;
    for (sku, units) in
        hot.iter().map(|s| (s, config.hot_stock)).chain(cold.iter().map(|s| (s, config.cold_stock)))
    {
        admin
            .upsert_inventory_item(inv::UpsertInventoryItemRequest {
                sku: sku.clone(),
                product_id: format!("p-{}", sku.to_lowercase()),
                variant_id: None,
                warehouse_id: String::new(),
                on_hand: units,
            })
            .await?;
    }
    let baseline = Baseline::capture(&stack.db.pool).await?;
    let setup = t0.elapsed();
    println!("setup done in {} (logs in {})", secs(setup), log_dir.display());

    // Faults and clients.
    let t1 = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let products = Arc::new(Products {
        hot: hot.iter().map(|s| format!("p-{}", s.to_lowercase())).collect(),
        cold: cold.iter().map(|s| format!("p-{}", s.to_lowercase())).collect(),
    });
    let client_tasks: Vec<_> = (0..config.clients)
        .map(|id| {
            tokio::spawn(clients::run_client(
                id,
                seed,
                order_addr,
                Arc::clone(&products),
                stop_rx.clone(),
            ))
        })
        .collect();
    let start = Instant::now();
    let lane_tasks: Vec<_> = Lane::ALL
        .iter()
        .map(|lane| {
            let faults: Vec<(usize, Planned)> = schedule
                .iter()
                .enumerate()
                .filter(|(_, p)| p.lane == *lane)
                .map(|(i, p)| (i, p.clone()))
                .collect();
            tokio::spawn(run_lane(Arc::clone(&stack), faults, start, stop_rx.clone()))
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
    let faults_took = t1.elapsed();

    // Quiesce.
    let t2 = Instant::now();
    let mut exits = Vec::new();
    for server in [&stack.inventory, &stack.order, &stack.product] {
        exits.extend(lock(server).unexpected_exits());
    }
    stack.heal_all().await?;
    crate::wait_serving(
        inventory_addr,
        inventory_service::app::SERVICE_NAME,
        Duration::from_secs(60),
    )
    .await?;
    crate::wait_serving(order_addr, order_service::app::SERVICE_NAME, Duration::from_secs(60))
        .await?;
    let mut client_stats = ClientStats::default();
    for task in client_tasks {
        match task.await {
            Ok(stats) => client_stats.merge(stats),
            Err(err) => stack.error(format!("a client panicked: {err}")),
        }
    }
    stack.note("clients done; waiting for every order to settle");
    let deadline = Instant::now() + config.settle_timeout;
    let mut unsettled: i64;
    loop {
        unsettled = match sqlx::query_scalar::<_, i64>(
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
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stack.note(format!("settled (unsettled: {unsettled})"));
    let quiesce = t2.elapsed();

    // Check.
    let t3 = Instant::now();
    let violations =
        invariants::check(&stack.db.pool, &baseline, &stack.payment.ledger(), SWEEP_INTERVAL)
            .await?;
    let by_status: Vec<(String, String, i64)> =
        sqlx::query_as("select status, status_reason, count(*) from orders.orders group by 1, 2")
            .fetch_all(&stack.db.pool)
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
    let steps: Vec<(String, String, i64)> =
        sqlx::query_as("select action, outcome, count(*) from orders.saga_steps group by 1, 2")
            .fetch_all(&stack.db.pool)
            .await?;
    let saga_steps = steps
        .into_iter()
        .map(|(action, outcome, n)| (format!("{action}/{outcome}"), u64::try_from(n).unwrap_or(0)))
        .collect();
    let keyed: Vec<(String, Option<String>, uuid::Uuid)> =
        sqlx::query_as("select user_id, idempotency_key, id from orders.orders")
            .fetch_all(&stack.db.pool)
            .await?;
    let by_key: HashMap<(String, String), String> = keyed
        .into_iter()
        .filter_map(|(user, key, id)| Some(((user, key?), id.to_string())))
        .collect();
    let mut mismatches = Vec::new();
    for placed in &client_stats.placed {
        match by_key.get(&(placed.user_id.clone(), placed.key.clone())) {
            Some(id) if *id == placed.order_id => {}
            found => mismatches.push(format!(
                "{} key {}: client got order {}, database has {found:?}",
                placed.user_id, placed.key, placed.order_id
            )),
        }
    }
    for server in [&stack.inventory, &stack.order, &stack.product] {
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
    let check_took = t3.elapsed();

    let report = ChaosReport {
        seed,
        config: config.clone(),
        schedule,
        faults: lock(&stack.faults).clone(),
        fault_errors: lock(&stack.fault_errors).clone(),
        clients: client_stats,
        orders_by_status,
        failed_by_reason,
        saga_steps,
        unsettled,
        violations,
        mismatches,
        unexpected_exits: exits,
        starts,
        timings: Timings { setup, faults: faults_took, quiesce, check: check_took },
        log_dir: log_dir.clone(),
    };
    // Stop the servers before deleting their logs (the stack drops the cluster last).
    drop(stack);
    if report.clean() && !config.keep_logs {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    Ok(report)
}
