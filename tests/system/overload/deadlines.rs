//! Deadlines end to end: the client's `grpc-timeout` (or the server's REQUEST_TIMEOUT_MS)
//! ends a call with DEADLINE_EXCEEDED and leaves nothing written; CreateOrder answers before
//! its caller's deadline and the saga finishes in the background.

use std::time::{Duration, Instant};

use system_tests::{
    TestDb, TestInventory, TestSystem, order_request, reserve_request, test_settings,
};
use tonic::{Code, Request};

use super::FAST;

#[tokio::test]
async fn a_reserve_past_its_deadline_answers_deadline_exceeded_and_writes_nothing()
-> anyhow::Result<()> {
    // Unbatched: each call is its own transaction, bounded by the call's deadline.
    reserve_past_its_deadline(false).await
}

#[tokio::test]
async fn a_batched_reserve_past_its_deadline_writes_nothing_either() -> anyhow::Result<()> {
    // Batched: the batch waits for no lock past the latest deadline of its calls.
    reserve_past_its_deadline(true).await
}

async fn reserve_past_its_deadline(batching: bool) -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.reserve_batching = batching;
    settings.overload.request_timeout_ms = 1_500;
    let inv = TestInventory::start_with(db.clone(), settings).await?;
    inv.stock("HOT", 10).await?;
    let movements = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from inventory.movements")
                .fetch_one(&pool)
                .await
        }
    };
    let movements_before = movements(&db).await?;
    let lock = db.lock_stock("HOT").await?;

    // The client's deadline: 300 ms.
    let mut client = inv.new_client()?;
    let mut req = Request::new(reserve_request("late-1", &[("HOT", 3)]));
    req.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = client.reserve_inventory(req).await.expect_err("the row is locked");
    let took = started.elapsed();
    // The server answers 5 ms before the deadline; a client stalled past that may see its
    // own timer's CANCELLED first. Either way the call ended at its deadline.
    let own_timer = status.code() == Code::Cancelled && status.message() == "Timeout expired";
    assert!(status.code() == Code::DeadlineExceeded || own_timer, "{status:?}");
    assert!(took >= Duration::from_millis(250) && took < FAST, "{took:?}");

    // No client deadline: the server's REQUEST_TIMEOUT_MS (1.5 s) ends it.
    let started = Instant::now();
    let status = client
        .reserve_inventory(reserve_request("late-2", &[("HOT", 4)]))
        .await
        .expect_err("the row is locked");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_400) && took < Duration::from_secs(5), "{took:?}");

    // Once the lock is gone, the abandoned statements get their row... and roll back.
    lock.rollback().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holds: i64 = sqlx::query_scalar(
        "select count(*) from inventory.reservations where reference_id in ('late-1', 'late-2')",
    )
    .fetch_one(&db.pool)
    .await?;
    assert_eq!(holds, 0);
    assert_eq!(inv.item("HOT").await?.reserved, 0);
    assert_eq!(movements(&db).await?, movements_before);
    assert_eq!(inv.ledger_violations().await?, Vec::<String>::new());

    // The server is fine: the same reference reserves now.
    let reply = inv.reserve("late-1", &[("HOT", 3)]).await?;
    assert!(reply.success, "{reply:?}");
    Ok(())
}

#[tokio::test]
async fn create_order_answers_before_the_client_deadline_and_finishes_in_the_background()
-> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    // Payment takes 1.5 s: within PEER_TIMEOUT_MS (2 s), beyond the client's 800 ms.
    sys.payment_faults.set_latency_ms(1_500);

    let mut req = Request::new(order_request("u-deadline", &[("p-widget", 2)]));
    req.set_timeout(Duration::from_millis(800));
    let started = Instant::now();
    let order = sys.client()?.create_order(req).await?.into_inner();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "answered after {took:?}");
    assert!(["PENDING", "RESERVED"].contains(&order.status.as_str()), "{order:?}");

    // The saga goes on without the caller and confirms the order.
    let settled = sys.wait_settled(&order.id).await?;
    assert_eq!(settled.status, "CONFIRMED", "{settled:?}");
    assert_eq!(sys.item("WIDGET").await?.on_hand, 3);
    Ok(())
}

#[tokio::test]
async fn create_order_past_its_deadline_before_the_order_row_writes_nothing() -> anyhow::Result<()>
{
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    // The catalog answers after the caller's deadline: the product lookup is bounded by
    // what is left of it, and the call ends DEADLINE_EXCEEDED with no order written.
    sys.product_faults.set_latency_ms(3_000);
    let mut req = Request::new(order_request("u-late", &[("p-widget", 1)]));
    req.set_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let status = sys.client()?.create_order(req).await.expect_err("the catalog is too slow");
    let own_timer = status.code() == Code::Cancelled && status.message() == "Timeout expired";
    assert!(status.code() == Code::DeadlineExceeded || own_timer, "{status:?}");
    assert!(started.elapsed() < FAST);
    sys.product_faults.set_latency_ms(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sys.order_count().await?, 0);
    Ok(())
}
