//! The real `order-service` binary killed with SIGKILL while a payment is in flight, then
//! started again: the order reaches a terminal state, charged once, and stock matches it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proto::order::v1::{GetOrderRequest, order_service_client::OrderServiceClient};
use system_tests::chaos::procs::target_binary;
use system_tests::{SystemOptions, TestSystem, order_request, return_request};
use test_support::binary::free_port;

/// A server process killed when dropped, so a test that fails early leaves none behind.
struct Spawned(Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on `port` against the system's database and peers.
fn spawn_order_server(sys: &TestSystem, port: u16) -> anyhow::Result<Spawned> {
    let s = &sys.order_settings;
    Ok(Spawned(
        Command::new(target_binary("order-service")?)
            .env("DATABASE_URL", &sys.db.url)
            .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()?))
            .env("INVENTORY_SERVICE_URL", &s.inventory_service_url)
            .env("PRODUCT_SERVICE_URL", &s.product_service_url)
            .env("PAYMENT_SERVICE_URL", &s.payment_service_url)
            // The lease must outlast one step (PEER_TIMEOUT_MS x (PEER_RETRIES + 1) + backoff, or
            // the server refuses to start) and lapse soon after a kill: one 4 s attempt per step.
            .env("SAGA_LEASE_MS", "4500")
            .env("RECOVERY_INTERVAL_MS", "100")
            .env("RETRY_BACKOFF_MAX_MS", "300")
            .env("PEER_TIMEOUT_MS", "4000")
            .env("PEER_RETRIES", "0")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ))
}

/// Waits until the server on `port` has migrated its schema and reports SERVING.
async fn wait_serving(port: u16) -> anyhow::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    system_tests::wait_serving(addr, order_service::app::SERVICE_NAME, Duration::from_secs(30))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_payment_then_restart_confirms_once() -> anyhow::Result<()> {
    let sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.stock("WIDGET", 5).await?;
    // Slow enough that the kill lands while the charge call is in flight.
    sys.payment_faults.set_latency_ms(3_000);

    let port = free_port()?;
    let mut first = spawn_order_server(&sys, port)?;
    wait_serving(port).await?;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy();
    let mut client = proto::order::v1::order_service_client::OrderServiceClient::new(channel);
    let in_flight = tokio::spawn(async move {
        let mut req = order_request("kim", &[("p-widget", 2)]);
        req.idempotency_key = "kill-1".into();
        client.create_order(req).await
    });

    let id = sys.wait_order_of("kim").await?;
    sys.wait_payment_calls(1).await?;
    first.kill()?; // SIGKILL: no shutdown hooks, no lease given back
    let _ = first.wait();
    assert!(in_flight.await?.is_err(), "the caller saw its server die");
    assert_eq!(sys.item("WIDGET").await?.reserved, 2, "the hold outlived the server");

    sys.payment_faults.set_latency_ms(0);
    let port = free_port()?;
    let mut second = spawn_order_server(&sys, port)?;
    let settled = async {
        sys.wait_row(&id, "settled", |row| row.next_action.is_none()).await?;
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))?;
        let mut client = OrderServiceClient::new(channel.connect_lazy());
        let req = GetOrderRequest { order_id: id.clone() };
        Ok::<_, anyhow::Error>(client.get_order(req).await?.into_inner())
    }
    .await;
    let _ = second.kill();
    let _ = second.wait();
    let order = settled?;

    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(sys.ledger.succeeded_count_for_order(&id), 1, "charged exactly once");
    assert_eq!(sys.reservation(&order.inventory_reservation_id).await?.status, "COMMITTED");
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (3, 0), "stock matches the one confirmed order");
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_the_refund_of_a_return_then_restart_refunds_once() -> anyhow::Result<()> {
    let sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    sys.stock("WIDGET", 5).await?;
    let port = free_port()?;
    let mut first = spawn_order_server(&sys, port)?;
    wait_serving(port).await?;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy();
    let mut client = OrderServiceClient::new(channel);
    let order = client.create_order(order_request("lu", &[("p-widget", 3)])).await?.into_inner();
    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    let charges = sys.payment_faults.calls();

    // Slow enough that the kill lands while the refund call is in flight.
    sys.payment_faults.set_latency_ms(3_000);
    let in_flight = tokio::spawn(async move {
        client.return_order(return_request(&order.id, "kill-return", &[("WIDGET", 2, false)])).await
    });
    sys.wait_payment_calls(charges + 1).await?;
    first.kill()?; // SIGKILL: no shutdown hooks, no lease given back
    let _ = first.wait();
    assert!(in_flight.await?.is_err(), "the caller saw its server die");
    let id: uuid::Uuid =
        sqlx::query_scalar("select id from orders.order_returns").fetch_one(&sys.db.pool).await?;
    let id = id.to_string();

    sys.payment_faults.set_latency_ms(0);
    let mut second = spawn_order_server(&sys, free_port()?)?;
    let completed = sys.wait_return_status(&id, "COMPLETED").await;
    let _ = second.kill();
    let _ = second.wait();
    completed?;

    let refunds = sys.refunds_of_return(&id);
    assert_eq!(refunds.len(), 1, "refunded exactly once: {refunds:?}");
    assert_eq!(refunds[0].1, 500);
    let item = sys.item("WIDGET").await?;
    assert_eq!((item.on_hand, item.reserved), (4, 0), "5 - 3 sold + 2 back, once");
    assert!(sys.inventory()?.ledger_violations().await?.is_empty());
    Ok(())
}
