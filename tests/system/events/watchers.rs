//! EVENT_WATCHERS: under mutual TLS, a named identity streams the order events its entry
//! lists and nothing else; an identity not listed is refused; an operator streams every type.

use std::net::SocketAddr;

use common::auth::AdminAuthSettings;
use proto::order::v1::{self as pb, order_service_client::OrderServiceClient};
use system_tests::tls::TestPki;
use system_tests::{PlantedOrder, TestDb, TestOrderServer, migrate_orders, order_settings};
use tokio_stream::StreamExt;
use tonic::Code;

use super::take;

#[tokio::test]
async fn a_listed_identity_streams_only_its_types_and_others_are_refused() -> anyhow::Result<()> {
    let pki = TestPki::new()?;
    let db = TestDb::create().await?;
    migrate_orders(&db.pool).await?;
    let nowhere = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut settings = order_settings(&db.url, nowhere, nowhere, nowhere, None);
    settings.tls = pki.server_mtls();
    settings.event_watchers = "warehouse=order.confirmed".into();
    settings.admin =
        AdminAuthSettings { admin_allowed_identities: vec!["ops".into()], ..Default::default() };
    // The planted order is not driven: only the writes below change it.
    settings.recovery_interval_ms = 600_000;
    let server = TestOrderServer::start_over(settings, Some(pki.client_tls(Some("ops"))?)).await?;

    // One order written and then confirmed, as the saga would: order.created, order.confirmed.
    let planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 2, 250)]);
    planted.plant_into(&db.pool).await?;
    sqlx::query(
        "update orders.orders set status = 'CONFIRMED', payment_status = 'SUCCEEDED',
                next_action = null where id = $1",
    )
    .bind(planted.id)
    .execute(&db.pool)
    .await?;

    let https = format!("https://{}", server.addr);
    let client = |name: &str| -> anyhow::Result<OrderServiceClient<tonic::transport::Channel>> {
        Ok(OrderServiceClient::new(pki.client_tls(Some(name))?.endpoint(&https)?.connect_lazy()))
    };
    let watch = |types: &[&str]| pb::WatchEventsRequest {
        from_position: 0,
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        from_now: false,
    };

    // The warehouse asks for everything and gets its one type, at its log position.
    let stream = client("warehouse")?.watch_events(watch(&[])).await?.into_inner();
    let events = take(stream.map(|r| r.map(|m| m.event)), 1).await?;
    assert_eq!((events[0].r#type.as_str(), events[0].position), ("order.confirmed", 2));
    let refused = client("warehouse")?.watch_events(watch(&["order.created"])).await;
    let status = refused.map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("types[0]"), "{status:?}");

    let stranger = client("stranger")?.watch_events(watch(&[])).await.map(|_| ()).unwrap_err();
    assert_eq!(stranger.code(), Code::PermissionDenied, "{stranger:?}");

    // An operator streams every type.
    let stream = client("ops")?.watch_events(watch(&[])).await?.into_inner();
    let events = take(stream.map(|r| r.map(|m| m.event)), 2).await?;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(types, ["order.created", "order.confirmed"]);
    Ok(())
}

#[tokio::test]
async fn event_watchers_without_mutual_tls_refuse_to_start() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let nowhere = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut settings = order_settings(&db.url, nowhere, nowhere, nowhere, None);
    settings.event_watchers = "warehouse=order.confirmed".into();
    let refused = order_service::App::build(settings).await.map(|_| ()).unwrap_err();
    assert!(refused.to_string().contains("EVENT_WATCHERS needs mutual TLS"), "{refused}");
    let mut settings = order_settings(&db.url, nowhere, nowhere, nowhere, None);
    settings.event_watchers = "warehouse=order.shipped".into();
    let refused = order_service::App::build(settings).await.map(|_| ()).unwrap_err();
    assert!(refused.to_string().contains("unknown event type"), "{refused}");
    Ok(())
}
