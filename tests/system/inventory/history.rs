//! Costs that stay flat as history grows: a reconciler pass reads the ledger since its
//! checkpoints only, retention removes old history without breaking the ledger's proof, and
//! passes of several replicas take turns.

use std::time::Duration;

use clap::Parser;
use common::retention::{self, RetentionConfig};
use inventory_service::domain::InconsistencyKind;
use inventory_service::metrics::RETENTION_REMOVED;
use inventory_service::reconciler::{reconcile_once, verify_full};
use inventory_service::store::{Inconsistencies, PASS_LOCK, Retained, Scope, Store, Turn};
use proto::inventory::v1 as pb;
use system_tests::TestInventory;
use tokio_util::sync::CancellationToken;

use super::reconcile::{GAUGE, level_id, set_level, stray_movement};

const GRACE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn ledger(report: &Inconsistencies) -> (u64, Vec<String>) {
    let kind = report.kinds.iter().find(|k| k.kind == InconsistencyKind::LedgerMismatch);
    let skus = kind.map(|k| k.samples.iter().map(|m| m.sku.clone()).collect()).unwrap_or_default();
    (report.count(InconsistencyKind::LedgerMismatch), skus)
}

async fn commit(inv: &TestInventory, id: &str) -> anyhow::Result<()> {
    let req = pb::CommitReservationRequest { reservation_id: id.into() };
    anyhow::ensure!(inv.new_client()?.commit_reservation(req).await?.into_inner().success);
    Ok(())
}

async fn cancel(inv: &TestInventory, id: &str) -> anyhow::Result<()> {
    let req = pb::CancelReservationRequest::by_id(id);
    anyhow::ensure!(inv.new_client()?.cancel_reservation(req).await?.into_inner().success);
    Ok(())
}

async fn count(inv: &TestInventory, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&inv.db.pool).await?)
}

#[tokio::test]
async fn a_pass_reads_only_what_changed_since_the_last_and_still_catches_what_came_after()
-> anyhow::Result<()> {
    let _turn = GAUGE.lock().await;
    let inv = TestInventory::start().await?;
    for sku in ["A", "B", "C"] {
        inv.stock(sku, 10).await?;
    }
    assert!(inv.reserve("o-1", &[("A", 2), ("B", 1)]).await?.success);
    let store = Store::new(inv.db.pool.clone());

    let first = reconcile_once(&store, GRACE).await?;
    assert_eq!(first.total(), 0, "{first:?}");
    // Three SETs and two RESERVEs, all recorded since the migration's checkpoint.
    assert_eq!(first.tail_movements, 5);
    // Other tests' open transactions may hold the horizon below part of that tail.
    fold_everything(&store).await?;
    let second = reconcile_once(&store, GRACE).await?;
    assert_eq!((second.total(), second.tail_movements), (0, 0), "{second:?}");
    assert!(inv.reserve("o-2", &[("A", 1)]).await?.success);
    let third = reconcile_once(&store, GRACE).await?;
    assert_eq!((third.total(), third.tail_movements), (0, 1), "{third:?}");
    fold_everything(&store).await?;

    // Planted after the checkpoint: a level changed without a movement, a movement without
    // a level change.
    set_level(&inv, "A", "on_hand", 99).await?;
    stray_movement(&inv, "B", 5, 0).await?;
    let fourth = reconcile_once(&store, GRACE).await?;
    assert_eq!(ledger(&fourth), (2, vec!["A".into(), "B".into()]));
    assert_eq!(fourth.tail_movements, 1);
    // Folded into the checkpoint, the stray movement still does not match B's level.
    fold_everything(&store).await?;
    let fifth = reconcile_once(&store, GRACE).await?;
    assert_eq!((ledger(&fifth).0, fifth.tail_movements), (2, 0));

    // The full verification reads every movement and agrees, checkpoints intact.
    let full = verify_full(&store, GRACE).await?;
    assert!(full.full);
    assert_eq!(ledger(&full), (2, vec!["A".into(), "B".into()]));
    assert_eq!(full.count(InconsistencyKind::CheckpointMismatch), 0);

    // A checkpoint edited by hand: the level no longer matches it, and only the full
    // verification can say that the checkpoint is what is wrong.
    sqlx::query(
        "update inventory.ledger_checkpoints set on_hand = on_hand + 1 where stock_level_id = $1",
    )
    .bind(level_id(&inv, "C").await?)
    .execute(&inv.db.pool)
    .await?;
    let sixth = reconcile_once(&store, GRACE).await?;
    assert_eq!(ledger(&sixth).1, ["A", "B", "C"]);
    // An incremental pass keeps the checkpoint kind of the last full verification.
    assert_eq!(sixth.count(InconsistencyKind::CheckpointMismatch), 0);
    let full = verify_full(&store, GRACE).await?;
    assert_eq!(ledger(&full).1, ["A", "B"]);
    let checkpoints = full.kinds.iter().find(|k| k.kind == InconsistencyKind::CheckpointMismatch);
    let skus: Vec<_> = checkpoints.into_iter().flat_map(|k| &k.samples).map(|m| &m.sku).collect();
    assert_eq!(skus, ["C"]);
    // An operator verifies in full on demand: the RPC through shopctl, exit code 2.
    let url = format!("http://{}", inv.addr);
    let cli =
        shopctl::cli::Cli::try_parse_from(["shopctl", "--inventory-url", &url, "verify-ledger"])?;
    let refused = shopctl::run(cli).await.expect_err("inconsistent ledger");
    assert_eq!(refused.exit_code(), 2, "{}", refused.report());
    assert!(refused.report().contains("3 inconsistencies"), "{}", refused.report());
    // Every replica exports what the last pass stored.
    let shared = store.shared_results().await?;
    assert!(shared.counts.contains(&(InconsistencyKind::CheckpointMismatch, 1)));
    assert!(shared.counts.contains(&(InconsistencyKind::LedgerMismatch, 2)));
    assert!(shared.finished_at > 0);
    Ok(())
}

/// Reconciler passes until the horizon is past every movement: the horizon is the snapshot's
/// xmin, which any open transaction of the cluster holds back (other tests run beside this
/// one), so one pass may leave a tail.
async fn fold_everything(store: &Store) -> anyhow::Result<Inconsistencies> {
    for _ in 0..200 {
        let pass = reconcile_once(store, GRACE).await?;
        if pass.tail_after == 0 {
            return Ok(pass);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the ledger horizon did not pass the tail in 10 s")
}

#[tokio::test]
async fn retention_removes_old_history_and_the_ledger_still_proves_every_row() -> anyhow::Result<()>
{
    let _turn = GAUGE.lock().await;
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    inv.stock("B", 10).await?;
    let committed = inv.reserve("o-1", &[("A", 2)]).await?.reservation_id;
    commit(&inv, &committed).await?;
    let cancelled = inv.reserve("o-2", &[("B", 1)]).await?.reservation_id;
    cancel(&inv, &cancelled).await?;
    let pending = inv.reserve("o-3", &[("A", 1)]).await?.reservation_id;
    let adjust = pb::AdjustStockRequest {
        sku: "A".into(),
        warehouse_id: String::new(),
        delta: 5,
        reason: "cycle count".into(),
        idempotency_key: "k-1".into(),
    };
    inv.new_client()?.adjust_stock(adjust.clone()).await?;
    let store = Store::new(inv.db.pool.clone());
    assert_eq!(fold_everything(&store).await?.total(), 0);
    // Recorded after the pass: past the horizon, so not yet in any checkpoint.
    let late = inv.reserve("o-4", &[("B", 1)]).await?.reservation_id;
    commit(&inv, &late).await?;

    // A hundred days pass for all of it.
    sqlx::raw_sql(
        "update inventory.movements set created_at = created_at - interval '100 days';
         update inventory.reservations set updated_at = updated_at - interval '100 days';
         update inventory.adjustments set created_at = created_at - interval '100 days'",
    )
    .execute(&inv.db.pool)
    .await?;
    let movements_before = count(&inv, "select count(*) from inventory.movements").await?;
    let config = RetentionConfig {
        interval: Duration::from_secs(60),
        batch: 2,
        keep: vec![
            (Retained::Movements, 30 * DAY),
            (Retained::SettledHolds, 30 * DAY),
            (Retained::AdjustmentKeys, 30 * DAY),
        ],
    };
    retention::round(&store, &config, &RETENTION_REMOVED, &CancellationToken::new()).await?;

    // Movements: only o-4's two, past the horizon, are left; the rest is in the base.
    let left = count(&inv, "select count(*) from inventory.movements").await?;
    assert_eq!(left, 2, "{movements_before} before");
    let past_horizon = count(
        &inv,
        "select count(*) from inventory.movements
          where txid >= (select through_txid from inventory.ledger_horizon)",
    )
    .await?;
    assert_eq!(past_horizon, 2);
    assert!(count(&inv, "select count(*) from inventory.ledger_base").await? > 0);
    // Holds: the settled ones went with their lines; the pending one stays.
    let holds: Vec<String> = sqlx::query_scalar("select id::text from inventory.reservations")
        .fetch_all(&inv.db.pool)
        .await?;
    assert_eq!(holds, [pending]);
    assert_eq!(count(&inv, "select count(*) from inventory.reservation_items").await?, 1);
    assert_eq!(count(&inv, "select count(*) from inventory.adjustments").await?, 0);
    let gone = inv.reservation(&committed).await.expect_err("removed by retention");
    let code = gone.downcast_ref::<tonic::Status>().map(tonic::Status::code);
    assert_eq!(code, Some(tonic::Code::NotFound), "{gone:?}");

    // The ledger still proves every row, incrementally and in full.
    let pass = fold_everything(&store).await?;
    assert_eq!(pass.total(), 0, "{pass:?}");
    let full = verify_full(&store, GRACE).await?;
    assert_eq!(full.total(), 0, "{full:?}");
    assert!(inv.ledger_violations().await?.is_empty());
    assert_eq!(inv.item("A").await?.on_hand, 13);

    // A second round finds nothing more; corruption planted afterwards is still caught.
    retention::round(&store, &config, &RETENTION_REMOVED, &CancellationToken::new()).await?;
    assert_eq!(count(&inv, "select count(*) from inventory.movements").await?, 0);
    stray_movement(&inv, "A", 3, 0).await?;
    assert_eq!(ledger(&reconcile_once(&store, GRACE).await?).1, ["A"]);
    let full = verify_full(&store, GRACE).await?;
    assert_eq!(ledger(&full).1, ["A"]);
    assert_eq!(full.count(InconsistencyKind::CheckpointMismatch), 0);
    Ok(())
}

#[tokio::test]
async fn passes_take_turns_and_never_count_a_movement_twice() -> anyhow::Result<()> {
    let _turn = GAUGE.lock().await;
    let inv = TestInventory::start().await?;
    inv.stock("A", 1_000).await?;
    inv.stock_in("B", "east", 1_000).await?;
    let here = Store::new(inv.db.pool.clone());
    let there = Store::new(sqlx::PgPool::connect(&inv.db.url).await?);
    let incremental = Scope::Incremental { full_every: None };

    // Another replica's pass holds the turn: this one gives up at once, or waits for it.
    let mut holder = inv.db.pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(PASS_LOCK).execute(&mut *holder).await?;
    assert!(there.reconcile(incremental, GRACE, 5, Turn::Skip).await?.is_none());
    let waiting = tokio::spawn({
        let there = there.clone();
        async move { reconcile_once(&there, GRACE).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a pass ran while another held the turn");
    holder.rollback().await?;
    assert_eq!(waiting.await??.total(), 0);

    // Both replicas pass back to back while holds come and go: each pass folds the tail
    // into the checkpoints, and no tail may be folded twice.
    let stop = CancellationToken::new();
    let passes = [here.clone(), there.clone(), here.clone(), there.clone()].map(|store| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ran, mut skipped) = (0u32, 0u32);
            while !stop.is_cancelled() {
                match store.reconcile(incremental, GRACE, 5, Turn::Skip).await? {
                    Some(found) => {
                        anyhow::ensure!(found.total() == 0, "{found:?}");
                        ran += 1;
                    }
                    None => skipped += 1,
                }
            }
            Ok((ran, skipped))
        })
    });
    for i in 0..40 {
        let hold = inv.reserve(&format!("o-{i}"), &[("A", 1), ("B", 1)]).await?;
        assert!(hold.success, "{hold:?}");
        if i % 2 == 0 {
            commit(&inv, &hold.reservation_id).await?;
        } else {
            cancel(&inv, &hold.reservation_id).await?;
        }
    }
    stop.cancel();
    let (mut ran, mut skipped) = (0, 0);
    for pass in passes {
        let (r, s) = pass.await??;
        ran += r;
        skipped += s;
    }
    assert!(ran > 1, "ran {ran}, skipped {skipped}");
    let full = verify_full(&here, GRACE).await?;
    assert_eq!(full.total(), 0, "{full:?}");
    Ok(())
}
