//! The reconciler: rows corrupted on purpose with direct SQL move
//! `inventory_inconsistencies{kind}` from 0 to the number of corrupted rows of each kind.

use std::time::Duration;

use inventory_service::domain::InconsistencyKind;
use inventory_service::reconciler::reconcile_once;
use inventory_service::store::Store;
use system_tests::{TestDb, TestInventory, metric_value, test_settings};

/// The gauge is a process-wide static: under `cargo test` (one process for every test) these
/// tests take turns so each sees only its own server's passes. Every other test server runs
/// with the reconciler off. Under nextest each test has its own process anyway.
pub(super) static GAUGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LAPSE_GRACE: Duration = Duration::from_secs(1);

/// A server reconciling every 100 ms whose sweeper, after its pass at start, waits an hour:
/// a lapsed hold stays PENDING for the reconciler to find.
async fn start_reconciling() -> anyhow::Result<TestInventory> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.reconcile_interval_ms = 100;
    settings.reconcile_lapse_grace_ms = LAPSE_GRACE.as_millis().try_into()?;
    settings.sweep_interval_ms = 3_600_000;
    TestInventory::start_with(db, settings).await
}

fn series(kind: InconsistencyKind) -> String {
    format!("inventory_inconsistencies{{kind=\"{}\"}}", kind.as_str())
}

/// Polls `/metrics` until every kind's gauge has the expected value; returns the page.
async fn wait_gauges(
    inv: &TestInventory,
    expected: &[(InconsistencyKind, f64)],
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = inv.metrics_text().await?;
        if expected.iter().all(|(kind, want)| metric_value(&page, &series(*kind)) == *want) {
            return Ok(page);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("gauges never reached {expected:?}:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stock row of `sku` in the default warehouse.
pub(super) async fn level_id(inv: &TestInventory, sku: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "select sl.id from inventory.stock_levels sl join inventory.items i on i.id = sl.item_id
          where i.sku = $1 and sl.warehouse_id = 'default'",
    )
    .bind(sku)
    .fetch_one(&inv.db.pool)
    .await?)
}

/// Writes a movement nobody made (the ledger is append-only; this is the corruption).
pub(super) async fn stray_movement(
    inv: &TestInventory,
    sku: &str,
    on_hand_delta: i32,
    reserved_delta: i32,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into inventory.movements (stock_level_id, kind, on_hand_delta, reserved_delta, reason)
         values ($1, 'ADJUST', $2, $3, 'test: deliberate corruption')",
    )
    .bind(level_id(inv, sku).await?)
    .bind(on_hand_delta)
    .bind(reserved_delta)
    .execute(&inv.db.pool)
    .await?;
    Ok(())
}

pub(super) async fn set_level(
    inv: &TestInventory,
    sku: &str,
    column: &str,
    value: i32,
) -> anyhow::Result<()> {
    let sql = match column {
        "on_hand" => "update inventory.stock_levels set on_hand = $2 where id = $1",
        _ => "update inventory.stock_levels set reserved = $2 where id = $1",
    };
    sqlx::query(sql).bind(level_id(inv, sku).await?).bind(value).execute(&inv.db.pool).await?;
    Ok(())
}

#[tokio::test]
async fn corrupted_rows_move_each_gauge_from_zero_to_their_count() -> anyhow::Result<()> {
    let _turn = GAUGE.lock().await;
    let inv = start_reconciling().await?;
    for sku in ["A", "B", "C", "D", "E", "F"] {
        inv.stock(sku, 10).await?;
    }
    let mut holds = Vec::new();
    for (reference, sku, quantity) in
        [("o-a", "A", 2), ("o-b", "B", 2), ("o-c", "C", 3), ("o-d", "D", 1), ("o-e", "E", 1)]
    {
        let resp = inv.reserve(reference, &[(sku, quantity)]).await?;
        assert!(resp.success, "{resp:?}");
        holds.push(resp.reservation_id);
    }

    // Healthy: nothing to report, and every kind is exported at 0 (not absent).
    let store = Store::new(inv.db.pool.clone());
    let clean = reconcile_once(&store, LAPSE_GRACE).await?;
    assert_eq!(clean.total(), 0, "{clean:?}");
    let page = wait_gauges(&inv, &InconsistencyKind::ALL.map(|k| (k, 0.0))).await?;
    for kind in InconsistencyKind::ALL {
        assert!(page.contains(&format!("{} 0", series(kind))), "{kind:?} missing:\n{page}");
    }

    // reserved_mismatch, 1 row: A's reserved bumped without a hold (its ledger agrees, so
    // A is counted under this kind only).
    set_level(&inv, "A", "reserved", 3).await?;
    stray_movement(&inv, "A", 0, 1).await?;
    // ledger_mismatch, 2 rows: movements that no level change matches.
    stray_movement(&inv, "B", 5, 0).await?;
    stray_movement(&inv, "F", -1, 0).await?;
    // impossible_level, 1 row: the CHECK constraint dropped (in this test's own database),
    // then C's on_hand set below its reserved 3, with a movement so its ledger agrees.
    sqlx::query(
        "alter table inventory.stock_levels drop constraint stock_levels_reserved_within_on_hand",
    )
    .execute(&inv.db.pool)
    .await?;
    set_level(&inv, "C", "on_hand", 1).await?;
    stray_movement(&inv, "C", -9, 0).await?;
    // lapsed_pending_hold, 2 holds: expired an hour ago, still PENDING (the sweeper sleeps).
    sqlx::query(
        "update inventory.reservations set expires_at = now() - interval '1 hour'
          where id = any($1::uuid[])",
    )
    .bind(&holds[3..5])
    .execute(&inv.db.pool)
    .await?;

    let expected = [
        (InconsistencyKind::ReservedMismatch, 1.0),
        (InconsistencyKind::LedgerMismatch, 2.0),
        (InconsistencyKind::ImpossibleLevel, 1.0),
        (InconsistencyKind::LapsedPendingHold, 2.0),
    ];
    let page = wait_gauges(&inv, &expected).await?;
    // The alert condition, `max(inventory_inconsistencies) > 0`, now holds.
    let max = InconsistencyKind::ALL
        .map(|k| metric_value(&page, &series(k)))
        .into_iter()
        .fold(0.0, f64::max);
    assert!(max > 0.0);

    // The report names each mismatch by SKU and warehouse (what the log lines carry).
    let report = reconcile_once(&store, LAPSE_GRACE).await?;
    let skus = |kind: InconsistencyKind| -> Vec<String> {
        report
            .kinds
            .iter()
            .filter(|k| k.kind == kind)
            .flat_map(|k| k.samples.iter().map(|m| format!("{}@{}", m.sku, m.warehouse_id)))
            .collect()
    };
    assert_eq!(skus(InconsistencyKind::ReservedMismatch), ["A@default"]);
    assert_eq!(skus(InconsistencyKind::LedgerMismatch), ["B@default", "F@default"]);
    assert_eq!(skus(InconsistencyKind::ImpossibleLevel), ["C@default"]);
    let mut lapsed = skus(InconsistencyKind::LapsedPendingHold);
    lapsed.sort();
    assert_eq!(lapsed, ["D@default", "E@default"]);
    // The test suite's own invariant check agrees on the three row kinds.
    assert_eq!(inv.ledger_violations().await?.len(), 4);

    // A repair (a compensating movement, as an operator would write) brings its kind back
    // to 0 at the next pass; the others stay.
    set_level(&inv, "A", "reserved", 2).await?;
    stray_movement(&inv, "A", 0, -1).await?;
    wait_gauges(
        &inv,
        &[
            (InconsistencyKind::ReservedMismatch, 0.0),
            (InconsistencyKind::LedgerMismatch, 2.0),
            (InconsistencyKind::ImpossibleLevel, 1.0),
            (InconsistencyKind::LapsedPendingHold, 2.0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn live_traffic_is_never_reported_as_inconsistent() -> anyhow::Result<()> {
    let _turn = GAUGE.lock().await;
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.reconcile_interval_ms = 100;
    settings.reconcile_lapse_grace_ms = 1_000;
    let inv = TestInventory::start_with(db, settings).await?;
    inv.stock("A", 50).await?;
    inv.stock_in("B", "east", 50).await?;

    // Passes back to back while holds are taken, committed, cancelled and expired by the
    // sweeper: a snapshot never shows half of a change, so none may count anything.
    let store = Store::new(inv.db.pool.clone());
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn({
        let store = store.clone();
        async move {
            let mut passes = 0u32;
            while !*done_rx.borrow_and_update() {
                let report = reconcile_once(&store, Duration::from_secs(1)).await?;
                anyhow::ensure!(report.total() == 0, "pass {passes} found {report:?}");
                passes += 1;
            }
            Ok(passes)
        }
    });
    let mut client = inv.new_client()?;
    for i in 0..30 {
        let resp = inv.reserve(&format!("o-{i}"), &[("A", 1), ("B", 1)]).await?;
        assert!(resp.success, "{resp:?}");
        let id = resp.reservation_id;
        match i % 3 {
            0 => {
                let req = proto::inventory::v1::CommitReservationRequest { reservation_id: id };
                assert!(client.commit_reservation(req).await?.into_inner().success);
            }
            1 => {
                let req = proto::inventory::v1::CancelReservationRequest::by_id(id);
                assert!(client.cancel_reservation(req).await?.into_inner().success);
            }
            _ => {
                sqlx::query(
                    "update inventory.reservations set expires_at = now() where id = $1::uuid",
                )
                .bind(&id)
                .execute(&inv.db.pool)
                .await?;
            }
        }
    }
    // The sweeper (every 100 ms) releases the lapsed holds well within the grace.
    tokio::time::sleep(Duration::from_millis(500)).await;
    done_tx.send(true)?;
    let passes = watcher.await??;
    assert!(passes > 0);

    let report = reconcile_once(&store, Duration::from_secs(1)).await?;
    assert_eq!(report.total(), 0, "{report:?}");
    wait_gauges(&inv, &InconsistencyKind::ALL.map(|k| (k, 0.0))).await?;
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}
