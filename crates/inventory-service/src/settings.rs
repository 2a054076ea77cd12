//! Settings from the environment (12-factor), each also a `--flag`.

use std::net::SocketAddr;
use std::path::PathBuf;

use common::auth::AdminAuthSettings;
use common::host::ShutdownSettings;
use common::overload::OverloadSettings;
use common::settings::{DatabaseSettings, LogSettings};
use security::tls::ServerTlsSettings;

/// Where gRPC is served unless GRPC_ADDR says otherwise (the healthcheck probes it too).
pub const DEFAULT_GRPC_ADDR: &str = "0.0.0.0:50051";

/// Everything the inventory server can be told at start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "inventory-service",
    version,
    about = "Inventory gRPC server: stock, holds, commits."
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

    /// Who may call the admin RPCs (UpsertInventoryItem, AdjustStock).
    #[command(flatten)]
    pub admin: AdminAuthSettings,

    /// Caller policy (JSON): which client identities may call which RPCs, reserve under which
    /// reference types, and settle any hold (see README, "Security model"). Needs mutual TLS.
    /// Unset: with mutual TLS every verified client may call every RPC and holds belong to
    /// whoever took them; without it callers are not told apart.
    #[arg(long, env = "AUTHZ_POLICY_FILE", value_name = "FILE")]
    pub authz_policy_file: Option<PathBuf>,

    #[command(flatten)]
    pub overload: OverloadSettings,

    /// The event log: relay, WatchEvents limits, event retention.
    #[command(flatten)]
    pub events: common::events::EventSettings,

    /// Shutdown (drain delay, grace) and connection age.
    #[command(flatten)]
    pub shutdown: ShutdownSettings,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = DEFAULT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP server exposing `/metrics`.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9101")]
    pub metrics_addr: SocketAddr,

    /// Minutes a hold lives when a reserve request asks for 0.
    #[arg(long, env = "RESERVATION_DEFAULT_EXPIRY_MINUTES", default_value_t = 30)]
    pub default_expiry_minutes: u32,

    /// Longest hold a reserve request may ask for, in minutes.
    #[arg(long, env = "RESERVATION_MAX_EXPIRY_MINUTES", default_value_t = 7 * 24 * 60)]
    pub max_expiry_minutes: u32,

    /// How often the sweeper releases expired holds, in milliseconds.
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 5_000)]
    pub sweep_interval_ms: u64,

    /// Most holds one sweep transaction releases.
    #[arg(long, env = "SWEEP_BATCH_SIZE", default_value_t = 500)]
    pub sweep_batch_size: u32,

    /// How often the rows below their low-stock threshold are counted for the
    /// inventory_low_stock_rows gauge, in milliseconds (0 disables the count).
    #[arg(long, env = "LOW_STOCK_INTERVAL_MS", default_value_t = 15_000)]
    pub low_stock_interval_ms: u64,

    /// How often the reconciler counts inconsistencies, in milliseconds (0 disables it).
    #[arg(long, env = "RECONCILE_INTERVAL_MS", default_value_t = 60_000)]
    pub reconcile_interval_ms: u64,

    /// How long a PENDING hold may stay past its expiry before the reconciler counts it as
    /// lapsed, in milliseconds (the sweeper needs a few intervals to reach it).
    #[arg(long, env = "RECONCILE_LAPSE_GRACE_MS", default_value_t = 60_000)]
    pub reconcile_lapse_grace_ms: u64,

    /// Age of the last full ledger verification (every movement, every checkpoint) past which
    /// the next pass verifies in full, in hours (0: only when an operator asks).
    #[arg(long, env = "RECONCILE_FULL_EVERY_HOURS", default_value_t = 7 * 24)]
    pub reconcile_full_every_hours: u64,

    /// How often retention removes history past its keep period, in milliseconds (0
    /// disables it).
    #[arg(long, env = "RETENTION_INTERVAL_MS", default_value_t = 60_000)]
    pub retention_interval_ms: u64,

    /// Most rows one retention batch (one transaction) removes.
    #[arg(long, env = "RETENTION_BATCH_SIZE", default_value_t = 1_000)]
    pub retention_batch_size: u32,

    /// Days a ledger movement is kept (0: forever). Removed movements leave their sums in
    /// the ledger's base, so the reconciler still proves every stock row.
    #[arg(long, env = "MOVEMENT_RETENTION_DAYS", default_value_t = 400)]
    pub movement_retention_days: u32,

    /// Days a settled hold (committed, cancelled, expired) is kept after it settled (0:
    /// forever). Until then a retry under its reference gets it back; after, the reference
    /// is free and GetReservation answers NOT_FOUND.
    #[arg(long, env = "HOLD_RETENTION_DAYS", default_value_t = 35)]
    pub hold_retention_days: u32,

    /// Days an AdjustStock idempotency key is kept (0: forever): a retry within it applies
    /// once. At least 1.
    #[arg(long, env = "ADJUSTMENT_KEY_RETENTION_DAYS", default_value_t = 35)]
    pub adjustment_key_retention_days: u32,

    /// Most items one check or reserve request may carry.
    #[arg(long, env = "MAX_ITEMS_PER_REQUEST", default_value_t = 100)]
    pub max_items_per_request: usize,

    /// Run concurrent ReserveInventory calls together, several per transaction (true/false):
    /// beats the one-hold-per-commit-flush limit of a hot SKU. `false` runs each call in its
    /// own transaction (still one round trip).
    #[arg(
        long,
        env = "RESERVE_BATCHING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub reserve_batching: bool,

    /// Batches of reservations in flight at once, each on a pooled connection; at most one
    /// per item: calls waiting for an item a batch holds form its next batch together.
    #[arg(long, env = "RESERVE_BATCH_WORKERS", default_value_t = 8)]
    pub reserve_batch_workers: usize,

    /// Most reservations one batch (one transaction) carries; a batch never waits to fill.
    #[arg(long, env = "RESERVE_BATCH_MAX", default_value_t = 64)]
    pub reserve_batch_max: usize,

    /// Answer concurrent CheckInventoryAvailability calls with shared queries.
    #[arg(
        long,
        env = "CHECK_BATCHING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub check_batching: bool,

    /// Availability queries in flight at once, each on a pooled connection; calls arriving
    /// meanwhile share the next one.
    #[arg(long, env = "CHECK_BATCH_WORKERS", default_value_t = 2)]
    pub check_batch_workers: usize,

    /// Most SKUs one availability query reads (a single call is never split).
    #[arg(long, env = "CHECK_BATCH_MAX_SKUS", default_value_t = 256)]
    pub check_batch_max_skus: usize,
}
