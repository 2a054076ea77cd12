//! `<binary> healthcheck [--ready] [ADDR]`: asks the server's own `grpc.health.v1.Health/Check`
//! and exits 0 when it is SERVING, 1 otherwise. Without `--ready` it asks for liveness (service
//! `liveness`: the process serves, whatever its database does), which is what a container
//! `HEALTHCHECK` or a liveness probe must ask so that a database outage restarts nothing; with
//! `--ready`, for readiness (service `""`: migrated, database reachable and writable), for
//! start-up ordering and readiness probes. Images need no extra probe binary.
//!
//! The address is `ADDR`, else `GRPC_ADDR`, else the binary's default; an unspecified
//! host (`0.0.0.0`, `[::]`) is probed on loopback. It is checked before the settings are
//! parsed, so `DATABASE_URL` and the other required settings are not needed.
//!
//! When the server runs with TLS (`TLS_CERT_PATH` and `TLS_KEY_PATH` in the environment), the
//! probe speaks TLS and trusts exactly the server's own certificate (it dials loopback, so
//! the certificate's names need not match). Under mutual TLS (`TLS_CLIENT_CA_PATH`) it presents
//! the server's certificate and key as its client certificate: that works when the client CA
//! signed the server certificate and its extended key usage allows `clientAuth` (or it has
//! none).
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     common::healthcheck::exit_if_requested("0.0.0.0:50051").await;
//!     // ... parse the settings and run the server
//!     Ok(())
//! }
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use security::tls::{SelfCheckTls, ServerTlsSettings, TlsError};

/// The first argument that selects the health check instead of the server.
pub const SUBCOMMAND: &str = "healthcheck";

/// `--help`'s list of the first-argument subcommands of a server without a database (the
/// stand-ins).
pub const HELP: &str = "Subcommands (as the first argument):\n  \
    healthcheck [--ready] [ADDR]  ask this server's grpc.health.v1 for liveness (--ready: \
    readiness) and exit 0 when SERVING, 1 otherwise; no other setting needed";

/// [`HELP`] for a server with a database: also `migrate`.
pub const HELP_WITH_MIGRATE: &str = "Subcommands (as the first argument):\n  \
    healthcheck [--ready] [ADDR]  ask this server's grpc.health.v1 for liveness (--ready: \
    readiness) and exit 0 when SERVING, 1 otherwise; no other setting needed\n  \
    migrate [FLAGS]               apply this service's migrations to DATABASE_URL and exit \
    (a deploy step or init container; serve with RUN_MIGRATIONS=false then)";

/// How long the whole check (connect and call) may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

const USAGE: &str = "usage: <binary> healthcheck [--ready] [ADDR]\n\
    Calls grpc.health.v1.Health/Check on ADDR, else GRPC_ADDR, else the default address, for \
    liveness (service \"liveness\"), or with --ready for readiness (service \"\"); exits 0 \
    when SERVING, 1 otherwise.";

/// Why a health check could not get a status.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The address is not `host:port` with an IP host.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddr { addr: String, reason: String },
    /// Nothing answered, or the connection failed.
    #[error("cannot connect to {addr}")]
    Connect { addr: SocketAddr, source: tonic::transport::Error },
    /// The call itself failed (e.g. the server has no health service).
    #[error("health check call to {addr} failed: {status}")]
    Call { addr: SocketAddr, status: Box<tonic::Status> },
    /// No answer within the timeout.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    /// The server's TLS settings cannot be used by the probe.
    #[error("TLS settings: {0}")]
    Tls(#[from] TlsError),
}

/// When the process was started as `<binary> healthcheck [ADDR]`, runs the check, prints the
/// status and exits the process (0 when SERVING, 1 otherwise, 2 on bad usage). Otherwise
/// returns at once. Call it first thing in `main`, before parsing the settings.
pub async fn exit_if_requested(default_grpc_addr: &str) {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(SUBCOMMAND.as_ref()) {
        return;
    }
    let code = match ServerTlsSettings::from_env().self_check() {
        Ok(tls) => {
            run_with_tls(args.collect(), std::env::var("GRPC_ADDR").ok(), tls, default_grpc_addr)
                .await
        }
        Err(error) => {
            eprintln!("healthcheck: {}", with_causes(&HealthcheckError::Tls(error)));
            1
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code);
}

/// The health check subcommand after its name: `rest` are the arguments after `healthcheck`,
/// `env_addr` is `GRPC_ADDR`. Prints the status (stdout) or the failure (stderr) and returns
/// the exit code.
pub async fn run(rest: Vec<OsString>, env_addr: Option<String>, default_grpc_addr: &str) -> i32 {
    run_with_tls(rest, env_addr, None, default_grpc_addr).await
}

/// [`run`] against a server that speaks TLS when `tls` is set.
pub async fn run_with_tls(
    rest: Vec<OsString>,
    env_addr: Option<String>,
    tls: Option<SelfCheckTls>,
    default_grpc_addr: &str,
) -> i32 {
    let mut service = crate::server::LIVENESS;
    let mut arg_addr = None;
    for arg in &rest {
        let arg = arg.to_string_lossy();
        match arg.as_ref() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            "--ready" => service = "",
            addr if !addr.starts_with('-') && arg_addr.is_none() => {
                arg_addr = Some(addr.to_owned());
            }
            _ => {
                eprintln!("{USAGE}");
                return 2;
            }
        }
    }
    let raw = arg_addr.or(env_addr).unwrap_or_else(|| default_grpc_addr.to_owned());
    let outcome = match probe_addr(&raw) {
        Ok(addr) => check_service(addr, tls.as_ref(), service, TIMEOUT).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(status) => {
            println!("{}", status.as_str_name());
            exit_code(status)
        }
        Err(error) => {
            eprintln!("healthcheck: {}", with_causes(&error));
            1
        }
    }
}

/// `error: cause: cause ...`, skipping causes whose text is already shown.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// 0 for SERVING, 1 for anything else.
pub fn exit_code(status: ServingStatus) -> i32 {
    if status == ServingStatus::Serving { 0 } else { 1 }
}

/// The address to probe for a listen address: `0.0.0.0` becomes `127.0.0.1` and `[::]`
/// becomes `[::1]`; anything else is kept.
pub fn probe_addr(listen_addr: &str) -> Result<SocketAddr, HealthcheckError> {
    let addr: SocketAddr =
        listen_addr.trim().parse().map_err(|error: std::net::AddrParseError| {
            HealthcheckError::InvalidAddr {
                addr: listen_addr.to_owned(),
                reason: error.to_string(),
            }
        })?;
    if addr.port() == 0 {
        return Err(HealthcheckError::InvalidAddr {
            addr: listen_addr.to_owned(),
            reason: "port 0 cannot be probed".to_owned(),
        });
    }
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// Calls `grpc.health.v1.Health/Check` for readiness (service `""`) at `addr`, connecting and
/// answering within `timeout`.
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<ServingStatus, HealthcheckError> {
    check_service(addr, None, "", timeout).await
}

/// Calls `grpc.health.v1.Health/Check` for `service` at `addr`, over TLS when `tls` is set
/// (see the module docs for what it trusts).
pub async fn check_service(
    addr: SocketAddr,
    tls: Option<&SelfCheckTls>,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, HealthcheckError> {
    let call = async {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|source| HealthcheckError::Connect { addr, source })?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(tls) = tls {
            endpoint =
                tls.apply(endpoint).map_err(|source| HealthcheckError::Connect { addr, source })?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| HealthcheckError::Connect { addr, source })?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest { service: service.to_owned() })
            .await
            .map_err(|status| HealthcheckError::Call { addr, status: Box::new(status) })?;
        Ok(response.into_inner().status())
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(HealthcheckError::Timeout { addr, timeout }))
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;
    use tokio_stream::wrappers::TcpListenerStream;

    use super::*;
    use crate::server::Readiness;

    /// A gRPC server with only the health service, on 127.0.0.1 port 0.
    async fn health_server() -> (SocketAddr, Readiness, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (readiness, health) = crate::server::health(&["test.v1.TestService"]);
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .expect("health server");
        });
        (addr, readiness, server)
    }

    #[tokio::test]
    async fn serving_server_is_healthy() {
        let (addr, readiness, server) = health_server().await;
        readiness.set_serving().await;
        let status = check(addr, TIMEOUT).await.expect("check");
        assert_eq!(status, ServingStatus::Serving);
        assert_eq!(exit_code(status), 0);
        let code = run(vec![addr.to_string().into()], None, "127.0.0.1:1").await;
        assert_eq!(code, 0, "an explicit ADDR wins over the default");
        server.abort();
    }

    #[tokio::test]
    async fn not_serving_server_is_unhealthy() {
        let (addr, readiness, server) = health_server().await;
        // Starts NOT_SERVING; flip to SERVING and back to cover the transition too.
        let status = check(addr, TIMEOUT).await.expect("check");
        assert_eq!(status, ServingStatus::NotServing);
        readiness.set_serving().await;
        readiness.set_not_serving().await;
        let status = check(addr, TIMEOUT).await.expect("check");
        assert_eq!(status, ServingStatus::NotServing);
        assert_eq!(exit_code(status), 1);
        let code = run(vec!["--ready".into()], Some(addr.to_string()), "127.0.0.1:1").await;
        assert_eq!(code, 1, "GRPC_ADDR wins over the default");
        // Liveness does not follow readiness.
        assert_eq!(run(vec![], Some(addr.to_string()), "127.0.0.1:1").await, 0);
        assert_eq!(run(vec![addr.to_string().into(), "--ready".into()], None, "x").await, 1);
        server.abort();
    }

    #[tokio::test]
    async fn unreachable_server_is_unhealthy() {
        // A port that was just free: nothing listens there any more.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        let error = check(addr, TIMEOUT).await.expect_err("nothing listens");
        assert!(matches!(error, HealthcheckError::Connect { .. }), "{error:?}");
        let message = with_causes(&error);
        assert!(message.contains(&addr.to_string()) && message.contains("refused"), "{message}");
        assert_eq!(run(vec![], None, &addr.to_string()).await, 1);
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // Accepts TCP connections but never speaks HTTP/2.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
            pending::<()>().await;
        });
        let timeout = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let error = check(addr, timeout).await.expect_err("no HTTP/2 answer");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(
            matches!(error, HealthcheckError::Timeout { .. } | HealthcheckError::Call { .. }),
            "{error:?}"
        );
        holder.abort();
    }

    #[test]
    fn unspecified_hosts_are_probed_on_loopback() {
        let probe = |addr: &str| probe_addr(addr).map(|addr| addr.to_string());
        assert_eq!(probe("0.0.0.0:50051").expect("v4"), "127.0.0.1:50051");
        assert_eq!(probe("[::]:50052").expect("v6"), "[::1]:50052");
        assert_eq!(probe("10.1.2.3:7").expect("kept"), "10.1.2.3:7");
        assert_eq!(probe(" 127.0.0.1:9 ").expect("trimmed"), "127.0.0.1:9");
        assert!(probe("localhost:50051").is_err(), "hosts must be IPs, like GRPC_ADDR");
        assert!(probe("0.0.0.0:0").is_err(), "port 0 cannot be probed");
    }

    /// A CA, and a server certificate it signed for `localhost` that also allows clientAuth
    /// (as the healthcheck presents it under mutual TLS), written to a fresh directory.
    fn tls_files(name: &str) -> (std::path::PathBuf, ServerTlsSettings) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
            KeyPair,
        };
        let dir = std::env::temp_dir().join(format!("healthcheck-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("server cert");
        let write = |file: &str, pem: String| {
            let path = dir.join(file);
            std::fs::write(&path, pem).expect("write");
            Some(path)
        };
        let settings = ServerTlsSettings {
            tls_cert_path: write("server.pem", cert.pem()),
            tls_key_path: write("server.key", key.serialize_pem()),
            tls_client_ca_path: write("ca.pem", ca.pem()),
        };
        (dir, settings)
    }

    async fn tls_health_server(
        settings: &ServerTlsSettings,
    ) -> (SocketAddr, Readiness, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (readiness, health) = crate::server::health(&["test.v1.TestService"]);
        let builder = security::tls::server_builder(settings.server_config().expect("tls config"))
            .expect("tls");
        let server = tokio::spawn(async move {
            let mut builder = builder;
            builder
                .add_service(health)
                .serve_with_incoming(crate::server::incoming(listener))
                .await
                .expect("health server");
        });
        (addr, readiness, server)
    }

    #[tokio::test]
    async fn tls_and_mutual_tls_servers_are_probed_with_their_own_certificate() {
        let (dir, mtls) = tls_files("tls");
        let tls_only = ServerTlsSettings { tls_client_ca_path: None, ..mtls.clone() };
        for settings in [tls_only, mtls] {
            let (addr, readiness, server) = tls_health_server(&settings).await;
            readiness.set_serving().await;
            let probe = settings.self_check().expect("self check");
            assert!(probe.is_some());
            let status = check_service(addr, probe.as_ref(), "", TIMEOUT).await.expect("tls check");
            assert_eq!(status, ServingStatus::Serving, "{settings:?}");
            let code =
                run_with_tls(vec![addr.to_string().into()], None, probe, "127.0.0.1:1").await;
            assert_eq!(code, 0);
            // A plaintext probe gets no health status from a TLS server.
            assert!(check(addr, TIMEOUT).await.is_err(), "plaintext probe of a TLS server");
            server.abort();
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_different_certificate_is_not_trusted() {
        let (dir_a, server_side) = tls_files("pin-a");
        let (dir_b, other) = tls_files("pin-b");
        let (addr, readiness, server) = tls_health_server(&server_side).await;
        readiness.set_serving().await;
        let wrong =
            ServerTlsSettings { tls_client_ca_path: None, ..other }.self_check().expect("b");
        let error = check_service(addr, wrong.as_ref(), "", TIMEOUT).await.expect_err("pinned");
        assert!(matches!(error, HealthcheckError::Connect { .. }), "{error:?}");
        server.abort();
        let _ = std::fs::remove_dir_all(dir_a);
        let _ = std::fs::remove_dir_all(dir_b);
    }

    #[tokio::test]
    async fn bad_usage_is_exit_code_2() {
        assert_eq!(run(vec!["--bogus".into()], None, "127.0.0.1:1").await, 2);
        assert_eq!(run(vec!["a".into(), "b".into()], None, "127.0.0.1:1").await, 2);
        assert_eq!(run(vec!["--help".into()], None, "127.0.0.1:1").await, 0);
        assert_eq!(run(vec!["not-an-addr".into()], None, "127.0.0.1:1").await, 1);
    }
}
