//! The SQL allocation (`inventory.reserve_holds`: its fast path and its general algorithm)
//! against its reference model (`domain::allocation::allocate`): random small scenarios
//! through both, same answers; with and without stock policies (safety stock, backorder
//! limits: the model is given what each row offers and has in stock, the SQL reads the row's
//! policy itself), including which units each hold took on backorder.
//!
//! Each run draws a new seed (printed on failure); `DIFF_SEED=<n>` replays one.

use std::collections::BTreeMap;

use inventory_service::domain::allocation::{
    Allocation, LevelSnapshot, Line, Refusal, allocate, backordered,
};
use inventory_service::domain::commands::Reserve;
use inventory_service::domain::{HoldCaller, ItemRef, Quantity, Reference, WarehouseId};
use inventory_service::error::InventoryError;
use inventory_service::store::{ReserveOutcome, Store};
use sqlx::PgPool;
use system_tests::TestInventory;
use uuid::Uuid;

/// Warehouse names whose byte order differs from most collations' order (`B` < `a` < `b`,
/// `ä` last), plus one nobody stocks.
const WAREHOUSES: [&str; 6] = ["a", "B", "b", "east", "\u{e4}", "west"];
const NOWHERE: &str = "nowhere";

/// xorshift64*: small, seedable, good enough to draw scenarios.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// How many times its usual rounds a run may go on while some answer is still too rare: a seed
/// that draws one kind of answer seldom (4 retries of a held reference in 120 batches) runs on
/// instead of failing, and a generator that never draws it still fails.
const MORE_ROUNDS: usize = 4;

/// Whether every answer of `wanted` was seen at least its number of times.
fn covered(seen: &BTreeMap<&str, usize>, wanted: &[(&str, usize)]) -> bool {
    wanted.iter().all(|(kind, least)| seen.get(kind).copied().unwrap_or(0) >= *least)
}

fn seed() -> u64 {
    std::env::var("DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        nanos | 1
    })
}

/// An item of a scenario: its SKU and id.
struct Item {
    sku: String,
    id: Uuid,
}

/// What scenarios look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Anything: items by SKU or id, 0-3 stock rows per item.
    Any,
    /// Mostly the SQL fast path's shape: items named by SKU with one stock row each (now and
    /// then none, or a line naming an unknown SKU, so its fallbacks run too).
    OneRowBySku,
}

/// Creates 1-3 items with 0-3 stock rows each (random on_hand and reserved, rows inserted
/// in random warehouse order so row ids and warehouse names disagree); with
/// `Shape::OneRowBySku` every item has one row (rarely none) and a plain SKU. With `policies`,
/// about 40% of the rows keep a random safety stock back (now and then more than is free), and
/// about half may sell a few units beyond on_hand (a backorder limit).
async fn stock(
    pool: &PgPool,
    rng: &mut Rng,
    tag: &str,
    shape: Shape,
    policies: bool,
) -> anyhow::Result<Vec<Item>> {
    let mut items: Vec<Item> = Vec::new();
    for i in 0..1 + rng.below(3) {
        // Now and then a UUID-shaped SKU: another item's id (a line naming it resolves to
        // that other item when it has stock rows, else to this one).
        let sku = if shape == Shape::Any && i > 0 && rng.chance(20) {
            items[i - 1].id.hyphenated().to_string()
        } else {
            format!("{tag}-{i}")
        };
        let item = Item { sku, id: Uuid::new_v4() };
        sqlx::query("insert into inventory.items (id, sku, product_id) values ($1, $2, 'p')")
            .bind(item.id)
            .bind(&item.sku)
            .execute(pool)
            .await?;
        let mut warehouses: Vec<&str> = WAREHOUSES.to_vec();
        let rows = match shape {
            _ if rng.chance(10) => 0,
            Shape::Any => 1 + rng.below(3),
            Shape::OneRowBySku => 1,
        };
        for _ in 0..rows {
            let wh = warehouses.swap_remove(rng.below(warehouses.len()));
            // Small numbers make ties and exact fits common; with the fast path's shape, now
            // and then plenty, so whole batches fit.
            let on_hand = match shape {
                Shape::OneRowBySku if rng.chance(50) => 20 + rng.below(20) as i32,
                _ => rng.below(12) as i32,
            };
            let reserved = if rng.chance(30) { rng.below(on_hand as usize + 1) as i32 } else { 0 };
            let safety_stock = if policies && rng.chance(40) {
                rng.below(on_hand as usize / 2 + 3) as i32
            } else {
                0
            };
            let backorder_limit = if policies && rng.chance(50) { rng.below(9) as i32 } else { 0 };
            sqlx::query(
                "insert into inventory.stock_levels
                        (item_id, warehouse_id, on_hand, reserved, safety_stock, backorder_limit)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(item.id)
            .bind(wh)
            .bind(on_hand)
            .bind(reserved)
            .bind(safety_stock)
            .bind(backorder_limit)
            .execute(pool)
            .await?;
        }
        items.push(item);
    }
    Ok(items)
}

/// 1-4 random lines over `items`, sometimes naming an unknown item, an item by id (in any
/// spelling a UUID parses from; never with `Shape::OneRowBySku`), a warehouse, or a
/// warehouse nobody stocks.
fn lines(rng: &mut Rng, items: &[Item], tag: &str, shape: Shape) -> anyhow::Result<Vec<Line>> {
    let mut lines = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let text = if rng.chance(4) {
            format!("{tag}-ghost")
        } else {
            let item = &items[rng.below(items.len())];
            match if shape == Shape::Any { rng.below(6) } else { 5 } {
                0 => item.id.hyphenated().to_string(),
                1 => item.id.simple().to_string(),
                2 => item.id.hyphenated().to_string().to_uppercase(),
                _ => item.sku.clone(),
            }
        };
        let warehouse = match rng.below(10) {
            0..=5 => None,
            6 => Some(NOWHERE),
            _ => Some(WAREHOUSES[rng.below(WAREHOUSES.len())]),
        };
        lines.push(Line {
            item: ItemRef::parse("item", &text).map_err(|v| anyhow::anyhow!("{v:?}"))?,
            warehouse: warehouse
                .map(|w| WarehouseId::parse("warehouse", w))
                .transpose()
                .map_err(|v| anyhow::anyhow!("{v:?}"))?,
            quantity: Quantity::parse("quantity", 1 + rng.below(5) as i32)
                .map_err(|v| anyhow::anyhow!("{v:?}"))?,
        });
    }
    Ok(lines)
}

fn reserve(lines: Vec<Line>, reference: &str) -> anyhow::Result<Reserve> {
    Ok(Reserve {
        lines,
        reference: Reference::parse("DIFF", reference).map_err(|v| anyhow::anyhow!("{v:?}"))?,
        expires_in_minutes: 30,
        caller: HoldCaller::anonymous(),
    })
}

/// The stock rows of `items` as the store locks them: by ascending id, each offering what it
/// does not hold or keep back, and what it may sell on backorder (negative when safety stock
/// exceeds both).
async fn snapshot(pool: &PgPool, items: &[Item]) -> anyhow::Result<Vec<LevelSnapshot>> {
    let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
    let rows = sqlx::query_as::<_, (i64, Uuid, String, String, i32)>(
        "select sl.id, i.id, i.sku, sl.warehouse_id,
                sl.on_hand - sl.reserved - sl.safety_stock + sl.backorder_limit
           from inventory.stock_levels sl join inventory.items i on i.id = sl.item_id
          where i.id = any($1) order by sl.id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(level_id, item_id, sku, warehouse_id, available)| LevelSnapshot {
            level_id,
            item_id,
            sku,
            warehouse_id,
            available,
        })
        .collect())
}

/// What each row of `levels` has in stock (on_hand - reserved - safety_stock, maybe negative).
async fn in_stock(pool: &PgPool, levels: &[LevelSnapshot]) -> anyhow::Result<BTreeMap<i64, i64>> {
    let ids: Vec<i64> = levels.iter().map(|l| l.level_id).collect();
    let rows = sqlx::query_as::<_, (i64, i64)>(
        "select id, (on_hand - reserved - safety_stock)::bigint from inventory.stock_levels
          where id = any($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What a hold took, per stock row, and of that the units on backorder.
async fn taken(pool: &PgPool, hold: Uuid) -> anyhow::Result<(Allocation, BTreeMap<i64, i32>)> {
    let rows = sqlx::query_as::<_, (i64, i32, i32)>(
        "select stock_level_id, quantity, backordered from inventory.reservation_items
          where reservation_id = $1",
    )
    .bind(hold)
    .fetch_all(pool)
    .await?;
    Ok((
        rows.iter().map(|(row, q, _)| (*row, *q)).collect(),
        rows.iter().map(|(row, _, bo)| (*row, *bo)).collect(),
    ))
}

/// The model's answer to one request, as the store's answer should look.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    /// The rows' units, and of them the units on backorder.
    Took(Allocation, BTreeMap<i64, i32>),
    Unknown(String),
    Short(Vec<inventory_service::domain::allocation::Shortage>),
    /// A retry of a reference an earlier request of the batch holds (index of that request).
    Same(usize),
    /// Other lines under a reference an earlier request of the batch holds: refused.
    InUse,
}

/// Compares one store answer with the model's; returns the hold id of a success.
async fn check(
    pool: &PgPool,
    context: &str,
    got: &Result<ReserveOutcome, InventoryError>,
    want: &Expected,
    holds: &[Option<Uuid>],
) -> anyhow::Result<Option<Uuid>> {
    match (got, want) {
        (
            Ok(ReserveOutcome::Reserved(id) | ReserveOutcome::ReservedOnBackorder(id)),
            Expected::Took(allocation, backordered),
        ) => {
            let (took, on_backorder) = taken(pool, id.uuid()).await?;
            anyhow::ensure!(&took == allocation, "{context}: took {took:?}, model {allocation:?}");
            anyhow::ensure!(
                &on_backorder == backordered,
                "{context}: backordered {on_backorder:?}, model {backordered:?}"
            );
            // The answer says whether any unit is on backorder.
            let flagged = matches!(got, Ok(ReserveOutcome::ReservedOnBackorder(_)));
            anyhow::ensure!(
                flagged == backordered.values().any(|&n| n > 0),
                "{context}: answered {got:?} for backordered {backordered:?}"
            );
            Ok(Some(id.uuid()))
        }
        (Ok(ReserveOutcome::Existing(id, _)), Expected::Same(k)) => {
            anyhow::ensure!(Some(id.uuid()) == holds[*k], "{context}: retry got another hold");
            Ok(None)
        }
        (Err(InventoryError::ReferenceInUse(_)), Expected::InUse) => Ok(None),
        (Err(InventoryError::NotFound { key, .. }), Expected::Unknown(refs)) => {
            anyhow::ensure!(key == refs, "{context}: unknown {key:?}, model {refs:?}");
            Ok(None)
        }
        (Ok(ReserveOutcome::Short(shortages)), Expected::Short(model)) => {
            anyhow::ensure!(shortages == model, "{context}: short {shortages:?}, model {model:?}");
            Ok(None)
        }
        (got, want) => anyhow::bail!("{context}: store {got:?}, model {want:?}"),
    }
}

/// Runs the model over `reqs` one after the other on `levels` (and what each row has in
/// stock), as a batch must behave.
fn model(
    reqs: &[Reserve],
    levels: &mut [LevelSnapshot],
    in_stock: &mut BTreeMap<i64, i64>,
) -> Vec<Expected> {
    let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (k, req) in reqs.iter().enumerate() {
        if let Some(&first) = holders.get(req.reference.id.as_str()) {
            let same = reqs[first].fingerprint() == req.fingerprint();
            out.push(if same { Expected::Same(first) } else { Expected::InUse });
            continue;
        }
        out.push(match allocate(&req.lines, levels) {
            Ok(allocation) => {
                let on_backorder = backordered(&allocation, in_stock);
                for level in levels.iter_mut() {
                    let units = allocation.get(&level.level_id).copied().unwrap_or(0);
                    level.available -= units;
                    *in_stock.entry(level.level_id).or_default() -= i64::from(units);
                }
                holders.insert(req.reference.id.as_str(), k);
                Expected::Took(allocation, on_backorder)
            }
            Err(Refusal::UnknownItems(refs)) => Expected::Unknown(refs.join(", ")),
            Err(Refusal::Short(shortages)) => Expected::Short(shortages),
        });
    }
    out
}

/// Checks that the rows' reserved went up by exactly what the holds took, and that no
/// refused request left a claim behind.
async fn check_totals(
    pool: &PgPool,
    context: &str,
    before: &[LevelSnapshot],
    after: &[LevelSnapshot],
    refs: &[&str],
    holds: usize,
) -> anyhow::Result<()> {
    let model: Vec<(i64, i32)> = after.iter().map(|l| (l.level_id, l.available)).collect();
    let items: Vec<Uuid> = before.iter().map(|l| l.item_id).collect();
    let rows = sqlx::query_as::<_, (i64, i32)>(
        "select id, on_hand - reserved - safety_stock + backorder_limit from inventory.stock_levels
          where item_id = any($1) order by id",
    )
    .bind(&items)
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(rows == model, "{context}: levels {rows:?}, model {model:?}");
    let live: i64 = sqlx::query_scalar(
        "select count(*) from inventory.reservations
          where reference_type = 'DIFF' and reference_id = any($1)",
    )
    .bind(refs)
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(live == holds as i64, "{context}: {live} reservation rows, {holds} holds");
    Ok(())
}

#[tokio::test]
async fn sql_allocation_matches_the_model_one_request_at_a_time() -> anyhow::Result<()> {
    one_request_at_a_time(Shape::Any, "s", false).await
}

#[tokio::test]
async fn sql_fast_path_matches_the_model() -> anyhow::Result<()> {
    one_request_at_a_time(Shape::OneRowBySku, "f", false).await
}

#[tokio::test]
async fn sql_allocation_with_stock_policies_matches_the_model() -> anyhow::Result<()> {
    one_request_at_a_time(Shape::Any, "ps", true).await
}

#[tokio::test]
async fn sql_fast_path_with_stock_policies_matches_the_model() -> anyhow::Result<()> {
    one_request_at_a_time(Shape::OneRowBySku, "pf", true).await
}

async fn one_request_at_a_time(shape: Shape, prefix: &str, policies: bool) -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let pool = inv.db.pool.clone();
    let store = Store::new(pool.clone());
    let seed = seed();
    let mut rng = Rng(seed);
    let mut seen = BTreeMap::new();
    // Backordered holds are rarer on the fast path's shape: more scenarios with policies.
    let rounds = if policies { 400 } else { 250 };
    // The scenarios must exercise every answer, or the comparison proves little.
    let mut wanted = vec![("took", 10), ("short", 10), ("unknown", 10)];
    if policies {
        wanted.push(("took_on_backorder", 3));
    }
    let mut n = 0;
    while n < rounds || (!covered(&seen, &wanted) && n < rounds * MORE_ROUNDS) {
        let tag = format!("{prefix}{n}");
        let context = format!("seed {seed}, scenario {n}");
        let items = stock(&pool, &mut rng, &tag, shape, policies).await?;
        let req = reserve(lines(&mut rng, &items, &tag, shape)?, &tag)?;
        let before = snapshot(&pool, &items).await?;
        let mut after = before.clone();
        let mut stocked = in_stock(&pool, &before).await?;
        let want = model(std::slice::from_ref(&req), &mut after, &mut stocked);
        let got = store.reserve(&req).await;
        let context = format!("{context}, lines {:?}, levels {before:?}", req.lines);
        let hold = check(&pool, &context, &got, &want[0], &[]).await?;
        *seen.entry(kind(&want[0])).or_insert(0) += 1;
        check_totals(
            &pool,
            &context,
            &before,
            &after,
            &[tag.as_str()],
            usize::from(hold.is_some()),
        )
        .await?;
        n += 1;
    }
    assert!(covered(&seen, &wanted), "seed {seed}, {n} scenarios: {seen:?}");
    eprintln!("seed {seed}, {n} scenarios: {seen:?}");
    Ok(())
}

fn kind(e: &Expected) -> &'static str {
    match e {
        Expected::Took(_, on_backorder) if on_backorder.values().any(|&n| n > 0) => {
            "took_on_backorder"
        }
        Expected::Took(..) => "took",
        Expected::Unknown(_) => "unknown",
        Expected::Short(_) => "short",
        Expected::Same(_) => "same",
        Expected::InUse => "in_use",
    }
}

#[tokio::test]
async fn sql_batches_match_the_model_run_one_after_the_other() -> anyhow::Result<()> {
    batches(Shape::Any, "b", false).await
}

#[tokio::test]
async fn sql_fast_path_batches_match_the_model() -> anyhow::Result<()> {
    batches(Shape::OneRowBySku, "fb", false).await
}

#[tokio::test]
async fn sql_batches_with_stock_policies_match_the_model() -> anyhow::Result<()> {
    batches(Shape::Any, "pb", true).await
}

#[tokio::test]
async fn sql_fast_path_batches_with_stock_policies_match_the_model() -> anyhow::Result<()> {
    batches(Shape::OneRowBySku, "pfb", true).await
}

async fn batches(shape: Shape, prefix: &str, policies: bool) -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let pool = inv.db.pool.clone();
    let store = Store::new(pool.clone());
    let seed = seed();
    let mut rng = Rng(seed);
    let mut seen = BTreeMap::new();
    // Safety stock refuses more, so fewer holds to retry: more batches keep every answer
    // common enough to count.
    let rounds = if policies { 180 } else { 120 };
    let mut wanted = vec![("took", 5), ("short", 5), ("unknown", 5), ("same", 5), ("in_use", 5)];
    if policies {
        wanted.push(("took_on_backorder", 3));
    }
    let mut n = 0;
    while n < rounds || (!covered(&seen, &wanted) && n < rounds * MORE_ROUNDS) {
        let tag = format!("{prefix}{n}");
        let items = stock(&pool, &mut rng, &tag, shape, policies).await?;
        // 1-6 requests on the same items; some retry an earlier reference of the batch.
        let mut refs: Vec<String> = Vec::new();
        let mut reqs = Vec::new();
        for k in 0..1 + rng.below(6) {
            if k > 0 && rng.chance(40) {
                // A retry of an earlier reference: half of them the very same request.
                let earlier: &Reserve = &reqs[rng.below(reqs.len())];
                let reference = earlier.reference.id.clone();
                let lines = if rng.chance(50) {
                    earlier.lines.clone()
                } else {
                    lines(&mut rng, &items, &tag, shape)?
                };
                reqs.push(reserve(lines, &reference)?);
                refs.push(reference);
                continue;
            }
            let reference = format!("{tag}-r{k}");
            reqs.push(reserve(lines(&mut rng, &items, &tag, shape)?, &reference)?);
            refs.push(reference);
        }
        let before = snapshot(&pool, &items).await?;
        let mut after = before.clone();
        let mut stocked = in_stock(&pool, &before).await?;
        let want = model(&reqs, &mut after, &mut stocked);
        let got = store.reserve_batch(&reqs).await?;
        anyhow::ensure!(got.len() == reqs.len(), "one answer per request");
        let context = format!("seed {seed}, batch {n}, levels {before:?}");
        let mut holds: Vec<Option<Uuid>> = Vec::new();
        for (k, (got, want)) in got.iter().zip(&want).enumerate() {
            let context = format!("{context}, request {k} {:?}", reqs[k]);
            holds.push(check(&pool, &context, got, want, &holds).await?);
            *seen.entry(kind(want)).or_insert(0) += 1;
        }
        let distinct: Vec<&str> = refs.iter().map(String::as_str).collect();
        let held = holds.iter().flatten().count();
        check_totals(&pool, &context, &before, &after, &distinct, held).await?;
        n += 1;
    }
    assert!(covered(&seen, &wanted), "seed {seed}, {n} batches: {seen:?}");
    eprintln!("seed {seed}, {n} batches: {seen:?}");
    Ok(())
}
