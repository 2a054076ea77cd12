//! A consumer that disconnects at random points and resumes from its last position, against
//! two replicas writing at once, one of them killed with SIGKILL and restarted mid-run: it
//! receives every event exactly once, in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proto::inventory::v1::{self as pb, inventory_service_client::InventoryServiceClient};
use system_tests::TestDb;
use system_tests::chaos::procs::Server;
use system_tests::chaos::rng::Rng;
use test_support::binary::free_port;
use tokio_stream::StreamExt;

use super::settled_head;

const SKUS: [&str; 4] = ["A", "B", "C", "D"];

fn replica(db: &TestDb, addr: SocketAddr, logs: &std::path::Path) -> anyhow::Result<Server> {
    let envs = [
        ("DATABASE_URL", db.url.clone()),
        ("GRPC_ADDR", addr.to_string()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("ADMIN_AUTH_DISABLED", "true".to_owned()),
        ("EVENTS_RELAY_INTERVAL_MS", "20".to_owned()),
        ("SWEEP_INTERVAL_MS", "100".to_owned()),
    ];
    Server::new(
        "inventory-service",
        envs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        logs,
    )
}

fn client(addr: SocketAddr) -> anyhow::Result<InventoryServiceClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    Ok(InventoryServiceClient::new(channel))
}

async fn serving(addr: SocketAddr) -> anyhow::Result<()> {
    system_tests::wait_serving(addr, inventory_service::app::SERVICE_NAME, Duration::from_secs(60))
        .await
}

/// Stock changes and holds through either replica, errors ignored (a replica may be dead).
async fn write(addrs: [SocketAddr; 2], seed: u64, ops: u32) -> anyhow::Result<()> {
    let mut rng = Rng::new(seed);
    let clients = [client(addrs[0])?, client(addrs[1])?];
    for op in 0..ops {
        let mut c = clients[rng.index(2)].clone();
        let sku = SKUS[rng.index(SKUS.len())];
        if rng.chance(30) {
            let on_hand = i32::try_from(rng.range(20, 60))?;
            let _ = c
                .upsert_inventory_item(pb::UpsertInventoryItemRequest {
                    sku: sku.into(),
                    product_id: format!("p-{sku}"),
                    on_hand,
                    ..Default::default()
                })
                .await;
            continue;
        }
        let reserved = c
            .reserve_inventory(system_tests::reserve_request(&format!("{seed}-{op}"), &[(sku, 1)]))
            .await;
        let Ok(reserved) = reserved.map(tonic::Response::into_inner) else { continue };
        if !reserved.success {
            continue;
        }
        let id = reserved.reservation_id;
        let _ = if rng.chance(50) {
            c.commit_reservation(pb::CommitReservationRequest { reservation_id: id.clone() }).await
        } else {
            c.cancel_reservation(pb::CancelReservationRequest::by_id(&id)).await
        };
    }
    Ok(())
}

/// What the consumer saw: each event's (position, type, aggregate), and every break in the
/// sequence.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<(u64, String, String)>,
    breaks: Vec<String>,
    reconnects: u32,
}

/// Reads a few events at a time from alternating replicas, resuming from its last position,
/// until it reached `target` (u64::MAX: not known yet).
async fn consume(addrs: [SocketAddr; 2], target: Arc<AtomicU64>, seed: u64) -> Seen {
    let mut rng = Rng::new(seed);
    let mut seen = Seen::default();
    let mut last = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let goal = target.load(Ordering::SeqCst);
        if last >= goal {
            return seen;
        }
        if tokio::time::Instant::now() > deadline {
            seen.breaks.push(format!("gave up at {last}, target {goal}"));
            return seen;
        }
        seen.reconnects += 1;
        let Ok(mut c) = client(addrs[rng.index(2)]) else { continue };
        let request = pb::WatchEventsRequest { from_position: last, ..Default::default() };
        let stream = match c.watch_events(request).await {
            Ok(stream) => stream.into_inner(),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Disconnects after a random number of events (or when the stream breaks).
        let mut stream = stream.take(rng.range(1, 40) as usize);
        while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await
        {
            let Ok(pb::WatchEventsResponse { event: Some(event) }) = next else { break };
            if event.position != last + 1 {
                seen.breaks.push(format!("after {last} came {}", event.position));
            }
            last = event.position;
            seen.events.push((event.position, event.r#type, event.aggregate_id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resuming_consumer_gets_every_event_once_in_order_across_a_kill_and_two_replicas()
-> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let logs = std::env::temp_dir().join(format!("events-resume-{}", db.name));
    std::fs::create_dir_all(&logs)?;
    let addrs: [SocketAddr; 2] =
        [([127, 0, 0, 1], free_port()?).into(), ([127, 0, 0, 1], free_port()?).into()];
    for dir in ["first", "second"] {
        std::fs::create_dir_all(logs.join(dir))?;
    }
    let mut first = replica(&db, addrs[0], &logs.join("first"))?;
    let mut second = replica(&db, addrs[1], &logs.join("second"))?;
    first.spawn()?;
    serving(addrs[0]).await?;
    second.spawn()?;
    serving(addrs[1]).await?;

    let mut seed = client(addrs[1])?;
    for sku in SKUS {
        seed.upsert_inventory_item(pb::UpsertInventoryItemRequest {
            sku: sku.into(),
            product_id: format!("p-{sku}"),
            on_hand: 40,
            ..Default::default()
        })
        .await?;
    }
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let consumer = tokio::spawn(consume(addrs, Arc::clone(&target), 7));
    let writers: Vec<_> = (0..3).map(|w| tokio::spawn(write(addrs, 100 + w, 60))).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.kill()?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.spawn()?;
    serving(addrs[0]).await?;
    for writer in writers {
        writer.await??;
    }

    let head = settled_head(&db.pool, "inventory").await?;
    target.store(head, Ordering::SeqCst);
    let seen = consumer.await?;
    first.kill()?;
    second.kill()?;
    assert!(seen.breaks.is_empty(), "{:?}", seen.breaks);
    assert!(head > 100, "too few events to mean anything: {head}");
    let logged: Vec<(i64, String, String)> = sqlx::query_as(
        "select position, type, aggregate_id from inventory.logged_events order by position",
    )
    .fetch_all(&db.pool)
    .await?;
    let logged: Vec<(u64, String, String)> =
        logged.into_iter().map(|(p, t, a)| (u64::try_from(p).unwrap_or(0), t, a)).collect();
    assert_eq!(logged.len(), usize::try_from(head)?, "positions have gaps");
    assert_eq!(seen.events, logged, "the consumer's events are not the log");
    assert!(seen.reconnects > 5, "the consumer never resumed: {}", seen.reconnects);
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}
