//! The three executables: their `--help` and their startup line say what they are.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARIES: [(&str, &str, &[&str]); 3] = [
    (
        env!("CARGO_BIN_EXE_product-standin"),
        "0.0.0.0:50053",
        &["CATALOG_PATH", "PRODUCT_LATENCY_MS"],
    ),
    (
        env!("CARGO_BIN_EXE_payment-standin"),
        "0.0.0.0:50054",
        &["PAYMENT_LATENCY_MS", "PAYMENT_DECLINE_OVER_MINOR"],
    ),
    (env!("CARGO_BIN_EXE_user-standin"), "0.0.0.0:50055", &["USERS_PATH", "USER_ACCEPT_ANY"]),
];

#[test]
fn help_says_development_stand_in_and_lists_settings() {
    for (bin, default_addr, names) in BINARIES {
        let out = Command::new(bin).arg("--help").env_remove("GRPC_ADDR").output().unwrap();
        assert!(out.status.success(), "{bin}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("DEVELOPMENT STAND-IN") && help.contains("Not for production"),
            "{help}"
        );
        for name in ["GRPC_ADDR", "RUST_LOG", "LOG_FORMAT"].iter().chain(names) {
            assert!(help.contains(name), "{bin} --help does not mention {name}:\n{help}");
        }
        assert!(help.contains(default_addr), "{help}");
    }
}

#[test]
fn startup_line_says_development_stand_in() {
    for (bin, _, _) in BINARIES {
        let mut child = Command::new(bin)
            .env("GRPC_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let line = seen.recv_timeout(Duration::from_secs(30));
        child.kill().unwrap();
        child.wait().unwrap();
        let line = line.unwrap();
        assert!(line.starts_with('{'), "{line}");
        assert!(
            line.contains("DEVELOPMENT STAND-IN") && line.contains("not for production"),
            "{line}"
        );
    }
}

#[test]
fn a_bad_catalog_stops_startup_with_a_clear_error() {
    let path =
        std::env::temp_dir().join(format!("standin-bad-catalog-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"id": "a", "sku": "A", "name": "a", "price_minor": 1, "currency": "EUR"},
        {"id": "a", "sku": "B", "name": "b", "price_minor": 1, "currency": "EUR"}]"#,
    )
    .unwrap();
    let out = Command::new(BINARIES[0].0)
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("CATALOG_PATH", &path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid catalog") && stderr.contains("\"a\": id is used more than once"),
        "{stderr}"
    );
}
