//! The real `inventory-service` executable: its `--help`, a clean exit on SIGTERM, and its
//! healthcheck subcommand against itself under mutual TLS.

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::binary::{self, Server};

const BIN: &str = env!("CARGO_BIN_EXE_inventory-service");

#[test]
fn help_lists_every_setting_and_no_secret() {
    let help = binary::help(
        BIN,
        [("DATABASE_URL", "postgres://app:s3cret-pw@db/shop"), ("ADMIN_TOKEN", "s3cret-admin-tok")],
    );
    for name in [
        "DATABASE_URL",
        "GRPC_ADDR",
        "METRICS_ADDR",
        "RUST_LOG",
        "LOG_FORMAT",
        "RUN_MIGRATIONS",
        "TLS_CERT_PATH",
        "TLS_KEY_PATH",
        "TLS_CLIENT_CA_PATH",
        "ADMIN_TOKEN",
        "ADMIN_TOKEN_FILE",
        "ADMIN_ALLOWED_IDENTITIES",
        "ADMIN_AUTH_DISABLED",
        "AUTHZ_POLICY_FILE",
    ] {
        assert!(help.contains(name), "--help does not mention {name}:\n{help}");
    }
    assert!(help.contains("0.0.0.0:50051") && help.contains("0.0.0.0:9101"), "{help}");
    assert!(!help.contains("s3cret-pw"), "--help leaks the database password:\n{help}");
    assert!(!help.contains("s3cret-admin-tok"), "--help leaks the admin token:\n{help}");
}

#[test]
fn help_lists_the_subcommands() {
    binary::help_lists_the_subcommands(BIN);
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    binary::migrate_subcommand_migrates(BIN, "inventory");
}

#[test]
fn debug_of_the_settings_shows_no_secret() {
    use clap::Parser;
    let settings = inventory_service::Settings::try_parse_from([
        "inventory-service",
        "--database-url",
        "postgres://app:s3cret-pw@db/shop",
        "--admin-token",
        "s3cret-admin-tok",
    ])
    .expect("parse");
    let debug = format!("{settings:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("admin_token: Some(Secret(***))"), "{debug}");
}

#[test]
fn an_unreadable_tls_file_stops_startup_naming_the_setting() {
    let stderr = binary::refused_start(
        BIN,
        [
            ("TLS_CERT_PATH", "/nonexistent/server.pem"),
            ("TLS_KEY_PATH", "/nonexistent/server.key"),
            ("ADMIN_AUTH_DISABLED", "true"),
        ],
    );
    assert!(
        stderr.contains("TLS_CERT_PATH") && stderr.contains("/nonexistent/server.pem"),
        "{stderr}"
    );
}

/// Runs the binary under mutual TLS with an admin token, then `inventory-service healthcheck`
/// with the same environment (as a container HEALTHCHECK does): SERVING, exit 0. Without the
/// TLS environment the probe fails. The token never reaches the logs.
#[test]
fn healthcheck_subcommand_speaks_mutual_tls() {
    let dir = std::env::temp_dir().join(format!("inventory-bin-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let tls = write_mtls_files(&dir);
    let with_tls = |command: &mut Command| {
        for (name, path) in &tls {
            command.env(name, path);
        }
    };
    let env = tls.iter().map(|(name, path)| (*name, path.as_os_str()));
    let server = Server::start(BIN, env.chain([("ADMIN_TOKEN", OsStr::new("s3cret-admin-tok"))]));
    let grpc_addr = server.grpc_addr();

    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = loop {
        let mut check = Command::new(BIN);
        check.arg("healthcheck").env("GRPC_ADDR", &grpc_addr).env_remove("DATABASE_URL");
        with_tls(&mut check);
        let out = check.output().expect("healthcheck");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let plaintext = Command::new(BIN)
        .args(["healthcheck", &grpc_addr])
        .env_remove("TLS_CERT_PATH")
        .env_remove("TLS_KEY_PATH")
        .env_remove("TLS_CLIENT_CA_PATH")
        .output()
        .expect("plaintext healthcheck");

    let (status, logs) = server.stop();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(
        probe.status.success(),
        "TLS healthcheck: {}{}",
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "SERVING");
    assert_eq!(plaintext.status.code(), Some(1), "a plaintext probe of a TLS server");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(logs.contains("\"tls\":true"), "{logs}");
    assert!(!logs.contains("s3cret-admin-tok"), "the logs leak the admin token:\n{logs}");
}

/// A CA and a server certificate it signed (serverAuth and clientAuth, for 127.0.0.1), as the
/// `TLS_*` variables of a mutual-TLS server.
fn write_mtls_files(dir: &std::path::Path) -> Vec<(&'static str, std::path::PathBuf)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("cert");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write");
        path
    };
    vec![
        ("TLS_CERT_PATH", write("server.pem", cert.pem())),
        ("TLS_KEY_PATH", write("server.key", key.serialize_pem())),
        ("TLS_CLIENT_CA_PATH", write("ca.pem", ca.pem())),
    ]
}

/// Runs the binary with `env` and no admin settings of this process; it must refuse to start
/// (it never listens).
fn refused_start(env: &[(&str, &str)]) -> String {
    let mut command = binary::offline(BIN);
    for var in
        ["ADMIN_TOKEN", "ADMIN_TOKEN_FILE", "ADMIN_ALLOWED_IDENTITIES", "ADMIN_AUTH_DISABLED"]
    {
        command.env_remove(var);
    }
    binary::refused(command.envs(env.iter().copied()))
}

#[test]
fn admin_auth_fails_closed_unless_disabled_on_purpose() {
    let stderr = refused_start(&[]);
    for name in ["ADMIN_TOKEN", "ADMIN_ALLOWED_IDENTITIES", "ADMIN_AUTH_DISABLED=true"] {
        assert!(stderr.contains(name), "{stderr}");
    }
    // `false` is not "on purpose" either.
    assert!(refused_start(&[("ADMIN_AUTH_DISABLED", "false")]).contains("ADMIN_AUTH_DISABLED"));
}

#[test]
fn a_caller_policy_is_checked_at_start() {
    let dir = std::env::temp_dir().join(format!("inventory-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    };
    let typo = write("typo.json", r#"{"callers": [{"identity": "a", "rpcs": ["Reserve"]}]}"#);
    let fine = write(
        "fine.json",
        r#"{"callers": [{"identity": "a", "rpcs": ["*"], "reference_types": ["*"]}]}"#,
    );
    let mut files = write_mtls_files(&dir);
    let mtls: Vec<(&str, String)> =
        files.drain(..).map(|(name, path)| (name, path.to_string_lossy().into_owned())).collect();
    let with = |extra: &[(&'static str, &str)]| {
        let mut env: Vec<(&str, &str)> = mtls.iter().map(|(n, p)| (*n, p.as_str())).collect();
        env.push(("ADMIN_AUTH_DISABLED", "true"));
        env.extend_from_slice(extra);
        refused_start(&env)
    };
    let stderr = with(&[("AUTHZ_POLICY_FILE", &typo)]);
    assert!(stderr.contains("unknown RPC \"Reserve\"") && stderr.contains(&typo), "{stderr}");
    let missing = dir.join("missing.json").to_string_lossy().into_owned();
    assert!(with(&[("AUTHZ_POLICY_FILE", &missing)]).contains("cannot read"));
    // A policy needs client certificates to authorize by.
    let plaintext = refused_start(&[("ADMIN_AUTH_DISABLED", "true"), ("AUTHZ_POLICY_FILE", &fine)]);
    assert!(plaintext.contains("needs mutual TLS"), "{plaintext}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_database_url_is_a_clear_error() {
    let stderr = binary::refused(Command::new(BIN).env_remove("DATABASE_URL"));
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

/// Starts the binary on free ports, waits until it listens, sends SIGTERM and expects exit 0.
#[test]
fn sigterm_stops_it_cleanly() {
    binary::assert_sigterm_stops_cleanly(BIN, [("ADMIN_AUTH_DISABLED", "true")]);
}
