//! What operators rely on: health, reflection, metrics, outages and graceful shutdown.

use std::time::Duration;

use system_tests::{TestDb, TestInventory, metric_value, reserve_request, test_settings};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_reports_serving_once_migrated() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut health = HealthClient::new(system_tests::channel(inv.addr).await?);
    for service in ["", "inventory.v1.InventoryService"] {
        let resp = health.check(HealthCheckRequest { service: service.into() }).await?.into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let applied: i64 = sqlx::query_scalar("select count(*) from inventory._sqlx_migrations")
        .fetch_one(&inv.db.pool)
        .await?;
    assert!(applied >= 1, "the migration history lives in the inventory schema");
    Ok(())
}

#[tokio::test]
async fn database_down_is_unavailable_and_not_serving() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    // Nothing listens on port 1: the server starts, but its database never answers.
    let mut settings = test_settings("postgres://postgres@127.0.0.1:1/nothing");
    settings.database.db_acquire_timeout_ms = 300;
    let inv = TestInventory::spawn(db, settings).await?;

    let started = std::time::Instant::now();
    let err = inv.client.clone().reserve_inventory(reserve_request("o", &[("A", 1)])).await.err();
    assert_eq!(err.map(|s| s.code()), Some(tonic::Code::Unavailable));
    assert!(started.elapsed() < Duration::from_secs(10), "answered in {:?}", started.elapsed());

    let mut health = HealthClient::new(system_tests::channel(inv.addr).await?);
    let resp = health
        .check(HealthCheckRequest { service: "inventory.v1.InventoryService".into() })
        .await?
        .into_inner();
    assert_eq!(resp.status, ServingStatus::NotServing as i32);
    Ok(())
}

#[tokio::test]
async fn reflection_lists_the_contract() -> anyhow::Result<()> {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let inv = TestInventory::start().await?;
    let mut client = ServerReflectionClient::new(system_tests::channel(inv.addr).await?);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([req])).await?.into_inner();
    let Some(resp) = stream.next().await.transpose()? else {
        anyhow::bail!("no reflection answer")
    };
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        anyhow::bail!("unexpected reflection answer")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"inventory.v1.InventoryService".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
    Ok(())
}

/// What grpcurl does: fetch the file declaring the service by symbol and read its methods.
#[tokio::test]
async fn reflection_serves_every_rpc_by_symbol() -> anyhow::Result<()> {
    use prost::Message;
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let inv = TestInventory::start().await?;
    let mut client = ServerReflectionClient::new(system_tests::channel(inv.addr).await?);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "inventory.v1.InventoryService".into(),
        )),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([req])).await?.into_inner();
    let Some(resp) = stream.next().await.transpose()? else {
        anyhow::bail!("no reflection answer")
    };
    let Some(MessageResponse::FileDescriptorResponse(files)) = resp.message_response else {
        anyhow::bail!("unexpected reflection answer")
    };
    let mut methods = Vec::new();
    for bytes in files.file_descriptor_proto {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())?;
        for service in file.service.iter().filter(|s| s.name() == "InventoryService") {
            methods.extend(service.method.iter().map(|m| m.name().to_owned()));
        }
    }
    methods.sort();
    assert_eq!(
        methods,
        [
            "AdjustStock",
            "CancelReservation",
            "CheckInventoryAvailability",
            "CommitReservation",
            "GetInventoryItem",
            "GetReservation",
            "ListInventoryItems",
            "ListLowStock",
            "ReserveInventory",
            "ReturnStock",
            "SetStockPolicy",
            "UpsertInventoryItem",
            "VerifyLedger",
            "WatchEvents",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn metrics_count_rpcs_and_outcomes() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 1).await?;
    let page = inv.metrics_text().await?;
    let ok = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="ReserveInventory",grpc_service="inventory.v1.InventoryService",grpc_type="unary"}"#;
    let invalid = r#"grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="ReserveInventory",grpc_service="inventory.v1.InventoryService",grpc_type="unary"}"#;
    let reserved = r#"inventory_reservations_total{outcome="reserved"}"#;
    let short = r#"inventory_reservations_total{outcome="insufficient"}"#;
    let (ok0, invalid0, reserved0, short0) = (
        metric_value(&page, ok),
        metric_value(&page, invalid),
        metric_value(&page, reserved),
        metric_value(&page, short),
    );

    assert!(inv.reserve("o-1", &[("A", 1)]).await?.success);
    assert!(!inv.reserve("o-2", &[("A", 1)]).await?.success);
    let _ = inv.client.clone().reserve_inventory(reserve_request("o-3", &[])).await;

    // Counters are process-wide and other tests run beside this one: assert growth.
    let page = inv.metrics_text().await?;
    assert!(metric_value(&page, ok) >= ok0 + 2.0);
    assert!(metric_value(&page, invalid) > invalid0);
    assert!(metric_value(&page, reserved) > reserved0);
    assert!(metric_value(&page, short) > short0);
    assert!(page.contains("grpc_server_handling_seconds_bucket"));
    assert!(page.contains("inventory_check_duration_seconds"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_calls_in_flight() -> anyhow::Result<()> {
    let mut inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;

    // Hold the stock row's lock so the next reserve waits inside the server.
    let mut blocker = inv.db.pool.begin().await?;
    sqlx::query("select 1 from inventory.stock_levels for update").execute(&mut *blocker).await?;
    let mut client = inv.client.clone();
    let in_flight =
        tokio::spawn(
            async move { client.reserve_inventory(reserve_request("o-1", &[("A", 2)])).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let server = inv.begin_stop().ok_or_else(|| anyhow::anyhow!("server already stopped"))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!server.is_finished(), "the server waits for the call in flight");
    blocker.rollback().await?;

    let resp = in_flight.await??.into_inner();
    assert!(resp.success, "{}", resp.message);
    tokio::time::timeout(Duration::from_secs(10), server).await???;
    let reserved: i32 = sqlx::query_scalar("select reserved from inventory.stock_levels")
        .fetch_one(&inv.db.pool)
        .await?;
    assert_eq!(reserved, 2);
    Ok(())
}

/// `shopctl stock set SKU N` changes the count only: the item's product and variant stay (the
/// upsert would replace them), and a new item's product is its SKU.
#[tokio::test]
async fn shopctl_stock_set_keeps_the_item_s_product_and_variant() -> anyhow::Result<()> {
    use clap::Parser;
    let inv = TestInventory::start().await?;
    let mut client = inv.new_client()?;
    client
        .upsert_inventory_item(proto::inventory::v1::UpsertInventoryItemRequest {
            sku: "MUG-BLUE".into(),
            product_id: "prod-mug".into(),
            variant_id: Some("blue".into()),
            warehouse_id: String::new(),
            on_hand: 3,
        })
        .await?;
    let url = format!("http://{}", inv.addr);
    let set = |sku: &str, count: &str| {
        shopctl::cli::Cli::try_parse_from([
            "shopctl",
            "--inventory-url",
            &url,
            "stock",
            "set",
            sku,
            count,
        ])
    };
    shopctl::run(set("MUG-BLUE", "7")?).await.map_err(|e| anyhow::anyhow!(e.report()))?;
    let mug = inv.item("MUG-BLUE").await?;
    assert_eq!(
        (mug.product_id.as_str(), mug.variant_id.as_deref(), mug.on_hand),
        ("prod-mug", Some("blue"), 7)
    );
    shopctl::run(set("NEW-SKU", "2")?).await.map_err(|e| anyhow::anyhow!(e.report()))?;
    let new = inv.item("NEW-SKU").await?;
    assert_eq!(
        (new.product_id.as_str(), new.variant_id.as_deref(), new.on_hand),
        ("NEW-SKU", None, 2)
    );
    Ok(())
}

#[tokio::test]
async fn shopctl_stock_policy_sets_a_row_s_policy_and_stock_low_lists_low_rows()
-> anyhow::Result<()> {
    use clap::Parser;
    let inv = TestInventory::start().await?;
    inv.stock("MUG", 10).await?;
    inv.stock_in("MUG", "east", 1).await?;
    let url = format!("http://{}", inv.addr);
    let cli = |args: &[&str]| {
        let mut all = vec!["shopctl", "--inventory-url", url.as_str(), "stock"];
        all.extend_from_slice(args);
        shopctl::cli::Cli::try_parse_from(all)
    };
    let run = |cli: shopctl::cli::Cli| async move {
        shopctl::run(cli).await.map_err(|e| anyhow::anyhow!(e.report()))
    };
    // One value at a time: the other keeps its value.
    run(cli(&["policy", "MUG", "--low-stock-threshold", "12", "--reason", "watch"])?).await?;
    run(cli(&["policy", "MUG", "--safety-stock", "3", "--reason", "shop floor"])?).await?;
    let level = &inv.item("MUG").await?.levels[0];
    assert_eq!(
        (level.warehouse_id.as_str(), level.safety_stock, level.low_stock_threshold),
        ("default", 3, 12)
    );
    assert_eq!((level.available, level.low_stock), (7, true));
    run(cli(&[
        "policy",
        "MUG",
        "--warehouse",
        "east",
        "--low-stock-threshold",
        "5",
        "--reason",
        "x",
    ])?)
    .await?;
    // Neither value: refused before any call; a row that does not exist: NOT_FOUND, exit 2.
    assert!(cli(&["policy", "MUG", "--reason", "x"]).is_err());
    let missing = shopctl::run(cli(&[
        "policy",
        "MUG",
        "--warehouse",
        "nowhere",
        "--safety-stock",
        "1",
        "--reason",
        "x",
    ])?)
    .await
    .expect_err("no such row");
    assert_eq!(missing.exit_code(), 2);
    // Two low rows, one per page: the command follows the pages (its output goes to stdout).
    run(cli(&["low", "--page-size", "1"])?).await?;
    run(cli(&["low", "--warehouse", "east", "--json"])?).await?;
    let low: i64 = sqlx::query_scalar(
        "select count(*) from inventory.stock_levels
          where low_stock_threshold > 0 and on_hand - reserved - safety_stock < low_stock_threshold",
    )
    .fetch_one(&inv.db.pool)
    .await?;
    assert_eq!(low, 2);
    Ok(())
}
