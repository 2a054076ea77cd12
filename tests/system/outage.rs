//! PostgreSQL goes away under running servers (fast shutdown, or SIGKILL): calls that need the
//! database answer UNAVAILABLE quickly, health says NOT_SERVING; when it comes back the same
//! server processes report SERVING again and a whole order confirms, with no restart.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use dev_standins::{PaymentApp, PaymentSettings, ProductApp, ProductSettings};
use proto::inventory::v1 as inv;
use proto::order::v1 as pb;
use system_tests::cluster::Cluster;
use system_tests::invariants::{self, Baseline};
use system_tests::{
    TestInventory, TestOrderServer, order_request, order_settings, test_catalog, test_settings,
};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Each call that needs the database must fail within this.
const FAST: Duration = Duration::from_secs(5);
/// The servers' own pool acquire timeout in this test.
const ACQUIRE_MS: u64 = 500;

async fn health(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = system_tests::channel(addr).await.ok()?;
    let req = HealthCheckRequest { service: service.to_owned() };
    let mut call = tonic::Request::new(req);
    call.set_timeout(Duration::from_secs(2));
    let status = HealthClient::new(channel).check(call).await.ok()?.into_inner().status;
    ServingStatus::try_from(status).ok()
}

/// Waits until `service` (and the server as a whole, `""`) report `want`; how long it took.
async fn wait_health(
    addr: SocketAddr,
    service: &str,
    want: ServingStatus,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if health(addr, service).await == Some(want) && health(addr, "").await == Some(want) {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "{service} at {addr} not {want:?} within {within:?} (now {:?})",
            health(addr, service).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `call`, which must fail UNAVAILABLE within [`FAST`].
async fn expect_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Duration {
    let started = Instant::now();
    let result = tokio::time::timeout(FAST * 2, call).await;
    let took = started.elapsed();
    match result {
        Ok(Err(status)) => {
            assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
            assert!(!status.message().contains("postgres"), "{what} leaks internals: {status:?}");
        }
        Ok(Ok(reply)) => panic!("{what} succeeded with the database down: {reply:?}"),
        Err(_) => panic!("{what} did not answer within {:?}", FAST * 2),
    }
    assert!(took < FAST, "{what} took {took:?} to answer UNAVAILABLE");
    took
}

/// A task that runs until its sender is dropped or fired.
fn spawn_until<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> oneshot::Sender<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run(stopped));
    stop
}

async fn outage(crash: bool) -> anyhow::Result<()> {
    common::telemetry::init_for_tests();
    let cluster = Cluster::create().await?;
    let db = cluster.create_database().await?;

    let mut inventory_settings = test_settings(&db.url);
    inventory_settings.database.db_acquire_timeout_ms = ACQUIRE_MS;
    inventory_settings.database.db_max_connections = 5;
    let inventory = TestInventory::start_with(db.clone(), inventory_settings).await?;

    let product =
        ProductApp::build_with_catalog(ProductSettings::loopback(), test_catalog()?).await?;
    let product_addr = product.grpc_addr()?;
    let _product = spawn_until(|stopped| {
        product.run_until(async move {
            let _ = stopped.await;
        })
    });
    let payment = PaymentApp::build(PaymentSettings::loopback()).await?;
    let payment_addr = payment.grpc_addr()?;
    let ledger = payment.ledger();
    let _payment = spawn_until(|stopped| {
        payment.run_until(async move {
            let _ = stopped.await;
        })
    });
    let mut settings = order_settings(&db.url, inventory.addr, product_addr, payment_addr, None);
    settings.database.db_acquire_timeout_ms = ACQUIRE_MS;
    settings.database.db_max_connections = 5;
    settings.peer_timeout_ms = 1_000;
    settings.peer_retries = 1;
    settings.create_order_budget_ms = 4_000;
    let order = TestOrderServer::start(settings).await?;
    let (inv_service, order_service) =
        (inventory_service::app::SERVICE_NAME, order_service::app::SERVICE_NAME);

    inventory.stock("WIDGET", 10).await?;
    let baseline = Baseline::capture(&db.pool).await?;
    let mut orders = order.client.clone();
    let mut stock = inventory.new_client()?;
    let before = orders.create_order(order_request("ana", &[("p-widget", 1)])).await?.into_inner();
    assert_eq!(before.status, "CONFIRMED", "{before:?}");

    // --- PostgreSQL goes away -------------------------------------------------------------
    if crash {
        cluster.kill().await?
    } else {
        cluster.stop().await?
    }
    let inv_down =
        wait_health(inventory.addr, inv_service, ServingStatus::NotServing, FAST * 2).await?;
    let order_down =
        wait_health(order.addr, order_service, ServingStatus::NotServing, FAST * 2).await?;
    println!("NOT_SERVING after: inventory {inv_down:?}, order {order_down:?}");
    // Liveness does not follow the database: an orchestrator restarts no server for it.
    for addr in [inventory.addr, order.addr] {
        assert_eq!(health(addr, common::server::LIVENESS).await, Some(ServingStatus::Serving));
    }

    let mut took = Vec::new();
    let item = inv::GetInventoryItemRequest { sku: "WIDGET".into() };
    took.push(expect_unavailable("GetInventoryItem", stock.get_inventory_item(item)).await);
    let check = inv::CheckInventoryAvailabilityRequest {
        items: vec![inv::AvailabilityCheckItem {
            product_id: "p-widget".into(),
            variant_id: None,
            sku: "WIDGET".into(),
            quantity: 1,
        }],
    };
    took.push(
        expect_unavailable("CheckInventoryAvailability", stock.check_inventory_availability(check))
            .await,
    );
    let reserve = system_tests::reserve_request("outage-1", &[("WIDGET", 1)]);
    took.push(expect_unavailable("ReserveInventory", stock.reserve_inventory(reserve)).await);
    let hold = inv::GetReservationRequest::by_id(before.inventory_reservation_id.clone());
    took.push(expect_unavailable("GetReservation", stock.get_reservation(hold)).await);
    let adjust = inv::AdjustStockRequest {
        sku: "WIDGET".into(),
        warehouse_id: String::new(),
        delta: 1,
        reason: "outage".into(),
        idempotency_key: "outage-adjust".into(),
    };
    took.push(expect_unavailable("AdjustStock", stock.adjust_stock(adjust)).await);

    let get = pb::GetOrderRequest { order_id: before.id.clone() };
    took.push(expect_unavailable("GetOrder", orders.get_order(get)).await);
    let list =
        pb::ListOrdersRequest { user_id: "ana".into(), page_size: 0, page_token: String::new() };
    took.push(expect_unavailable("ListOrders", orders.list_orders(list)).await);
    let mut keyed = order_request("bob", &[("p-widget", 1)]);
    keyed.idempotency_key = "outage-key".into();
    took.push(expect_unavailable("CreateOrder (keyed)", orders.create_order(keyed)).await);
    let unkeyed = order_request("cy", &[("p-widget", 1)]);
    took.push(expect_unavailable("CreateOrder", orders.create_order(unkeyed)).await);
    let cancel = pb::CancelOrderRequest { order_id: before.id.clone(), reason: "outage".into() };
    took.push(expect_unavailable("CancelOrder", orders.cancel_order(cancel)).await);
    println!("UNAVAILABLE answers took {took:?}");

    // --- PostgreSQL is back; the same processes must recover by themselves ----------------
    cluster.start().await?;
    let inv_up =
        wait_health(inventory.addr, inv_service, ServingStatus::Serving, Duration::from_secs(20))
            .await?;
    let order_up =
        wait_health(order.addr, order_service, ServingStatus::Serving, Duration::from_secs(20))
            .await?;
    println!("SERVING again after: inventory {inv_up:?}, order {order_up:?}");

    let after = orders.create_order(order_request("dee", &[("p-widget", 2)])).await?.into_inner();
    assert_eq!(after.status, "CONFIRMED", "{after:?}");
    let item = inventory.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (7, 0), "two confirmed orders, nothing else");
    // No order was written during the outage, and every invariant holds.
    let count: i64 =
        sqlx::query_scalar("select count(*) from orders.orders").fetch_one(&db.pool).await?;
    assert_eq!(count, 2);
    let violations =
        invariants::check(&db.pool, &baseline, &ledger, Duration::from_millis(100)).await?;
    assert!(violations.is_empty(), "{}", invariants::report(&violations));

    order.stop().await?;
    inventory.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_then_started_servers_recover_by_themselves() -> anyhow::Result<()> {
    outage(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_killed_then_started_servers_recover_by_themselves() -> anyhow::Result<()> {
    outage(true).await
}
