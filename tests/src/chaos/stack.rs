//! The running system a chaos run works on: a private PostgreSQL cluster, the payment
//! stand-in in this process, the fault-injecting proxy, and the three server binaries, each
//! on a free port; what the run notes and counts while it works on them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use test_support::binary::free_port;
use tokio::time::Instant;

use super::payment::Payment;
use super::procs::Server;
use super::proxy::{Proxy, ProxyMode};
use super::{Plan, SWEEP_INTERVAL};
use crate::cluster::Cluster;
use crate::{InventoryClient, TestDb};

/// The running system the scheduler works on.
/// Fields drop in order: the servers go before the database they use.
pub(super) struct Stack {
    pub(super) inventory: Mutex<Server>,
    pub(super) order: Mutex<Server>,
    pub(super) product: Mutex<Server>,
    pub(super) proxy: Proxy,
    pub(super) payment: Payment,
    pub(super) inventory_addr: SocketAddr,
    pub(super) order_addr: SocketAddr,
    /// The bearer token of the order server's operator RPCs (its WatchEvents).
    pub(super) order_admin_token: String,
    pub(super) hot: Vec<String>,
    pub(super) started: Instant,
    pub(super) faults: Mutex<BTreeMap<&'static str, u64>>,
    pub(super) fault_errors: Mutex<Vec<String>>,
    pub(super) db: TestDb,
    pub(super) cluster: Cluster,
}

/// The value behind `m`, even if a panicking holder poisoned it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Stack {
    /// Starts PostgreSQL, the payment stand-in, the proxy and the servers of `plan`, the order
    /// server last (once the inventory and the product stand-in serve).
    pub(super) async fn start(plan: &Plan) -> anyhow::Result<Self> {
        let cluster = Cluster::create().await?;
        let db = cluster.create_database().await?;
        let payment = Payment::start().await?;
        let (inventory_port, order_port, product_port) = (free_port()?, free_port()?, free_port()?);
        let inventory_addr: SocketAddr = ([127, 0, 0, 1], inventory_port).into();
        let order_addr: SocketAddr = ([127, 0, 0, 1], order_port).into();
        let product_addr: SocketAddr = ([127, 0, 0, 1], product_port).into();
        let proxy = Proxy::start(inventory_addr).await?;
        let peers =
            Peers { inventory: proxy.addr(), product: product_addr, payment: payment.addr() };
        let inventory_env = overridden(inventory_env(&db, inventory_addr), "CHAOS_INVENTORY_");
        let order_env = overridden(order_env(&db, order_addr, &peers), "CHAOS_ORDER_");
        let order_admin_token = order_env
            .iter()
            .find_map(|(k, v)| (k == "ADMIN_TOKEN").then(|| v.clone()))
            .unwrap_or_default();
        let mut inventory = Server::new("inventory-service", inventory_env, &plan.log_dir)?;
        let mut order = Server::new("order-service", order_env, &plan.log_dir)?;
        let mut product = Server::new(
            "product-standin",
            product_env(product_addr, &plan.catalog),
            &plan.log_dir,
        )?;
        inventory.spawn()?;
        product.spawn()?;
        crate::wait_serving(
            inventory_addr,
            inventory_service::app::SERVICE_NAME,
            Duration::from_secs(30),
        )
        .await?;
        crate::wait_serving(
            product_addr,
            dev_standins::product::SERVICE_NAME,
            Duration::from_secs(30),
        )
        .await?;
        order.spawn()?;
        crate::wait_serving(order_addr, order_service::app::SERVICE_NAME, Duration::from_secs(30))
            .await?;
        Ok(Self {
            cluster,
            db,
            inventory: Mutex::new(inventory),
            order: Mutex::new(order),
            product: Mutex::new(product),
            proxy,
            payment,
            inventory_addr,
            order_addr,
            order_admin_token,
            hot: plan.hot.clone(),
            started: Instant::now(),
            faults: Mutex::new(BTreeMap::new()),
            fault_errors: Mutex::new(Vec::new()),
        })
    }

    /// The three server processes.
    pub(super) fn servers(&self) -> [&Mutex<Server>; 3] {
        [&self.inventory, &self.order, &self.product]
    }

    /// Prints `what` with the time since the stack started.
    pub(super) fn note(&self, what: impl fmt::Display) {
        println!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Notes a harness error (a fault that could not be applied or healed, a panicked task).
    pub(super) fn error(&self, what: String) {
        self.note(format!("ERROR {what}"));
        lock(&self.fault_errors)
            .push(format!("{:.1}s {what}", self.started.elapsed().as_secs_f64()));
    }

    /// Counts one applied fault of `kind`.
    pub(super) fn count(&self, kind: &'static str) {
        *lock(&self.faults).entry(kind).or_default() += 1;
    }

    /// A client of the inventory server (directly, not through the proxy).
    pub(super) fn inventory_client(&self) -> anyhow::Result<InventoryClient> {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", self.inventory_addr))?
                .connect_timeout(Duration::from_secs(1))
                .connect_lazy();
        Ok(InventoryClient::new(channel))
    }

    /// Everything back to normal: PostgreSQL up, every server running, no faults.
    pub(super) async fn heal_all(&self) -> anyhow::Result<()> {
        self.proxy.set_mode(ProxyMode::Pass);
        if let Some(faults) = self.payment.faults().await {
            faults.reset();
        }
        if !self.cluster.is_running() {
            self.cluster.start().await?;
        }
        for server in self.servers() {
            lock(server).ensure_running()?;
        }
        Ok(())
    }
}

/// The order server's admin token in the run (`CHAOS_ORDER_ADMIN_TOKEN` overrides it).
const ORDER_ADMIN_TOKEN: &str = "chaos-operator-token";

/// Where the order server finds its peers: the inventory through the proxy.
struct Peers {
    inventory: SocketAddr,
    product: SocketAddr,
    payment: SocketAddr,
}

/// Settings both servers run with.
fn common_env(db: &TestDb) -> Vec<(String, String)> {
    env(&[
        ("DATABASE_URL", db.url.clone()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("DB_ACQUIRE_TIMEOUT_MS", "1000".to_owned()),
        ("DB_MAX_CONNECTIONS", "10".to_owned()),
        ("RECONCILE_INTERVAL_MS", "5000".to_owned()),
    ])
}

/// The inventory server's settings.
fn inventory_env(db: &TestDb, addr: SocketAddr) -> Vec<(String, String)> {
    let mut envs = common_env(db);
    envs.extend(env(&[
        ("GRPC_ADDR", addr.to_string()),
        ("SWEEP_INTERVAL_MS", SWEEP_INTERVAL.as_millis().to_string()),
        // The run's own admin adjustments are faults it injects, open on purpose.
        ("ADMIN_AUTH_DISABLED", "true".to_owned()),
    ]));
    envs
}

/// The order server's settings.
fn order_env(db: &TestDb, addr: SocketAddr, peers: &Peers) -> Vec<(String, String)> {
    let mut envs = common_env(db);
    envs.extend(env(&[
        ("GRPC_ADDR", addr.to_string()),
        ("INVENTORY_SERVICE_URL", format!("http://{}", peers.inventory)),
        ("PRODUCT_SERVICE_URL", format!("http://{}", peers.product)),
        ("PAYMENT_SERVICE_URL", format!("http://{}", peers.payment)),
        // Longer than PEER_TIMEOUT_MS x (PEER_RETRIES + 1) + backoff: the server refuses less.
        ("SAGA_LEASE_MS", "3500".to_owned()),
        ("RECOVERY_INTERVAL_MS", "100".to_owned()),
        ("RETRY_BACKOFF_MAX_MS", "500".to_owned()),
        ("ORDER_HOLD_MINUTES", "1".to_owned()),
        ("PEER_TIMEOUT_MS", "1000".to_owned()),
        ("PEER_RETRIES", "2".to_owned()),
        ("CREATE_ORDER_BUDGET_MS", "3000".to_owned()),
        ("RECONCILE_GRACE_MS", "30000".to_owned()),
        // WatchEvents is an operator RPC: the run's event consumer calls it with this token.
        ("ADMIN_TOKEN", ORDER_ADMIN_TOKEN.to_owned()),
    ]));
    envs
}

/// The product stand-in's settings: the run's catalog.
fn product_env(addr: SocketAddr, catalog: &Path) -> Vec<(String, String)> {
    env(&[
        ("GRPC_ADDR", addr.to_string()),
        ("CATALOG_PATH", catalog.display().to_string()),
        ("LOG_FORMAT", "json".to_owned()),
    ])
}

/// Owned (name, value) pairs.
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
