//! Metric labels never come from a caller's strings: calls to methods a server does not serve
//! all count under one `unknown` pair, however many names a caller invents.

use std::str::FromStr as _;

use proto::inventory::v1 as pb;
use system_tests::{TestSystem, metric_value};
use tonic::transport::Channel;

/// Sends `count` unary calls to invented methods; each is answered UNIMPLEMENTED.
async fn call_invented_methods(channel: Channel, count: usize) -> anyhow::Result<()> {
    let mut grpc = tonic::client::Grpc::new(channel);
    for i in 0..count {
        grpc.ready().await?;
        let path = http::uri::PathAndQuery::from_str(&format!("/evil{i}.Svc/M{i}a2b"))?;
        let codec =
            tonic_prost::ProstCodec::<pb::GetInventoryItemRequest, pb::InventoryItem>::default();
        let request = tonic::Request::new(pb::GetInventoryItemRequest { sku: "X".into() });
        let status = grpc.unary(request, path, codec).await.expect_err("no such method");
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    }
    Ok(())
}

/// The number of series of `family` on a metrics page.
fn series(page: &str, family: &str) -> usize {
    page.lines().filter(|line| line.starts_with(&format!("{family}{{"))).count()
}

// The servers of one test process share prometheus' default registry, so one page shows the
// calls of both.
#[tokio::test]
async fn invented_method_names_add_no_series() -> anyhow::Result<()> {
    let system = TestSystem::start().await?;
    let inventory = system.inventory()?;
    let order = &system.orders[0];
    // A known call first, so its series exist before counting.
    inventory.stock("MUG", 5).await?;
    let before = order.metrics_text().await?;

    call_invented_methods(system_tests::channel(inventory.addr).await?, 300).await?;
    call_invented_methods(system_tests::channel(order.addr).await?, 300).await?;

    let after = inventory.metrics_text().await?;
    assert!(!after.contains("evil"), "a caller's method name became a label");
    for family in [
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_count",
    ] {
        // At most the one `unknown` series (with its one code) is new.
        let grown = series(&after, family) - series(&before, family);
        assert!(grown <= 1, "{family} grew by {grown} series");
    }
    let unknown = r#"grpc_method="unknown",grpc_service="unknown",grpc_type="unary"}"#;
    let started = format!("grpc_server_started_total{{{unknown}");
    let handled = format!(r#"grpc_server_handled_total{{grpc_code="Unimplemented",{unknown}"#);
    for counter in [started, handled] {
        assert_eq!(metric_value(&after, &counter) - metric_value(&before, &counter), 600.0);
    }
    // Served methods keep their own labels.
    let upserts = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="UpsertInventoryItem",grpc_service="inventory.v1.InventoryService",grpc_type="unary"}"#;
    assert_eq!(metric_value(&after, upserts), 1.0);
    Ok(())
}
