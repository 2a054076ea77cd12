use proto::inventory::v1 as pb;
use system_tests::TestInventory;
use tonic::Code;

fn adjust(sku: &str, delta: i32, key: &str) -> pb::AdjustStockRequest {
    pb::AdjustStockRequest {
        sku: sku.into(),
        warehouse_id: String::new(),
        delta,
        reason: "cycle count".into(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn upsert_creates_then_sets_per_warehouse() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let created = inv.stock("A", 5).await?;
    assert_eq!(
        (created.sku.as_str(), created.product_id.as_str(), created.on_hand),
        ("A", "prod-A", 5)
    );
    assert_eq!(created.levels.len(), 1);
    assert_eq!(created.levels[0].warehouse_id, "default");

    inv.stock_in("A", "east", 7).await?;
    let item = inv.stock("A", 2).await?;
    assert_eq!(item.id, created.id, "the same item, not a new one");
    assert_eq!((item.on_hand, item.reserved, item.available), (9, 0, 9));
    let levels: Vec<(&str, i32)> =
        item.levels.iter().map(|l| (l.warehouse_id.as_str(), l.on_hand)).collect();
    assert_eq!(levels, vec![("default", 2), ("east", 7)]);

    let with_variant = pb::UpsertInventoryItemRequest {
        sku: "A-RED".into(),
        product_id: "prod-A".into(),
        variant_id: Some("red".into()),
        warehouse_id: String::new(),
        on_hand: 1,
    };
    let red = inv.client.clone().upsert_inventory_item(with_variant).await?.into_inner();
    assert_eq!(red.variant_id.as_deref(), Some("red"));
    assert!(inv.ledger_violations().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn upsert_below_reserved_is_refused() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    inv.reserve("o", &[("A", 4)]).await?;
    let err = inv.stock("A", 3).await.err().and_then(|e| e.downcast::<tonic::Status>().ok());
    assert_eq!(err.map(|s| s.code()), Some(Code::FailedPrecondition));
    assert_eq!(inv.item("A").await?.on_hand, 5);
    Ok(())
}

#[tokio::test]
async fn adjust_applies_once_per_idempotency_key() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    let mut client = inv.client.clone();

    let first = client.adjust_stock(adjust("A", 3, "recount-1")).await?.into_inner();
    assert_eq!(first.on_hand, 8);
    let replay = client.adjust_stock(adjust("A", 3, "recount-1")).await?.into_inner();
    assert_eq!(replay.on_hand, 8, "the same key applies once");

    let reuse = client.adjust_stock(adjust("A", 4, "recount-1")).await.err();
    assert_eq!(reuse.map(|s| s.code()), Some(Code::InvalidArgument));

    // Without a key every call applies.
    client.adjust_stock(adjust("A", -1, "")).await?;
    let item = client.adjust_stock(adjust("A", -1, "")).await?.into_inner();
    assert_eq!(item.on_hand, 6);

    let ledger: Vec<(String, i32, Option<String>)> =
        sqlx::query_as("select kind, on_hand_delta, reason from inventory.movements order by id")
            .fetch_all(&inv.db.pool)
            .await?;
    assert_eq!(
        ledger,
        vec![
            ("SET".into(), 5, Some("set by upsert".into())),
            ("ADJUST".into(), 3, Some("cycle count".into())),
            ("ADJUST".into(), -1, Some("cycle count".into())),
            ("ADJUST".into(), -1, Some("cycle count".into())),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_retries_of_one_key_apply_once() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 0).await?;
    let calls = (0..20).map(|_| {
        let mut client = inv.client.clone();
        async move { client.adjust_stock(adjust("A", 5, "delivery-42")).await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result?.into_inner().on_hand, 5);
    }
    assert_eq!(inv.item("A").await?.on_hand, 5);
    Ok(())
}

#[tokio::test]
async fn adjust_refuses_overflow_and_going_below_reserved() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", i32::MAX - 1).await?;
    let mut client = inv.client.clone();
    let overflow = client.adjust_stock(adjust("A", 2, "")).await.err();
    assert_eq!(overflow.as_ref().map(|s| s.code()), Some(Code::InvalidArgument));
    assert!(overflow.is_some_and(|s| s.message().contains("delta")));
    assert_eq!(client.adjust_stock(adjust("A", 1, "")).await?.into_inner().on_hand, i32::MAX);

    inv.stock("B", 5).await?;
    inv.reserve("o", &[("B", 3)]).await?;
    let below = client.adjust_stock(adjust("B", -3, "")).await.err();
    assert_eq!(below.map(|s| s.code()), Some(Code::FailedPrecondition));
    assert_eq!(client.adjust_stock(adjust("B", -2, "")).await?.into_inner().on_hand, 3);
    Ok(())
}

#[tokio::test]
async fn adjust_of_an_unknown_sku_is_not_found() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let err = inv.client.clone().adjust_stock(adjust("GHOST", 1, "")).await.err();
    assert_eq!(err.map(|s| s.code()), Some(Code::NotFound));
    Ok(())
}

#[tokio::test]
async fn adjust_can_open_a_new_warehouse() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 1).await?;
    let mut req = adjust("A", 4, "");
    req.warehouse_id = "north".into();
    let item = inv.client.clone().adjust_stock(req).await?.into_inner();
    assert_eq!(item.on_hand, 5);
    assert!(item.levels.iter().any(|l| l.warehouse_id == "north" && l.on_hand == 4));
    Ok(())
}

#[tokio::test]
async fn get_unknown_item_is_not_found() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    let err = inv.item("GHOST").await.err().and_then(|e| e.downcast::<tonic::Status>().ok());
    assert_eq!(err.map(|s| s.code()), Some(Code::NotFound));
    Ok(())
}

#[tokio::test]
async fn list_pages_through_every_item_once_in_sku_order() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    for i in 0..23 {
        inv.stock(&format!("SKU-{i:03}"), i).await?;
    }
    let mut client = inv.client.clone();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_inventory_items(pb::ListInventoryItemsRequest {
                page_size: 10,
                page_token: token,
            })
            .await?
            .into_inner();
        assert!(page.items.len() <= 10);
        seen.extend(page.items.into_iter().map(|i| i.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..23).map(|i| format!("SKU-{i:03}")).collect();
    assert_eq!(seen, expected);

    let bad = client
        .list_inventory_items(pb::ListInventoryItemsRequest {
            page_size: 10,
            page_token: "!!".into(),
        })
        .await
        .err();
    assert_eq!(bad.map(|s| s.code()), Some(Code::InvalidArgument));
    Ok(())
}
