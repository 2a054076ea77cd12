//! The real `order-service` executable: its `--help`, and a clean exit on SIGTERM.

use std::process::Command;

use test_support::binary::{self, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_order-service");

#[test]
fn help_lists_every_setting_and_no_secret() {
    let help = binary::help(BIN, [("DATABASE_URL", "postgres://app:s3cret-pw@db/shop")]);
    for name in [
        "DATABASE_URL",
        "GRPC_ADDR",
        "METRICS_ADDR",
        "RUST_LOG",
        "LOG_FORMAT",
        "RUN_MIGRATIONS",
        "INVENTORY_SERVICE_URL",
        "PRODUCT_SERVICE_URL",
        "PAYMENT_SERVICE_URL",
        "USER_SERVICE_URL",
        "PEER_TIMEOUT_MS",
        "PEER_RETRIES",
        "SAGA_LEASE_MS",
        "RECOVERY_INTERVAL_MS",
        "RECOVERY_BATCH",
        "ORDER_HOLD_MINUTES",
        "CREATE_ORDER_BUDGET_MS",
        "RETRY_BACKOFF_MAX_MS",
        "TLS_CERT_PATH",
        "TLS_KEY_PATH",
        "TLS_CLIENT_CA_PATH",
        "PEER_TLS_CA_PATH",
        "PEER_TLS_CERT_PATH",
        "PEER_TLS_KEY_PATH",
        "TRUSTED_EDGE_IDENTITIES",
        "OPERATOR_IDENTITIES",
    ] {
        assert!(help.contains(name), "--help does not mention {name}:\n{help}");
    }
    for default in [
        "0.0.0.0:50052",
        "0.0.0.0:9102",
        "http://127.0.0.1:50051",
        "http://127.0.0.1:50053",
        "http://127.0.0.1:50054",
    ] {
        assert!(help.contains(default), "--help lacks the default {default}:\n{help}");
    }
    assert!(!help.contains("s3cret-pw"), "--help leaks the database password:\n{help}");
}

#[test]
fn help_lists_the_subcommands() {
    binary::help_lists_the_subcommands(BIN);
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    binary::migrate_subcommand_migrates(BIN, "orders");
}

#[test]
fn missing_database_url_is_a_clear_error() {
    let stderr = binary::refused(Command::new(BIN).env_remove("DATABASE_URL"));
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

/// Starts the binary on free ports, waits until it listens, sends SIGTERM and expects exit 0.
#[test]
fn sigterm_stops_it_cleanly() {
    let peer = || format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    binary::assert_sigterm_stops_cleanly(
        BIN,
        [
            ("INVENTORY_SERVICE_URL", peer()),
            ("PRODUCT_SERVICE_URL", peer()),
            ("PAYMENT_SERVICE_URL", peer()),
        ],
    );
}

#[test]
fn a_malformed_peer_url_stops_startup_with_a_clear_error() {
    let stderr = binary::refused_start(BIN, [("INVENTORY_SERVICE_URL", "not a url")]);
    assert!(stderr.contains("inventory service URL"), "{stderr}");
}

#[test]
fn an_unreadable_peer_ca_stops_startup_naming_the_setting() {
    let stderr = binary::refused_start(
        BIN,
        [
            ("DATABASE_URL", "postgres://app:s3cret-pw@127.0.0.1:1/none"),
            ("PEER_TLS_CA_PATH", "/nonexistent/ca.pem"),
        ],
    );
    assert!(
        stderr.contains("PEER_TLS_CA_PATH") && stderr.contains("/nonexistent/ca.pem"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}

#[test]
fn user_binding_without_mutual_tls_stops_startup_naming_the_settings() {
    let stderr = binary::refused_start(BIN, [("TRUSTED_EDGE_IDENTITIES", "storefront")]);
    for setting in ["TRUSTED_EDGE_IDENTITIES", "TLS_CLIENT_CA_PATH", "TLS_CERT_PATH"] {
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
}
