//! The transactional outbox and WatchEvents (issue 18): every change writes exactly one event
//! in its transaction, a rolled-back change none; a consumer resuming from its last position
//! sees every event once, in order (across kill -9 and two replicas); the limits (retention
//! horizon, slow consumers, watcher cap, shutdown) each have their answer.

mod inventory;
mod limits;
mod order;
mod resume;
mod shopctl;
mod watchers;

use std::time::Duration;

use proto::events::v1::{Event, event::Payload};
use proto::inventory::v1::{self as inv, inventory_service_client::InventoryServiceClient};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// `n` events after `from` from the inventory server, or fails after `within`.
pub(crate) async fn inventory_events(
    client: &mut InventoryServiceClient<Channel>,
    from: u64,
    types: &[&str],
    n: usize,
) -> anyhow::Result<Vec<Event>> {
    let stream = client
        .watch_events(inv::WatchEventsRequest {
            from_position: from,
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            from_now: false,
        })
        .await?
        .into_inner();
    take(stream.map(|r| r.map(|m| m.event)), n).await
}

/// The first `n` events of a WatchEvents stream (each response's event), within 20 s.
pub(crate) async fn take(
    mut stream: impl tokio_stream::Stream<Item = Result<Option<Event>, tonic::Status>> + Unpin,
    n: usize,
) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < n {
        let next = tokio::time::timeout_at(deadline, stream.next()).await.map_err(|_| {
            anyhow::anyhow!("only {} of {n} events within 20 s: {events:#?}", events.len())
        })?;
        match next {
            Some(Ok(Some(event))) => events.push(event),
            Some(Ok(None)) => anyhow::bail!("a response without an event"),
            Some(Err(status)) => anyhow::bail!("stream ended: {status:?} after {events:#?}"),
            None => anyhow::bail!("stream ended OK after {} events", events.len()),
        }
    }
    Ok(events)
}

/// The log's newest position, from the database.
pub(crate) async fn head(pool: &sqlx::PgPool, schema: &str) -> anyhow::Result<u64> {
    let last: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select last_position from {schema}.event_log"
    )))
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(last)?)
}

/// Waits until the relay has numbered everything written so far; returns the head.
pub(crate) async fn settled_head(pool: &sqlx::PgPool, schema: &str) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from {schema}.event_outbox"
        )))
        .fetch_one(pool)
        .await?;
        if pending == 0 {
            return head(pool, schema).await;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{pending} outbox rows stay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(type, aggregate_id)` of each event, for comparing sequences.
pub(crate) fn kinds(events: &[Event]) -> Vec<(String, String)> {
    events.iter().map(|e| (e.r#type.clone(), e.aggregate_id.clone())).collect()
}

/// The stock payload of `event`, as (on_hand, reserved, available).
pub(crate) fn levels(event: &Event) -> Option<(i32, i32, i32)> {
    match &event.payload {
        Some(Payload::StockChanged(s)) => Some((s.on_hand, s.reserved, s.available)),
        _ => None,
    }
}
