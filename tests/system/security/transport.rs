use std::time::Duration;

use dev_standins::{PaymentApp, PaymentSettings, ProductApp, ProductSettings};
use proto::inventory::v1 as pb;
use security::tls::{ClientTls, PeerTlsSettings};
use system_tests::tls::TestPki;
use system_tests::{
    InventoryClient, TestDb, TestInventory, TestOrderServer, order_request, order_settings,
    test_catalog, test_settings,
};
use tokio::sync::oneshot;

/// A guard against a hung connection attempt (not a timing assertion).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An inventory client on `url`, using `tls` for `https://`.
fn client(url: &str, tls: &ClientTls) -> anyhow::Result<InventoryClient> {
    Ok(InventoryClient::new(tls.endpoint(url)?.timeout(CALL_TIMEOUT).connect_lazy()))
}

/// One CheckInventoryAvailability call: a call any client of the mesh may make.
async fn check(client: &InventoryClient) -> Result<bool, tonic::Status> {
    let req = pb::CheckInventoryAvailabilityRequest {
        items: vec![pb::AvailabilityCheckItem {
            product_id: "prod-WIDGET".into(),
            variant_id: None,
            sku: "WIDGET".into(),
            quantity: 1,
        }],
    };
    Ok(client.clone().check_inventory_availability(req).await?.into_inner().all_available)
}

async fn inventory_with(
    tls: security::tls::ServerTlsSettings,
    client_tls: ClientTls,
) -> anyhow::Result<TestInventory> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.tls = tls;
    TestInventory::start_over(db, settings, Some(client_tls)).await
}

#[tokio::test]
async fn inventory_over_tls_serves_clients_that_trust_the_ca_only() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let inventory = inventory_with(pki.server_tls(), pki.client_tls(None)?).await?;
    inventory.stock("WIDGET", 5).await?;
    let https = format!("https://{}", inventory.addr);

    assert!(check(&client(&https, &pki.client_tls(None)?)?).await?);

    // Plaintext against the TLS port: no gRPC answer.
    let plaintext = client(&format!("http://{}", inventory.addr), &pki.client_tls(None)?)?;
    let refused = check(&plaintext).await.expect_err("plaintext must not be served");
    assert_ne!(refused.code(), tonic::Code::Ok);

    // A client trusting another CA does not accept the server's certificate.
    let stranger = TestPki::new()?;
    let untrusted = check(&client(&https, &stranger.client_tls(None)?)?).await;
    assert!(untrusted.is_err(), "a client of another CA connected: {untrusted:?}");
    inventory.stop().await
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_signed_by_the_ca() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let inventory = inventory_with(pki.server_mtls(), pki.client_tls(Some("harness"))?).await?;
    inventory.stock("WIDGET", 5).await?;
    let https = format!("https://{}", inventory.addr);

    let anonymous = check(&client(&https, &pki.client_tls(None)?)?).await;
    assert!(anonymous.is_err(), "a client without a certificate was served: {anonymous:?}");

    // Trusts the right CA but presents a certificate of another one.
    let stranger = TestPki::new()?;
    let (cert, key) = stranger.client("intruder")?;
    let foreign = ClientTls::from_files(
        Some(security::tls::PemFile::new("CA", &pki.ca_path)),
        Some((
            security::tls::PemFile::new("cert", &cert),
            security::tls::PemFile::new("key", &key),
        )),
    )?;
    let refused = check(&client(&https, &foreign)?).await;
    assert!(refused.is_err(), "a certificate of another CA was accepted: {refused:?}");

    assert!(check(&client(&https, &pki.client_tls(Some("order-service"))?)?).await?);
    inventory.stop().await
}

#[tokio::test]
async fn healthcheck_probes_tls_and_mutual_tls_servers() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    for tls in [pki.server_tls(), pki.server_mtls()] {
        let inventory = inventory_with(tls.clone(), pki.client_tls(Some("harness"))?).await?;
        let probe = tls.self_check()?;
        let status = common::healthcheck::check_service(
            inventory.addr,
            probe.as_ref(),
            "",
            common::healthcheck::TIMEOUT,
        )
        .await?;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{tls:?}"
        );
        let code = common::healthcheck::run_with_tls(
            vec![inventory.addr.to_string().into()],
            None,
            probe,
            "127.0.0.1:1",
        )
        .await;
        assert_eq!(code, 0, "{tls:?}");
        inventory.stop().await?;
    }
    Ok(())
}

/// The order server behind mutual TLS, and every peer it calls (inventory, product, payment)
/// behind mutual TLS too, reached over `https://` with the order service's own certificate.
/// The inventory's admin RPCs are limited to `ops-admin`: the order service needs none.
#[tokio::test]
async fn an_order_confirms_with_mutual_tls_on_every_hop() -> anyhow::Result<()> {
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
    inventory.stock("WIDGET", 10).await?;

    let product = ProductApp::build_with_catalog(
        ProductSettings { tls: pki.server_mtls(), ..ProductSettings::loopback() },
        test_catalog()?,
    )
    .await?;
    let product_addr = product.grpc_addr()?;
    let (stop_product, product_stopped) = oneshot::channel::<()>();
    let product_task = tokio::spawn(product.run_until(async move {
        let _ = product_stopped.await;
    }));
    let payment = PaymentApp::build(PaymentSettings {
        tls: pki.server_mtls(),
        ..PaymentSettings::loopback()
    })
    .await?;
    let payment_addr = payment.grpc_addr()?;
    let ledger = payment.ledger();
    let (stop_payment, payment_stopped) = oneshot::channel::<()>();
    let payment_task = tokio::spawn(payment.run_until(async move {
        let _ = payment_stopped.await;
    }));

    let mut settings = order_settings(&db.url, inventory.addr, product_addr, payment_addr, None);
    settings.inventory_service_url = format!("https://{}", inventory.addr);
    settings.product_service_url = format!("https://{product_addr}");
    settings.payment_service_url = format!("https://{payment_addr}");
    settings.tls = pki.server_mtls();
    let (cert, key) = pki.client("order-service")?;
    settings.peer_tls = PeerTlsSettings {
        peer_tls_ca_path: Some(pki.ca_path.clone()),
        peer_tls_cert_path: Some(cert),
        peer_tls_key_path: Some(key),
    };
    let order_server =
        TestOrderServer::start_over(settings, Some(pki.client_tls(Some("storefront"))?)).await?;

    let order = order_server
        .client
        .clone()
        .create_order(order_request("alice", &[("p-widget", 3)]))
        .await?
        .into_inner();
    assert_eq!(order.status, "CONFIRMED", "{order:?}");
    assert_eq!(ledger.charges_for_order(&order.id).len(), 1);
    let widget = inventory.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (7, 0));

    order_server.stop().await?;
    let _ = stop_product.send(());
    let _ = stop_payment.send(());
    product_task.await??;
    payment_task.await??;
    inventory.stop().await
}
