//! MAX_CONCURRENT_REQUESTS: calls beyond it are refused at once with RESOURCE_EXHAUSTED,
//! never queued; health and reflection stay exempt.

use std::time::{Duration, Instant};

use system_tests::{TestDb, TestInventory, metric_value, reserve_request, test_settings};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::FAST;

#[tokio::test]
async fn calls_beyond_the_limit_get_resource_exhausted_while_health_serves() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.overload.max_concurrent_requests = 2;
    // Unbatched, so both held calls wait in the database, where the test can see them.
    settings.reserve_batching = false;
    let inv = TestInventory::start_with(db.clone(), settings).await?;
    inv.stock("HOT", 10).await?;
    let before = inv.metrics_text().await?;

    // Two reservations wait on the row lock the test holds: both permits are taken.
    let lock = db.lock_stock("HOT").await?;
    let mut held = Vec::new();
    for reference in ["held-1", "held-2"] {
        let mut client = inv.new_client()?;
        held.push(tokio::spawn(async move {
            client.reserve_inventory(reserve_request(reference, &[("HOT", 1)])).await
        }));
    }

    // Once both wait in the database (both permits taken), a third call is refused at once.
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await?;
        if waiting >= 2 {
            break;
        }
        anyhow::ensure!(Instant::now() < give_up, "the held calls never reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = inv.new_client()?;
    let started = Instant::now();
    let refused = client
        .get_inventory_item(proto::inventory::v1::GetInventoryItemRequest { sku: "HOT".into() })
        .await
        .map(|_| ())
        .map_err(|status| (status, started.elapsed()));
    let Err(refused) = refused else { anyhow::bail!("a third call was admitted") };
    let (status, took) = refused;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(took < FAST, "refused after {took:?}");
    assert!(status.message().contains("overloaded"), "{status:?}");
    assert!(status.message().contains("retry"), "{status:?}");

    // Probes are exempt: health answers SERVING while every permit is taken.
    let mut health = HealthClient::new(system_tests::channel(inv.addr).await?);
    let started = Instant::now();
    let serving = health
        .check(HealthCheckRequest { service: inventory_service::app::SERVICE_NAME.into() })
        .await?
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);
    assert!(started.elapsed() < FAST);

    // The shed call is counted, and shows up with its code in the per-method metrics.
    let after = inv.metrics_text().await?;
    let shed = r#"grpc_server_overload_shed_total{reason="concurrency"}"#;
    assert!(metric_value(&after, shed) > metric_value(&before, shed), "{after}");
    let code = r#"grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="GetInventoryItem",grpc_service="inventory.v1.InventoryService",grpc_type="unary"}"#;
    assert!(metric_value(&after, code) >= 1.0, "{after}");
    assert!(metric_value(&after, "grpc_server_in_flight_requests") >= 2.0, "{after}");

    // The held calls were not hurt by the shedding: they finish once the lock goes.
    lock.rollback().await?;
    for call in held {
        let reply = call.await??.into_inner();
        assert!(reply.success, "{reply:?}");
    }
    assert_eq!(inv.item("HOT").await?.reserved, 2);
    Ok(())
}
