//! A commit the inventory refuses for good: under mutual TLS a hold belongs to the identity
//! that took it, so the order service cannot commit a hold another client took under its
//! order's reference (PERMISSION_DENIED). Retrying cannot change that: the order parks, and an
//! operator settles it with the holder and records it (shopctl, with the admin token).

use clap::Parser;
use common::auth::AdminAuthSettings;
use proto::order::v1 as pb;
use security::Secret;
use security::tls::PeerTlsSettings;
use system_tests::tls::TestPki;
use system_tests::{
    InventoryClient, PlantedOrder, TestDb, TestInventory, TestOrderServer, metric_value,
    migrate_orders, order_settings, reserve_request, test_settings, wait_parked,
};
use tonic::Code;

const TOKEN: &str = "op3rator-t0ken";

#[tokio::test]
async fn a_commit_refused_for_good_parks_the_order_until_an_operator_settles_it()
-> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let mut inventory_settings = test_settings(&db.url);
    inventory_settings.tls = pki.server_mtls();
    inventory_settings.admin.admin_allowed_identities = vec!["ops-admin".into()];
    let inventory = TestInventory::start_over(
        db.clone(),
        inventory_settings,
        Some(pki.client_tls(Some("ops-admin"))?),
    )
    .await?;
    inventory.stock("WIDGET", 5).await?;
    migrate_orders(&db.pool).await?;

    // A paid order whose hold was taken under its reference by another client.
    let planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    let id = planted.id.to_string();
    let https = format!("https://{}", inventory.addr);
    let intruder =
        InventoryClient::new(pki.client_tls(Some("intruder"))?.endpoint(&https)?.connect_lazy());
    let hold = intruder.clone().reserve_inventory(reserve_request(&id, &[("WIDGET", 2)])).await?;
    let hold = hold.into_inner().reservation_id;
    let mut planted = planted.paid("CONFIRMED", "pay-1".into());
    planted.next_action = Some("commit");
    planted.reservation_id = Some(uuid::Uuid::parse_str(&hold)?);
    planted.plant_into(&db.pool).await?;

    // The order service (its own certificate) never reaches product or payment here.
    let nowhere = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let mut settings = order_settings(&db.url, inventory.addr, nowhere, nowhere, None);
    settings.inventory_service_url = https;
    let (cert, key) = pki.client("order-service")?;
    settings.peer_tls = PeerTlsSettings {
        peer_tls_ca_path: Some(pki.ca_path.clone()),
        peer_tls_cert_path: Some(cert),
        peer_tls_key_path: Some(key),
    };
    settings.admin =
        AdminAuthSettings { admin_token: Some(Secret::new(TOKEN)), ..Default::default() };
    let order_server = TestOrderServer::start(settings).await?;

    wait_parked(&db.pool, &id).await?;
    let steps: Vec<(String, String, String)> = sqlx::query_as(
        "select action, outcome, detail from orders.saga_steps where order_id = $1 order by id",
    )
    .bind(planted.id)
    .fetch_all(&db.pool)
    .await?;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!((steps[0].0.as_str(), steps[0].1.as_str()), ("commit", "retry"));
    assert!(steps[0].2.contains("PermissionDenied"), "{steps:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while metric_value(&order_server.metrics_text().await?, "order_saga_parked") != 1.0 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "order_saga_parked never 1");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The operator RPCs want the admin token.
    let refused = order_server
        .client
        .clone()
        .list_parked_orders(pb::ListParkedOrdersRequest { page_size: 0 })
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The holder commits its hold (the operator arranged it), and the operator records it.
    let committed = intruder
        .clone()
        .commit_reservation(proto::inventory::v1::CommitReservationRequest {
            reservation_id: hold.clone(),
        })
        .await?;
    assert!(committed.into_inner().success);
    let url = format!("http://{}", order_server.addr);
    let cli = shopctl::cli::Cli::try_parse_from([
        "shopctl",
        "--order-url",
        &url,
        "--token",
        TOKEN,
        "--json",
        "order",
        "resolve",
        &id,
        "--resolution",
        "stock-settled-by-hand",
        "--note",
        "hold committed by its holder, ticket 42",
    ])?;
    shopctl::run(cli).await.map_err(|e| anyhow::anyhow!(e.report()))?;

    let order: (String, Option<String>, bool) = sqlx::query_as(
        "select status, next_action, parked_at is not null from orders.orders where id = $1",
    )
    .bind(planted.id)
    .fetch_one(&db.pool)
    .await?;
    assert_eq!(order, ("CONFIRMED".to_owned(), None, false));
    let last: (String, String, String) = sqlx::query_as(
        "select action, outcome, detail from orders.saga_steps where order_id = $1
          order by id desc limit 1",
    )
    .bind(planted.id)
    .fetch_one(&db.pool)
    .await?;
    assert_eq!(
        last,
        (
            "operator".into(),
            "stock_settled_by_hand".into(),
            "hold committed by its holder, ticket 42".into()
        )
    );
    order_server.stop().await?;
    inventory.stop().await
}
