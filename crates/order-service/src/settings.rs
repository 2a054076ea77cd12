//! Settings from the environment (12-factor), each also a `--flag`.

use std::net::SocketAddr;
use std::time::Duration;

use common::auth::AdminAuthSettings;
use common::host::ShutdownSettings;
use common::overload::OverloadSettings;
use common::settings::{DatabaseSettings, LogSettings};
use security::tls::{PeerTlsSettings, ServerTlsSettings};

/// First wait between two inline attempts of one call.
pub const INLINE_FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two inline attempts: inline retries ride out blips, not outages.
pub const INLINE_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Deadline and inline retries of every peer call.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    pub timeout: Duration,
    pub retries: u32,
}

impl CallPolicy {
    /// The longest one call with its inline retries can take: every attempt running into
    /// its deadline, and the longest wait before each retry.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.timeout.saturating_mul(self.retries.saturating_add(1));
        // Past 31 doublings every wait is capped; count those without looping over them.
        let growing = self.retries.min(31);
        let capped = INLINE_MAX_BACKOFF.saturating_mul(self.retries - growing);
        (0..growing).fold(attempts.saturating_add(capped), |total, retry| {
            let wait = INLINE_FIRST_BACKOFF.saturating_mul(1 << retry).min(INLINE_MAX_BACKOFF);
            total.saturating_add(wait)
        })
    }
}

/// Where gRPC is served unless GRPC_ADDR says otherwise (the healthcheck probes it too).
pub const DEFAULT_GRPC_ADDR: &str = "0.0.0.0:50052";

/// Everything the order server can be told at start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "order-service",
    version,
    about = "Order gRPC server: places orders through a persisted saga over inventory, product and payment."
,
    after_help = common::healthcheck::HELP_WITH_MIGRATE
)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub log: LogSettings,

    /// TLS of the gRPC server (plaintext unless TLS_CERT_PATH and TLS_KEY_PATH are set).
    #[command(flatten)]
    pub tls: ServerTlsSettings,

    /// Who may call the operator RPCs (ListParkedOrders, ResolveParkedOrder). Unlike the
    /// inventory's admin RPCs, nothing set does not stop the server: the operator RPCs then
    /// answer PERMISSION_DENIED to everyone.
    #[command(flatten)]
    pub admin: AdminAuthSettings,

    /// Identities (mutual TLS) that may watch this service's events, with the types each may
    /// stream: `warehouse=order.confirmed,order.cancelled;analytics=*`. Operators (the admin
    /// guard) watch every type; empty: operators only.
    #[arg(long, env = "EVENT_WATCHERS", default_value = "")]
    pub event_watchers: String,

    /// TLS of the clients of `https://` peer URLs (inventory, product, payment, user).
    #[command(flatten)]
    pub peer_tls: PeerTlsSettings,

    /// The event log: relay, WatchEvents limits, event retention.
    #[command(flatten)]
    pub events: common::events::EventSettings,

    /// Which callers may state the end user, and which may see every user's orders.
    #[command(flatten)]
    pub user_binding: UserBindingSettings,

    #[command(flatten)]
    pub overload: OverloadSettings,

    /// Shutdown (drain delay, grace) and connection age.
    #[command(flatten)]
    pub shutdown: ShutdownSettings,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = DEFAULT_GRPC_ADDR)]
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

    /// Most items (lines) one CreateOrder may carry; keep it at or below the inventory's
    /// `MAX_ITEMS_PER_REQUEST`, since an order's SKUs are reserved in one request.
    #[arg(long, env = "MAX_ITEMS_PER_REQUEST", default_value_t = 100)]
    pub max_items_per_request: usize,

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

    /// Milliseconds after its creation within which an order must be reserved and paid;
    /// past that it is cancelled (hold released, never charged). 0: no limit. Default 20 min.
    #[arg(long, env = "ORDER_PAYMENT_DEADLINE_MS", default_value_t = 20 * 60_000)]
    pub order_payment_deadline_ms: u64,

    /// Milliseconds a saga step may keep failing before its order is parked for an operator
    /// (ListParkedOrders / ResolveParkedOrder). 0: retried forever. Default 1 hour.
    #[arg(long, env = "SAGA_PARK_AFTER_MS", default_value_t = 3_600_000)]
    pub saga_park_after_ms: u64,

    /// How often retention removes history past its keep period, in milliseconds (0
    /// disables it on this replica).
    #[arg(long, env = "RETENTION_INTERVAL_MS", default_value_t = 60_000)]
    pub retention_interval_ms: u64,

    /// Most rows one retention batch removes.
    #[arg(long, env = "RETENTION_BATCH_SIZE", default_value_t = 1_000)]
    pub retention_batch_size: u32,

    /// Days the saga audit rows of a settled order are kept (0: forever).
    #[arg(long, env = "SAGA_STEP_RETENTION_DAYS", default_value_t = 400)]
    pub saga_step_retention_days: u32,

    /// Days a settled order's idempotency key deduplicates retries (0: forever, at least 1):
    /// after it, a CreateOrder with the same user and key places a new order.
    #[arg(long, env = "IDEMPOTENCY_KEY_RETENTION_DAYS", default_value_t = 35)]
    pub idempotency_key_retention_days: u32,

    /// Hours the payment provider honours an idempotency key: a charge whose outcome is
    /// still unknown past it is parked, never asked again (at least 1).
    #[arg(long, env = "PAYMENT_KEY_WINDOW_HOURS", default_value_t = 24)]
    pub payment_key_window_hours: u32,

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

    /// Start even when a saga step can outlive the lease (`validate` passes): never set from
    /// the environment, only by tests that race two drivers on one order on purpose.
    #[arg(skip)]
    pub allow_lease_shorter_than_a_step: bool,
}

/// User binding of OrderService calls: with either list set, every call needs a client
/// certificate named on one of them. Neither set: any caller may act for any user (the service
/// trusts its network, as before).
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct UserBindingSettings {
    /// Comma-separated client certificate names (subject CN or DNS SAN) of callers trusted to
    /// state the end user in the `x-user-id` metadata (an API gateway or BFF): their calls only
    /// create, read, list and cancel that user's orders. Turns user binding on; needs mutual
    /// TLS (TLS_CERT_PATH, TLS_KEY_PATH, TLS_CLIENT_CA_PATH).
    #[arg(long, env = "TRUSTED_EDGE_IDENTITIES", value_name = "NAMES", value_delimiter = ',')]
    pub trusted_edge_identities: Vec<String>,

    /// Comma-separated client certificate names of operators (support tools) that may read,
    /// list and cancel any user's orders. Turns user binding on; needs mutual TLS.
    #[arg(long, env = "OPERATOR_IDENTITIES", value_name = "NAMES", value_delimiter = ',')]
    pub operator_identities: Vec<String>,
}

impl Settings {
    /// Refuses settings under which one saga step (a peer call with its inline retries) can
    /// outlive the lease of whoever drives it: another replica could then take the order
    /// over while the first is still calling, and two drivers would race on one order.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.allow_lease_shorter_than_a_step {
            return Ok(());
        }
        let policy = self.call_policy();
        let step = policy.worst_case();
        if self.saga_lease() <= step {
            anyhow::bail!(
                "SAGA_LEASE_MS ({lease} ms) must be longer than one saga step can take: \
                 PEER_TIMEOUT_MS ({timeout} ms) x (PEER_RETRIES ({retries}) + 1) + retry backoff \
                 ({backoff} ms) = {step} ms; raise SAGA_LEASE_MS or lower PEER_TIMEOUT_MS or \
                 PEER_RETRIES",
                lease = self.saga_lease().as_millis(),
                timeout = policy.timeout.as_millis(),
                retries = policy.retries,
                backoff = step
                    .saturating_sub(policy.timeout.saturating_mul(policy.retries.saturating_add(1)))
                    .as_millis(),
                step = step.as_millis(),
            );
        }
        Ok(())
    }

    /// Deadline and inline retries of every peer call.
    pub fn call_policy(&self) -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_millis(self.peer_timeout_ms.max(1)),
            retries: self.peer_retries,
        }
    }

    /// The lease a saga driver holds while it works on an order.
    pub fn saga_lease(&self) -> Duration {
        Duration::from_millis(self.saga_lease_ms.max(100))
    }

    /// The inline budget of CreateOrder and CancelOrder.
    pub fn request_budget(&self) -> Duration {
        Duration::from_millis(self.create_order_budget_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Settings {
        let mut all = vec!["order-service", "--database-url", "postgres://db/shop"];
        all.extend_from_slice(args);
        Settings::try_parse_from(all).unwrap()
    }

    #[test]
    fn the_defaults_are_valid() {
        parse(&[]).validate().unwrap();
    }

    #[test]
    fn a_lease_shorter_than_a_step_is_refused_naming_the_variables() {
        // 2000 x 4 + 50 + 100 + 200 = 8350 ms.
        let settings = parse(&["--saga-lease-ms", "8350"]);
        let message = settings.validate().unwrap_err().to_string();
        for name in ["SAGA_LEASE_MS", "PEER_TIMEOUT_MS", "PEER_RETRIES", "8350 ms"] {
            assert!(message.contains(name), "{message}");
        }
        parse(&["--saga-lease-ms", "8351"]).validate().unwrap();

        let settings = parse(&["--peer-timeout-ms", "5000", "--peer-retries", "8"]);
        assert!(settings.validate().is_err());
        let settings = parse(&["--peer-retries", "0", "--peer-timeout-ms", "29999"]);
        settings.validate().unwrap();
        let settings = parse(&["--peer-retries", "0", "--peer-timeout-ms", "30000"]);
        assert!(settings.validate().is_err());
    }

    #[test]
    fn the_worst_case_counts_capped_backoff() {
        let policy = CallPolicy { timeout: Duration::from_millis(100), retries: 6 };
        // 100 x 7 + 50 + 100 + 200 + 400 + 800 + 1000 (capped).
        assert_eq!(policy.worst_case(), Duration::from_millis(700 + 2550));
        let huge = CallPolicy { timeout: Duration::MAX, retries: u32::MAX };
        assert_eq!(huge.worst_case(), Duration::MAX);
    }
}
