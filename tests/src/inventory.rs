//! The real inventory server on loopback, with a client and typed helpers.

use std::net::SocketAddr;
use std::time::Duration;

use common::auth::AdminAuthSettings;
use common::host::ShutdownSettings;
use common::overload::OverloadSettings;
use common::settings::{DatabaseSettings, LogSettings};
use common::telemetry::LogFormat;
use inventory_service::{App, Settings};
use proto::inventory::v1 as pb;
use security::tls::ClientTls;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::TestDb;

/// The generated inventory client over a loopback channel.
pub type InventoryClient = pb::inventory_service_client::InventoryServiceClient<Channel>;

/// A running inventory server with its own database.
pub struct TestInventory {
    pub db: TestDb,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub client: InventoryClient,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// How clients reach it: over TLS when set.
    tls: Option<ClientTls>,
}

/// Settings for a server under test: ephemeral ports and a fast sweeper.
pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        database: DatabaseSettings {
            db_max_connections: 20,
            db_acquire_timeout_ms: 5_000,
            ..DatabaseSettings::new(database_url)
        },
        log: LogSettings { rust_log: "info".into(), log_format: LogFormat::Pretty },
        tls: Default::default(),
        // Open on purpose: the tests that guard admin RPCs set a token or identities.
        admin: AdminAuthSettings { admin_auth_disabled: true, ..Default::default() },
        authz_policy_file: None,
        overload: OverloadSettings::default(),
        events: common::events::EventSettings::default(),
        shutdown: ShutdownSettings::immediate(),
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        metrics_addr: ([127, 0, 0, 1], 0).into(),
        default_expiry_minutes: 30,
        max_expiry_minutes: 7 * 24 * 60,
        sweep_interval_ms: 100,
        sweep_batch_size: 500,
        // Off: the reconcile tests turn it on. Its gauge is process-wide, and under
        // `cargo test` other servers' passes would overwrite theirs.
        reconcile_interval_ms: 0,
        reconcile_lapse_grace_ms: 60_000,
        reconcile_full_every_hours: 0,
        // Off: the low-stock tests turn it on (with warehouses of their own, since the gauge is
        // process-wide).
        low_stock_interval_ms: 0,
        retention_interval_ms: 0,
        retention_batch_size: 1_000,
        movement_retention_days: 400,
        hold_retention_days: 35,
        adjustment_key_retention_days: 35,
        max_items_per_request: 100,
        reserve_batching: true,
        reserve_batch_workers: 4,
        reserve_batch_max: 64,
        check_batching: true,
        check_batch_workers: 2,
        check_batch_max_skus: 256,
    }
}

impl TestInventory {
    /// A fresh database and a server on it, SERVING.
    pub async fn start() -> anyhow::Result<Self> {
        let db = TestDb::create().await?;
        let settings = test_settings(&db.url);
        Self::start_with(db, settings).await
    }

    /// A server with the given settings on `db`, SERVING.
    pub async fn start_with(db: TestDb, settings: Settings) -> anyhow::Result<Self> {
        Self::start_over(db, settings, None).await
    }

    /// A server with the given (TLS) settings on `db`, SERVING; its clients use `tls`.
    pub async fn start_over(
        db: TestDb,
        settings: Settings,
        tls: Option<ClientTls>,
    ) -> anyhow::Result<Self> {
        let inventory = Self::spawn_over(db, settings, tls).await?;
        crate::wait_serving_over(
            inventory.addr,
            inventory_service::app::SERVICE_NAME,
            Duration::from_secs(30),
            inventory.tls.as_ref(),
        )
        .await?;
        Ok(inventory)
    }

    /// A server that may not become ready (e.g. no database): returned as soon as it listens.
    pub async fn spawn(db: TestDb, settings: Settings) -> anyhow::Result<Self> {
        Self::spawn_over(db, settings, None).await
    }

    /// [`spawn`](Self::spawn) with clients that use `tls`.
    pub async fn spawn_over(
        db: TestDb,
        settings: Settings,
        tls: Option<ClientTls>,
    ) -> anyhow::Result<Self> {
        common::telemetry::init_for_tests();
        let app = App::build(settings).await?;
        let addr = app.grpc_addr()?;
        let metrics_addr = app.metrics_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let channel = crate::endpoint(addr, tls.as_ref())?.connect_lazy();
        let client = InventoryClient::new(channel);
        Ok(Self { db, addr, metrics_addr, client, stop: Some(stop), task: Some(task), tls })
    }

    /// A second client on its own connection (for concurrency tests).
    pub fn new_client(&self) -> anyhow::Result<InventoryClient> {
        let channel = crate::endpoint(self.addr, self.tls.as_ref())?.connect_lazy();
        Ok(InventoryClient::new(channel))
    }

    /// Asks the server to stop and waits for it, returning what `run_until` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// Signals shutdown without waiting; returns the server task to await later.
    pub fn begin_stop(&mut self) -> Option<JoinHandle<anyhow::Result<()>>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()
    }

    /// Sets the stock of `sku` in the default warehouse.
    pub async fn stock(&self, sku: &str, on_hand: i32) -> anyhow::Result<pb::InventoryItem> {
        self.stock_in(sku, "", on_hand).await
    }

    /// Sets the stock of `sku` in `warehouse`.
    pub async fn stock_in(
        &self,
        sku: &str,
        warehouse: &str,
        on_hand: i32,
    ) -> anyhow::Result<pb::InventoryItem> {
        let req = pb::UpsertInventoryItemRequest {
            sku: sku.into(),
            product_id: format!("prod-{sku}"),
            variant_id: None,
            warehouse_id: warehouse.into(),
            on_hand,
        };
        Ok(self.client.clone().upsert_inventory_item(req).await?.into_inner())
    }

    /// Reserves `(sku, qty)` lines for `ORDER <reference>` in any warehouse.
    pub async fn reserve(
        &self,
        reference: &str,
        lines: &[(&str, i32)],
    ) -> anyhow::Result<pb::ReservationResponse> {
        let resp = self.client.clone().reserve_inventory(reserve_request(reference, lines)).await?;
        Ok(resp.into_inner())
    }

    /// The item `sku` as the server reports it.
    pub async fn item(&self, sku: &str) -> anyhow::Result<pb::InventoryItem> {
        let req = pb::GetInventoryItemRequest { sku: sku.into() };
        Ok(self.client.clone().get_inventory_item(req).await?.into_inner())
    }

    /// The reservation `id` as the server reports it.
    pub async fn reservation(&self, id: &str) -> anyhow::Result<pb::Reservation> {
        let req = pb::GetReservationRequest::by_id(id);
        Ok(self.client.clone().get_reservation(req).await?.into_inner())
    }

    /// The `/metrics` page.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        crate::http_get(self.metrics_addr, "/metrics").await
    }

    /// Checks the ledger and hold invariants straight in the database; returns the
    /// violations found (empty when all hold).
    pub async fn ledger_violations(&self) -> anyhow::Result<Vec<String>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
            "select 'reserved differs from pending holds: level ' || sl.id, 1::bigint
               from inventory.stock_levels sl
               left join (select ri.stock_level_id, sum(ri.quantity) q
                            from inventory.reservation_items ri
                            join inventory.reservations r on r.id = ri.reservation_id
                           where r.status = 'PENDING' group by 1) h on h.stock_level_id = sl.id
              where sl.reserved <> coalesce(h.q, 0)
             union all
             select 'ledger does not sum to the level: level ' || sl.id, 1
               from inventory.stock_levels sl
               left join ",
            crate::ledger_sums_sql!(),
            " m on m.stock_level_id = sl.id
              where sl.on_hand <> coalesce(m.oh, 0) or sl.reserved <> coalesce(m.rs, 0)
             union all
             select 'impossible level: ' || id, 1 from inventory.stock_levels
              where reserved < 0 or on_hand::bigint - reserved < -backorder_limit
             union all
             select 'returned more than committed: hold ' || r.id || ' level ' || ret.stock_level_id, 1
               from (select sr.reservation_id, l.stock_level_id, sum(l.quantity) q
                       from inventory.stock_returns sr
                       join inventory.stock_return_lines l on l.return_id = sr.id
                      group by 1, 2) ret
               join inventory.reservations r on r.id = ret.reservation_id
               left join inventory.reservation_items ri
                      on ri.reservation_id = r.id and ri.stock_level_id = ret.stock_level_id
              where r.status <> 'COMMITTED' or ret.q > coalesce(ri.quantity, 0)"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(|(v, _)| v).collect())
    }
}

/// A reserve request for `ORDER <reference>` taking `(sku, qty)` from any warehouse.
pub fn reserve_request(reference: &str, lines: &[(&str, i32)]) -> pb::ReserveInventoryRequest {
    pb::ReserveInventoryRequest {
        items: lines
            .iter()
            .map(|(sku, quantity)| pb::ReservationItem {
                inventory_item_id: (*sku).into(),
                warehouse_id: String::new(),
                quantity: *quantity,
            })
            .collect(),
        reference_id: reference.into(),
        reference_type: "ORDER".into(),
        expiration_minutes: 0,
    }
}

impl Drop for TestInventory {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
