use proto::inventory::v1 as pb;
use security::Secret;
use system_tests::tls::TestPki;
use system_tests::{InventoryClient, TestDb, TestInventory, reserve_request, test_settings};
use tonic::{Code, Request};

fn upsert(sku: &str, on_hand: i32) -> pb::UpsertInventoryItemRequest {
    pb::UpsertInventoryItemRequest {
        sku: sku.into(),
        product_id: format!("prod-{sku}"),
        variant_id: None,
        warehouse_id: String::new(),
        on_hand,
    }
}

fn adjust(sku: &str, delta: i32) -> pb::AdjustStockRequest {
    pb::AdjustStockRequest {
        sku: sku.into(),
        warehouse_id: String::new(),
        delta,
        reason: "recount".into(),
        idempotency_key: String::new(),
    }
}

fn policy(sku: &str) -> pb::SetStockPolicyRequest {
    pb::SetStockPolicyRequest {
        sku: sku.into(),
        warehouse_id: String::new(),
        safety_stock: None,
        // A threshold alone: what the rest of a test reserves is left as it was.
        low_stock_threshold: Some(1),
        reason: "watch it".into(),
        ..Default::default()
    }
}

/// `message` carrying `authorization: <value>` when set.
fn with_auth<T>(message: T, value: Option<&str>) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    if let Some(value) = value {
        request.metadata_mut().insert("authorization", value.parse()?);
    }
    Ok(request)
}

/// The code of an upsert, an adjust and a policy change carrying `auth`.
async fn admin_codes(client: &InventoryClient, auth: Option<&str>) -> anyhow::Result<[Code; 3]> {
    fn code<T>(r: Result<T, tonic::Status>) -> Code {
        r.map_or_else(|s| s.code(), |_| Code::Ok)
    }
    let mut client = client.clone();
    Ok([
        code(client.upsert_inventory_item(with_auth(upsert("WIDGET", 10), auth)?).await),
        code(client.adjust_stock(with_auth(adjust("WIDGET", 2), auth)?).await),
        code(client.set_stock_policy(with_auth(policy("WIDGET"), auth)?).await),
    ])
}

#[tokio::test]
async fn an_admin_token_guards_upsert_and_adjust_only() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.admin.admin_token = Some(Secret::new("adm1n-t0ken"));
    let inventory = TestInventory::start_with(db, settings).await?;
    let client = inventory.client.clone();

    assert_eq!(admin_codes(&client, None).await?, [Code::Unauthenticated; 3]);
    assert_eq!(admin_codes(&client, Some("Bearer wrong")).await?, [Code::Unauthenticated; 3]);
    assert_eq!(admin_codes(&client, Some("adm1n-t0ken")).await?, [Code::Unauthenticated; 3]);
    // Refused calls changed nothing.
    let missing = client
        .clone()
        .get_inventory_item(pb::GetInventoryItemRequest { sku: "WIDGET".into() })
        .await
        .expect_err("no item yet");
    assert_eq!(missing.code(), Code::NotFound);

    assert_eq!(admin_codes(&client, Some("Bearer adm1n-t0ken")).await?, [Code::Ok; 3]);
    assert_eq!(inventory.item("WIDGET").await?.on_hand, 12);

    // Everything else needs no token: the order service and the mesh keep working.
    let hold = inventory.reserve("order-1", &[("WIDGET", 3)]).await?;
    assert!(hold.success, "{hold:?}");
    let mut open = client.clone();
    let reservation = open
        .get_reservation(pb::GetReservationRequest::by_id(hold.reservation_id.clone()))
        .await?
        .into_inner();
    assert_eq!(reservation.status, "PENDING");
    open.commit_reservation(pb::CommitReservationRequest {
        reservation_id: hold.reservation_id.clone(),
    })
    .await?;
    let again = open.reserve_inventory(reserve_request("order-2", &[("WIDGET", 1)])).await?;
    let cancelled = open
        .cancel_reservation(pb::CancelReservationRequest::by_id(again.into_inner().reservation_id))
        .await?
        .into_inner();
    assert!(cancelled.success, "{cancelled:?}");
    let listed = open
        .list_inventory_items(pb::ListInventoryItemsRequest {
            page_size: 10,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(listed.items.len(), 1);
    let widget = inventory.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (9, 0));
    inventory.stop().await
}

#[tokio::test]
async fn an_allowed_client_certificate_may_call_admin_rpcs() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.tls = pki.server_mtls();
    settings.admin.admin_allowed_identities = vec!["ops-admin".into()];
    let inventory =
        TestInventory::start_over(db, settings, Some(pki.client_tls(Some("ops-admin"))?)).await?;
    let https = format!("https://{}", inventory.addr);
    let as_client = |name: &str| -> anyhow::Result<InventoryClient> {
        Ok(InventoryClient::new(pki.client_tls(Some(name))?.endpoint(&https)?.connect_lazy()))
    };

    assert_eq!(admin_codes(&as_client("ops-admin")?, None).await?, [Code::Ok; 3]);

    // Signed by the same CA, so the connection is fine, but not on the list.
    let other = as_client("storefront")?;
    assert_eq!(admin_codes(&other, None).await?, [Code::PermissionDenied; 3]);
    // ... and no token is configured, so a bearer token does not help it.
    assert_eq!(admin_codes(&other, Some("Bearer anything")).await?, [Code::Unauthenticated; 3]);
    // Its other calls are served.
    let hold =
        other.clone().reserve_inventory(reserve_request("order-1", &[("WIDGET", 2)])).await?;
    assert!(hold.into_inner().success);
    let widget = inventory.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (12, 2));
    inventory.stop().await
}

/// An operator's `shopctl` against an inventory behind mutual TLS with an admin token: the
/// CA, client certificate and token flags get `stock set` through; without the token it is
/// refused.
#[tokio::test]
async fn shopctl_sets_stock_over_mutual_tls_with_a_token() -> anyhow::Result<()> {
    use clap::Parser;
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.tls = pki.server_mtls();
    settings.admin.admin_token = Some(Secret::new("adm1n-t0ken"));
    let inventory =
        TestInventory::start_over(db, settings, Some(pki.client_tls(Some("harness"))?)).await?;
    let (cert, key) = pki.client("operator")?;
    let url = format!("https://{}", inventory.addr);
    let shopctl = |token: Option<&str>| -> anyhow::Result<shopctl::cli::Cli> {
        let mut args = vec![
            "shopctl".to_owned(),
            "--json".to_owned(),
            "--inventory-url".to_owned(),
            url.clone(),
            "--tls-ca".to_owned(),
            pki.ca_path.display().to_string(),
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ];
        if let Some(token) = token {
            args.extend(["--token".to_owned(), token.to_owned()]);
        }
        args.extend(["stock", "set", "WIDGET", "4"].map(str::to_owned));
        Ok(shopctl::cli::Cli::try_parse_from(args)?)
    };

    let refused = shopctl::run(shopctl(None)?).await.expect_err("no token");
    assert!(
        refused.report().contains("Unauthenticated")
            || refused.report().contains("UNAUTHENTICATED"),
        "{}",
        refused.report()
    );
    shopctl::run(shopctl(Some("adm1n-t0ken"))?).await.map_err(|e| anyhow::anyhow!(e.report()))?;
    assert_eq!(inventory.item("WIDGET").await?.on_hand, 4);
    inventory.stop().await
}
