use proto::inventory::v1 as pb;
use system_tests::{TestInventory, reserve_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_for_fifty_units_get_exactly_fifty() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("HOT", 50).await?;
    let clients: Vec<_> = (0..8).map(|_| inv.new_client()).collect::<Result<_, _>>()?;

    let attempts = (0..200).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        tokio::spawn(async move {
            client.reserve_inventory(reserve_request(&format!("buyer-{i}"), &[("HOT", 1)])).await
        })
    });
    let mut won = 0;
    let mut lost = 0;
    for handle in futures::future::join_all(attempts).await {
        let resp = handle??.into_inner();
        if resp.success {
            won += 1;
        } else {
            assert!(resp.message.contains("HOT: requested 1, available 0"), "{}", resp.message);
            lost += 1;
        }
    }
    assert_eq!((won, lost), (50, 150));
    let item = inv.item("HOT").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (50, 50, 0));
    let holds: i64 =
        sqlx::query_scalar("select count(*) from inventory.reservations where status = 'PENDING'")
            .fetch_one(&inv.db.pool)
            .await?;
    assert_eq!(holds, 50);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_sku_orders_never_deadlock() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("LEFT", 1_000).await?;
    inv.stock("RIGHT", 1_000).await?;
    let clients: Vec<_> = (0..8).map(|_| inv.new_client()).collect::<Result<_, _>>()?;

    let attempts = (0..100).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        let lines: &[(&str, i32)] =
            if i % 2 == 0 { &[("LEFT", 1), ("RIGHT", 1)] } else { &[("RIGHT", 1), ("LEFT", 1)] };
        let req = reserve_request(&format!("o-{i}"), lines);
        tokio::spawn(async move { client.reserve_inventory(req).await })
    });
    for handle in futures::future::join_all(attempts).await {
        let resp = handle??.into_inner();
        assert!(resp.success, "{}", resp.message);
    }
    assert_eq!(inv.item("LEFT").await?.reserved, 100);
    assert_eq!(inv.item("RIGHT").await?.reserved, 100);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_of_one_reference_share_one_hold() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 100).await?;
    let attempts = (0..30).map(|_| {
        let mut client = inv.client.clone();
        tokio::spawn(async move {
            client.reserve_inventory(reserve_request("order-9", &[("A", 2)])).await
        })
    });
    let mut ids = std::collections::HashSet::new();
    for handle in futures::future::join_all(attempts).await {
        let resp = handle??.into_inner();
        assert!(resp.success, "{}", resp.message);
        ids.insert(resp.reservation_id);
    }
    assert_eq!(ids.len(), 1, "every retry got the same reservation");
    assert_eq!(inv.item("A").await?.reserved, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_cancels_and_reserves_interleave_consistently() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 40).await?;
    inv.stock("B", 40).await?;
    let work = (0..60).map(|i| {
        let mut client = inv.client.clone();
        tokio::spawn(async move {
            let resp = client
                .reserve_inventory(reserve_request(&format!("o-{i}"), &[("A", 1), ("B", 1)]))
                .await?
                .into_inner();
            if !resp.success {
                return Ok::<_, tonic::Status>(None);
            }
            let id = resp.reservation_id;
            if i % 3 == 0 {
                client.cancel_reservation(pb::CancelReservationRequest::by_id(id)).await?;
                Ok(Some(false))
            } else {
                client
                    .commit_reservation(pb::CommitReservationRequest { reservation_id: id })
                    .await?;
                Ok(Some(true))
            }
        })
    });
    let mut committed = 0;
    for handle in futures::future::join_all(work).await {
        if handle??.unwrap_or(false) {
            committed += 1;
        }
    }
    let a = inv.item("A").await?;
    assert_eq!(a.reserved, 0);
    assert_eq!(a.on_hand, 40 - committed);
    assert!(inv.ledger_violations().await?.is_empty(), "{:?}", inv.ledger_violations().await?);
    Ok(())
}
