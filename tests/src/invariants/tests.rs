//! The checker against a quiet system, then against deliberate corruption of each kind.

use proto::inventory::v1 as inv;
use proto::payment::v1 as pay;

use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::{TestSystem, order_request};

const SWEEP: Duration = Duration::from_millis(100);

async fn pay(sys: &TestSystem, order_id: Uuid, amount: i64, key: &str) -> anyhow::Result<()> {
    let req = pay::ProcessPaymentRequest {
        order_id: order_id.to_string(),
        amount_minor: amount,
        currency: "EUR".into(),
        method: "card".into(),
        idempotency_key: key.into(),
    };
    let reply = sys.payment_client()?.process_payment(req).await?.into_inner();
    anyhow::ensure!(reply.status == "SUCCEEDED", "{reply:?}");
    Ok(())
}

fn has(violations: &[Violation], what: &str, pred: impl Fn(&Violation) -> bool) {
    assert!(
        violations.iter().any(pred),
        "expected a violation: {what}\nfound:\n{}",
        report(violations)
    );
}

/// A quiet system passes; each deliberate corruption is then reported, all in one check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_every_corruption() -> anyhow::Result<()> {
    let mut sys = TestSystem::start().await?;
    for (sku, qty) in [("WIDGET", 10), ("GADGET", 5), ("HOT", 3)] {
        sys.stock(sku, qty).await?;
    }
    let baseline = Baseline::capture(&sys.db.pool).await?;
    assert_eq!(baseline.on_hand.get("WIDGET"), Some(&10));

    let confirmed = sys.order("ana", &[("p-widget", 2)]).await?.expect("order placed");
    let hot = sys.order("bob", &[("p-hot", 1)]).await?.expect("order placed");
    let mut declined_req = order_request("cy", &[("p-gadget", 1)]);
    declined_req.payment_method = "card_decline".into();
    let declined = sys.create(declined_req).await?.expect("order placed");
    let returned = sys.order("dee", &[("p-widget", 3)]).await?.expect("order placed");
    for o in [&confirmed, &hot, &declined, &returned] {
        sys.wait_settled(&o.id).await?;
    }
    // A partial return, completed: stock and money follow it.
    let give_back = sys.return_order(&returned.id, "ret-1", &[("WIDGET", 1, false)]).await??;
    sys.wait_return_status(&give_back.id, "COMPLETED").await?;
    // An admin change during the run is part of the expected stock, not a drift.
    let adjust = inv::AdjustStockRequest {
        sku: "WIDGET".into(),
        warehouse_id: String::new(),
        delta: 3,
        reason: "found in the back".into(),
        idempotency_key: "adj-1".into(),
    };
    sys.inventory()?.client.clone().adjust_stock(adjust).await?;

    let clean = check(&sys.db.pool, &baseline, &sys.ledger, SWEEP).await?;
    assert!(clean.is_empty(), "a quiet system is clean:\n{}", report(&clean));
    assert_eq!(sys.inventory()?.item("WIDGET").await?.on_hand, 10 - 2 - 3 + 1 + 3);
    assert_eq!(sys.get(&declined.id).await?.status, "PAYMENT_FAILED");

    // Quiet for good: no sweeper or recovery worker may repair the corruption below.
    while let Some(order_server) = sys.orders.pop() {
        order_server.stop().await?;
    }
    sys.stop_inventory().await?;

    let confirmed_id = Uuid::parse_str(&confirmed.id)?;
    let hot_id = Uuid::parse_str(&hot.id)?;
    let declined_id = Uuid::parse_str(&declined.id)?;
    let pool = &sys.db.pool;
    let exec = |sql: &'static str| sqlx::query(sql);
    // a. on_hand moved without a movement.
    exec(
        "update inventory.stock_levels set on_hand = on_hand + 1
          where item_id = (select id from inventory.items where sku = 'WIDGET')",
    )
    .execute(pool)
    .await?;
    // b. reserved moved without a hold.
    exec(
        "update inventory.stock_levels set reserved = reserved + 1
          where item_id = (select id from inventory.items where sku = 'GADGET')",
    )
    .execute(pool)
    .await?;
    // c. a confirmed order's hold flipped to CANCELLED.
    sqlx::query("update inventory.reservations set status = 'CANCELLED' where id = $1")
        .bind(Uuid::parse_str(&confirmed.inventory_reservation_id)?)
        .execute(pool)
        .await?;
    // d. a confirmed order with a step left.
    sqlx::query("update orders.orders set next_action = 'commit' where id = $1")
        .bind(hot_id)
        .execute(pool)
        .await?;
    // e. a PENDING hold, expired an hour ago, for the declined order.
    let stale = Uuid::now_v7();
    sqlx::query(
        "insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
         values ($1, 'ORDER', $2, 'PENDING', now() - interval '1 hour')",
    )
    .bind(stale)
    .bind(declined_id.to_string())
    .execute(pool)
    .await?;
    // f. a live hold for an order that never existed.
    let orphan = Uuid::now_v7();
    sqlx::query(
        "insert into inventory.reservations (id, reference_type, reference_id, status, expires_at)
         values ($1, 'ORDER', $2, 'PENDING', now() + interval '1 hour')",
    )
    .bind(orphan)
    .bind(Uuid::now_v7().to_string())
    .execute(pool)
    .await?;
    // g. money: a second charge of a confirmed order, a charge of the declined one.
    pay(&sys, hot_id, 100, "rogue-1").await?;
    pay(&sys, declined_id, 1999, "rogue-2").await?;
    // h. an impossible stock row (the CHECK constraint has to go first).
    exec(
        "alter table inventory.stock_levels
           drop constraint stock_levels_reserved_within_on_hand",
    )
    .execute(pool)
    .await?;
    exec(
        "update inventory.stock_levels set reserved = on_hand + 2
          where item_id = (select id from inventory.items where sku = 'HOT')",
    )
    .execute(pool)
    .await?;

    // i. a completed return's refund raised by hand; j. the inventory's record of it lost.
    let returned_id = Uuid::parse_str(&returned.id)?;
    sqlx::query(
        "update orders.order_returns set refund_amount_minor = refund_amount_minor + 1
          where order_id = $1",
    )
    .bind(returned_id)
    .execute(pool)
    .await?;
    exec("delete from inventory.stock_return_lines").execute(pool).await?;

    // k. GADGET's row keeps 5 back after the declined order's reserve took 1 of its 5: as if
    //    that reserve had sold into safety stock.
    exec(
        "update inventory.stock_levels set safety_stock = 5
          where item_id = (select id from inventory.items where sku = 'GADGET')",
    )
    .execute(pool)
    .await?;

    let found = check(pool, &baseline, &sys.ledger, SWEEP).await?;
    println!("{}", report(&found));
    has(
        &found,
        "WIDGET drift",
        |v| matches!(v, Violation::StockDrift { sku, on_hand: 10, .. } if sku == "WIDGET"),
    );
    has(
        &found,
        "WIDGET ledger",
        |v| matches!(v, Violation::LedgerDrift { sku, .. } if sku == "WIDGET"),
    );
    has(
        &found,
        "GADGET reserved",
        |v| matches!(v, Violation::ReservedDrift { sku, reserved: 1, pending: 0, .. } if sku == "GADGET"),
    );
    has(
        &found,
        "GADGET ledger",
        |v| matches!(v, Violation::LedgerDrift { sku, .. } if sku == "GADGET"),
    );
    has(&found, "confirmed hold cancelled", |v| {
        matches!(v, Violation::ConfirmedHold { order_id, problem, .. }
            if *order_id == confirmed_id && problem.contains("CANCELLED"))
    });
    has(
        &found,
        "not terminal",
        |v| matches!(v, Violation::NotTerminal { order_id, .. } if *order_id == hot_id),
    );
    has(
        &found,
        "stale hold",
        |v| matches!(v, Violation::StaleHold { reservation_id, .. } if *reservation_id == stale),
    );
    has(&found, "declined order holds stock", |v| {
        matches!(v, Violation::SettledOrderHoldsStock { order_id, reservation_id, .. }
            if *order_id == declined_id && *reservation_id == stale)
    });
    has(&found, "GADGET sold into safety stock", |v| {
        matches!(v, Violation::SafetyStockSold { sku, on_hand: 5, reserved: 1, safety_stock: 5, .. }
            if sku == "GADGET")
    });
    has(
        &found,
        "orphan hold",
        |v| matches!(v, Violation::OrphanHold { reservation_id, .. } if *reservation_id == orphan),
    );
    has(&found, "charged twice", |v| {
        matches!(v, Violation::ConfirmedPayment { order_id, problem }
            if *order_id == hot_id && problem.contains("2 successful"))
    });
    has(&found, "declined order kept money", |v| {
        matches!(v, Violation::UnrefundedCharge { order_id, amount_minor: 1999, .. }
            if *order_id == declined.id)
    });
    has(&found, "return refund off its items", |v| {
        matches!(v, Violation::ReturnMismatch { order_id, problem }
            if *order_id == returned_id && problem.contains("its items come to"))
    });
    has(&found, "inventory lost the return", |v| {
        matches!(v, Violation::ReturnMismatch { order_id, problem }
            if *order_id == returned_id && problem.contains("the inventory took back {}"))
    });
    has(&found, "refund differs from the returns", |v| {
        matches!(v, Violation::ConfirmedPayment { order_id, problem }
            if *order_id == returned_id && problem.contains("completed returns come to"))
    });
    has(&found, "money drift", |v| matches!(v, Violation::MoneyDrift { .. }));
    has(
        &found,
        "impossible level",
        |v| matches!(v, Violation::ImpossibleLevel { sku, .. } if sku == "HOT"),
    );
    Ok(())
}
