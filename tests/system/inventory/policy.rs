//! Stock policies (issue 19): safety stock kept back from checks and reserves on every path
//! (also under racing reserves on two replicas), the low-stock threshold seen by the gauge,
//! ListLowStock and a stock.low event, and SetStockPolicy's own validation and ledger.

use std::time::Duration;

use proto::events::v1::event::Payload;
use proto::inventory::v1 as pb;
use system_tests::{TestDb, TestInventory, assert_invalid, metric_value, test_settings};
use tonic::Code;
use uuid::Uuid;

fn policy(
    sku: &str,
    warehouse: &str,
    safety_stock: Option<i32>,
    low_stock_threshold: Option<i32>,
) -> pb::SetStockPolicyRequest {
    pb::SetStockPolicyRequest {
        sku: sku.into(),
        warehouse_id: warehouse.into(),
        safety_stock,
        low_stock_threshold,
        reason: "store policy".into(),
        ..Default::default()
    }
}

async fn set_policy(
    inv: &TestInventory,
    request: pb::SetStockPolicyRequest,
) -> anyhow::Result<pb::InventoryItem> {
    let reply = inv.client.clone().set_stock_policy(request).await?.into_inner();
    reply.item.ok_or_else(|| anyhow::anyhow!("SetStockPolicy answered no item"))
}

/// The check answer for `quantity` of `sku`.
async fn check(inv: &TestInventory, sku: &str, quantity: i32) -> anyhow::Result<(i32, String)> {
    let reply = inv
        .client
        .clone()
        .check_inventory_availability(pb::CheckInventoryAvailabilityRequest {
            items: vec![pb::AvailabilityCheckItem {
                product_id: format!("prod-{sku}"),
                variant_id: None,
                sku: sku.into(),
                quantity,
            }],
        })
        .await?
        .into_inner();
    let line = &reply.items[0];
    Ok((line.available_quantity, line.status.clone()))
}

fn line(sku: &str, warehouse: &str, quantity: i32) -> pb::ReservationItem {
    pb::ReservationItem { inventory_item_id: sku.into(), warehouse_id: warehouse.into(), quantity }
}

fn request(reference: &str, items: Vec<pb::ReservationItem>) -> pb::ReserveInventoryRequest {
    pb::ReserveInventoryRequest {
        items,
        reference_id: reference.into(),
        reference_type: "ORDER".into(),
        expiration_minutes: 0,
    }
}

#[tokio::test]
async fn safety_stock_hides_units_from_check_reserve_and_reads() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut client = inv.client.clone();
    inv.stock("SAFE", 10).await?;
    let item = set_policy(&inv, policy("SAFE", "", Some(3), None)).await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (10, 0, 7));
    assert_eq!((item.levels[0].safety_stock, item.levels[0].available), (3, 7));

    assert_eq!(check(&inv, "SAFE", 8).await?, (7, "INSUFFICIENT_STOCK".to_owned()));
    assert_eq!(check(&inv, "SAFE", 7).await?, (7, "IN_STOCK".to_owned()));
    let short = inv.reserve("o-short", &[("SAFE", 8)]).await?;
    assert!(!short.success);
    assert_eq!(short.shortages[0].available_quantity, 7, "{short:?}");
    let held = inv.reserve("o-all", &[("SAFE", 7)]).await?;
    assert!(held.success, "{held:?}");
    assert_eq!(check(&inv, "SAFE", 1).await?, (0, "OUT_OF_STOCK".to_owned()));
    assert!(!inv.reserve("o-one-more", &[("SAFE", 1)]).await?.success);
    client
        .commit_reservation(pb::CommitReservationRequest { reservation_id: held.reservation_id })
        .await?;
    let item = inv.item("SAFE").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (3, 0, 0));

    // Safety stock above what is on hand offers nothing (never a negative figure); lowered,
    // the units are offered again.
    let item = set_policy(&inv, policy("SAFE", "", Some(50), None)).await?;
    assert_eq!(item.available, 0);
    let item = set_policy(&inv, policy("SAFE", "", Some(0), None)).await?;
    assert_eq!(item.available, 3);
    assert!(inv.reserve("o-rest", &[("SAFE", 3)]).await?.success);

    // Several warehouses (the general allocation): each row keeps its own safety stock back.
    inv.stock_in("SPLIT", "east", 5).await?;
    inv.stock_in("SPLIT", "west", 5).await?;
    let item = set_policy(&inv, policy("SPLIT", "east", Some(2), None)).await?;
    assert_eq!(item.available, 8);
    assert_eq!(check(&inv, "SPLIT", 9).await?, (8, "INSUFFICIENT_STOCK".to_owned()));
    let short = client.reserve_inventory(request("s-1", vec![line("SPLIT", "", 9)])).await?;
    assert_eq!(short.get_ref().shortages[0].available_quantity, 8);
    let short = client.reserve_inventory(request("s-2", vec![line("SPLIT", "east", 4)])).await?;
    assert_eq!(short.get_ref().shortages[0].available_quantity, 3);
    let held = client.reserve_inventory(request("s-3", vec![line("SPLIT", "", 8)])).await?;
    let held = held.into_inner();
    assert!(held.success, "{held:?}");
    let mut taken: Vec<(String, i32)> = inv
        .reservation(&held.reservation_id)
        .await?
        .items
        .into_iter()
        .map(|l| (l.warehouse_id, l.quantity))
        .collect();
    taken.sort();
    assert_eq!(taken, [("east".to_owned(), 3), ("west".to_owned(), 5)]);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_racing_reserves_on_two_replicas_never_sell_safety_stock() -> anyhow::Result<()>
{
    let db = TestDb::create().await?;
    let first = TestInventory::start_with(db.clone(), test_settings(&db.url)).await?;
    let second = TestInventory::start_with(db.clone(), test_settings(&db.url)).await?;
    // One row (the SQL fast path) and two rows (the general algorithm), 50 offered each.
    first.stock("ONE-ROW", 60).await?;
    set_policy(&first, policy("ONE-ROW", "", Some(10), None)).await?;
    first.stock_in("TWO-ROWS", "east", 30).await?;
    first.stock_in("TWO-ROWS", "west", 30).await?;
    set_policy(&first, policy("TWO-ROWS", "east", Some(5), None)).await?;
    set_policy(&first, policy("TWO-ROWS", "west", Some(5), None)).await?;

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(first.new_client()?);
        clients.push(second.new_client()?);
    }
    let (one, two) = tokio::try_join!(
        super::backorders::race(&clients, "a", "ONE-ROW", 200),
        super::backorders::race(&clients, "b", "TWO-ROWS", 200)
    )?;
    assert_eq!((one.len(), two.len()), (50, 50));
    let rows: Vec<(String, i32, i32, i32)> = sqlx::query_as(
        "select warehouse_id, on_hand, reserved, safety_stock from inventory.stock_levels
          order by id",
    )
    .fetch_all(&db.pool)
    .await?;
    assert_eq!(
        rows,
        [
            ("default".to_owned(), 60, 50, 10),
            ("east".to_owned(), 30, 25, 5),
            ("west".to_owned(), 30, 25, 5),
        ]
    );
    assert!(first.ledger_violations().await?.is_empty());
    second.stop().await?;
    first.stop().await
}

#[tokio::test]
async fn set_stock_policy_validates_records_changes_once_and_keeps_unset_values()
-> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let mut client = inv.client.clone();
    let item = inv.stock("RULED", 10).await?;
    // A row without a policy reads as before, with zeros.
    assert_eq!(
        (item.levels[0].safety_stock, item.levels[0].low_stock_threshold, item.levels[0].low_stock),
        (0, 0, false)
    );

    assert_invalid(
        client.set_stock_policy(policy("RULED", "", Some(-1), None)).await,
        "safety_stock",
    );
    assert_invalid(
        client.set_stock_policy(policy("RULED", "", None, Some(-1))).await,
        "low_stock_threshold",
    );
    assert_invalid(client.set_stock_policy(policy("RULED", "", None, None)).await, "safety_stock");
    assert_invalid(client.set_stock_policy(policy("", "", Some(1), None)).await, "sku");
    let no_reason =
        pb::SetStockPolicyRequest { reason: String::new(), ..policy("RULED", "", Some(1), None) };
    assert_invalid(client.set_stock_policy(no_reason).await, "reason");
    for (sku, warehouse) in [("NOPE", ""), ("RULED", "elsewhere")] {
        let missing = client.set_stock_policy(policy(sku, warehouse, Some(1), None)).await;
        assert_eq!(missing.map(|_| ()).map_err(|s| s.code()), Err(Code::NotFound));
    }

    let first = set_policy(&inv, policy("RULED", "", Some(2), None)).await?;
    let again = set_policy(&inv, policy("RULED", "", Some(2), None)).await?;
    assert_eq!(first, again);
    let both = set_policy(&inv, policy("RULED", "", None, Some(4))).await?;
    let level = &both.levels[0];
    assert_eq!((level.safety_stock, level.low_stock_threshold, level.available), (2, 4, 8));
    assert!(!level.low_stock);

    let changes: Vec<(i32, i32, i32, i32, String)> = sqlx::query_as(
        "select safety_stock, low_stock_threshold, previous_safety_stock,
                previous_low_stock_threshold, reason
           from inventory.stock_policy_changes order by id",
    )
    .fetch_all(&inv.db.pool)
    .await?;
    let reason = "store policy".to_owned();
    assert_eq!(changes, [(2, 0, 0, 0, reason.clone()), (2, 4, 2, 0, reason)]);
    // The refused requests wrote nothing and moved no stock.
    let item = inv.item("RULED").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (10, 0, 8));
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

/// Polls the gauge of `warehouse` until it reads `want`.
async fn gauge_reaches(inv: &TestInventory, warehouse: &str, want: f64) -> anyhow::Result<()> {
    let sample = format!("inventory_low_stock_rows{{warehouse_id=\"{warehouse}\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = inv.metrics_text().await?;
        let got = metric_value(&page, &sample);
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{sample} stays {got}, not {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn low_rows(inv: &TestInventory, warehouse: &str) -> anyhow::Result<Vec<pb::LowStockRow>> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = inv
            .client
            .clone()
            .list_low_stock(pb::ListLowStockRequest {
                warehouse_id: warehouse.into(),
                page_size: 1,
                page_token,
            })
            .await?
            .into_inner();
        rows.extend(page.rows);
        if page.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn low_stock_is_counted_listed_announced_and_clears() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.low_stock_interval_ms = 50;
    let inv = TestInventory::start_with(db, settings).await?;
    let mut client = inv.client.clone();
    // The gauge is process-wide: a warehouse no other test uses.
    let wh = format!("low-{}", &Uuid::new_v4().simple().to_string()[..12]);
    for sku in ["LOW-A", "LOW-B", "LOW-C"] {
        inv.stock_in(sku, &wh, 10).await?;
    }
    set_policy(&inv, policy("LOW-A", &wh, None, Some(5))).await?;
    set_policy(&inv, policy("LOW-B", &wh, Some(2), Some(5))).await?;
    assert!(low_rows(&inv, &wh).await?.is_empty());

    // LOW-A: 10 - 6 = 4 < 5. LOW-B: 10 - 4 - 2 (safety) = 4 < 5. LOW-C has no threshold.
    let a = client.reserve_inventory(request("a-1", vec![line("LOW-A", &wh, 6)])).await?;
    client.reserve_inventory(request("b-1", vec![line("LOW-B", &wh, 4)])).await?;
    client.reserve_inventory(request("c-1", vec![line("LOW-C", &wh, 10)])).await?;
    // Lower while low: no second crossing.
    client.reserve_inventory(request("a-2", vec![line("LOW-A", &wh, 1)])).await?;
    gauge_reaches(&inv, &wh, 2.0).await?;
    let rows = low_rows(&inv, &wh).await?;
    let listed: Vec<(String, i32, i32, bool)> = rows
        .iter()
        .filter_map(|r| {
            let l = r.level.as_ref()?;
            Some((r.sku.clone(), l.available, l.low_stock_threshold, l.low_stock))
        })
        .collect();
    assert_eq!(listed, [("LOW-A".to_owned(), 3, 5, true), ("LOW-B".to_owned(), 4, 5, true)]);
    let everywhere = low_rows(&inv, "").await?;
    assert_eq!(everywhere.len(), 2, "{everywhere:?}");

    // Back above the threshold: the gauge clears, the list empties.
    client
        .cancel_reservation(pb::CancelReservationRequest::by_id(a.into_inner().reservation_id))
        .await?;
    gauge_reaches(&inv, &wh, 1.0).await?;
    set_policy(&inv, policy("LOW-B", &wh, Some(0), None)).await?;
    gauge_reaches(&inv, &wh, 0.0).await?;
    assert!(low_rows(&inv, &wh).await?.is_empty());
    // LOW-A crosses again (a-2 still holds 1): a second stock.low for it.
    client.reserve_inventory(request("a-3", vec![line("LOW-A", &wh, 8)])).await?;

    let events = crate::events::inventory_events(&mut client, 0, &["stock.low"], 3).await?;
    let seen: Vec<(String, i32, i32, i32, i32)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(Payload::StockChanged(s)) => Some((
                e.aggregate_id.clone(),
                s.reserved,
                s.safety_stock,
                s.low_stock_threshold,
                s.available,
            )),
            _ => None,
        })
        .collect();
    let (a, b) = (format!("LOW-A/{wh}"), format!("LOW-B/{wh}"));
    assert_eq!(seen, [(a.clone(), 6, 0, 5, 4), (b, 4, 2, 5, 4), (a, 9, 0, 5, 1)]);
    let count: i64 = sqlx::query_scalar(
        "select (select count(*) from inventory.events where type = 'stock.low')
              + (select count(*) from inventory.event_outbox where type = 'stock.low')",
    )
    .fetch_one(&inv.db.pool)
    .await?;
    assert_eq!(count, 3, "one stock.low per crossing, none while a row stays low");
    Ok(())
}
