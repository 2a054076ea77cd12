//! Every malformed request is INVALID_ARGUMENT with a BadRequest violation naming its field.

use proto::order::v1 as pb;
use system_tests::{TestSystem, assert_invalid, order_request};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn create_requests_name_the_offending_field() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    let ok = || order_request("alice", &[("p-widget", 1)]);

    let mut req = ok();
    req.user_id.clear();
    assert_invalid(sys.create(req).await?, "user_id");
    let mut req = ok();
    req.user_id = "u".repeat(129);
    assert_invalid(sys.create(req).await?, "user_id");

    assert_invalid(sys.create(order_request("alice", &[])).await?, "items");
    let many: Vec<(&str, i32)> = (0..101).map(|_| ("p-widget", 1)).collect();
    assert_invalid(sys.create(order_request("alice", &many)).await?, "items");

    assert_invalid(
        sys.create(order_request("alice", &[("p-widget", 1), ("p-widget", 0)])).await?,
        "items[1].quantity",
    );
    assert_invalid(
        sys.create(order_request("alice", &[("p-widget", -3)])).await?,
        "items[0].quantity",
    );
    assert_invalid(sys.create(order_request("alice", &[("", 1)])).await?, "items[0].product_id");
    let mut req = ok();
    req.items[0].variant_id = Some(String::new());
    assert_invalid(sys.create(req).await?, "items[0].variant_id");

    for currency in ["", "EURO", "XYZ", "12"] {
        let mut req = ok();
        req.currency = currency.into();
        assert_invalid(sys.create(req).await?, "currency");
    }
    let mut req = ok();
    req.payment_method.clear();
    assert_invalid(sys.create(req).await?, "payment_method");
    let mut req = ok();
    req.idempotency_key = "k".repeat(129);
    assert_invalid(sys.create(req).await?, "idempotency_key");

    assert_eq!(sys.order_count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn every_violation_is_reported_at_once() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    let req = pb::CreateOrderRequest {
        user_id: String::new(),
        items: vec![pb::OrderItemInput {
            product_id: String::new(),
            variant_id: None,
            quantity: 0,
        }],
        currency: "??".into(),
        payment_method: String::new(),
        idempotency_key: String::new(),
    };
    let status = sys.create(req).await?.unwrap_err();
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    for field in
        ["user_id", "items[0].product_id", "items[0].quantity", "currency", "payment_method"]
    {
        assert!(fields.iter().any(|f| f == field), "{fields:?} lacks {field}");
    }
    Ok(())
}

#[tokio::test]
async fn get_list_and_cancel_requests_name_the_offending_field() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    let mut c = sys.client()?;
    for id in ["", "not-a-uuid"] {
        assert_invalid(c.get_order(pb::GetOrderRequest { order_id: id.into() }).await, "order_id");
        assert_invalid(
            c.cancel_order(pb::CancelOrderRequest { order_id: id.into(), reason: String::new() })
                .await,
            "order_id",
        );
    }
    let list = |user: &str, page_size, token: &str| pb::ListOrdersRequest {
        user_id: user.into(),
        page_size,
        page_token: token.into(),
    };
    assert_invalid(c.list_orders(list("", 0, "")).await, "user_id");
    assert_invalid(c.list_orders(list("u", -1, "")).await, "page_size");
    assert_invalid(c.list_orders(list("u", 101, "")).await, "page_size");
    assert_invalid(c.list_orders(list("u", 0, "garbage!")).await, "page_token");

    let missing = uuid::Uuid::now_v7().to_string();
    let status = c.get_order(pb::GetOrderRequest { order_id: missing.clone() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = c
        .cancel_order(pb::CancelOrderRequest { order_id: missing, reason: String::new() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    Ok(())
}

/// A server built in code checks its settings as the binary does: a lease one saga step can
/// outlive is refused at start.
#[tokio::test]
async fn a_lease_shorter_than_a_saga_step_is_refused_at_build() -> anyhow::Result<()> {
    let mut sys = system_tests::TestSystem::start_with(system_tests::SystemOptions {
        order_servers: 0,
        ..Default::default()
    })
    .await?;
    sys.order_settings.saga_lease_ms = 1_000;
    let refused = sys.start_order_server().await.expect_err("the lease is too short");
    assert!(refused.to_string().contains("SAGA_LEASE_MS"), "{refused}");
    Ok(())
}
