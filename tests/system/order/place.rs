use std::collections::HashSet;

use proto::order::v1 as pb;
use system_tests::{TestSystem, metric_value, order_request};

#[tokio::test]
async fn happy_path_confirms_charges_once_and_commits_the_stock() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;
    sys.stock("GADGET", 5).await?;

    let order = sys.order("alice", &[("p-widget", 3), ("p-gadget", 2)]).await??;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.payment_status, "SUCCEEDED");
    assert_eq!(order.total_amount_minor, 3 * 250 + 2 * 1999);
    assert_eq!(order.currency, "EUR");
    assert_eq!(order.user_id, "alice");
    let lines: Vec<(&str, &str, i32, i64)> = order
        .items
        .iter()
        .map(|i| (i.product_id.as_str(), i.sku.as_str(), i.quantity, i.unit_price_minor))
        .collect();
    assert_eq!(lines, [("p-widget", "WIDGET", 3, 250), ("p-gadget", "GADGET", 2, 1999)]);
    assert!(order.created_at.is_some() && order.updated_at.is_some());

    let hold = sys.reservation(&order.inventory_reservation_id).await?;
    assert_eq!(hold.status, "COMMITTED");
    assert_eq!(
        (hold.reference_type.as_str(), hold.reference_id.as_str()),
        ("ORDER", order.id.as_str())
    );
    let widget = sys.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (7, 0));
    let gadget = sys.item("GADGET").await?;
    assert_eq!((gadget.on_hand, gadget.reserved), (3, 0));

    let charges = sys.ledger.charges_for_order(&order.id);
    assert_eq!(charges.len(), 1);
    assert!(charges[0].succeeded());
    assert_eq!(charges[0].amount_minor, order.total_amount_minor);
    assert_eq!(charges[0].idempotency_key, format!("order:{}:charge", order.id));

    assert_eq!(sys.get(&order.id).await?, order, "GetOrder shows what CreateOrder answered");
    let row = sys.saga_row(&order.id).await?;
    assert_eq!(row.next_action, None);
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn variant_orders_use_the_variant_sku_and_price() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("SHIRT-RED-M", 4).await?;
    sys.stock("SHIRT", 4).await?;
    let mut req = order_request("bob", &[("p-shirt", 2), ("p-shirt", 1)]);
    req.items[0].variant_id = Some("red-m".to_owned());

    let order = sys.create(req).await??;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(order.items[0].sku, "SHIRT-RED-M");
    assert_eq!(order.items[0].variant_id.as_deref(), Some("red-m"));
    assert_eq!(order.items[0].unit_price_minor, 1750);
    assert_eq!(order.items[1].sku, "SHIRT");
    assert_eq!(order.items[1].variant_id, None);
    assert_eq!(order.total_amount_minor, 2 * 1750 + 1500);
    assert_eq!(sys.item("SHIRT-RED-M").await?.on_hand, 2);
    assert_eq!(sys.item("SHIRT").await?.on_hand, 3);
    Ok(())
}

#[tokio::test]
async fn lines_of_one_sku_are_held_together() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    let order = sys.order("carol", &[("p-widget", 3), ("p-widget", 2)]).await??;
    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(sys.item("WIDGET").await?.on_hand, 0);

    // Each line alone fits the 1 left after a refill, together they do not.
    sys.stock("WIDGET", 3).await?;
    let status = sys.order("carol", &[("p-widget", 2), ("p-widget", 2)]).await?.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    Ok(())
}

#[tokio::test]
async fn orders_are_listed_newest_first_in_pages() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 100).await?;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(sys.order("dave", &[("p-widget", 1)]).await??.id);
    }
    sys.order("erin", &[("p-widget", 1)]).await??;

    let mut client = sys.client()?;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_orders(pb::ListOrdersRequest {
                user_id: "dave".into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    placed.reverse();
    assert_eq!(seen, placed, "newest first, every order once");

    let all = client
        .list_orders(pb::ListOrdersRequest { user_id: "dave".into(), ..Default::default() })
        .await?
        .into_inner();
    assert_eq!(all.orders.len(), 5);
    assert!(all.next_page_token.is_empty());
    let none = client
        .list_orders(pb::ListOrdersRequest { user_id: "nobody".into(), ..Default::default() })
        .await?
        .into_inner();
    assert!(none.orders.is_empty());
    let ids: HashSet<_> = seen.iter().collect();
    assert_eq!(ids.len(), 5);
    Ok(())
}

#[tokio::test]
async fn metrics_count_inventory_calls_saga_steps_and_orders() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 1).await?;
    sys.order("frank", &[("p-widget", 1)]).await??;
    let _ = sys.order("frank", &[("p-widget", 1)]).await?;

    let page = sys.orders[0].metrics_text().await?;
    for (series, at_least) in [
        // No availability check before the order: the second order's reserve is refused.
        (r#"order_inventory_calls_total{call="reserve",outcome="refused"}"#, 1.0),
        (r#"order_inventory_calls_total{call="reserve",outcome="ok"}"#, 1.0),
        (r#"order_saga_steps_total{action="reserve",outcome="short"}"#, 1.0),
        (r#"order_inventory_calls_total{call="commit",outcome="ok"}"#, 1.0),
        (r#"order_inventory_call_duration_seconds_count{call="reserve"}"#, 1.0),
        (r#"order_saga_steps_total{action="pay",outcome="ok"}"#, 1.0),
        (r#"orders_created_total{status="CONFIRMED"}"#, 1.0),
        (
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="CreateOrder",grpc_service="order.v1.OrderService",grpc_type="unary"}"#,
            1.0,
        ),
    ] {
        assert!(metric_value(&page, series) >= at_least, "{series} in:\n{page}");
    }
    for series in [
        "order_saga_backlog",
        "order_saga_oldest_pending_seconds",
        r#"orders_created_total{status="REJECTED"}"#,
    ] {
        assert!(page.lines().any(|l| l.starts_with(series)), "{series} missing:\n{page}");
    }
    Ok(())
}

#[tokio::test]
async fn a_happy_order_is_written_twice_and_answered_as_stored() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 10).await?;

    let order = sys.order("alice", &[("p-widget", 2)]).await??;

    // Its intent before the first call, its end after the last: every guarded write bumps
    // the version, which starts at 1.
    let id = uuid::Uuid::parse_str(&order.id)?;
    let version: i64 = sqlx::query_scalar("select version from orders.orders where id = $1")
        .bind(id)
        .fetch_one(&sys.db.pool)
        .await?;
    assert_eq!(version, 2, "written twice");
    let steps = sys.saga_steps(&order.id).await?;
    let steps: Vec<(&str, &str)> = steps.iter().map(|(a, o)| (a.as_str(), o.as_str())).collect();
    assert_eq!(steps, [("create", "accepted"), ("reserve", "ok"), ("pay", "ok"), ("commit", "ok")]);
    // The answer is built from what the request wrote, without reading it back: it must be
    // what a read returns.
    assert_eq!(order, sys.get(&order.id).await?);
    Ok(())
}

#[tokio::test]
async fn an_order_records_the_units_sold_on_backorder_and_their_restock_date() -> anyhow::Result<()>
{
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 1).await?;
    sys.stock("GADGET", 5).await?;
    let policy = proto::inventory::v1::SetStockPolicyRequest {
        sku: "WIDGET".into(),
        backorder_limit: Some(10),
        expected_restock_date: Some("2027-03-01".into()),
        reason: "pre-order the spring delivery".into(),
        ..Default::default()
    };
    sys.inventory()?.client.clone().set_stock_policy(policy).await?;

    // 1 WIDGET in stock, 2 on backorder; the GADGETs are all in stock.
    let order = sys.order("bo", &[("p-widget", 3), ("p-gadget", 1)]).await??;
    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    let expected = vec![pb::BackorderedItem {
        sku: "WIDGET".into(),
        quantity: 2,
        expected_restock_date: "2027-03-01".into(),
    }];
    assert_eq!(order.backordered, expected, "the CreateOrder answer");
    assert_eq!(sys.get(&order.id).await?.backordered, expected, "GetOrder");
    let widget = sys.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (-2, 0));

    // In stock only: nothing recorded.
    let plain = sys.order("plain", &[("p-gadget", 1)]).await??;
    assert!(plain.backordered.is_empty() && sys.get(&plain.id).await?.backordered.is_empty());
    Ok(())
}
