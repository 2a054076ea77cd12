use std::time::Duration;

use system_tests::{TestDb, TestInventory, metric_value, test_settings};

/// Moves a hold's expiry into the past, as if its minutes had gone by.
async fn lapse(inv: &TestInventory, id: &str) -> anyhow::Result<()> {
    sqlx::query("update inventory.reservations set expires_at = now() - interval '1 second' where id = $1::uuid")
        .bind(id)
        .execute(&inv.db.pool)
        .await?;
    Ok(())
}

async fn wait_for_status(inv: &TestInventory, id: &str, status: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if inv.reservation(id).await?.status == status {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("reservation {id} never became {status}")
}

#[tokio::test]
async fn the_sweeper_releases_lapsed_holds_only() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let lapsed = inv.reserve("o-1", &[("A", 3)]).await?.reservation_id;
    let live = inv.reserve("o-2", &[("A", 2)]).await?.reservation_id;
    let before = metric_value(&inv.metrics_text().await?, "inventory_expired_holds_total");
    lapse(&inv, &lapsed).await?;

    wait_for_status(&inv, &lapsed, "EXPIRED").await?;
    assert_eq!(inv.reservation(&live).await?.status, "PENDING");
    let item = inv.item("A").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (10, 2, 8));
    let expired: i64 = sqlx::query_scalar(
        "select count(*) from inventory.movements where kind = 'EXPIRE' and reservation_id = $1::uuid",
    )
    .bind(&lapsed)
    .fetch_one(&inv.db.pool)
    .await?;
    assert_eq!(expired, 1);
    assert!(inv.ledger_violations().await?.is_empty());
    let after = metric_value(&inv.metrics_text().await?, "inventory_expired_holds_total");
    assert!(after >= before + 1.0, "expired counter moved from {before} to {after}");

    // The reference is free again once its hold expired.
    let again = inv.reserve("o-1", &[("A", 1)]).await?;
    assert!(again.success);
    assert_ne!(again.reservation_id, lapsed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_replicas_sweep_without_double_release() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let first = TestInventory::start_with(db.clone(), test_settings(&db.url)).await?;
    let second = TestInventory::start_with(db.clone(), test_settings(&db.url)).await?;
    first.stock("A", 500).await?;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(first.reserve(&format!("o-{i}"), &[("A", 2)]).await?.reservation_id);
    }
    sqlx::query("update inventory.reservations set expires_at = now() - interval '1 second'")
        .execute(&db.pool)
        .await?;
    for id in &ids {
        wait_for_status(&second, id, "EXPIRED").await?;
    }
    let item = second.item("A").await?;
    assert_eq!((item.on_hand, item.reserved), (500, 0));
    let releases: i64 =
        sqlx::query_scalar("select count(*) from inventory.movements where kind = 'EXPIRE'")
            .fetch_one(&db.pool)
            .await?;
    assert_eq!(releases, 200, "each hold released exactly once");
    assert!(first.ledger_violations().await?.is_empty());
    Ok(())
}
