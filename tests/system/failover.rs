//! The database turns read-only under running servers (what a failover that lands the pool on
//! a standby looks like) or answers too slowly: calls answer UNAVAILABLE (never INTERNAL) and
//! write nothing, readiness says NOT_SERVING while liveness stays SERVING, and once a writable
//! database is back the same processes serve again, with no restart.

use std::net::SocketAddr;
use std::time::Duration;

use system_tests::{TestDb, TestInventory, reserve_request, test_settings};
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn health(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = system_tests::channel(addr).await.ok()?;
    let req = HealthCheckRequest { service: service.to_owned() };
    let status = HealthClient::new(channel).check(req).await.ok()?.into_inner().status;
    ServingStatus::try_from(status).ok()
}

async fn wait_readiness(addr: SocketAddr, want: ServingStatus) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(addr, "").await != Some(want) {
        anyhow::ensure!(Instant::now() < deadline, "readiness not {want:?} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Sets `default_transaction_read_only` of `db` for new sessions. Turning it on also ends the
/// database's sessions, so every connection the servers open from now on is read-only; turning
/// it off leaves the read-only sessions open: the servers must replace them by themselves.
async fn set_read_only(db: &TestDb, on: bool) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let value = if on { "on" } else { "off" };
    // From the cluster's admin database: the test's own sessions become read-only too.
    let mut admin = sqlx::PgConnection::connect(&std::env::var("TEST_DATABASE_URL")?).await?;
    // The name is ours (a UUID), never input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter database {} set default_transaction_read_only = {value}",
        db.name
    )))
    .execute(&mut admin)
    .await?;
    if on {
        sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
            .bind(&db.name)
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_read_only_database_is_unavailable_not_ready_and_recovers() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    set_read_only(&inv.db, true).await?;

    // Every call answers UNAVAILABLE, whichever connection it lands on (one the failover
    // terminated, or a new, read-only one).
    let mut client = inv.new_client()?;
    for n in 0..6 {
        let reply =
            client.reserve_inventory(reserve_request(&format!("ro-{n}"), &[("A", 1)])).await;
        let status = reply.expect_err("a read-only database takes no hold");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(!status.message().contains("read-only"), "leaks internals: {status:?}");
    }
    wait_readiness(inv.addr, ServingStatus::NotServing).await?;
    assert_eq!(health(inv.addr, common::server::LIVENESS).await, Some(ServingStatus::Serving));
    let held: i64 = sqlx::query_scalar("select count(*) from inventory.reservations")
        .fetch_one(&inv.db.pool)
        .await?;
    assert_eq!(held, 0, "nothing written");

    // A writable primary is back: the same process serves again.
    set_read_only(&inv.db, false).await?;
    wait_readiness(inv.addr, ServingStatus::Serving).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.reserve_inventory(reserve_request("after", &[("A", 2)])).await {
            Ok(reply) => {
                assert!(reply.into_inner().success);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                anyhow::ensure!(Instant::now() < deadline, "still failing: {status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(inv.item("A").await?.reserved, 2);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_statement_timeout_is_unavailable_and_writes_nothing() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.database.db_statement_timeout_ms = 300;
    let inv = TestInventory::start_with(db, settings).await?;
    inv.stock("A", 10).await?;

    // The stock row stays locked longer than a statement may run.
    let mut blocker = inv.db.pool.begin().await?;
    sqlx::query("select 1 from inventory.stock_levels for update").execute(&mut *blocker).await?;
    let started = Instant::now();
    let status = inv
        .client
        .clone()
        .reserve_inventory(reserve_request("slow", &[("A", 1)]))
        .await
        .expect_err("the row stays locked");
    assert!(matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    blocker.rollback().await?;
    assert_eq!(inv.item("A").await?.reserved, 0, "nothing written");
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}
