//! SIGTERM with a load balancer's health `Watch` stream open and a call in flight: the real
//! binary reports NOT_SERVING on the stream at once, keeps serving through the drain delay,
//! then ends the stream, lets the call finish within the grace, and exits 0. A call that
//! outlives the grace is answered UNAVAILABLE instead of holding the exit.

use std::process::Stdio;
use std::time::Duration;

use proto::inventory::v1 as pb;
use system_tests::chaos::procs::target_binary;
use system_tests::{InventoryClient, TestDb, TestInventory, reserve_request, test_settings};
use test_support::binary::free_port;
use tokio::time::{Instant, timeout};
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SERVICE: &str = inventory_service::app::SERVICE_NAME;

fn status_of(code: i32) -> ServingStatus {
    ServingStatus::try_from(code).unwrap_or(ServingStatus::Unknown)
}

#[tokio::test]
async fn sigterm_with_a_watch_stream_open_exits_0_after_finishing_calls() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let mut child = tokio::process::Command::new(target_binary("inventory-service")?)
        .env("DATABASE_URL", &db.url)
        .env("GRPC_ADDR", addr.to_string())
        .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()?))
        .env("ADMIN_AUTH_DISABLED", "true")
        .env("SHUTDOWN_DRAIN_DELAY_MS", "500")
        .env("SHUTDOWN_GRACE_MS", "8000")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    system_tests::wait_serving(addr, SERVICE, Duration::from_secs(30)).await?;
    let channel = system_tests::channel(addr).await?;
    let mut client = InventoryClient::new(channel.clone());
    client
        .upsert_inventory_item(pb::UpsertInventoryItemRequest {
            sku: "A".into(),
            product_id: "prod-a".into(),
            variant_id: None,
            warehouse_id: String::new(),
            on_hand: 5,
        })
        .await?;

    // What a load balancer keeps open.
    let mut health = HealthClient::new(channel);
    let watch = HealthCheckRequest { service: String::new() };
    let mut stream = health.watch(watch).await?.into_inner();
    let first = stream.next().await.ok_or_else(|| anyhow::anyhow!("no first status"))??;
    assert_eq!(status_of(first.status), ServingStatus::Serving);

    // A call in flight: the reserve waits inside the server for the stock row's lock.
    let mut blocker = db.pool.begin().await?;
    sqlx::query("select 1 from inventory.stock_levels for update").execute(&mut *blocker).await?;
    let mut caller = client.clone();
    let in_flight =
        tokio::spawn(
            async move { caller.reserve_inventory(reserve_request("o-1", &[("A", 2)])).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = nix::unistd::Pid::from_raw(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| anyhow::anyhow!("no pid"))?,
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let signalled = Instant::now();

    // The stream hears NOT_SERVING at once; liveness is unaffected while the server drains.
    let next = timeout(Duration::from_secs(5), stream.next()).await?;
    let next = next.ok_or_else(|| anyhow::anyhow!("stream ended before NOT_SERVING"))??;
    assert_eq!(status_of(next.status), ServingStatus::NotServing);
    let liveness = HealthCheckRequest { service: common::server::LIVENESS.into() };
    assert_eq!(
        status_of(health.check(liveness).await?.into_inner().status),
        ServingStatus::Serving
    );

    // After the drain delay the stream is ended by the server, not left hanging.
    let ended = timeout(Duration::from_secs(5), stream.next()).await?;
    match ended {
        None => {}
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Some(Ok(message)) => anyhow::bail!("the stream went on: {message:?}"),
    }
    assert!(!in_flight.is_finished(), "the call in flight is still waiting for its lock");

    // The call in flight finishes within the grace, then the process exits 0.
    blocker.rollback().await?;
    let reply = timeout(Duration::from_secs(5), in_flight).await???.into_inner();
    assert!(reply.success, "{reply:?}");
    let exit = timeout(Duration::from_secs(15), child.wait()).await??;
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(15));
    let reserved: i32 = sqlx::query_scalar("select reserved from inventory.stock_levels")
        .fetch_one(&db.pool)
        .await?;
    assert_eq!(reserved, 2);
    Ok(())
}

#[tokio::test]
async fn a_call_that_outlives_the_grace_is_answered_unavailable() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.shutdown.shutdown_grace_ms = 300;
    let mut inv = TestInventory::start_with(db, settings).await?;
    inv.stock("A", 5).await?;
    let mut blocker = inv.db.pool.begin().await?;
    sqlx::query("select 1 from inventory.stock_levels for update").execute(&mut *blocker).await?;
    let mut caller = inv.client.clone();
    let in_flight =
        tokio::spawn(
            async move { caller.reserve_inventory(reserve_request("o-1", &[("A", 2)])).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let server = inv.begin_stop().ok_or_else(|| anyhow::anyhow!("already stopped"))?;
    let status = timeout(Duration::from_secs(5), in_flight).await??.expect_err("cut at the grace");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    timeout(Duration::from_secs(15), server).await???;
    blocker.rollback().await?;
    Ok(())
}
