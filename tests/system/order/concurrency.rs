use system_tests::{TestSystem, order_request};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_orders_for_fifteen_units_confirm_exactly_fifteen() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("HOT", 15).await?;
    let client = sys.client()?;

    let attempts = (0..60).map(|i| {
        let mut client = client.clone();
        let mut req = order_request(&format!("buyer-{i}"), &[("p-hot", 1)]);
        req.idempotency_key = format!("key-{i}");
        tokio::spawn(async move { client.create_order(req).await })
    });
    let (mut confirmed, mut rejected, mut refused) = (0, 0, 0);
    for result in futures::future::join_all(attempts).await {
        match result? {
            Ok(order) => match order.into_inner().status.as_str() {
                "CONFIRMED" => confirmed += 1,
                "REJECTED" => rejected += 1,
                other => anyhow::bail!("unexpected order status {other}"),
            },
            // Lost at the availability check: no order written.
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                let reason = status.get_details_error_info().map(|i| i.reason);
                assert_eq!(reason.as_deref(), Some("INVENTORY_UNAVAILABLE"));
                refused += 1;
            }
        }
    }

    assert_eq!(confirmed, 15, "rejected {rejected}, refused {refused}");
    assert_eq!(confirmed + rejected + refused, 60);
    assert_eq!(sys.order_count().await?, confirmed + rejected);
    let item = sys.item("HOT").await?;
    assert_eq!((item.on_hand, item.reserved), (0, 0));
    let charged = sys.ledger.charges().iter().filter(|c| c.succeeded()).count();
    assert_eq!(charged, 15);
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}
