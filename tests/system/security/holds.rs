//! Who may call what on the inventory under mutual TLS: the caller policy's matrix of
//! identities, RPCs and reference types, and holds that only their taker (or an operator) may
//! commit, cancel, read or reserve again.

use proto::inventory::v1 as pb;
use system_tests::tls::TestPki;
use system_tests::{InventoryClient, TestDb, TestInventory, reserve_request, test_settings};
use tonic::Code;
use tonic_types::StatusExt;

const POLICY: &str = r#"{ "callers": [
    { "identity": "order-service",
      "rpcs": ["CheckInventoryAvailability", "ReserveInventory", "CommitReservation",
               "CancelReservation", "GetReservation", "ReturnStock"],
      "reference_types": ["ORDER"] },
    { "identity": "storefront",
      "rpcs": ["ReserveInventory", "CommitReservation", "CancelReservation", "GetReservation",
               "ReturnStock", "GetInventoryItem"],
      "reference_types": ["ORDER", "CART"] },
    { "identity": "ops-console", "rpcs": ["*"], "reference_types": ["*"],
      "settle_any_hold": true },
    { "identity": "dashboard", "rpcs": ["GetInventoryItem", "ListInventoryItems", "ListLowStock"] } ] }"#;

/// An inventory under mutual TLS (with `policy` when set), whose admin RPCs take the
/// `ops-console` certificate, and a way to call it as any identity.
struct Secured {
    pki: TestPki,
    inventory: TestInventory,
    _policy_dir: Option<PolicyDir>,
}

/// A temporary directory holding a policy file, removed on drop.
struct PolicyDir(std::path::PathBuf);

impl Drop for PolicyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Secured {
    async fn start(policy: Option<&str>) -> anyhow::Result<Self> {
        let pki = TestPki::new()?;
        let db = TestDb::create().await?;
        let mut settings = test_settings(&db.url);
        settings.tls = pki.server_mtls();
        settings.admin.admin_allowed_identities = vec!["ops-console".into()];
        let policy_dir = match policy {
            Some(text) => {
                let dir = std::env::temp_dir().join(format!("policy-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir)?;
                let path = dir.join("policy.json");
                std::fs::write(&path, text)?;
                settings.authz_policy_file = Some(path);
                Some(PolicyDir(dir))
            }
            None => None,
        };
        let tls = pki.client_tls(Some("ops-console"))?;
        let inventory = TestInventory::start_over(db, settings, Some(tls)).await?;
        Ok(Self { pki, inventory, _policy_dir: policy_dir })
    }

    fn client(&self, identity: &str) -> anyhow::Result<InventoryClient> {
        let https = format!("https://{}", self.inventory.addr);
        let tls = self.pki.client_tls(Some(identity))?;
        Ok(InventoryClient::new(tls.endpoint(&https)?.connect_lazy()))
    }
}

/// The ErrorInfo reason of a refusal (empty when it has none).
fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

fn code<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Calls every RPC once as `client` with a harmless request; the code of each, in the order
/// of `access::RPCS`.
async fn every_rpc(client: &InventoryClient, reference: &str) -> [Code; 11] {
    let mut c = client.clone();
    let unknown_id = uuid::Uuid::new_v4().to_string();
    [
        code(
            c.check_inventory_availability(pb::CheckInventoryAvailabilityRequest {
                items: vec![pb::AvailabilityCheckItem {
                    product_id: String::new(),
                    variant_id: None,
                    sku: "WIDGET".into(),
                    quantity: 1,
                }],
            })
            .await,
        ),
        code(c.reserve_inventory(reserve_request(reference, &[("WIDGET", 1)])).await),
        code(
            c.commit_reservation(pb::CommitReservationRequest {
                reservation_id: unknown_id.clone(),
            })
            .await,
        ),
        code(c.cancel_reservation(pb::CancelReservationRequest::by_id(unknown_id.clone())).await),
        code(
            c.upsert_inventory_item(pb::UpsertInventoryItemRequest {
                sku: "WIDGET".into(),
                product_id: "prod-widget".into(),
                variant_id: None,
                warehouse_id: String::new(),
                on_hand: 100,
            })
            .await,
        ),
        code(
            c.adjust_stock(pb::AdjustStockRequest {
                sku: "WIDGET".into(),
                warehouse_id: String::new(),
                delta: 1,
                reason: "recount".into(),
                idempotency_key: String::new(),
            })
            .await,
        ),
        code(c.get_inventory_item(pb::GetInventoryItemRequest { sku: "WIDGET".into() }).await),
        code(
            c.list_inventory_items(pb::ListInventoryItemsRequest {
                page_size: 10,
                page_token: String::new(),
            })
            .await,
        ),
        code(c.get_reservation(pb::GetReservationRequest::by_id(unknown_id)).await),
        code(
            c.set_stock_policy(pb::SetStockPolicyRequest {
                sku: "WIDGET".into(),
                warehouse_id: String::new(),
                safety_stock: None,
                low_stock_threshold: Some(1),
                reason: "watch it".into(),
                ..Default::default()
            })
            .await,
        ),
        code(c.list_low_stock(pb::ListLowStockRequest::default()).await),
    ]
}

#[tokio::test]
async fn the_policy_decides_who_calls_which_rpc() -> anyhow::Result<()> {
    let secured = Secured::start(Some(POLICY)).await?;
    let (ok, missing, denied) = (Code::Ok, Code::NotFound, Code::PermissionDenied);
    // The harness calls as the operator (the policy's "*" and an admin identity).
    secured.inventory.stock("WIDGET", 10).await?;
    let ops = secured.client("ops-console")?;
    let every = [ok, ok, missing, missing, ok, ok, ok, ok, missing, ok, ok];
    assert_eq!(every_rpc(&ops, "ops-1").await, every);
    let expected = [
        (
            "order-service",
            [ok, ok, missing, missing, denied, denied, denied, denied, missing, denied, denied],
        ),
        (
            "storefront",
            [denied, ok, missing, missing, denied, denied, ok, denied, missing, denied, denied],
        ),
        ("dashboard", [denied, denied, denied, denied, denied, denied, ok, ok, denied, denied, ok]),
        // Signed by the same CA, so the connection is fine, but the policy does not know it.
        ("intruder", [denied; 11]),
    ];
    for (identity, codes) in expected {
        let got = every_rpc(&secured.client(identity)?, &format!("{identity}-1")).await;
        assert_eq!(got, codes, "{identity}");
    }
    // A refusal by the policy says so in its ErrorInfo and names the caller.
    let refused = secured
        .client("dashboard")?
        .reserve_inventory(reserve_request("d-2", &[("WIDGET", 1)]))
        .await
        .expect_err("dashboard may not reserve");
    assert_eq!(reason(&refused), "CALLER_NOT_ALLOWED");
    assert!(refused.message().contains("dashboard"), "{}", refused.message());
    // What was allowed wrote; nothing refused did: the ops, order-service and storefront holds.
    let widget = secured.inventory.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (101, 3));
    secured.inventory.stop().await
}

#[tokio::test]
async fn reference_types_are_per_caller() -> anyhow::Result<()> {
    let secured = Secured::start(Some(POLICY)).await?;
    secured.inventory.stock("WIDGET", 10).await?;
    let cart = |reference: &str| pb::ReserveInventoryRequest {
        reference_type: "CART".into(),
        ..reserve_request(reference, &[("WIDGET", 1)])
    };
    let refused = secured
        .client("order-service")?
        .reserve_inventory(cart("c-1"))
        .await
        .expect_err("order-service reserves under ORDER only");
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::PermissionDenied, "CALLER_NOT_ALLOWED")
    );
    assert!(refused.message().contains("CART"), "{}", refused.message());
    assert_eq!(secured.inventory.item("WIDGET").await?.reserved, 0);
    let held = secured.client("storefront")?.reserve_inventory(cart("c-1")).await?.into_inner();
    assert!(held.success, "{held:?}");
    secured.inventory.stop().await
}

#[tokio::test]
async fn a_hold_is_settled_only_by_its_taker_or_an_operator() -> anyhow::Result<()> {
    let secured = Secured::start(Some(POLICY)).await?;
    secured.inventory.stock("WIDGET", 10).await?;
    let mut order = secured.client("order-service")?;
    let mut storefront = secured.client("storefront")?;
    let hold =
        order.reserve_inventory(reserve_request("o-1", &[("WIDGET", 2)])).await?.into_inner();
    let id = hold.reservation_id.clone();

    // Another identity may neither settle, read nor re-reserve the hold: not even with the
    // very same request, which would hand it the hold's id.
    let commit = pb::CommitReservationRequest { reservation_id: id.clone() };
    let cancel = pb::CancelReservationRequest::by_id(id.clone());
    let get = pb::GetReservationRequest::by_id(id.clone());
    let refusals = [
        storefront.commit_reservation(commit.clone()).await.map(drop),
        storefront.cancel_reservation(cancel.clone()).await.map(drop),
        storefront.get_reservation(get.clone()).await.map(drop),
        storefront.reserve_inventory(reserve_request("o-1", &[("WIDGET", 2)])).await.map(drop),
        storefront.reserve_inventory(reserve_request("o-1", &[("WIDGET", 5)])).await.map(drop),
    ];
    for refused in refusals {
        let status = refused.expect_err("not its hold");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(reason(&status), "HOLD_OWNED_BY_ANOTHER_CALLER");
        assert!(!status.message().contains(&id) || status.message().contains("reservation"));
    }
    let still = order.get_reservation(get.clone()).await?.into_inner();
    assert_eq!(still.status, "PENDING");
    assert_eq!(secured.inventory.item("WIDGET").await?.reserved, 2);

    // Its taker retries and reads it; an operator may settle any hold.
    let retry =
        order.reserve_inventory(reserve_request("o-1", &[("WIDGET", 2)])).await?.into_inner();
    assert_eq!(retry.reservation_id, id);
    let cancelled = secured.client("ops-console")?.cancel_reservation(cancel).await?.into_inner();
    assert_eq!((cancelled.success, cancelled.status.as_str()), (true, "CANCELLED"));

    let own = order.reserve_inventory(reserve_request("o-2", &[("WIDGET", 3)])).await?.into_inner();
    let committed = order
        .commit_reservation(pb::CommitReservationRequest { reservation_id: own.reservation_id })
        .await?
        .into_inner();
    assert_eq!(committed.status, "COMMITTED");
    let widget = secured.inventory.item("WIDGET").await?;
    assert_eq!((widget.on_hand, widget.reserved), (7, 0));

    // Its stock goes back only for its taker, whether named by id or by reference.
    let give_back = |hold: pb::ReturnStockRequest| pb::ReturnStockRequest {
        lines: vec![pb::ReturnLine { sku: "WIDGET".into(), quantity: 1, ..Default::default() }],
        idempotency_key: "return-1".into(),
        ..hold
    };
    for named in [
        pb::ReturnStockRequest::by_id(committed.reservation_id.clone()),
        pb::ReturnStockRequest::by_reference("ORDER", "o-2"),
    ] {
        let refused = storefront.return_stock(give_back(named)).await.expect_err("not its hold");
        assert_eq!(
            (refused.code(), reason(&refused).as_str()),
            (Code::PermissionDenied, "HOLD_OWNED_BY_ANOTHER_CALLER")
        );
    }
    assert_eq!(secured.inventory.item("WIDGET").await?.on_hand, 7);
    let by_id = pb::ReturnStockRequest::by_id(committed.reservation_id.clone());
    order.return_stock(give_back(by_id)).await?;
    assert_eq!(secured.inventory.item("WIDGET").await?.on_hand, 8);
    assert!(secured.inventory.ledger_violations().await?.is_empty());
    secured.inventory.stop().await
}

/// Mutual TLS without a policy: every verified client calls every RPC, but a hold still
/// belongs to the identity that took it.
#[tokio::test]
async fn without_a_policy_holds_still_belong_to_their_taker() -> anyhow::Result<()> {
    let secured = Secured::start(None).await?;
    secured.inventory.stock("WIDGET", 10).await?;
    let mut alice = secured.client("alice")?;
    let mut bob = secured.client("bob")?;
    let hold =
        alice.reserve_inventory(reserve_request("a-1", &[("WIDGET", 1)])).await?.into_inner();
    let commit = pb::CommitReservationRequest { reservation_id: hold.reservation_id };
    let refused = bob.commit_reservation(commit.clone()).await.expect_err("alice's hold");
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::PermissionDenied, "HOLD_OWNED_BY_ANOTHER_CALLER")
    );
    assert_eq!(alice.commit_reservation(commit).await?.into_inner().status, "COMMITTED");
    // Bob's own calls are served.
    assert!(
        bob.reserve_inventory(reserve_request("b-1", &[("WIDGET", 1)])).await?.into_inner().success
    );
    secured.inventory.stop().await
}
