//! Order changes and their events.

use proto::events::v1::{Event, event::Payload};
use proto::order::v1 as pb;
use system_tests::{TestSystem, order_request};
use tokio_stream::StreamExt;

use super::{settled_head, take};

async fn order_events(sys: &TestSystem, from: u64, n: usize) -> anyhow::Result<Vec<Event>> {
    let stream = sys
        .client()?
        .watch_events(pb::WatchEventsRequest { from_position: from, ..Default::default() })
        .await?
        .into_inner();
    take(stream.map(|r| r.map(|m| m.event)), n).await
}

/// Each order's status path through its events: created, then every status change, each
/// naming the status before it.
fn paths(events: &[Event]) -> Vec<(String, Vec<String>)> {
    let mut paths: Vec<(String, Vec<String>)> = Vec::new();
    for event in events {
        match &event.payload {
            Some(Payload::OrderCreated(c)) => {
                paths.push((c.order_id.clone(), vec![c.status.clone()]))
            }
            Some(Payload::OrderStatusChanged(s)) => {
                let path = paths.iter_mut().find(|(id, _)| *id == s.order_id);
                let Some((_, path)) = path else { panic!("a change before order.created: {s:?}") };
                assert_eq!(path.last(), Some(&s.previous_status), "{events:#?}");
                assert_eq!(event.r#type, format!("order.{}", s.status.to_lowercase()));
                path.push(s.status.clone());
            }
            other => panic!("not an order event: {other:?}"),
        }
    }
    paths
}

#[tokio::test]
async fn orders_write_created_and_each_status_change_with_its_reason() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 2).await?;
    let confirmed = sys.order("alice", &[("p-widget", 2)]).await??;
    assert_eq!(confirmed.status, "CONFIRMED");
    let mut declined = order_request("bob", &[("p-widget", 1)]);
    declined.payment_method = "card_decline".into();
    sys.stock("WIDGET", 1).await?;
    let failed = sys.create(declined).await??;
    assert_eq!(failed.status, "PAYMENT_FAILED");

    let head = settled_head(&sys.db.pool, "orders").await?;
    let events = order_events(&sys, 0, usize::try_from(head)?).await?;
    let paths = paths(&events);
    assert_eq!(paths.len(), 2, "{events:#?}");
    assert_eq!(paths[0].0, confirmed.id);
    assert_eq!(paths[0].1.first().map(String::as_str), Some("PENDING"));
    assert_eq!(paths[0].1.last().map(String::as_str), Some("CONFIRMED"));
    assert_eq!(paths[1].1.last().map(String::as_str), Some("PAYMENT_FAILED"));
    let created = events.iter().find_map(|e| match &e.payload {
        Some(Payload::OrderCreated(c)) if c.order_id == confirmed.id => Some(c),
        _ => None,
    });
    let created = created.ok_or_else(|| anyhow::anyhow!("no order.created"))?;
    assert_eq!((created.user_id.as_str(), created.lines.len()), ("alice", 1));
    assert_eq!((created.lines[0].sku.as_str(), created.lines[0].quantity), ("WIDGET", 2));
    assert_eq!(created.total_amount_minor, confirmed.total_amount_minor);
    let failure = events.iter().rev().find_map(|e| match &e.payload {
        Some(Payload::OrderStatusChanged(s)) if s.order_id == failed.id => Some(s),
        _ => None,
    });
    let failure = failure.ok_or_else(|| anyhow::anyhow!("no status change of the declined"))?;
    assert_eq!(failure.reason, failed.status_reason);
    assert_eq!(failure.payment_status, "DECLINED");
    Ok(())
}

#[tokio::test]
async fn an_order_rolled_back_mid_transaction_writes_no_event() -> anyhow::Result<()> {
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    // CreateOrder writes the order, its lines (whose trigger writes order.created) and its
    // first audit row in one statement; the audit row fails for this user.
    sqlx::raw_sql(
        "create function orders.fail_user() returns trigger language plpgsql as $$
         begin
             if exists (select 1 from orders.orders where id = new.order_id
                                                       and user_id = 'mallory') then
                 raise exception 'forced failure';
             end if;
             return new;
         end $$;
         create trigger fail_user after insert on orders.saga_steps
             for each row execute function orders.fail_user();",
    )
    .execute(&sys.db.pool)
    .await?;
    let refused = sys.order("mallory", &[("p-widget", 1)]).await?;
    assert!(refused.is_err(), "{refused:?}");
    let placed = sys.order("alice", &[("p-widget", 1)]).await??;
    let head = settled_head(&sys.db.pool, "orders").await?;
    let events = order_events(&sys, 0, usize::try_from(head)?).await?;
    let paths = paths(&events);
    assert_eq!(paths.len(), 1, "{events:#?}");
    assert_eq!(paths[0].0, placed.id);
    let orders: i64 =
        sqlx::query_scalar("select count(*) from orders.orders").fetch_one(&sys.db.pool).await?;
    assert_eq!(orders, 1);
    Ok(())
}
