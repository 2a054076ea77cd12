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
        "select count(*) from inventory.logged_events where payload->>'on_hand' = '15'",
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
        "select count(*), min(position), max(position) from inventory.logged_events
          where position > $1",
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

/// An event as the log stores it, with what differs between two holds named: `(type,
/// aggregate, payload)`.
type Written = (String, String, serde_json::Value);

/// Reserves `skus` (2 and 3 units) for one hold through `reserve_holds` and commits it
/// through `settle_hold_as`, each in its own transaction. With `fresh`, each transaction
/// first marks the stock rows created in it, which leaves the events to the triggers; the
/// functions write them otherwise. Returns the events written, the hold, SKUs and times named.
async fn reserve_and_commit(
    pool: &sqlx::PgPool,
    skus: [&str; 2],
    fresh: bool,
) -> anyhow::Result<Vec<Written>> {
    let before = settled_head(pool, "inventory").await?;
    let mark = "update inventory.stock_levels sl set created_at = now()
                  from inventory.items i where i.id = sl.item_id and i.sku = any($1)";
    let mut tx = pool.begin().await?;
    if fresh {
        sqlx::query(mark).bind(skus).execute(&mut *tx).await?;
    }
    let hold: uuid::Uuid = sqlx::query_scalar(
        "select o_hold from inventory.reserve_holds(
             array[gen_random_uuid()], array['ORDER'], array[gen_random_uuid()::text], array[15],
             array['fp'], array[null::text], array[1, 1], $1::text[],
             array[null, null]::uuid[], array[null, null]::text[], array[2, 3])",
    )
    .bind(skus)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut tx = pool.begin().await?;
    if fresh {
        sqlx::query(mark).bind(skus).execute(&mut *tx).await?;
    }
    let settled: Option<String> =
        sqlx::query_scalar("select o_now from inventory.settle_hold_as($1, true, null)")
            .bind(hold)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    assert_eq!(settled.as_deref(), Some("COMMITTED"));

    settled_head(pool, "inventory").await?;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select type, aggregate_id, payload::text from inventory.logged_events
          where position > $1 order by position",
    )
    .bind(i64::try_from(before)?)
    .fetch_all(pool)
    .await?;
    let hold = hold.to_string();
    let name = |text: &str| {
        let mut text = text.replace(&hold, "HOLD");
        for (n, sku) in skus.iter().enumerate() {
            text = text.replace(sku, &format!("ITEM-{n}"));
        }
        text
    };
    let mut written = Vec::with_capacity(rows.len());
    for (kind, aggregate, payload) in rows {
        let mut payload: serde_json::Value = serde_json::from_str(&name(&payload))?;
        for key in ["reference_id", "expires_at"] {
            if let Some(value) = payload.get_mut(key) {
                *value = serde_json::Value::from(key);
            }
        }
        written.push((kind, name(&aggregate), payload));
    }
    // Their order within one statement is free.
    written.sort_by_key(|(kind, aggregate, payload)| {
        (kind.clone(), aggregate.clone(), payload.to_string())
    });
    Ok(written)
}

#[tokio::test]
async fn the_reserve_and_settle_functions_write_the_events_their_triggers_would()
-> anyhow::Result<()> {
    let inventory = TestInventory::start().await?;
    let pool = &inventory.db.pool;
    for sku in [
        "IN-1", "IN-2", "TR-1", "TR-2", "ALONE-1", "ALONE-2", "FRESH-1", "FRESH-2", "OFF-1",
        "OFF-2",
    ] {
        inventory.stock(sku, 10).await?;
    }
    let inline = reserve_and_commit(pool, ["IN-1", "IN-2"], false).await?;
    let triggered = reserve_and_commit(pool, ["TR-1", "TR-2"], true).await?;
    assert_eq!(inline.len(), 6, "a hold, its commit and two stock rows each time: {inline:#?}");
    assert_eq!(inline, triggered);

    // With the trigger functions writing nothing, the functions still write every event
    // themselves and the fresh rows' path writes none: the writers compared above differ.
    sqlx::raw_sql(
        "create or replace function inventory.outbox_stock_row_changed() returns trigger
             language plpgsql as $$ begin return null; end $$;
         create or replace function inventory.outbox_hold_created() returns trigger
             language plpgsql as $$ begin return null; end $$;
         create or replace function inventory.outbox_hold_settled() returns trigger
             language plpgsql as $$ begin return null; end $$;",
    )
    .execute(pool)
    .await?;
    assert_eq!(reserve_and_commit(pool, ["ALONE-1", "ALONE-2"], false).await?, inline);
    assert_eq!(reserve_and_commit(pool, ["FRESH-1", "FRESH-2"], true).await?, []);

    // A disabled outbox trigger turns its events off on the functions' path too (what the
    // benchmark's outbox off measures).
    for (table, trigger) in [
        ("stock_levels", "stock_levels_outbox_update"),
        ("reservation_items", "reservation_items_outbox"),
        ("reservations", "reservations_outbox"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "alter table inventory.{table} disable trigger {trigger}"
        )))
        .execute(pool)
        .await?;
    }
    assert_eq!(reserve_and_commit(pool, ["OFF-1", "OFF-2"], false).await?, []);
    Ok(())
}
