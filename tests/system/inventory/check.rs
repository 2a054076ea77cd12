use proto::inventory::v1 as pb;
use system_tests::TestInventory;

fn line(sku: &str, quantity: i32) -> pb::AvailabilityCheckItem {
    pb::AvailabilityCheckItem {
        product_id: format!("p-{sku}"),
        variant_id: Some("v1".into()),
        sku: sku.into(),
        quantity,
    }
}

#[tokio::test]
async fn reports_each_status_and_echoes_ids() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("PLENTY", 10).await?;
    inv.stock("FEW", 2).await?;
    inv.stock("NONE", 0).await?;
    inv.stock_in("SPLIT", "east", 3).await?;
    inv.stock_in("SPLIT", "west", 4).await?;

    let req = pb::CheckInventoryAvailabilityRequest {
        items: vec![
            line("PLENTY", 5),
            line("FEW", 5),
            line("NONE", 1),
            line("GHOST", 1),
            line("SPLIT", 7),
        ],
    };
    let resp = inv.client.clone().check_inventory_availability(req).await?.into_inner();

    let got: Vec<(&str, &str, i32, bool)> = resp
        .items
        .iter()
        .map(|i| (i.sku.as_str(), i.status.as_str(), i.available_quantity, i.is_available))
        .collect();
    assert_eq!(
        got,
        vec![
            ("PLENTY", "IN_STOCK", 10, true),
            ("FEW", "INSUFFICIENT_STOCK", 2, false),
            ("NONE", "OUT_OF_STOCK", 0, false),
            ("GHOST", "UNKNOWN_SKU", 0, false),
            ("SPLIT", "IN_STOCK", 7, true),
        ]
    );
    assert!(!resp.all_available);
    assert_eq!(resp.items[0].product_id, "p-PLENTY");
    assert_eq!(resp.items[0].variant_id.as_deref(), Some("v1"));
    assert_eq!(resp.items[1].requested_quantity, 5);
    Ok(())
}

#[tokio::test]
async fn all_available_when_every_line_is_in_stock_and_holds_count() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    inv.stock("B", 5).await?;
    let check = |qa, qb| pb::CheckInventoryAvailabilityRequest {
        items: vec![line("A", qa), line("B", qb)],
    };

    let resp = inv.client.clone().check_inventory_availability(check(5, 1)).await?.into_inner();
    assert!(resp.all_available);

    // A hold makes its units unavailable to the next check.
    assert!(inv.reserve("o-1", &[("A", 3)]).await?.success);
    let resp = inv.client.clone().check_inventory_availability(check(5, 1)).await?.into_inner();
    assert!(!resp.all_available);
    assert_eq!(resp.items[0].available_quantity, 2);
    assert_eq!(resp.items[0].status, "INSUFFICIENT_STOCK");
    Ok(())
}

#[tokio::test]
async fn fills_missing_product_id_from_the_item() -> anyhow::Result<()> {
    let inv = TestInventory::start().await?;
    inv.stock("A", 5).await?;
    let req = pb::CheckInventoryAvailabilityRequest {
        items: vec![pb::AvailabilityCheckItem {
            sku: "A".into(),
            quantity: 1,
            ..Default::default()
        }],
    };
    let resp = inv.client.clone().check_inventory_availability(req).await?.into_inner();
    assert_eq!(resp.items[0].product_id, "prod-A");
    Ok(())
}

#[tokio::test]
async fn concurrent_checks_sharing_queries_each_get_their_own_answer() -> anyhow::Result<()> {
    let db = system_tests::TestDb::create().await?;
    let mut settings = system_tests::test_settings(&db.url);
    // One query at a time, so calls arriving meanwhile share the next one.
    settings.check_batch_workers = 1;
    settings.check_batch_max_skus = 16;
    let inv = TestInventory::start_with(db, settings).await?;
    for n in 1..=30 {
        inv.stock(&format!("C{n}"), n).await?;
    }

    let calls = (0..120).map(|k: i32| {
        let mut client = inv.client.clone();
        // Three different SKUs per call (one unknown now and then), asking one unit more
        // than the middle one has.
        let skus =
            [1 + k % 30, 1 + (k * 7 + 3) % 30, if k % 9 == 0 { 99 } else { 1 + (k * 13 + 5) % 30 }];
        async move {
            let req = pb::CheckInventoryAvailabilityRequest {
                items: skus.iter().map(|n| line(&format!("C{n}"), skus[1] + 1)).collect(),
            };
            let resp = client.check_inventory_availability(req).await?.into_inner();
            anyhow::Ok((skus, resp))
        }
    });
    for result in futures::future::join_all(calls).await {
        let (skus, resp) = result?;
        let got: Vec<(String, i32)> =
            resp.items.iter().map(|i| (i.sku.clone(), i.available_quantity)).collect();
        let want: Vec<(String, i32)> =
            skus.iter().map(|&n| (format!("C{n}"), if n == 99 { 0 } else { n })).collect();
        assert_eq!(got, want);
        assert_eq!(resp.items[1].status, "INSUFFICIENT_STOCK");
        assert!(!resp.all_available);
    }
    Ok(())
}
