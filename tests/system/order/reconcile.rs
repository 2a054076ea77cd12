//! The order-side reconciler: a confirmed order whose hold is not COMMITTED in the inventory
//! after the grace period moves `order_inconsistencies{kind="confirmed_not_committed"}`.

use std::time::Duration;

use proto::inventory::v1 as inv;
use system_tests::{PlantedOrder, SystemOptions, TestOrderServer, TestSystem, metric_value};

/// The gauge is a process-wide static: under `cargo test` (one process for every test) these
/// tests take turns so each sees only its own server's ticks. Every other order server runs
/// with the reconciler off. Under nextest each test has its own process anyway.
static GAUGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SERIES: &str = r#"order_inconsistencies{kind="confirmed_not_committed"}"#;
const ASKED_OK: &str = r#"order_inventory_calls_total{call="get_reservation",outcome="ok"}"#;
const GRACE_MS: u64 = 1_000;

/// A system whose order server reconciles every 100 ms with a short grace, asking about two
/// orders per tick (so a pass over a few orders takes several ticks).
async fn start_reconciling() -> anyhow::Result<TestSystem> {
    let mut sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.order_settings.reconcile_interval_ms = 100;
    sys.order_settings.reconcile_grace_ms = GRACE_MS;
    sys.order_settings.reconcile_batch = 2;
    sys.start_order_server().await?;
    Ok(sys)
}

fn server(sys: &TestSystem) -> anyhow::Result<&TestOrderServer> {
    sys.orders.first().ok_or_else(|| anyhow::anyhow!("no order server"))
}

/// Polls `/metrics` until `series` has the value `want`; returns the page.
async fn wait_metric(sys: &TestSystem, series: &str, want: f64) -> anyhow::Result<String> {
    wait_until(sys, series, &format!("== {want}"), |v| v == want).await
}

/// Polls `/metrics` until the value of `series` satisfies `done`; returns the page.
async fn wait_until(
    sys: &TestSystem,
    series: &str,
    what: &str,
    done: impl Fn(f64) -> bool,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = server(sys)?.metrics_text().await?;
        if done(metric_value(&page, series)) {
            return Ok(page);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{series} never became {what}:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A confirmed order whose saga finished, recording `reservation` as its committed hold.
fn settled_confirmed(reservation: Option<uuid::Uuid>) -> PlantedOrder {
    let mut order = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    order.status = "CONFIRMED";
    order.next_action = None;
    order.payment_status = "SUCCEEDED";
    order.payment_id = Some(format!("pay-{}", order.id));
    order.reservation_id = reservation;
    order
}

/// Holds `qty` WIDGET for order `id` straight through the inventory: a PENDING hold.
async fn pending_hold(sys: &TestSystem, id: uuid::Uuid, qty: i32) -> anyhow::Result<uuid::Uuid> {
    let resp = sys.inventory()?.reserve(&id.to_string(), &[("WIDGET", qty)]).await?;
    anyhow::ensure!(resp.success, "{resp:?}");
    Ok(uuid::Uuid::parse_str(&resp.reservation_id)?)
}

#[tokio::test]
async fn a_confirmed_order_whose_hold_stays_pending_counts_after_the_grace() -> anyhow::Result<()> {
    let _turn = GAUGE.lock().await;
    let sys = start_reconciling().await?;
    sys.stock("WIDGET", 50).await?;
    let asked_before = metric_value(&server(&sys)?.metrics_text().await?, ASKED_OK);

    // Healthy confirmed orders: committed in the inventory, asked about, never counted.
    for user in ["alice", "bob", "carol"] {
        let order = sys.order(user, &[("p-widget", 1)]).await??;
        let order = sys.wait_settled(&order.id).await?;
        assert_eq!(order.status, "CONFIRMED", "{order:?}");
    }
    // Every one of them asked about (passes repeat, so the counter keeps growing).
    let page = wait_until(&sys, ASKED_OK, "3 more", |v| v >= asked_before + 3.0).await?;
    assert_eq!(metric_value(&page, SERIES), 0.0, "{page}");
    assert!(page.contains(&format!("{SERIES} 0")), "exported at 0, not absent:\n{page}");

    // Corrupted on purpose: an order row says CONFIRMED and settled, but its hold was never
    // committed (still PENDING in the inventory).
    let mut broken = settled_confirmed(None);
    let hold = pending_hold(&sys, broken.id, 2).await?;
    broken.reservation_id = Some(hold);
    sys.plant(&broken).await?;

    let page = wait_metric(&sys, SERIES, 1.0).await?;
    // The alert condition (the gauge above zero) holds, and keeps holding while it is wrong.
    assert!(metric_value(&page, SERIES) > 0.0);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let page = server(&sys)?.metrics_text().await?;
        assert_eq!(metric_value(&page, SERIES), 1.0, "{page}");
    }

    // Committing the hold heals the order: the next tick asks again and counts 0.
    let req = inv::CommitReservationRequest { reservation_id: hold.to_string() };
    let reply = sys.inventory()?.client.clone().commit_reservation(req).await?.into_inner();
    assert!(reply.success, "{reply:?}");
    wait_metric(&sys, SERIES, 0.0).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_commit_counts_after_the_grace_even_with_the_inventory_down() -> anyhow::Result<()>
{
    let _turn = GAUGE.lock().await;
    let mut sys = start_reconciling().await?;
    sys.stock("WIDGET", 50).await?;

    // A settled confirmed order whose hold is missing from the inventory altogether.
    sys.plant(&settled_confirmed(Some(uuid::Uuid::now_v7()))).await?;
    wait_metric(&sys, SERIES, 1.0).await?;

    // The inventory goes away; a paid order's commit is queued (retrying against it).
    sys.stop_inventory().await?;
    let mut queued = settled_confirmed(Some(uuid::Uuid::now_v7()));
    queued.next_action = Some("commit");
    let id = sys.plant(&queued).await?;

    // Within the grace it is not counted; after it, it is, from the order rows alone, and
    // the mismatch found while the inventory answered keeps being counted meanwhile.
    let page = server(&sys)?.metrics_text().await?;
    assert_eq!(metric_value(&page, SERIES), 1.0, "{page}");
    wait_metric(&sys, SERIES, 2.0).await?;
    let row = sys.saga_row(&id).await?;
    assert_eq!((row.status.as_str(), row.next_action.as_deref()), ("CONFIRMED", Some("commit")));
    Ok(())
}

#[tokio::test]
async fn one_replica_reconciles_at_a_time_and_the_others_export_its_count() -> anyhow::Result<()> {
    let sys = TestSystem::without_order_server(0).await?;
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let store = order_service::store::Store::new(sys.db.pool.clone());
    let turn = std::time::Duration::from_millis(300);

    assert!(store.take_reconcile_turn(a, turn).await?, "a free turn");
    assert!(!store.take_reconcile_turn(b, turn).await?, "b while a holds it");
    assert!(store.take_reconcile_turn(a, turn).await?, "a renews");
    store.store_reconcile_result(a, 2).await?;
    // Only the runner's count is stored; the others read it.
    store.store_reconcile_result(b, 9).await?;
    let (count, finished) = store.shared_reconcile_result().await?;
    assert_eq!(count, 2);
    assert!(finished.is_some());

    // a stops renewing (died): after its lease, b takes over, and a no longer runs.
    tokio::time::sleep(turn + std::time::Duration::from_millis(100)).await;
    assert!(store.take_reconcile_turn(b, turn).await?, "b after a's lease lapsed");
    assert!(!store.take_reconcile_turn(a, turn).await?, "a while b holds it");
    store.store_reconcile_result(b, 0).await?;
    assert_eq!(store.shared_reconcile_result().await?.0, 0);
    Ok(())
}
