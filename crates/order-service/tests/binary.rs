//! The real `order-service` executable: its `--help`, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_order-service");

#[test]
fn help_lists_every_setting_and_no_secret() {
    let out = Command::new(BIN)
        .arg("--help")
        .env("DATABASE_URL", "postgres://app:s3cret-pw@db/shop")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
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
fn missing_database_url_is_a_clear_error() {
    let out = Command::new(BIN).env_remove("DATABASE_URL").output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

/// Starts the binary on free ports, waits until it listens, sends SIGTERM and expects exit 0.
#[test]
fn sigterm_stops_it_cleanly() {
    let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
        panic!("TEST_DATABASE_URL is not set: run the tests through scripts/test");
    };
    let grpc = free_port();
    let mut child = Command::new(BIN)
        .env("DATABASE_URL", &admin)
        .env("GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        // The admin database is shared by every test run: never migrate it.
        .env("RUN_MIGRATIONS", "false")
        .env("LOG_FORMAT", "json")
        .env("INVENTORY_SERVICE_URL", format!("http://127.0.0.1:{}", free_port()))
        .env("PRODUCT_SERVICE_URL", format!("http://127.0.0.1:{}", free_port()))
        .env("PAYMENT_SERVICE_URL", format!("http://127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let mut logs = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut logs);
    }
    assert!(logs.contains("SIGTERM") || logs.contains("shutting down"), "{logs}");
    assert!(
        logs.lines().all(|l| l.trim().is_empty() || l.starts_with('{')),
        "LOG_FORMAT=json: {logs}"
    );
}

#[test]
fn a_malformed_peer_url_stops_startup_with_a_clear_error() {
    let out = Command::new(BIN)
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/none")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("INVENTORY_SERVICE_URL", "not a url")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inventory service URL"), "{stderr}");
}

#[test]
fn an_unreadable_peer_ca_stops_startup_naming_the_setting() {
    let out = Command::new(BIN)
        .env("DATABASE_URL", "postgres://app:s3cret-pw@127.0.0.1:1/none")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("PEER_TLS_CA_PATH", "/nonexistent/ca.pem")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PEER_TLS_CA_PATH") && stderr.contains("/nonexistent/ca.pem"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
}

#[test]
fn user_binding_without_mutual_tls_stops_startup_naming_the_settings() {
    let out = Command::new(BIN)
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/none")
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("TRUSTED_EDGE_IDENTITIES", "storefront")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for setting in ["TRUSTED_EDGE_IDENTITIES", "TLS_CLIENT_CA_PATH", "TLS_CERT_PATH"] {
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}
