//! The whole system on loopback for order tests: one database, the real inventory and order
//! servers, and the development stand-ins for the product, payment (and user) services.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::host::ShutdownSettings;
use common::overload::OverloadSettings;
use common::settings::{DatabaseSettings, LogSettings};
use common::telemetry::LogFormat;
use dev_standins::{
    Catalog, Faults, Ledger, PaymentApp, PaymentSettings, Product, ProductApp, ProductSettings,
    UserApp, UserSettings, Variant,
};
use order_service::{App, Settings};
use proto::inventory::v1 as inv;
use proto::order::v1 as pb;
use security::tls::ClientTls;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{TestDb, TestInventory};

/// The generated order client over a loopback channel.
pub type OrderClient = pb::order_service_client::OrderServiceClient<Channel>;

/// How long helpers wait for an order to reach a state before failing the test.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// A server task that stops when told (or when dropped).
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn spawn<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Self { stop: Some(stop), task: Some(tokio::spawn(run(stopped))) }
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One running order server.
pub struct TestOrderServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub client: OrderClient,
    running: Running,
}

impl TestOrderServer {
    /// Starts an order server with `settings` and waits until it is SERVING.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        Self::start_over(settings, None).await
    }

    /// [`start`](Self::start) for a server whose clients use `tls`.
    pub async fn start_over(settings: Settings, tls: Option<ClientTls>) -> anyhow::Result<Self> {
        common::telemetry::init_for_tests();
        let app = App::build(settings).await?;
        let addr = app.grpc_addr()?;
        let metrics_addr = app.metrics_addr()?;
        let running = Running::spawn(|stopped| {
            app.run_until(async move {
                let _ = stopped.await;
            })
        });
        crate::wait_serving_over(
            addr,
            order_service::app::SERVICE_NAME,
            Duration::from_secs(30),
            tls.as_ref(),
        )
        .await?;
        let client = OrderClient::new(crate::endpoint(addr, tls.as_ref())?.connect_lazy());
        Ok(Self { addr, metrics_addr, client, running })
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.running.stop().await
    }

    /// The `/metrics` page.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        crate::http_get(self.metrics_addr, "/metrics").await
    }
}

/// What a [`TestSystem`] starts with.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Start the user stand-in and have the order server check users.
    pub users: bool,
    /// How many order servers to start on the shared database (0: start them later).
    pub order_servers: usize,
    /// The cluster to create the system's database in (None: `TEST_DATABASE_URL`'s).
    pub cluster_url: Option<String>,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self { users: false, order_servers: 1, cluster_url: None }
    }
}

/// The catalog every order test uses (prices in EUR cents unless said otherwise).
pub fn test_catalog() -> anyhow::Result<Catalog> {
    let product = |id: &str, sku: &str, price_minor: i64, currency: &str| Product {
        id: id.to_owned(),
        sku: sku.to_owned(),
        name: id.to_owned(),
        price_minor,
        currency: currency.to_owned(),
        variants: Vec::new(),
    };
    let mut shirt = product("p-shirt", "SHIRT", 1500, "EUR");
    shirt.variants = vec![
        Variant { id: "red-m".into(), sku: "SHIRT-RED-M".into(), price_minor: 1750 },
        Variant { id: "blue-l".into(), sku: "SHIRT-BLUE-L".into(), price_minor: 1800 },
    ];
    Ok(Catalog::from_products(vec![
        product("p-widget", "WIDGET", 250, "EUR"),
        product("p-gadget", "GADGET", 1999, "EUR"),
        shirt,
        product("p-hot", "HOT", 100, "EUR"),
        // An odd price, so that partial refunds must be exact.
        product("p-odd", "ODD", 333, "EUR"),
        product("p-fan", "FAN", 500, "JPY"),
        // Three of these overflow a 64-bit total.
        product("p-big", "BIG", 4_000_000_000_000_000_000, "EUR"),
    ])?)
}

/// Order server settings for tests: ephemeral ports, short leases, fast recovery and retries.
pub fn order_settings(
    database_url: &str,
    inventory: SocketAddr,
    product: SocketAddr,
    payment: SocketAddr,
    user: Option<SocketAddr>,
) -> Settings {
    Settings {
        database: DatabaseSettings {
            db_max_connections: 15,
            db_acquire_timeout_ms: 5_000,
            ..DatabaseSettings::new(database_url)
        },
        log: LogSettings { rust_log: "info".into(), log_format: LogFormat::Pretty },
        tls: Default::default(),
        // Open on purpose: the operator RPC tests set a token.
        admin: common::auth::AdminAuthSettings { admin_auth_disabled: true, ..Default::default() },
        peer_tls: Default::default(),
        user_binding: Default::default(),
        event_watchers: String::new(),
        overload: OverloadSettings::default(),
        events: common::events::EventSettings::default(),
        shutdown: ShutdownSettings::immediate(),
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        inventory_service_url: format!("http://{inventory}"),
        product_service_url: format!("http://{product}"),
        payment_service_url: format!("http://{payment}"),
        user_service_url: user.map(|u| format!("http://{u}")),
        max_items_per_request: 100,
        peer_timeout_ms: 2_000,
        peer_retries: 2,
        // Longer than one step (2000 ms x 3 attempts + backoff): App::build refuses less.
        saga_lease_ms: 7_000,
        recovery_interval_ms: 100,
        recovery_batch: 32,
        order_hold_minutes: 30,
        order_payment_deadline_ms: 20 * 60_000,
        saga_park_after_ms: 3_600_000,
        payment_key_window_hours: 24,
        // Off: the retention tests run rounds themselves.
        retention_interval_ms: 0,
        retention_batch_size: 1_000,
        saga_step_retention_days: 400,
        idempotency_key_retention_days: 35,
        create_order_budget_ms: 10_000,
        retry_backoff_max_ms: 400,
        // Off: the reconcile tests turn it on. Its gauge is process-wide, and under
        // `cargo test` other servers' ticks would overwrite theirs.
        reconcile_interval_ms: 0,
        reconcile_grace_ms: 300_000,
        reconcile_batch: 200,
        allow_lease_shorter_than_a_step: false,
    }
}

/// Inventory, stand-ins and order server(s) on one fresh database.
pub struct TestSystem {
    pub db: TestDb,
    /// The inventory server, unless stopped by the test.
    inventory: Option<TestInventory>,
    /// Where the inventory server listens (also after a restart).
    pub inventory_addr: SocketAddr,
    /// Where the payment stand-in listens.
    pub payment_addr: SocketAddr,
    /// The payment stand-in's books.
    pub ledger: Ledger,
    pub payment_faults: Faults,
    pub product_faults: Faults,
    /// Running order servers, in start order.
    pub orders: Vec<TestOrderServer>,
    /// Settings a new order server of this system starts with.
    pub order_settings: Settings,
    /// Held only so that dropping the system stops the stand-ins.
    _standins: Vec<Running>,
}

impl TestSystem {
    /// One order server, no user check.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(SystemOptions::default()).await
    }

    /// The system as `options` say.
    pub async fn start_with(options: SystemOptions) -> anyhow::Result<Self> {
        common::telemetry::init_for_tests();
        let db = match &options.cluster_url {
            Some(url) => TestDb::create_in(url).await?,
            None => TestDb::create().await?,
        };
        let mut inventory_settings = crate::test_settings(&db.url);
        inventory_settings.database.db_max_connections = 10;
        let inventory = TestInventory::start_with(db.clone(), inventory_settings).await?;

        let mut standins = Vec::new();
        let product =
            ProductApp::build_with_catalog(ProductSettings::loopback(), test_catalog()?).await?;
        let product_addr = product.grpc_addr()?;
        let product_faults = product.faults();
        standins.push(Running::spawn(|stopped| {
            product.run_until(async move {
                let _ = stopped.await;
            })
        }));
        let payment = PaymentApp::build(PaymentSettings::loopback()).await?;
        let payment_addr = payment.grpc_addr()?;
        let (ledger, payment_faults) = (payment.ledger(), payment.faults());
        standins.push(Running::spawn(|stopped| {
            payment.run_until(async move {
                let _ = stopped.await;
            })
        }));
        let user_addr = if options.users {
            let user = UserApp::build(UserSettings::loopback()).await?;
            let addr = user.grpc_addr()?;
            standins.push(Running::spawn(|stopped| {
                user.run_until(async move {
                    let _ = stopped.await;
                })
            }));
            Some(addr)
        } else {
            None
        };

        let order_settings =
            order_settings(&db.url, inventory.addr, product_addr, payment_addr, user_addr);
        let mut system = Self {
            db,
            inventory_addr: inventory.addr,
            inventory: Some(inventory),
            payment_addr,
            ledger,
            payment_faults,
            product_faults,
            orders: Vec::new(),
            order_settings,
            _standins: standins,
        };
        for _ in 0..options.order_servers {
            system.start_order_server().await?;
        }
        Ok(system)
    }

    /// Starts one more order server on the system's database; returns its index.
    pub async fn start_order_server(&mut self) -> anyhow::Result<usize> {
        self.orders.push(TestOrderServer::start(self.order_settings.clone()).await?);
        Ok(self.orders.len() - 1)
    }

    /// Inventory and stand-ins with `widgets` WIDGETs in stock, the orders schema migrated,
    /// and no order server yet (to plant rows first, then start one).
    pub async fn without_order_server(widgets: i32) -> anyhow::Result<Self> {
        let sys =
            Self::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
        sys.migrate_orders().await?;
        sys.stock("WIDGET", widgets).await?;
        Ok(sys)
    }

    /// Applies the `orders` migrations without starting a server (to plant rows first).
    pub async fn migrate_orders(&self) -> anyhow::Result<()> {
        migrate_orders(&self.db.pool).await
    }

    /// The running inventory server.
    pub fn inventory(&self) -> anyhow::Result<&TestInventory> {
        self.inventory.as_ref().ok_or_else(|| anyhow::anyhow!("the inventory server is stopped"))
    }

    /// Stops the inventory server gracefully; [`Self::restart_inventory`] brings it back on
    /// the same address.
    pub async fn stop_inventory(&mut self) -> anyhow::Result<()> {
        if let Some(inventory) = self.inventory.take() {
            inventory.stop().await?;
        }
        Ok(())
    }

    /// Starts the inventory server again on its old address and database.
    pub async fn restart_inventory(&mut self) -> anyhow::Result<()> {
        let mut settings = crate::test_settings(&self.db.url);
        settings.database.db_max_connections = 10;
        settings.grpc_addr = self.inventory_addr;
        self.inventory = Some(TestInventory::start_with(self.db.clone(), settings).await?);
        Ok(())
    }

    /// A client of the first order server.
    pub fn client(&self) -> anyhow::Result<OrderClient> {
        self.orders
            .first()
            .map(|o| o.client.clone())
            .ok_or_else(|| anyhow::anyhow!("no order server running"))
    }

    /// Sets the stock of `sku` in the default warehouse.
    pub async fn stock(&self, sku: &str, on_hand: i32) -> anyhow::Result<()> {
        self.inventory()?.stock(sku, on_hand).await?;
        Ok(())
    }

    /// The inventory item `sku`.
    pub async fn item(&self, sku: &str) -> anyhow::Result<inv::InventoryItem> {
        self.inventory()?.item(sku).await
    }

    /// The inventory reservation `id`.
    pub async fn reservation(&self, id: &str) -> anyhow::Result<inv::Reservation> {
        self.inventory()?.reservation(id).await
    }

    /// Places an order for `items` (`(product_id, quantity)`) in EUR, paid by card.
    pub async fn order(
        &self,
        user: &str,
        items: &[(&str, i32)],
    ) -> anyhow::Result<Result<pb::Order, tonic::Status>> {
        Ok(self.client()?.create_order(order_request(user, items)).await.map(|r| r.into_inner()))
    }

    /// Sends `req` to the first order server.
    pub async fn create(
        &self,
        req: pb::CreateOrderRequest,
    ) -> anyhow::Result<Result<pb::Order, tonic::Status>> {
        Ok(self.client()?.create_order(req).await.map(|r| r.into_inner()))
    }

    /// The order `id`.
    pub async fn get(&self, id: &str) -> anyhow::Result<pb::Order> {
        let req = pb::GetOrderRequest { order_id: id.to_owned() };
        Ok(self.client()?.get_order(req).await?.into_inner())
    }

    /// Cancels the order `id` with `reason`.
    pub async fn cancel(
        &self,
        id: &str,
        reason: &str,
    ) -> anyhow::Result<Result<pb::Order, tonic::Status>> {
        let req = pb::CancelOrderRequest { order_id: id.to_owned(), reason: reason.to_owned() };
        Ok(self.client()?.cancel_order(req).await.map(|r| r.into_inner()))
    }

    /// Waits until some session of the test database waits for a row lock (a call blocked by
    /// a lock the test holds).
    pub async fn wait_lock_waiter(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity
                  where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(&self.db.pool)
            .await?;
            if waiting > 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("no session waited for a lock after {SETTLE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The saga columns of order `id` straight from the database.
    pub async fn saga_row(&self, id: &str) -> anyhow::Result<SagaRow> {
        let id = uuid::Uuid::parse_str(id)?;
        let row: (String, Option<String>, i32, Option<String>) = sqlx::query_as(
            "select status, next_action, attempts, last_error from orders.orders where id = $1",
        )
        .bind(id)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(SagaRow { status: row.0, next_action: row.1, attempts: row.2, last_error: row.3 })
    }

    /// Waits until order `id` has no saga step left, and returns it.
    pub async fn wait_settled(&self, id: &str) -> anyhow::Result<pb::Order> {
        self.wait_row(id, "settled", |row| row.next_action.is_none()).await?;
        self.get(id).await
    }

    /// Waits until the saga row of `id` satisfies `done`.
    pub async fn wait_row(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&SagaRow) -> bool,
    ) -> anyhow::Result<SagaRow> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let row = self.saga_row(id).await?;
            if done(&row) {
                return Ok(row);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("order {id} not {what} after {SETTLE_TIMEOUT:?}: {row:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the payment stand-in has been called `calls` times in all (a charge is in
    /// flight, under its latency, or done). The order's row cannot say so: a driver writes it
    /// when the saga settles or must wait, not before each call.
    pub async fn wait_payment_calls(&self, calls: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while self.payment_faults.calls() < calls {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the payment stand-in saw {} calls, not {calls}, after {SETTLE_TIMEOUT:?}",
                    self.payment_faults.calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The saga audit of order `id` (`orders.saga_steps`), oldest first, as
    /// `(action, outcome)`.
    pub async fn saga_steps(&self, id: &str) -> anyhow::Result<Vec<(String, String)>> {
        let id = uuid::Uuid::parse_str(id)?;
        Ok(sqlx::query_as(
            "select action, outcome from orders.saga_steps where order_id = $1 order by id",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// The `/metrics` page of the first order server.
    pub async fn order_metrics(&self) -> anyhow::Result<String> {
        self.orders
            .first()
            .ok_or_else(|| anyhow::anyhow!("no order server running"))?
            .metrics_text()
            .await
    }

    /// How many order rows exist.
    pub async fn order_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from orders.orders")
            .fetch_one(&self.db.pool)
            .await?)
    }

    /// Reservations the inventory holds for order `id` (any status), as `(id, status)`.
    pub async fn holds_for(&self, id: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "select id::text, status from inventory.reservations
              where reference_type = 'ORDER' and reference_id = $1 order by created_at",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?)
    }
}

/// An order row written straight into the database, as a server that died mid-saga (or a
/// saga waiting for its retry) would have left it.
#[derive(Debug, Clone)]
pub struct PlantedOrder {
    pub id: uuid::Uuid,
    pub user_id: String,
    pub status: &'static str,
    pub next_action: Option<&'static str>,
    pub attempts: i32,
    pub reservation_id: Option<uuid::Uuid>,
    pub payment_status: &'static str,
    pub payment_id: Option<String>,
    pub payment_method: String,
    /// `(product_id, sku, quantity, unit_price_minor)` per line.
    pub lines: Vec<(String, String, i32, i64)>,
    /// The lease of a driver: None = no lease; Some(ms) = held until now + ms (negative:
    /// lapsed, as when its server was killed).
    pub leased_for_ms: Option<i64>,
    /// `next_attempt_at` = now + this.
    pub due_in_ms: i64,
}

impl PlantedOrder {
    /// A PENDING order waiting to reserve `lines`, due now, unleased.
    pub fn pending(lines: &[(&str, &str, i32, i64)]) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            user_id: "planted".to_owned(),
            status: "PENDING",
            next_action: Some("reserve"),
            attempts: 0,
            reservation_id: None,
            payment_status: "",
            payment_id: None,
            payment_method: "card".to_owned(),
            lines: lines
                .iter()
                .map(|(p, sku, q, price)| ((*p).to_owned(), (*sku).to_owned(), *q, *price))
                .collect(),
            leased_for_ms: None,
            due_in_ms: 0,
        }
    }

    /// The same order, paid (`payment_id` charged) and at `status`.
    pub fn paid(self, status: &'static str, payment_id: String) -> Self {
        Self { status, payment_status: "SUCCEEDED", payment_id: Some(payment_id), ..self }
    }

    /// Writes the order and its lines into the database of `pool`; returns its id.
    pub async fn plant_into(&self, pool: &sqlx::PgPool) -> anyhow::Result<String> {
        let order = self;
        let mut tx = pool.begin().await?;
        sqlx::query(
            "insert into orders.orders
                 (id, user_id, request_fingerprint, status, currency, payment_method,
                  total_amount_minor, payment_status, payment_id, reservation_id, next_action,
                  attempts, next_attempt_at, leased_until, lease_owner)
             values ($1, $2, 'planted', $3, 'EUR', $4, $5, $6, $7, $8, $9, $10,
                     now() + $11 * interval '1 millisecond',
                     now() + $12 * interval '1 millisecond',
                     case when $12::bigint is null then null else gen_random_uuid() end)",
        )
        .bind(order.id)
        .bind(&order.user_id)
        .bind(order.status)
        .bind(&order.payment_method)
        .bind(order.total())
        .bind(order.payment_status)
        .bind(&order.payment_id)
        .bind(order.reservation_id)
        .bind(order.next_action)
        .bind(order.attempts)
        .bind(order.due_in_ms)
        .bind(order.leased_for_ms)
        .execute(&mut *tx)
        .await?;
        for (line, (product, sku, quantity, price)) in order.lines.iter().enumerate() {
            sqlx::query(
                "insert into orders.order_items
                     (order_id, line, product_id, sku, quantity, unit_price_minor)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(order.id)
            .bind(i32::try_from(line)?)
            .bind(product)
            .bind(sku)
            .bind(quantity)
            .bind(price)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(order.id.to_string())
    }

    /// The order's total.
    pub fn total(&self) -> i64 {
        self.lines.iter().map(|(_, _, q, price)| i64::from(*q) * price).sum()
    }
}

impl TestSystem {
    /// Writes `order` and its lines; returns its id.
    pub async fn plant(&self, order: &PlantedOrder) -> anyhow::Result<String> {
        order.plant_into(&self.db.pool).await
    }

    /// The id of `user`'s first order, once it exists (e.g. while CreateOrder is in flight).
    pub async fn wait_order_of(&self, user: &str) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let id: Option<uuid::Uuid> = sqlx::query_scalar(
                "select id from orders.orders where user_id = $1 order by created_at limit 1",
            )
            .bind(user)
            .fetch_optional(&self.db.pool)
            .await?;
            if let Some(id) = id {
                return Ok(id.to_string());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("no order of {user} after {SETTLE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Charges `order` as its saga does (same idempotency key), the way a crashed order
    /// server would have before dying; returns the payment id.
    pub async fn charge_as_saga(&self, order: &PlantedOrder) -> anyhow::Result<String> {
        let id = order.id.to_string();
        let charged = self
            .payment_client()?
            .process_payment(proto::payment::v1::ProcessPaymentRequest {
                order_id: id.clone(),
                amount_minor: order.total(),
                currency: "EUR".into(),
                method: order.payment_method.clone(),
                idempotency_key: format!("order:{id}:charge"),
            })
            .await?
            .into_inner();
        anyhow::ensure!(charged.status == "SUCCEEDED", "{charged:?}");
        Ok(charged.payment_id)
    }

    /// Checks that `order` ended CANCELLED for lack of stock after its payment, with
    /// `payment_id` charged once and refunded once in full.
    pub fn assert_refunded_for_lost_stock(
        &self,
        order: &pb::Order,
        payment_id: &str,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(order.status == "CANCELLED", "{order:?}");
        anyhow::ensure!(order.payment_status == "REFUNDED", "{order:?}");
        anyhow::ensure!(order.status_reason.contains("stock no longer available"), "{order:?}");
        anyhow::ensure!(self.ledger.charges_for_order(&order.id).len() == 1, "charged once");
        let refunds = self.ledger.refunds();
        anyhow::ensure!(refunds.len() == 1, "{refunds:?}");
        let refund = &refunds[0];
        anyhow::ensure!(
            (refund.payment_id.as_str(), refund.amount_minor)
                == (payment_id, order.total_amount_minor),
            "{refund:?}"
        );
        anyhow::ensure!(
            refund.idempotency_key == format!("order:{}:refund", order.id),
            "{refund:?}"
        );
        Ok(())
    }

    /// A client of the payment stand-in (to charge as a crashed order server would have).
    pub fn payment_client(
        &self,
    ) -> anyhow::Result<proto::payment::v1::payment_service_client::PaymentServiceClient<Channel>>
    {
        let channel = Channel::from_shared(format!("http://{}", self.payment_addr))?.connect_lazy();
        Ok(proto::payment::v1::payment_service_client::PaymentServiceClient::new(channel))
    }
}

/// Polls until order `id` is parked for an operator (fails after [`SETTLE_TIMEOUT`]).
pub async fn wait_parked(pool: &sqlx::PgPool, id: &str) -> anyhow::Result<()> {
    let id = uuid::Uuid::parse_str(id)?;
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        let parked: bool =
            sqlx::query_scalar("select parked_at is not null from orders.orders where id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        if parked {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "order {id} never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Applies the `orders` migrations to the database of `pool`.
pub async fn migrate_orders(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    common::db::migrate(pool, order_service::app::migrator(), order_service::app::SCHEMA).await?;
    Ok(())
}

/// The saga columns of one order row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaRow {
    pub status: String,
    pub next_action: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// A CreateOrder request for `items` (`(product_id, quantity)`) in EUR, paid by card.
pub fn order_request(user: &str, items: &[(&str, i32)]) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        user_id: user.to_owned(),
        items: items
            .iter()
            .map(|(product, quantity)| pb::OrderItemInput {
                product_id: (*product).to_owned(),
                variant_id: None,
                quantity: *quantity,
            })
            .collect(),
        currency: "EUR".to_owned(),
        payment_method: "card".to_owned(),
        idempotency_key: String::new(),
    }
}
