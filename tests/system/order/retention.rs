//! Retention on the order side: saga audit rows and idempotency keys of settled orders leave
//! after their keep period; an order with a step still to do keeps its whole history.

use std::time::Duration;

use common::retention::{self, RetentionConfig};
use order_service::metrics::RETENTION_REMOVED;
use order_service::store::{Retained, Store};
use system_tests::{PlantedOrder, TestSystem, order_request};
use tokio_util::sync::CancellationToken;

const DAY: Duration = Duration::from_secs(86_400);

async fn keyed(sys: &TestSystem, user: &str, key: &str) -> anyhow::Result<String> {
    let mut request = order_request(user, &[("p-widget", 1)]);
    request.idempotency_key = key.to_owned();
    let order = sys.create(request).await??;
    anyhow::ensure!(order.status == "CONFIRMED", "{order:?}");
    Ok(order.id)
}

async fn count(sys: &TestSystem, sql: &'static str, id: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).bind(uuid::Uuid::parse_str(id)?).fetch_one(&sys.db.pool).await?)
}

const STEPS: &str = "select count(*) from orders.saga_steps where order_id = $1";
const KEYED: &str =
    "select count(*) from orders.orders where id = $1 and idempotency_key is not null";

#[tokio::test]
async fn old_history_of_settled_orders_leaves_and_unsettled_orders_keep_theirs()
-> anyhow::Result<()> {
    let mut sys = TestSystem::without_order_server(10).await?;
    sys.start_order_server().await?;
    let old = keyed(&sys, "alice", "k-old").await?;
    let fresh = keyed(&sys, "alice", "k-new").await?;
    // An order still waiting for its reserve (due in an hour), with an audit row of its own.
    let mut waiting = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
    waiting.due_in_ms = 3_600_000;
    let waiting_id = sys.plant(&waiting).await?;
    sqlx::query(
        "insert into orders.saga_steps (order_id, action, outcome, detail)
         values ($1, 'reserve', 'retry', 'inventory down')",
    )
    .bind(waiting.id)
    .execute(&sys.db.pool)
    .await?;
    // A hundred days pass for the old order and the waiting one.
    for id in [&old, &waiting_id] {
        let id = uuid::Uuid::parse_str(id)?;
        sqlx::query(
            "update orders.orders set created_at = created_at - interval '100 days' where id = $1",
        )
        .bind(id)
        .execute(&sys.db.pool)
        .await?;
        sqlx::query(
            "update orders.saga_steps set created_at = created_at - interval '100 days'
              where order_id = $1",
        )
        .bind(id)
        .execute(&sys.db.pool)
        .await?;
    }
    assert!(count(&sys, STEPS, &old).await? > 0);

    let store = Store::new(sys.db.pool.clone());
    let config = RetentionConfig {
        interval: Duration::from_secs(60),
        batch: 1,
        keep: vec![(Retained::SagaSteps, 30 * DAY), (Retained::IdempotencyKeys, 30 * DAY)],
    };
    retention::round(&store, &config, &RETENTION_REMOVED, &CancellationToken::new()).await?;

    assert_eq!(count(&sys, STEPS, &old).await?, 0);
    assert_eq!(count(&sys, KEYED, &old).await?, 0);
    assert!(count(&sys, STEPS, &fresh).await? > 0);
    assert_eq!(count(&sys, KEYED, &fresh).await?, 1);
    assert_eq!(count(&sys, STEPS, &waiting_id).await?, 1);
    // The order itself stays, readable as before.
    assert_eq!(sys.get(&old).await?.status, "CONFIRMED");

    // Past its window a key places a new order; within it, it still returns the same one.
    let mut retry = order_request("alice", &[("p-widget", 1)]);
    retry.idempotency_key = "k-old".into();
    assert_ne!(sys.create(retry).await??.id, old);
    let mut retry = order_request("alice", &[("p-widget", 1)]);
    retry.idempotency_key = "k-new".into();
    assert_eq!(sys.create(retry).await??.id, fresh);
    Ok(())
}
