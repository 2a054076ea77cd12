//! Reservations batched into shared transactions: each caller still gets its own
//! all-or-nothing answer, batches never deadlock each other, retries share one hold.

use std::collections::HashSet;

use inventory_service::domain::allocation::Line;
use inventory_service::domain::commands::Reserve;
use inventory_service::domain::{HoldCaller, ItemRef, Quantity, Reference, ReservationStatus};
use inventory_service::error::InventoryError;
use inventory_service::store::{ReserveBatching, ReserveOutcome, Store};
use proto::inventory::v1 as pb;
use system_tests::{TestDb, TestInventory, reserve_request, test_settings};

fn req(reference: &str, lines: &[(&str, i32)]) -> anyhow::Result<Reserve> {
    let bad = |v| anyhow::anyhow!("{v:?}");
    Ok(Reserve {
        lines: lines
            .iter()
            .map(|(sku, q)| {
                Ok(Line {
                    item: ItemRef::parse("item", sku).map_err(bad)?,
                    warehouse: None,
                    quantity: Quantity::parse("quantity", *q).map_err(bad)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        reference: Reference::parse("ORDER", reference).map_err(|v| anyhow::anyhow!("{v:?}"))?,
        expires_in_minutes: 30,
        caller: HoldCaller::anonymous(),
    })
}

/// Many buyers of one hot SKU through the server (batching on, as by default): exactly the
/// stock is sold, every answer is all-or-nothing, the ledger adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_sku_buyers_get_exactly_the_stock_and_whole_answers() -> anyhow::Result<()> {
    // 400 buyers at once: above the default MAX_CONCURRENT_REQUESTS, which this test is not
    // about (tests/system/overload covers shedding).
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.overload.max_concurrent_requests = 1_000;
    let inv = TestInventory::start_with(db, settings).await?;
    inv.stock("HOT", 60).await?;
    inv.stock("PLENTY", 100_000).await?;
    let clients: Vec<_> = (0..16).map(|_| inv.new_client()).collect::<Result<_, _>>()?;

    // Two thirds want one HOT unit; a third want one HOT and one PLENTY (both or neither).
    let attempts = (0..400).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        let lines: &[(&str, i32)] =
            if i % 3 == 0 { &[("PLENTY", 1), ("HOT", 1)] } else { &[("HOT", 1)] };
        let req = reserve_request(&format!("buyer-{i}"), lines);
        tokio::spawn(async move { (i, client.reserve_inventory(req).await) })
    });
    let mut won = HashSet::new();
    let mut ids = HashSet::new();
    for handle in futures::future::join_all(attempts).await {
        let (i, resp) = handle?;
        let resp = resp?.into_inner();
        if resp.success {
            won.insert(i);
            anyhow::ensure!(ids.insert(resp.reservation_id.clone()), "one hold per buyer");
            let hold = inv.reservation(&resp.reservation_id).await?;
            let lines = if i % 3 == 0 { 2 } else { 1 };
            anyhow::ensure!(hold.items.len() == lines, "buyer {i}: {hold:?}");
        } else {
            anyhow::ensure!(
                resp.message.contains("HOT: requested 1, available 0"),
                "{}",
                resp.message
            );
            anyhow::ensure!(!resp.message.contains("PLENTY"), "{}", resp.message);
        }
    }
    assert_eq!(won.len(), 60);
    let hot = inv.item("HOT").await?;
    assert_eq!((hot.on_hand, hot.reserved), (60, 60));
    let with_plenty = won.iter().filter(|i| *i % 3 == 0).count() as i32;
    assert_eq!(inv.item("PLENTY").await?.reserved, with_plenty, "all or nothing");
    let violations = inv.ledger_violations().await?;
    assert!(violations.is_empty(), "{violations:?}");
    Ok(())
}

/// The same race with batching off: one transaction per call, still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_batching_hot_sku_buyers_get_exactly_the_stock() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.reserve_batching = false;
    let inv = TestInventory::start_with(db, settings).await?;
    inv.stock("HOT", 25).await?;
    let attempts = (0..100).map(|i| {
        let mut client = inv.client.clone();
        let req = reserve_request(&format!("buyer-{i}"), &[("HOT", 1)]);
        tokio::spawn(async move { client.reserve_inventory(req).await })
    });
    let mut won = 0;
    for handle in futures::future::join_all(attempts).await {
        won += i32::from(handle??.into_inner().success);
    }
    assert_eq!(won, 25);
    assert_eq!(inv.item("HOT").await?.reserved, 25);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

/// Batches taking overlapping SKUs (and overlapping references) in opposite orders, run
/// side by side: no deadlock, no error, every unit accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_sku_batches_in_opposite_orders_never_deadlock() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    for sku in ["A", "B", "C", "D"] {
        inv.stock(sku, 100_000).await?;
    }
    let store = Store::new(inv.db.pool.clone());
    let orders: [&[&str]; 4] =
        [&["A", "B", "C", "D"], &["D", "C", "B", "A"], &["B", "D"], &["C", "A"]];
    let tasks = (0..8).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut held = 0;
            for round in 0..15 {
                let mut batch = Vec::new();
                for (k, skus) in orders.iter().enumerate() {
                    let skus = if t % 2 == 0 {
                        skus.to_vec()
                    } else {
                        skus.iter().rev().copied().collect()
                    };
                    let lines: Vec<(&str, i32)> = skus.iter().map(|s| (*s, 1)).collect();
                    // Shared references across tasks, taken in opposite orders too.
                    let reference = if k == 0 {
                        format!("shared-{round}-{}", if t % 2 == 0 { "x" } else { "y" })
                    } else {
                        format!("t{t}-r{round}-k{k}")
                    };
                    batch.push(req(&reference, &lines)?);
                }
                if t % 2 == 1 {
                    batch.reverse();
                }
                for answer in store.reserve_batch(&batch).await? {
                    match answer? {
                        ReserveOutcome::Reserved(_) => held += 1,
                        ReserveOutcome::Existing(..) => {}
                        ReserveOutcome::Short(s) => anyhow::bail!("short: {s:?}"),
                        ReserveOutcome::ReservedOnBackorder(id) => {
                            anyhow::bail!("{id} on backorder without a policy")
                        }
                    }
                }
            }
            anyhow::Ok(held)
        })
    });
    let mut held = 0;
    for task in futures::future::join_all(tasks).await {
        held += task??;
    }
    let holds: i64 = sqlx::query_scalar("select count(*) from inventory.reservations")
        .fetch_one(&inv.db.pool)
        .await?;
    assert_eq!(holds, held);
    // Per round: 2 shared references + 8 tasks x 3 own ones.
    assert_eq!(held, 15 * (2 + 8 * 3));
    let violations = inv.ledger_violations().await?;
    assert!(violations.is_empty(), "{violations:?}");
    Ok(())
}

/// Retries of one reference inside one batch share one hold; a refused first attempt leaves
/// the reference to a later one; refused requests leave no row behind.
#[tokio::test]
async fn retries_inside_one_batch_share_one_hold() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let store = Store::new(inv.db.pool.clone());

    let batch = [
        req("r1", &[("A", 2)])?,
        req("r1", &[("A", 2)])?,
        req("r2", &[("A", 1)])?,
        req("r1", &[("A", 5)])?,
        req("r3", &[("A", 100)])?,
        req("r3", &[("A", 3)])?,
        req("r4", &[("A", 1), ("NOPE", 1)])?,
        req("r5", &[("A", 50)])?,
    ];
    let answers = store.reserve_batch(&batch).await?;
    let mut answers = answers.into_iter();
    let mut next = || answers.next().ok_or_else(|| anyhow::anyhow!("missing answer"));
    let ReserveOutcome::Reserved(r1) = next()?? else { anyhow::bail!("r1 not reserved") };
    assert_eq!(next()??, ReserveOutcome::Existing(r1, ReservationStatus::Pending));
    let ReserveOutcome::Reserved(r2) = next()?? else { anyhow::bail!("r2 not reserved") };
    // The same reference with other lines is another request: refused, even in one batch.
    match next()? {
        Err(InventoryError::ReferenceInUse(reference)) => assert_eq!(reference.id, "r1"),
        other => anyhow::bail!("r1 with other lines: {other:?}"),
    }
    let ReserveOutcome::Short(short) = next()?? else { anyhow::bail!("r3 first not short") };
    assert_eq!((short[0].requested, short[0].available), (100, 7));
    let ReserveOutcome::Reserved(r3) = next()?? else { anyhow::bail!("r3 retry not reserved") };
    match next()? {
        Err(InventoryError::NotFound { key, .. }) => assert_eq!(key, "NOPE"),
        other => anyhow::bail!("r4: {other:?}"),
    }
    let ReserveOutcome::Short(short) = next()?? else { anyhow::bail!("r5 not short") };
    assert_eq!((short[0].requested, short[0].available), (50, 4));

    assert_eq!(inv.item("A").await?.reserved, 6);
    let rows: Vec<(String, uuid::Uuid)> =
        sqlx::query_as("select reference_id, id from inventory.reservations order by reference_id")
            .fetch_all(&inv.db.pool)
            .await?;
    let want =
        vec![("r1".to_owned(), r1.uuid()), ("r2".into(), r2.uuid()), ("r3".into(), r3.uuid())];
    assert_eq!(rows, want, "one row per hold, none for refused references");
    for (id, q) in [(r1, 2), (r2, 1), (r3, 3)] {
        let hold = inv.reservation(&id.to_string()).await?;
        assert_eq!(hold.items.iter().map(|i| i.quantity).sum::<i32>(), q);
    }

    // A later batch retrying r1 finds the committed-or-pending hold from outside the batch. r3
    // holds the request that took the claim over (A x 3), not the refused one (A x 100).
    let again = store
        .reserve_batch(&[
            req("r1", &[("A", 2)])?,
            req("r6", &[("A", 1)])?,
            req("r3", &[("A", 3)])?,
            req("r3", &[("A", 100)])?,
        ])
        .await?;
    assert_eq!(
        again[0].as_ref().ok(),
        Some(&ReserveOutcome::Existing(r1, ReservationStatus::Pending))
    );
    assert!(matches!(again[1], Ok(ReserveOutcome::Reserved(_))));
    assert_eq!(
        again[2].as_ref().ok(),
        Some(&ReserveOutcome::Existing(r3, ReservationStatus::Pending))
    );
    assert!(matches!(again[3], Err(InventoryError::ReferenceInUse(_))), "{:?}", again[3]);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

/// Concurrent calls through a batching store, with a single worker so that batches form:
/// exactly the stock is sold and each caller's answer is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_store_answers_each_caller() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("HOT", 30).await?;
    let store = Store::new(inv.db.pool.clone())
        .with_reserve_batching(ReserveBatching { workers: 1, max_batch: 8 });
    let calls = (0..120).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            // Every fourth caller retries the previous caller's reference.
            let reference = format!("o-{}", if i % 4 == 3 { i - 1 } else { i });
            let r = req(&reference, &[("HOT", 1)])?;
            anyhow::Ok((reference, store.reserve(&r).await?))
        })
    });
    let mut holds: std::collections::HashMap<String, _> = Default::default();
    let mut reserved = 0;
    for call in futures::future::join_all(calls).await {
        let (reference, outcome) = call??;
        match outcome {
            ReserveOutcome::Reserved(id) | ReserveOutcome::Existing(id, _) => {
                if matches!(outcome, ReserveOutcome::Reserved(_)) {
                    reserved += 1;
                }
                let first = holds.entry(reference.clone()).or_insert(id);
                anyhow::ensure!(*first == id, "{reference}: two holds");
            }
            ReserveOutcome::Short(_) => {}
            ReserveOutcome::ReservedOnBackorder(id) => {
                anyhow::bail!("{id} on backorder without a policy")
            }
        }
    }
    assert_eq!(reserved, 30);
    assert_eq!(inv.item("HOT").await?.reserved, 30);
    // Calls queued behind the batch in flight went into shared transactions: holds written
    // by one transaction share its xmin.
    let (rows, transactions): (i64, i64) =
        sqlx::query_as("select count(*), count(distinct xmin::text) from inventory.reservations")
            .fetch_one(&inv.db.pool)
            .await?;
    assert_eq!(rows, 30);
    assert!(transactions < rows, "{rows} holds in {transactions} transactions");
    assert!(inv.ledger_violations().await?.is_empty());

    // Commit one; a retry of its reference still returns it.
    let (reference, id) = holds
        .iter()
        .next()
        .map(|(r, id)| (r.clone(), *id))
        .ok_or_else(|| anyhow::anyhow!("no hold"))?;
    let commit = pb::CommitReservationRequest { reservation_id: id.to_string() };
    assert!(inv.client.clone().commit_reservation(commit).await?.into_inner().success);
    let again = store.reserve(&req(&reference, &[("HOT", 1)])?).await?;
    assert_eq!(again, ReserveOutcome::Existing(id, ReservationStatus::Committed));
    Ok(())
}
