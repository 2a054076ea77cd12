use std::collections::HashSet;

use system_tests::{TestSystem, order_request};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn the_same_key_returns_the_same_order() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let mut req = order_request("alice", &[("p-widget", 2)]);
    req.idempotency_key = "checkout-1".into();

    let first = sys.create(req.clone()).await??;
    let again = sys.create(req.clone()).await??;

    assert_eq!(first.status, "CONFIRMED");
    assert_eq!(again, first);
    assert_eq!(sys.order_count().await?, 1);
    assert_eq!(sys.ledger.charges().len(), 1);
    assert_eq!(sys.holds_for(&first.id).await?.len(), 1);
    assert_eq!(sys.item("WIDGET").await?.on_hand, 8);

    // Keys are per user: another user's identical key is another order.
    req.user_id = "bob".into();
    let other = sys.create(req).await??;
    assert_ne!(other.id, first.id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_calls_with_one_key_make_one_order_one_charge_one_hold() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    // A slow payment keeps the first call's saga in flight while the others arrive.
    sys.payment_faults.set_latency_ms(300);
    let mut req = order_request("alice", &[("p-widget", 3)]);
    req.idempotency_key = "double-click".into();

    let calls = (0..8).map(|_| {
        let mut client = sys.client().expect("an order server runs");
        let req = req.clone();
        tokio::spawn(async move { client.create_order(req).await })
    });
    let mut ids = HashSet::new();
    for result in futures::future::join_all(calls).await {
        let order = result??.into_inner();
        assert_eq!(order.status, "CONFIRMED", "every caller sees the settled order: {order:?}");
        ids.insert(order.id);
    }

    assert_eq!(ids.len(), 1, "one order for one key");
    let id = ids.into_iter().next().unwrap_or_default();
    assert_eq!(sys.order_count().await?, 1);
    assert_eq!(sys.ledger.charges().len(), 1, "one charge");
    assert_eq!(sys.holds_for(&id).await?.len(), 1, "one hold");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (7, 0));
    Ok(())
}

#[tokio::test]
async fn reusing_a_key_for_a_different_request_is_invalid() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    let mut req = order_request("alice", &[("p-widget", 1)]);
    req.idempotency_key = "k".into();
    let first = sys.create(req.clone()).await??;

    req.items[0].quantity = 2;
    let status = sys.create(req).await?.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["idempotency_key"]);
    assert_eq!(sys.order_count().await?, 1);
    assert_eq!(sys.get(&first.id).await?.items[0].quantity, 1);
    Ok(())
}
