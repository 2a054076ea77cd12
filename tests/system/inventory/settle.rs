use proto::inventory::v1 as pb;
use system_tests::TestInventory;

async fn commit(inv: &TestInventory, id: &str) -> anyhow::Result<pb::ReservationResponse> {
    let req = pb::CommitReservationRequest { reservation_id: id.into() };
    Ok(inv.client.clone().commit_reservation(req).await?.into_inner())
}

async fn cancel(inv: &TestInventory, id: &str) -> anyhow::Result<pb::ReservationResponse> {
    let req = pb::CancelReservationRequest::by_id(id);
    Ok(inv.client.clone().cancel_reservation(req).await?.into_inner())
}

#[tokio::test]
async fn commit_deducts_stock_and_repeating_it_is_success() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let id = inv.reserve("o-1", &[("A", 3)]).await?.reservation_id;

    let first = commit(&inv, &id).await?;
    assert!(first.success, "{}", first.message);
    assert_eq!(first.reservation_id, id);
    let item = inv.item("A").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (7, 0, 7));
    assert_eq!(inv.reservation(&id).await?.status, "COMMITTED");

    let again = commit(&inv, &id).await?;
    assert!(again.success);
    assert!(again.message.contains("already committed"), "{}", again.message);
    assert_eq!(inv.item("A").await?.on_hand, 7, "a repeated commit deducts nothing");
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn cancel_releases_and_repeating_it_is_success() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let id = inv.reserve("o-1", &[("A", 3)]).await?.reservation_id;

    assert!(cancel(&inv, &id).await?.success);
    let item = inv.item("A").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (10, 0, 10));
    assert_eq!(inv.reservation(&id).await?.status, "CANCELLED");
    let again = cancel(&inv, &id).await?;
    assert!(again.success);
    assert!(again.message.contains("already cancelled"), "{}", again.message);
    assert_eq!(inv.item("A").await?.reserved, 0);
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn refused_transitions_say_why() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let committed = inv.reserve("o-1", &[("A", 1)]).await?.reservation_id;
    commit(&inv, &committed).await?;
    let cancelled = inv.reserve("o-2", &[("A", 1)]).await?.reservation_id;
    cancel(&inv, &cancelled).await?;

    let resp = cancel(&inv, &committed).await?;
    assert!(!resp.success);
    assert_eq!(resp.message, "cannot cancel a reservation that is committed");
    let resp = commit(&inv, &cancelled).await?;
    assert!(!resp.success);
    assert_eq!(resp.message, "cannot commit a reservation that is cancelled");
    let item = inv.item("A").await?;
    assert_eq!((item.on_hand, item.reserved), (9, 0));
    Ok(())
}

#[tokio::test]
async fn a_lapsed_hold_cannot_be_committed_even_before_the_sweep() -> anyhow::Result<()> {
    let db = system_tests::TestDb::create().await?;
    let mut settings = system_tests::test_settings(&db.url);
    settings.sweep_interval_ms = 3_600_000; // the sweeper must not be the one releasing it
    let inv = TestInventory::start_with(db, settings).await?;
    inv.stock("A", 10).await?;
    let id = inv.reserve("o-1", &[("A", 4)]).await?.reservation_id;
    sqlx::query("update inventory.reservations set expires_at = now() - interval '1 second' where id = $1::uuid")
        .bind(&id)
        .execute(&inv.db.pool)
        .await?;

    let resp = commit(&inv, &id).await?;
    assert!(!resp.success);
    assert!(resp.message.contains("expired"), "{}", resp.message);
    assert_eq!(inv.reservation(&id).await?.status, "EXPIRED");
    let item = inv.item("A").await?;
    assert_eq!((item.on_hand, item.reserved), (10, 0));
    assert!(cancel(&inv, &id).await?.success, "cancelling an expired hold is success");
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn unknown_reservation_is_not_found() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let missing = uuid::Uuid::new_v4().to_string();
    for status in [
        commit(&inv, &missing).await.err(),
        cancel(&inv, &missing).await.err(),
        inv.reservation(&missing).await.err(),
    ] {
        let status = status.and_then(|e| e.downcast::<tonic::Status>().ok());
        assert_eq!(status.map(|s| s.code()), Some(tonic::Code::NotFound));
    }
    Ok(())
}
