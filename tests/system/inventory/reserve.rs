use proto::inventory::v1 as pb;
use system_tests::{TestInventory, reserve_request};

#[tokio::test]
async fn holds_units_and_records_them() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    inv.stock("B", 4).await?;

    let resp = inv.reserve("order-1", &[("A", 3), ("B", 4)]).await?;
    assert!(resp.success, "{}", resp.message);
    assert!(uuid::Uuid::parse_str(&resp.reservation_id).is_ok());

    let a = inv.item("A").await?;
    assert_eq!((a.on_hand, a.reserved, a.available), (10, 3, 7));
    let b = inv.item("B").await?;
    assert_eq!((b.on_hand, b.reserved, b.available), (4, 4, 0));

    let r = inv.reservation(&resp.reservation_id).await?;
    assert_eq!(r.status, "PENDING");
    assert_eq!((r.reference_type.as_str(), r.reference_id.as_str()), ("ORDER", "order-1"));
    let lines: Vec<(&str, &str, i32)> =
        r.items.iter().map(|i| (i.sku.as_str(), i.warehouse_id.as_str(), i.quantity)).collect();
    assert_eq!(lines, vec![("A", "default", 3), ("B", "default", 4)]);
    let expires = r.expires_at.map(|t| t.seconds).unwrap_or_default();
    let in_minutes = (expires - now_seconds()) / 60;
    assert!((29..=30).contains(&in_minutes), "default expiry is 30 minutes, got {in_minutes}");
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn short_stock_takes_nothing_and_names_each_short_sku() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    inv.stock("B", 1).await?;
    inv.stock("C", 0).await?;

    let resp = inv.reserve("order-1", &[("A", 3), ("B", 2), ("C", 1)]).await?;
    assert!(!resp.success);
    assert!(resp.reservation_id.is_empty());
    assert!(resp.message.contains("B: requested 2, available 1"), "{}", resp.message);
    assert!(resp.message.contains("C: requested 1, available 0"), "{}", resp.message);
    assert!(!resp.message.contains("A:"), "{}", resp.message);
    // The same figures, structured: what each short line asked and what was left for it.
    let short: Vec<(&str, i32, i32)> = resp
        .shortages
        .iter()
        .map(|s| (s.sku.as_str(), s.requested_quantity, s.available_quantity))
        .collect();
    assert_eq!(short, [("B", 2, 1), ("C", 1, 0)]);

    // All or nothing: A was not touched, and the reference is free for a later attempt.
    assert_eq!(inv.item("A").await?.reserved, 0);
    inv.stock("B", 2).await?;
    inv.stock("C", 1).await?;
    assert!(inv.reserve("order-1", &[("A", 3), ("B", 2), ("C", 1)]).await?.success);
    Ok(())
}

#[tokio::test]
async fn same_reference_returns_the_same_hold() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let first = inv.reserve("order-1", &[("A", 3)]).await?;
    let again = inv.reserve("order-1", &[("A", 3)]).await?;
    assert!(again.success);
    assert_eq!(first.reservation_id, again.reservation_id);
    assert_eq!(inv.item("A").await?.reserved, 3, "a retry never holds twice");

    // Still the same once committed; a new hold only after the old one ended.
    let mut client = inv.client.clone();
    let commit = pb::CommitReservationRequest { reservation_id: first.reservation_id.clone() };
    assert!(client.commit_reservation(commit).await?.into_inner().success);
    let after_commit = inv.reserve("order-1", &[("A", 3)]).await?;
    assert_eq!(after_commit.reservation_id, first.reservation_id);
    assert_eq!(inv.item("A").await?.on_hand, 7);

    // Another reference type with the same id is another hold.
    let mut other = reserve_request("order-1", &[("A", 1)]);
    other.reference_type = "CART".into();
    let cart = client.reserve_inventory(other).await?.into_inner();
    assert!(cart.success);
    assert_ne!(cart.reservation_id, first.reservation_id);
    Ok(())
}

#[tokio::test]
async fn a_cancelled_reference_can_hold_again() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    let first = inv.reserve("order-1", &[("A", 3)]).await?;
    let cancel = pb::CancelReservationRequest::by_id(first.reservation_id.clone());
    assert!(inv.client.clone().cancel_reservation(cancel).await?.into_inner().success);
    let second = inv.reserve("order-1", &[("A", 2)]).await?;
    assert!(second.success);
    assert_ne!(second.reservation_id, first.reservation_id);
    assert_eq!(inv.item("A").await?.reserved, 2);
    Ok(())
}

#[tokio::test]
async fn any_warehouse_allocates_across_them() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock_in("A", "east", 3).await?;
    inv.stock_in("A", "west", 4).await?;

    let resp = inv.reserve("order-1", &[("A", 6)]).await?;
    assert!(resp.success, "{}", resp.message);
    let r = inv.reservation(&resp.reservation_id).await?;
    let lines: Vec<(&str, i32)> =
        r.items.iter().map(|i| (i.warehouse_id.as_str(), i.quantity)).collect();
    assert_eq!(lines, vec![("east", 2), ("west", 4)], "fullest warehouse first, then the rest");

    let item = inv.item("A").await?;
    assert_eq!((item.on_hand, item.reserved, item.available), (7, 6, 1));
    assert!(!inv.reserve("order-2", &[("A", 2)]).await?.success);
    Ok(())
}

#[tokio::test]
async fn a_named_warehouse_takes_only_from_it() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock_in("A", "east", 3).await?;
    inv.stock_in("A", "west", 40).await?;
    let mut req = reserve_request("order-1", &[("A", 5)]);
    req.items[0].warehouse_id = "east".into();
    let resp = inv.client.clone().reserve_inventory(req).await?.into_inner();
    assert!(!resp.success);
    assert!(resp.message.contains("A in east: requested 5, available 3"), "{}", resp.message);
    Ok(())
}

#[tokio::test]
async fn items_can_be_named_by_id() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let item = inv.stock("A", 5).await?;
    let resp = inv.reserve("order-1", &[(item.id.as_str(), 2)]).await?;
    assert!(resp.success, "{}", resp.message);
    assert_eq!(inv.item("A").await?.reserved, 2);
    Ok(())
}

#[tokio::test]
async fn unknown_item_is_not_found_and_takes_nothing() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    let err =
        inv.client.clone().reserve_inventory(reserve_request("o", &[("A", 1), ("NOPE", 1)])).await;
    let status = err.err().ok_or_else(|| anyhow::anyhow!("expected an error"))?;
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("NOPE"), "{}", status.message());
    assert_eq!(inv.item("A").await?.reserved, 0);
    Ok(())
}

#[tokio::test]
async fn explicit_expiry_is_honoured() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    let mut req = reserve_request("o", &[("A", 1)]);
    req.expiration_minutes = 5;
    let resp = inv.client.clone().reserve_inventory(req).await?.into_inner();
    let r = inv.reservation(&resp.reservation_id).await?;
    let left = r.expires_at.map(|t| t.seconds).unwrap_or_default() - now_seconds();
    assert!((240..=300).contains(&left), "expected ~5 minutes, got {left}s");
    Ok(())
}

/// Rows written for holds and ledger movements: a refused call must change neither.
async fn written(inv: &TestInventory) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "select (select count(*) from inventory.reservations),
                (select count(*) from inventory.movements)",
    )
    .fetch_one(&inv.db.pool)
    .await?)
}

#[tokio::test]
async fn a_reference_holds_one_request() -> anyhow::Result<()> {
    use tonic_types::StatusExt;
    let inv = TestInventory::start().await?;
    inv.stock("A", 10).await?;
    inv.stock("B", 10).await?;
    let first = inv.reserve("order-1", &[("A", 3), ("B", 1)]).await?;
    assert!(first.success, "{first:?}");

    // A retry of the same request, its lines in another order, gets the hold back.
    let retry = inv.reserve("order-1", &[("B", 1), ("A", 3)]).await?;
    assert_eq!((retry.success, &retry.reservation_id), (true, &first.reservation_id));
    assert_eq!(retry.status, "PENDING");

    // Anything else under the live reference is another request: refused, nothing written.
    let before = written(&inv).await?;
    for lines in [&[("A", 3)][..], &[("A", 3), ("B", 2)], &[("A", 1), ("B", 1), ("C", 1)]] {
        let refused = inv
            .client
            .clone()
            .reserve_inventory(reserve_request("order-1", lines))
            .await
            .expect_err("another request under a live reference");
        assert_eq!(refused.code(), tonic::Code::AlreadyExists, "{refused:?}");
        assert!(refused.message().contains("reference_id \"order-1\""), "{}", refused.message());
        let info = refused.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "RESERVATION_REFERENCE_IN_USE");
        assert_eq!(info.metadata.get("reference_id").map(String::as_str), Some("order-1"));
    }
    assert_eq!(written(&inv).await?, before);
    let a = inv.item("A").await?;
    assert_eq!(a.reserved, 3);

    // Committed, the reference still holds that one request.
    let commit = pb::CommitReservationRequest { reservation_id: first.reservation_id.clone() };
    let committed = inv.client.clone().commit_reservation(commit).await?.into_inner();
    assert_eq!((committed.success, committed.status.as_str()), (true, "COMMITTED"));
    let again = inv.client.clone().reserve_inventory(reserve_request("order-1", &[("A", 5)])).await;
    assert_eq!(again.map(|_| ()).map_err(|s| s.code()), Err(tonic::Code::AlreadyExists));
    let retry = inv.reserve("order-1", &[("A", 3), ("B", 1)]).await?;
    assert_eq!(
        (retry.reservation_id.as_str(), retry.status.as_str()),
        (first.reservation_id.as_str(), "COMMITTED")
    );

    // Once its hold is no longer live, a reference takes a new request.
    let other = inv.reserve("order-2", &[("A", 1)]).await?;
    let cancel = pb::CancelReservationRequest::by_id(other.reservation_id.clone());
    let cancelled = inv.client.clone().cancel_reservation(cancel).await?.into_inner();
    assert_eq!(cancelled.status, "CANCELLED");
    let fresh = inv.reserve("order-2", &[("B", 4)]).await?;
    assert!(fresh.success && fresh.reservation_id != other.reservation_id, "{fresh:?}");
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}
