//! Settings from the environment (12-factor), each also a `--flag`.

use std::net::SocketAddr;
use std::time::Duration;

use common::settings::{DatabaseSettings, LogSettings};
use common::tls::{PeerTlsSettings, ServerTlsSettings};

/// Everything the order server can be told at start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "order-service",
    version,
    about = "Order gRPC server: places orders through a persisted saga over inventory, product and payment."
)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub log: LogSettings,

    /// TLS of the gRPC server (plaintext unless TLS_CERT_PATH and TLS_KEY_PATH are set).
    #[command(flatten)]
    pub tls: ServerTlsSettings,

    /// TLS of the clients of `https://` peer URLs (inventory, product, payment, user).
    #[command(flatten)]
    pub peer_tls: PeerTlsSettings,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50052")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP server exposing `/metrics`.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9102")]
    pub metrics_addr: SocketAddr,

    /// URL of the inventory service.
    #[arg(long, env = "INVENTORY_SERVICE_URL", default_value = "http://127.0.0.1:50051")]
    pub inventory_service_url: String,

    /// URL of the product catalog service.
    #[arg(long, env = "PRODUCT_SERVICE_URL", default_value = "http://127.0.0.1:50053")]
    pub product_service_url: String,

    /// URL of the payment service.
    #[arg(long, env = "PAYMENT_SERVICE_URL", default_value = "http://127.0.0.1:50054")]
    pub payment_service_url: String,

    /// URL of the user service; when set, CreateOrder refuses unknown and blocked users.
    #[arg(long, env = "USER_SERVICE_URL")]
    pub user_service_url: Option<String>,

    /// Deadline of each call to a peer service, in milliseconds.
    #[arg(long, env = "PEER_TIMEOUT_MS", default_value_t = 2_000)]
    pub peer_timeout_ms: u64,

    /// How many times a call to a peer is retried inline after a transient error.
    #[arg(long, env = "PEER_RETRIES", default_value_t = 3)]
    pub peer_retries: u32,

    /// How long whoever drives an order's saga holds it before others may take over, in ms.
    #[arg(long, env = "SAGA_LEASE_MS", default_value_t = 30_000)]
    pub saga_lease_ms: u64,

    /// How often the recovery worker looks for orders to resume, in milliseconds.
    #[arg(long, env = "RECOVERY_INTERVAL_MS", default_value_t = 1_000)]
    pub recovery_interval_ms: u64,

    /// Most orders one replica's recovery worker drives at once.
    #[arg(long, env = "RECOVERY_BATCH", default_value_t = 32)]
    pub recovery_batch: u32,

    /// Minutes an order's inventory hold lives (it must outlast payment retries).
    #[arg(long, env = "ORDER_HOLD_MINUTES", default_value_t = 30)]
    pub order_hold_minutes: u32,

    /// How long CreateOrder and CancelOrder drive the saga before answering with the state
    /// reached (the saga then continues in the background), in milliseconds.
    #[arg(long, env = "CREATE_ORDER_BUDGET_MS", default_value_t = 10_000)]
    pub create_order_budget_ms: u64,

    /// Longest wait between two attempts of a failing saga step, in milliseconds.
    #[arg(long, env = "RETRY_BACKOFF_MAX_MS", default_value_t = 30_000)]
    pub retry_backoff_max_ms: u64,

    /// How often the reconciler compares confirmed orders with the inventory, in
    /// milliseconds (0 disables it).
    #[arg(long, env = "RECONCILE_INTERVAL_MS", default_value_t = 60_000)]
    pub reconcile_interval_ms: u64,

    /// How long after confirmation an order's hold may stay uncommitted before the
    /// reconciler counts it, in milliseconds.
    #[arg(long, env = "RECONCILE_GRACE_MS", default_value_t = 300_000)]
    pub reconcile_grace_ms: u64,

    /// Most orders the reconciler asks the inventory about per tick.
    #[arg(long, env = "RECONCILE_BATCH", default_value_t = 200)]
    pub reconcile_batch: u32,
}

impl Settings {
    /// The lease a saga driver holds while it works on an order.
    pub fn saga_lease(&self) -> Duration {
        Duration::from_millis(self.saga_lease_ms.max(100))
    }

    /// The inline budget of CreateOrder and CancelOrder.
    pub fn request_budget(&self) -> Duration {
        Duration::from_millis(self.create_order_budget_ms)
    }
}
