//! Backorders and pre-orders (issue 19): a row sells exactly up to its backorder limit beyond
//! on_hand (under racing reserves on two replicas), a hold says which units are backordered
//! and when more is expected, checks answer AVAILABLE_ON_BACKORDER, and a restock settles the
//! backorders first, in the ledger.

use proto::inventory::v1 as pb;
use system_tests::{
    InventoryClient, TestDb, TestInventory, assert_invalid, reserve_request, test_settings,
};
use tonic::Code;

fn policy(sku: &str, warehouse: &str) -> pb::SetStockPolicyRequest {
    pb::SetStockPolicyRequest {
        sku: sku.into(),
        warehouse_id: warehouse.into(),
        reason: "sell the next delivery".into(),
        ..Default::default()
    }
}

async fn allow_backorders(
    inv: &TestInventory,
    sku: &str,
    warehouse: &str,
    limit: i32,
    restock: Option<&str>,
) -> anyhow::Result<pb::InventoryItem> {
    let request = pb::SetStockPolicyRequest {
        backorder_limit: Some(limit),
        expected_restock_date: restock.map(str::to_owned),
        ..policy(sku, warehouse)
    };
    let reply = inv.client.clone().set_stock_policy(request).await?.into_inner();
    reply.item.ok_or_else(|| anyhow::anyhow!("SetStockPolicy answered no item"))
}

async fn check(
    inv: &TestInventory,
    sku: &str,
    quantity: i32,
) -> anyhow::Result<pb::ItemAvailability> {
    let reply = inv
        .client
        .clone()
        .check_inventory_availability(pb::CheckInventoryAvailabilityRequest {
            items: vec![pb::AvailabilityCheckItem {
                product_id: String::new(),
                variant_id: None,
                sku: sku.into(),
                quantity,
            }],
        })
        .await?
        .into_inner();
    Ok(reply.items[0].clone())
}

async fn commit(client: &mut InventoryClient, id: &str) -> anyhow::Result<()> {
    let reply = client
        .commit_reservation(pb::CommitReservationRequest { reservation_id: id.into() })
        .await?
        .into_inner();
    anyhow::ensure!(reply.success, "{reply:?}");
    Ok(())
}

/// Racing reserves of one unit each on `clients` (round robin): the holds taken.
pub(super) async fn race(
    clients: &[InventoryClient],
    tag: &str,
    sku: &str,
    n: usize,
) -> anyhow::Result<Vec<pb::ReservationResponse>> {
    let attempts = (0..n).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        let req = reserve_request(&format!("{tag}-{i}"), &[(sku, 1)]);
        tokio::spawn(async move { client.reserve_inventory(req).await })
    });
    let mut won = Vec::new();
    for handle in futures::future::join_all(attempts).await {
        let reply = handle??.into_inner();
        if reply.success {
            won.push(reply);
        }
    }
    Ok(won)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backorders_sell_exactly_to_the_bound_under_racing_reserves_on_two_replicas()
-> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let first = TestInventory::start_with(db.clone(), test_settings(&db.url)).await?;
    let second = TestInventory::start_with(db.clone(), test_settings(&db.url)).await?;
    // One row (the SQL fast path) and two rows (the general algorithm): 50 units each, 20 in
    // stock and 30 on backorder.
    first.stock("BO-ONE", 20).await?;
    allow_backorders(&first, "BO-ONE", "", 30, None).await?;
    first.stock_in("BO-TWO", "east", 10).await?;
    first.stock_in("BO-TWO", "west", 10).await?;
    allow_backorders(&first, "BO-TWO", "east", 15, None).await?;
    allow_backorders(&first, "BO-TWO", "west", 15, None).await?;

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(first.new_client()?);
        clients.push(second.new_client()?);
    }
    let (one, two) =
        tokio::try_join!(race(&clients, "a", "BO-ONE", 200), race(&clients, "b", "BO-TWO", 200))?;
    assert_eq!((one.len(), two.len()), (50, 50));
    // Exactly the units beyond stock are on backorder, and every hold says so.
    for (won, sku) in [(&one, "BO-ONE"), (&two, "BO-TWO")] {
        let said: i32 = won.iter().flat_map(|r| &r.backordered).map(|b| b.quantity).sum();
        assert_eq!(said, 30, "{sku}");
        assert!(won.iter().all(|r| r.backordered.iter().all(|b| b.sku == sku)));
    }
    // Committing every hold takes on_hand down to minus the limit, not one unit further.
    let mut client = first.client.clone();
    for reply in one.iter().chain(&two) {
        commit(&mut client, &reply.reservation_id).await?;
    }
    let rows: Vec<(String, i32, i32, i32)> = sqlx::query_as(
        "select warehouse_id, on_hand, reserved, backorder_limit from inventory.stock_levels
          order by id",
    )
    .fetch_all(&db.pool)
    .await?;
    assert_eq!(
        rows,
        [
            ("default".to_owned(), -30, 0, 30),
            ("east".to_owned(), -15, 0, 15),
            ("west".to_owned(), -15, 0, 15),
        ]
    );
    assert!(!first.reserve("one-more", &[("BO-ONE", 1)]).await?.success);
    assert_eq!(check(&first, "BO-TWO", 1).await?.status, "OUT_OF_STOCK");
    assert!(first.ledger_violations().await?.is_empty());
    second.stop().await?;
    first.stop().await
}

#[tokio::test]
async fn a_pre_order_says_which_units_are_backordered_and_when_more_comes() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut client = inv.client.clone();
    inv.stock("PRE", 2).await?;
    let item = allow_backorders(&inv, "PRE", "", 10, Some("2027-01-15")).await?;
    let level = &item.levels[0];
    assert_eq!((level.available, level.in_stock, level.backorder_limit), (12, 2, 10));
    assert_eq!(level.expected_restock_date, "2027-01-15");

    let line = check(&inv, "PRE", 5).await?;
    assert_eq!(
        (line.status.as_str(), line.is_available, line.available_quantity, line.in_stock_quantity),
        ("AVAILABLE_ON_BACKORDER", true, 12, 2)
    );
    assert_eq!(line.expected_restock_date, "2027-01-15");
    let line = check(&inv, "PRE", 2).await?;
    assert_eq!((line.status.as_str(), line.expected_restock_date.as_str()), ("IN_STOCK", ""));
    assert_eq!(check(&inv, "PRE", 13).await?.status, "INSUFFICIENT_STOCK");

    let held = inv.reserve("pre-1", &[("PRE", 5)]).await?;
    assert!(held.success, "{held:?}");
    let expected = vec![pb::BackorderedLine {
        sku: "PRE".into(),
        warehouse_id: "default".into(),
        quantity: 3,
        expected_restock_date: "2027-01-15".into(),
    }];
    assert_eq!(held.backordered, expected);
    assert!(held.message.contains("3 unit(s) on backorder"), "{}", held.message);
    // A retry answers the same hold with the same lines.
    let again = inv.reserve("pre-1", &[("PRE", 5)]).await?;
    assert_eq!(
        (again.reservation_id.as_str(), &again.backordered),
        (held.reservation_id.as_str(), &expected)
    );
    let reservation = inv.reservation(&held.reservation_id).await?;
    let line = &reservation.items[0];
    assert_eq!((line.quantity, line.backordered_quantity), (5, 3));
    assert_eq!(line.expected_restock_date, "2027-01-15");

    // In stock only: no backordered lines.
    inv.stock("PLAIN", 5).await?;
    let plain = inv.reserve("plain-1", &[("PLAIN", 5)]).await?;
    assert!(plain.success && plain.backordered.is_empty(), "{plain:?}");

    commit(&mut client, &held.reservation_id).await?;
    let item = inv.item("PRE").await?;
    let level = &item.levels[0];
    assert_eq!((level.on_hand, level.reserved, level.available, level.in_stock), (-3, 0, 7, 0));
    // The committed hold keeps what it was sold with.
    assert_eq!(inv.reservation(&held.reservation_id).await?.items[0].backordered_quantity, 3);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_restock_settles_backorders_first_in_the_ledger() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut client = inv.client.clone();
    inv.stock("LATE", 0).await?;
    allow_backorders(&inv, "LATE", "", 10, None).await?;
    let a = inv.reserve("a", &[("LATE", 4)]).await?;
    commit(&mut client, &a.reservation_id).await?;
    let b = inv.reserve("b", &[("LATE", 3)]).await?;
    let c = inv.reserve("c", &[("LATE", 2)]).await?;
    assert_eq!((b.backordered[0].quantity, c.backordered[0].quantity), (3, 2));

    // Lowering the limit below what is already sold or held beyond on_hand (4 + 5) is refused;
    // so is an adjustment that would owe more than the limit.
    let lower = pb::SetStockPolicyRequest { backorder_limit: Some(8), ..policy("LATE", "") };
    let refused = client.set_stock_policy(lower).await.map(|_| ());
    assert_eq!(refused.map_err(|s| s.code()), Err(Code::FailedPrecondition));
    let beyond = client
        .adjust_stock(pb::AdjustStockRequest {
            sku: "LATE".into(),
            warehouse_id: String::new(),
            delta: -2,
            reason: "breakage".into(),
            idempotency_key: String::new(),
        })
        .await
        .map(|_| ());
    assert_eq!(beyond.map_err(|s| s.code()), Err(Code::FailedPrecondition));

    // 6 arrive: the 4 owed to the committed hold first, then 2 of b's 3; c waits.
    client
        .adjust_stock(pb::AdjustStockRequest {
            sku: "LATE".into(),
            warehouse_id: String::new(),
            delta: 6,
            reason: "delivery 1".into(),
            idempotency_key: "delivery-1".into(),
        })
        .await?;
    let on_backorder = |r: pb::Reservation| r.items[0].backordered_quantity;
    assert_eq!(on_backorder(inv.reservation(&b.reservation_id).await?), 1);
    assert_eq!(on_backorder(inv.reservation(&c.reservation_id).await?), 2);
    let fills: Vec<(Option<String>, String)> = sqlx::query_as(
        "select reservation_id::text, reason from inventory.movements
          where kind = 'BACKORDER_FILL' and on_hand_delta = 0 and reserved_delta = 0 order by id",
    )
    .fetch_all(&inv.db.pool)
    .await?;
    assert_eq!(
        fills,
        [
            (None, "4 units owed to committed backorders delivered".to_owned()),
            (
                Some(b.reservation_id.clone()),
                "2 backordered units of the hold now in stock".to_owned()
            ),
        ]
    );
    // Set to 10 (from 2): b's last unit and c's two.
    inv.stock("LATE", 10).await?;
    assert_eq!(on_backorder(inv.reservation(&b.reservation_id).await?), 0);
    assert_eq!(on_backorder(inv.reservation(&c.reservation_id).await?), 0);
    let item = inv.item("LATE").await?;
    assert_eq!((item.on_hand, item.reserved, item.levels[0].in_stock), (10, 5, 5));
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn backorder_policy_fields_are_validated_and_the_date_can_be_cleared() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut client = inv.client.clone();
    inv.stock("DATED", 1).await?;
    let negative = pb::SetStockPolicyRequest { backorder_limit: Some(-1), ..policy("DATED", "") };
    assert_invalid(client.set_stock_policy(negative).await, "backorder_limit");
    for bad in ["2027-13-01", "tomorrow", "15.01.2027"] {
        let request = pb::SetStockPolicyRequest {
            expected_restock_date: Some(bad.into()),
            ..policy("DATED", "")
        };
        assert_invalid(client.set_stock_policy(request).await, "expected_restock_date");
    }
    let item = allow_backorders(&inv, "DATED", "", 3, Some("2027-02-01")).await?;
    assert_eq!(item.levels[0].expected_restock_date, "2027-02-01");
    let cleared = pb::SetStockPolicyRequest {
        expected_restock_date: Some(String::new()),
        ..policy("DATED", "")
    };
    let item = client.set_stock_policy(cleared).await?.into_inner().item.unwrap_or_default();
    assert_eq!(
        (item.levels[0].expected_restock_date.as_str(), item.levels[0].backorder_limit),
        ("", 3)
    );
    let recorded: Vec<(Option<i32>, Option<String>)> = sqlx::query_as(
        "select backorder_limit, restock_date::text from inventory.stock_policy_changes order by id",
    )
    .fetch_all(&inv.db.pool)
    .await?;
    assert_eq!(recorded, [(Some(3), Some("2027-02-01".to_owned())), (Some(3), None)]);
    Ok(())
}
