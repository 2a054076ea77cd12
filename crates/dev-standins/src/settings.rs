//! Settings of the three stand-ins from the environment, each also a `--flag`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::ArgAction;
use clap::builder::BoolishValueParser;
use common::settings::LogSettings;
use common::telemetry::LogFormat;
use security::tls::ServerTlsSettings;

/// Where the product stand-in serves unless GRPC_ADDR says otherwise.
pub const PRODUCT_GRPC_ADDR: &str = "0.0.0.0:50053";
/// Where the payment stand-in serves unless GRPC_ADDR says otherwise.
pub const PAYMENT_GRPC_ADDR: &str = "0.0.0.0:50054";
/// Where the user stand-in serves unless GRPC_ADDR says otherwise.
pub const USER_GRPC_ADDR: &str = "0.0.0.0:50055";

/// 127.0.0.1 on a port the OS picks: what tests bind.
const LOOPBACK_EPHEMERAL: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

fn default_logs() -> LogSettings {
    LogSettings { rust_log: "info".to_owned(), log_format: LogFormat::Pretty }
}

/// Everything the product stand-in can be told at start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "product-standin",
    version,
    about = "DEVELOPMENT STAND-IN for the Product service (product.v1.ProductService): \
             serves a catalog from a JSON file. Not for production.",
    after_help = common::healthcheck::HELP
)]
pub struct ProductSettings {
    /// Log filter and format.
    #[command(flatten)]
    pub log: LogSettings,

    /// TLS of the gRPC server, as the real servers take it (plaintext by default).
    #[command(flatten)]
    pub tls: ServerTlsSettings,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = PRODUCT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,

    /// JSON catalog: a list of {id, sku, name, price_minor, currency, variants: [{id, sku,
    /// price_minor}]}. Unset: the built-in demo catalog.
    #[arg(long, env = "CATALOG_PATH", value_name = "FILE")]
    pub catalog_path: Option<PathBuf>,

    /// Delay added to every GetProduct call, in milliseconds.
    #[arg(
        long = "product-latency-ms",
        value_name = "MS",
        env = "PRODUCT_LATENCY_MS",
        default_value_t = 0
    )]
    pub latency_ms: u64,
}

impl ProductSettings {
    /// 127.0.0.1 on an ephemeral port, demo catalog, no latency: what tests want.
    pub fn loopback() -> Self {
        Self {
            log: default_logs(),
            tls: ServerTlsSettings::default(),
            grpc_addr: LOOPBACK_EPHEMERAL,
            catalog_path: None,
            latency_ms: 0,
        }
    }
}

/// Everything the payment stand-in can be told at start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "payment-standin",
    version,
    about = "DEVELOPMENT STAND-IN for the Payment service (payment.v1.PaymentService): an \
             in-memory payment simulator with idempotency keys and deterministic declines \
             (methods `card_decline` or `decline*`). Not for production: it moves no money \
             and forgets everything on exit.",
    after_help = common::healthcheck::HELP
)]
pub struct PaymentSettings {
    /// Log filter and format.
    #[command(flatten)]
    pub log: LogSettings,

    /// TLS of the gRPC server, as the real servers take it (plaintext by default).
    #[command(flatten)]
    pub tls: ServerTlsSettings,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = PAYMENT_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,

    /// Delay added to every call, in milliseconds.
    #[arg(
        long = "payment-latency-ms",
        value_name = "MS",
        env = "PAYMENT_LATENCY_MS",
        default_value_t = 0
    )]
    pub latency_ms: u64,

    /// Decline every payment whose amount_minor is above this. Unset: no amount limit.
    #[arg(
        long = "payment-decline-over-minor",
        value_name = "AMOUNT_MINOR",
        env = "PAYMENT_DECLINE_OVER_MINOR"
    )]
    pub decline_over_minor: Option<i64>,
}

impl PaymentSettings {
    /// 127.0.0.1 on an ephemeral port, no latency, no amount limit: what tests want.
    pub fn loopback() -> Self {
        Self {
            log: default_logs(),
            tls: ServerTlsSettings::default(),
            grpc_addr: LOOPBACK_EPHEMERAL,
            latency_ms: 0,
            decline_over_minor: None,
        }
    }
}

/// Everything the user stand-in can be told at start.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "user-standin",
    version,
    about = "DEVELOPMENT STAND-IN for the User service (user.v1.UserService): serves user \
             statuses from a JSON file. Not for production.",
    after_help = common::healthcheck::HELP
)]
pub struct UserSettings {
    /// Log filter and format.
    #[command(flatten)]
    pub log: LogSettings,

    /// TLS of the gRPC server, as the real servers take it (plaintext by default).
    #[command(flatten)]
    pub tls: ServerTlsSettings,

    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = USER_GRPC_ADDR)]
    pub grpc_addr: SocketAddr,

    /// JSON users file: a list of {id, status} with status ACTIVE or BLOCKED. Unset: the
    /// built-in demo users (user-1..user-3 ACTIVE, user-blocked BLOCKED).
    #[arg(long, env = "USERS_PATH", value_name = "FILE")]
    pub users_path: Option<PathBuf>,

    /// Answer unknown user ids as ACTIVE instead of NOT_FOUND (true/false).
    #[arg(
        long = "user-accept-any",
        value_name = "BOOL",
        env = "USER_ACCEPT_ANY",
        default_value_t = false,
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub accept_any: bool,

    /// Delay added to every GetUser call, in milliseconds.
    #[arg(
        long = "user-latency-ms",
        value_name = "MS",
        env = "USER_LATENCY_MS",
        default_value_t = 0
    )]
    pub latency_ms: u64,
}

impl UserSettings {
    /// 127.0.0.1 on an ephemeral port, demo users, unknown ids NOT_FOUND: what tests want.
    pub fn loopback() -> Self {
        Self {
            log: default_logs(),
            tls: ServerTlsSettings::default(),
            grpc_addr: LOOPBACK_EPHEMERAL,
            users_path: None,
            accept_any: false,
            latency_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn defaults_match_the_fixed_ports() {
        let product = ProductSettings::try_parse_from(["product-standin"]).unwrap();
        let payment = PaymentSettings::try_parse_from(["payment-standin"]).unwrap();
        let user = UserSettings::try_parse_from(["user-standin"]).unwrap();
        // Only meaningful when the test environment does not set GRPC_ADDR itself.
        if std::env::var_os("GRPC_ADDR").is_none() {
            assert_eq!(product.grpc_addr.to_string(), "0.0.0.0:50053");
            assert_eq!(payment.grpc_addr.to_string(), "0.0.0.0:50054");
            assert_eq!(user.grpc_addr.to_string(), "0.0.0.0:50055");
        }
    }

    #[test]
    fn flags_parse() {
        let user = UserSettings::try_parse_from([
            "user-standin",
            "--user-accept-any",
            "true",
            "--users-path",
            "/tmp/u.json",
        ])
        .unwrap();
        assert!(user.accept_any);
        assert_eq!(user.users_path, Some(PathBuf::from("/tmp/u.json")));
        let payment = PaymentSettings::try_parse_from([
            "payment-standin",
            "--payment-decline-over-minor",
            "10000",
        ])
        .unwrap();
        assert_eq!(payment.decline_over_minor, Some(10_000));
    }
}
