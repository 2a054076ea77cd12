//! Test support: a fresh database per test inside the cluster `scripts/test` starts, and the
//! real servers on loopback port 0, with typed helpers so tests read like a client's story.

/// Per stock row, what the ledger sums to (every movement plus what retention removed, in
/// `inventory.ledger_base`) as a SQL subquery `(stock_level_id, oh, rs)`: one definition for
/// the test suite's own invariant checks, written apart from the server's.
macro_rules! ledger_sums_sql {
    () => {
        "(select stock_level_id, sum(oh) oh, sum(rs) rs
            from (select stock_level_id, on_hand_delta oh, reserved_delta rs from inventory.movements
                  union all
                  select stock_level_id, on_hand, reserved from inventory.ledger_base) l
           group by 1)"
    };
}
pub(crate) use ledger_sums_sql;

pub mod chaos;
pub mod cluster;
mod database;
pub mod ha;
pub mod invariants;
mod inventory;
mod order;
pub mod otlp;
mod returns;
pub mod tls;

pub use database::TestDb;
pub use inventory::{InventoryClient, TestInventory, reserve_request, test_settings};
pub use order::{
    OrderClient, PlantedOrder, SETTLE_TIMEOUT, SagaRow, SystemOptions, TestOrderServer, TestSystem,
    migrate_orders, order_request, order_settings, test_catalog, wait_parked,
};
pub use returns::{ReturnLine, return_request};

/// A connected channel to a loopback server.
pub async fn channel(addr: std::net::SocketAddr) -> anyhow::Result<tonic::transport::Channel> {
    channel_over(addr, None).await
}

/// The endpoint of a loopback server: `https://` with `tls`, else `http://`.
pub fn endpoint(
    addr: std::net::SocketAddr,
    tls: Option<&security::tls::ClientTls>,
) -> anyhow::Result<tonic::transport::Endpoint> {
    Ok(match tls {
        Some(tls) => tls.endpoint(&format!("https://{addr}"))?,
        None => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?,
    })
}

/// A connected channel to a loopback server, over TLS when `tls` is set.
pub async fn channel_over(
    addr: std::net::SocketAddr,
    tls: Option<&security::tls::ClientTls>,
) -> anyhow::Result<tonic::transport::Channel> {
    Ok(endpoint(addr, tls)?.connect().await?)
}

/// Waits until the health service reports `service` as SERVING, or fails after `timeout`.
pub async fn wait_serving(
    addr: std::net::SocketAddr,
    service: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    wait_serving_over(addr, service, timeout, None).await
}

/// [`wait_serving`] for a server that speaks TLS when `tls` is set.
pub async fn wait_serving_over(
    addr: std::net::SocketAddr,
    service: &str,
    timeout: std::time::Duration,
    tls: Option<&security::tls::ClientTls>,
) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(channel) = channel_over(addr, tls).await {
            let mut client = HealthClient::new(channel);
            let req = HealthCheckRequest { service: service.to_owned() };
            if let Ok(resp) = client.check(req).await
                && resp.into_inner().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{service} at {addr} not SERVING after {timeout:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP/1.0 GET over loopback, enough to read `/metrics` without an HTTP client.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    let (head, rest) = body.split_once("\r\n\r\n").unwrap_or((&body, ""));
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "GET {path}: {head}"
    );
    Ok(rest.to_owned())
}

/// The value of the sample `name{labels}` in a Prometheus text page (0 when absent).
pub fn metric_value(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name_and_labels).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Asserts `result` is INVALID_ARGUMENT whose BadRequest details and message name `field`.
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = match result {
        Ok(v) => panic!("expected INVALID_ARGUMENT naming {field}, got {v:?}"),
        Err(s) => s,
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    use tonic_types::StatusExt;
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert!(fields.iter().any(|f| f == field), "violations {fields:?} do not name {field}");
    assert!(
        status.message().contains(field),
        "message {:?} does not name {field}",
        status.message()
    );
}
