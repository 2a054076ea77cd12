//! Inventory changes and their events.

use proto::events::v1::event::Payload;
use proto::inventory::v1 as pb;
use system_tests::{TestInventory, assert_invalid};

use super::{inventory_events, kinds, levels, settled_head};

#[tokio::test]
async fn each_change_writes_exactly_one_event_with_its_payload() -> anyhow::Result<()> {
    let inventory = TestInventory::start().await?;
    let mut client = inventory.client.clone();
    inventory.stock("WIDGET", 10).await?;
    let held = inventory.reserve("o-1", &[("WIDGET", 3)]).await?;
    let hold = held.reservation_id.clone();
    client
        .commit_reservation(pb::CommitReservationRequest { reservation_id: hold.clone() })
        .await?;
    let other = inventory.reserve("o-2", &[("WIDGET", 2)]).await?;
    client.cancel_reservation(pb::CancelReservationRequest::by_id(&other.reservation_id)).await?;
    // Refused for lack of stock: no hold, no event.
    let short = inventory.reserve("o-3", &[("WIDGET", 100)]).await?;
    assert!(!short.success);

    let head = settled_head(&inventory.db.pool, "inventory").await?;
    let events = inventory_events(&mut client, 0, &[], 9).await?;
    assert_eq!(head, 9, "{events:#?}");
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=9).collect::<Vec<_>>());
    let stock = "WIDGET/default".to_owned();
    let other_hold = other.reservation_id.clone();
    let expected = [
        ("stock.changed", &stock),
        ("reservation.created", &hold),
        ("stock.changed", &stock),
        ("reservation.committed", &hold),
        ("stock.changed", &stock),
        ("reservation.created", &other_hold),
        ("stock.changed", &stock),
        ("reservation.cancelled", &other_hold),
        ("stock.changed", &stock),
    ];
    let mut want: Vec<(String, String)> =
        expected.iter().map(|(t, a)| ((*t).to_owned(), (*a).clone())).collect();
    let mut got = kinds(&events);
    // A hold and its stock row change in one statement; their order within it is free.
    for at in [1, 3, 5, 7] {
        got[at..at + 2].sort();
        want[at..at + 2].sort();
    }
    assert_eq!(got, want);
    let stock_levels: Vec<_> = events.iter().filter_map(levels).collect();
    assert_eq!(stock_levels, [(10, 0, 10), (10, 3, 7), (7, 0, 7), (7, 2, 5), (7, 0, 7)]);
    let created = events.iter().find_map(|e| match &e.payload {
        Some(Payload::ReservationChanged(r)) if e.r#type == "reservation.created" => Some(r),
        _ => None,
    });
    let created = created.ok_or_else(|| anyhow::anyhow!("no reservation.created"))?;
    assert_eq!((created.reference_type.as_str(), created.reference_id.as_str()), ("ORDER", "o-1"));
    assert_eq!(created.status, "PENDING");
    assert!(created.expires_at.is_some());
    assert_eq!(created.lines.len(), 1);
    assert_eq!((created.lines[0].sku.as_str(), created.lines[0].quantity), ("WIDGET", 3));
    Ok(())
}

#[tokio::test]
async fn a_change_rolled_back_mid_transaction_writes_no_event() -> anyhow::Result<()> {
    let inventory = TestInventory::start().await?;
    inventory.stock("WIDGET", 10).await?;
    // The adjustment's stock update (and its outbox row) happens first in the transaction;
    // the movement written after it fails, and the whole transaction rolls back.
    sqlx::raw_sql(
        "create function inventory.fail_boom() returns trigger language plpgsql as $$
         begin
             if new.reason = 'boom' then raise exception 'forced failure'; end if;
             return new;
         end $$;
         create trigger fail_boom after insert on inventory.movements
             for each row execute function inventory.fail_boom();",
    )
    .execute(&inventory.db.pool)
    .await?;
    let before = settled_head(&inventory.db.pool, "inventory").await?;
    let failed = inventory
        .client
        .clone()
        .adjust_stock(pb::AdjustStockRequest {
            sku: "WIDGET".into(),
            delta: 5,
            reason: "boom".into(),
            idempotency_key: "k-1".into(),
            warehouse_id: String::new(),
        })
        .await;
    assert!(failed.is_err(), "{failed:?}");
    inventory
        .client
        .clone()
        .adjust_stock(pb::AdjustStockRequest {
            sku: "WIDGET".into(),
            delta: 2,
            reason: "recount".into(),
            idempotency_key: "k-2".into(),
            warehouse_id: String::new(),
        })
        .await?;
    let after = settled_head(&inventory.db.pool, "inventory").await?;
    assert_eq!(after, before + 1, "only the committed adjustment has an event");
    let events = inventory_events(&mut inventory.client.clone(), before, &[], 1).await?;
    assert_eq!(levels(&events[0]), Some((12, 0, 12)), "{events:#?}");
    let outbox: i64 = sqlx::query_scalar(
        "select count(*) from inventory.events where payload->>'on_hand' = '15'",
    )
    .fetch_one(&inventory.db.pool)
    .await?;
    assert_eq!(outbox, 0);
    Ok(())
}

#[tokio::test]
async fn a_type_filter_sends_only_those_types_and_an_unknown_type_is_invalid() -> anyhow::Result<()>
{
    let inventory = TestInventory::start().await?;
    let mut client = inventory.client.clone();
    inventory.stock("WIDGET", 10).await?;
    for i in 0..3 {
        inventory.reserve(&format!("o-{i}"), &[("WIDGET", 1)]).await?;
    }
    settled_head(&inventory.db.pool, "inventory").await?;
    let holds = inventory_events(&mut client, 0, &["reservation.created"], 3).await?;
    assert!(holds.iter().all(|e| e.r#type == "reservation.created"), "{holds:#?}");
    // Positions are the log's: the filtered stream skips the others, never renumbers.
    assert!(holds.windows(2).all(|w| w[0].position < w[1].position));
    assert!(holds[0].position > 1);

    let unknown = client
        .watch_events(pb::WatchEventsRequest {
            types: vec!["stock.changed".into(), "order.created".into()],
            ..Default::default()
        })
        .await
        .map(|_| ());
    assert_invalid(unknown, "types[1]");
    Ok(())
}

#[tokio::test]
async fn an_open_transaction_holds_back_nothing_and_its_event_follows_its_commit()
-> anyhow::Result<()> {
    let inventory = TestInventory::start().await?;
    let pool = &inventory.db.pool;
    inventory.stock("EARLY", 1).await?;
    inventory.stock("LATE", 1).await?;
    let before = settled_head(pool, "inventory").await?;
    // A change whose outbox row is written first but commits last.
    let mut early = pool.begin().await?;
    sqlx::query(
        "update inventory.stock_levels set on_hand = 5
          where item_id = (select id from inventory.items where sku = 'EARLY')",
    )
    .execute(&mut *early)
    .await?;
    inventory.stock("LATE", 7).await?;
    // Positions follow commits: LATE is numbered while EARLY is still open.
    assert_eq!(settled_head(pool, "inventory").await?, before + 1);
    early.commit().await?;
    assert_eq!(settled_head(pool, "inventory").await?, before + 2, "EARLY's event never came");
    let events = inventory_events(&mut inventory.client.clone(), before, &[], 2).await?;
    assert_eq!(
        kinds(&events),
        [
            ("stock.changed".to_owned(), "LATE/default".to_owned()),
            ("stock.changed".to_owned(), "EARLY/default".to_owned())
        ]
    );
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), [before + 1, before + 2]);
    Ok(())
}

#[tokio::test]
async fn concurrent_writers_committing_out_of_order_get_one_position_each() -> anyhow::Result<()> {
    let inventory = TestInventory::start().await?;
    let pool = inventory.db.pool.clone();
    let writers = 8;
    for n in 0..writers {
        inventory.stock(&format!("SKU-{n}"), 1).await?;
    }
    let before = settled_head(&pool, "inventory").await?;
    // Each writer its own row (no lock waits), each transaction open for a random moment
    // after its event row was written: they commit in another order than they wrote.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..writers {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut changes = 0_u64;
            while tokio::time::Instant::now() < deadline {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "update inventory.stock_levels set on_hand = on_hand + 1
                      where item_id = (select id from inventory.items where sku = $1)",
                )
                .bind(format!("SKU-{n}"))
                .execute(&mut *tx)
                .await?;
                sqlx::query("select pg_sleep(random() * 0.004)").execute(&mut *tx).await?;
                tx.commit().await?;
                changes += 1;
            }
            anyhow::Ok(changes)
        });
    }
    let mut changes = 0;
    while let Some(done) = tasks.join_next().await {
        changes += done??;
    }
    let after = settled_head(&pool, "inventory").await?;
    assert!(changes > 200, "too few changes to mean anything: {changes}");
    assert_eq!(after - before, changes, "one position per committed change");
    let (count, first, last): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "select count(*), min(position), max(position) from inventory.events where position > $1",
    )
    .bind(i64::try_from(before)?)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        (u64::try_from(count)?, first, last),
        (changes, Some(i64::try_from(before + 1)?), Some(i64::try_from(after)?)),
        "positions are consecutive"
    );
    Ok(())
}
