//! The limits of WatchEvents: retention's horizon and positions the log never had are
//! OUT_OF_RANGE, a consumer that stops reading is ended instead of buffered without bound,
//! watchers are capped, a stop ends streams, and the order log is an operator's.

use std::time::Duration;

use proto::inventory::v1 as pb;
use system_tests::{TestDb, TestInventory, metric_value, test_settings};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use super::{inventory_events, settled_head};

fn watch_from(from_position: u64) -> pb::WatchEventsRequest {
    pb::WatchEventsRequest { from_position, ..Default::default() }
}

/// The ErrorInfo reason and one metadata value of `status`.
fn reason(status: &tonic::Status, key: &str) -> (String, String) {
    match status.get_details_error_info() {
        Some(info) => (info.reason, info.metadata.get(key).cloned().unwrap_or_default()),
        None => (String::new(), String::new()),
    }
}

/// Waits until inventory's retention has removed every position through `position`.
async fn removed_through(pool: &sqlx::PgPool, position: i64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>("select removed_through from inventory.event_log")
        .fetch_one(pool)
        .await?
        < position
    {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "retention removed nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn positions_retention_removed_or_the_log_never_had_are_out_of_range() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.retention_interval_ms = 50;
    settings.events.event_retention_days = 1;
    let inventory = TestInventory::start_with(db, settings).await?;
    let mut client = inventory.client.clone();
    for on_hand in 1..=5 {
        inventory.stock("WIDGET", on_hand).await?;
    }
    settled_head(&inventory.db.pool, "inventory").await?;
    // The first three were logged two days ago: retention removes them.
    sqlx::query(
        "update inventory.events set published_at = now() - interval '2 days' where position <= 3",
    )
    .execute(&inventory.db.pool)
    .await?;
    removed_through(&inventory.db.pool, 3).await?;

    for from in [0, 2] {
        let status = client.watch_events(watch_from(from)).await.map(|_| ()).unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert_eq!(reason(&status, "oldest_position"), ("EVENTS_REMOVED".into(), "4".into()));
    }
    // From the last removed position on, nothing is missing.
    let events = inventory_events(&mut client, 3, &[], 2).await?;
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), [4, 5]);

    let status = client.watch_events(watch_from(99)).await.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(reason(&status, "last_position"), ("POSITION_AHEAD_OF_LOG".into(), "5".into()));
    Ok(())
}

#[tokio::test]
async fn a_consumer_that_stops_reading_is_ended_with_its_resume_position() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.events.events_buffer = 8;
    settings.events.events_slow_consumer_timeout_ms = 300;
    let inventory = TestInventory::start_with(db, settings).await?;
    inventory.stock("WIDGET", 1).await?;
    // HTTP/2's smallest windows, so flow control stops the server soon.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", inventory.addr))?
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await?;
    let mut stream = pb::inventory_service_client::InventoryServiceClient::new(channel)
        .watch_events(watch_from(0))
        .await?
        .into_inner();
    // Far more than HTTP/2's windows and the queue hold: 100 rows x 60 statements.
    sqlx::raw_sql(
        "insert into inventory.items (id, sku, product_id)
             select gen_random_uuid(), 'S' || g, 'p' from generate_series(1, 100) g;
         insert into inventory.stock_levels (item_id, warehouse_id, on_hand)
             select id, 'default', 0 from inventory.items where sku like 'S%';",
    )
    .execute(&inventory.db.pool)
    .await?;
    for _ in 0..60 {
        sqlx::query(
            "update inventory.stock_levels set on_hand = on_hand + 1
              where item_id in (select id from inventory.items where sku like 'S%')",
        )
        .execute(&inventory.db.pool)
        .await?;
    }
    let head = settled_head(&inventory.db.pool, "inventory").await?;
    assert!(head > 6_000);
    // Not reading: the feed fills the queue and gives up after the timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = inventory.metrics_text().await?;
        if metric_value(&page, "inventory_event_streams_ended_total{reason=\"too_slow\"}") >= 1.0 {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the slow consumer was kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What was queued arrives, then the status naming where to resume.
    let mut last = 0;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
            Some(Ok(pb::WatchEventsResponse { event: Some(event) })) => {
                assert_eq!(event.position, last + 1);
                last = event.position;
            }
            Some(Ok(_)) => anyhow::bail!("a response without an event"),
            Some(Err(status)) => break status,
            None => anyhow::bail!("the stream ended OK"),
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status, "resume_after"), ("CONSUMER_TOO_SLOW".into(), last.to_string()));
    assert!(last < head, "the server held the whole log for a consumer that did not read");
    let page = inventory.metrics_text().await?;
    assert_eq!(metric_value(&page, "inventory_event_watchers"), 0.0);
    Ok(())
}

#[tokio::test]
async fn watchers_beyond_the_cap_are_refused_until_one_leaves() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.events.events_max_watchers = 2;
    let inventory = TestInventory::start_with(db, settings).await?;
    let mut client = inventory.client.clone();
    let one = client.watch_events(watch_from(0)).await?;
    let two = client.watch_events(watch_from(0)).await?;
    let status = client.watch_events(watch_from(0)).await.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status, "max"), ("TOO_MANY_WATCHERS".into(), "2".into()));
    drop(one);
    drop(two);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.watch_events(watch_from(0)).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                anyhow::ensure!(tokio::time::Instant::now() < deadline, "slots never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => anyhow::bail!("{status:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_stop_ends_open_streams_unavailable_within_the_grace() -> anyhow::Result<()> {
    let mut inventory = TestInventory::start().await?;
    inventory.stock("WIDGET", 1).await?;
    let mut stream = inventory.client.clone().watch_events(watch_from(0)).await?.into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await?;
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    let stopped = inventory.begin_stop();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
            Some(Ok(_)) => {}
            Some(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                break;
            }
            None => anyhow::bail!("the stream ended OK at a stop"),
        }
    }
    if let Some(task) = stopped {
        tokio::time::timeout(Duration::from_secs(10), task).await???;
    }
    Ok(())
}

#[tokio::test]
async fn the_order_log_is_for_operators_only() -> anyhow::Result<()> {
    use proto::order::v1 as opb;
    let mut sys = system_tests::TestSystem::start_with(system_tests::SystemOptions {
        order_servers: 0,
        ..Default::default()
    })
    .await?;
    sys.order_settings.admin = common::auth::AdminAuthSettings::default();
    sys.start_order_server().await?;
    let status = sys
        .client()?
        .watch_events(opb::WatchEventsRequest::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    Ok(())
}

#[tokio::test]
async fn a_reserve_logged_as_one_row_is_resumed_inside_filtered_and_retired_whole()
-> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let mut settings = test_settings(&db.url);
    settings.retention_interval_ms = 50;
    settings.events.event_retention_days = 1;
    let inventory = TestInventory::start_with(db, settings).await?;
    let mut client = inventory.client.clone();
    for sku in ["A", "B", "C"] {
        inventory.stock(sku, 10).await?;
    }
    let held = inventory.reserve("o-1", &[("A", 1), ("B", 2), ("C", 3)]).await?;
    assert!(held.success, "{held:?}");
    let head = settled_head(&inventory.db.pool, "inventory").await?;
    assert_eq!(head, 7, "three stock rows created, then the hold and its three rows");
    // The reserve's four events are one log row (its statement wrote one outbox row).
    let rows: Vec<(i64, i32)> =
        sqlx::query_as("select position, n from inventory.events order by position")
            .fetch_all(&inventory.db.pool)
            .await?;
    assert_eq!(rows, [(1, 1), (2, 1), (3, 1), (7, 4)]);

    let whole = inventory_events(&mut client, 3, &[], 4).await?;
    let got: Vec<(u64, &str)> = whole.iter().map(|e| (e.position, e.r#type.as_str())).collect();
    assert_eq!(
        got,
        [
            (4, "reservation.created"),
            (5, "stock.changed"),
            (6, "stock.changed"),
            (7, "stock.changed")
        ]
    );
    // A consumer that stopped inside the row gets exactly the rest of it.
    for from in 4..7 {
        let rest = inventory_events(&mut client, from, &[], usize::try_from(7 - from)?).await?;
        assert_eq!(rest, whole[usize::try_from(from - 3)?..], "from {from}");
    }
    let stock = inventory_events(&mut client, 5, &["stock.changed"], 2).await?;
    assert_eq!(stock, whole[2..]);
    // The relay counts the row's events by type, as it would four rows.
    let page = inventory.metrics_text().await?;
    let published =
        |t: &str| metric_value(&page, &format!("inventory_events_published_total{{type=\"{t}\"}}"));
    assert_eq!((published("stock.changed"), published("reservation.created")), (6.0, 1.0));

    // Retention removes the row whole: every position in it is gone.
    sqlx::query("update inventory.events set published_at = now() - interval '2 days'")
        .execute(&inventory.db.pool)
        .await?;
    removed_through(&inventory.db.pool, 7).await?;
    let status = client.watch_events(watch_from(5)).await.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(reason(&status, "oldest_position"), ("EVENTS_REMOVED".into(), "8".into()));
    Ok(())
}
