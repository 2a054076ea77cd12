use std::time::{Duration, Instant};

use dev_standins::{Catalog, Faults, Product, ProductApp, ProductSettings, Variant};
use proto::product::v1::get_product_request::Identifier;
use proto::product::v1::product_service_client::ProductServiceClient;
use proto::product::v1::{GetProductRequest, Product as WireProduct};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{Server, assert_invalid};

struct Stand {
    server: Server,
    client: ProductServiceClient<tonic::transport::Channel>,
    faults: Faults,
}

async fn start(app: ProductApp) -> Stand {
    let faults = app.faults();
    let server = Server::start(app.grpc_addr().unwrap(), |stop| app.run_until(stop)).await;
    let client = ProductServiceClient::new(server.channel.clone());
    Stand { server, client, faults }
}

async fn demo() -> Stand {
    start(ProductApp::build(ProductSettings::loopback()).await.unwrap()).await
}

async fn get(
    stand: &mut Stand,
    identifier: Option<Identifier>,
) -> Result<WireProduct, tonic::Status> {
    let response = stand.client.get_product(GetProductRequest { identifier }).await?;
    Ok(response.into_inner().product.expect("a product"))
}

fn id(id: &str) -> Option<Identifier> {
    Some(Identifier::Id(id.to_owned()))
}

fn sku(sku: &str) -> Option<Identifier> {
    Some(Identifier::Sku(sku.to_owned()))
}

#[tokio::test]
async fn serves_the_demo_catalog_by_id_sku_and_variant_sku() {
    let mut stand = demo().await;
    assert_eq!(stand.server.health("").await, ServingStatus::Serving);
    assert_eq!(stand.server.health("product.v1.ProductService").await, ServingStatus::Serving);

    let tshirt = get(&mut stand, id("prod-tshirt")).await.unwrap();
    assert_eq!(
        (tshirt.sku.as_str(), tshirt.price_minor, tshirt.currency.as_str()),
        ("TSHIRT", 1999, "EUR")
    );
    assert_eq!(tshirt.variants.len(), 1);
    assert_eq!(
        (
            tshirt.variants[0].id.as_str(),
            tshirt.variants[0].sku.as_str(),
            tshirt.variants[0].price_minor
        ),
        ("red-m", "TSHIRT-RED-M", 1999)
    );

    assert_eq!(get(&mut stand, sku("MUG-CLASSIC")).await.unwrap().id, "prod-mug");
    assert_eq!(get(&mut stand, sku("TSHIRT-RED-M")).await.unwrap(), tshirt);
    let poster = get(&mut stand, id("prod-poster")).await.unwrap();
    assert_eq!((poster.sku.as_str(), poster.price_minor), ("POSTER-ORBIT", 3000));
    let cap = get(&mut stand, sku("SOLD-OUT-CAP")).await.unwrap();
    assert_eq!((cap.id.as_str(), cap.price_minor), ("prod-cap", 1500));
    stand.server.stop().await;
}

#[tokio::test]
async fn unknown_is_not_found_and_missing_is_invalid() {
    let mut stand = demo().await;
    for identifier in [id("prod-nope"), sku("NOPE"), id("TSHIRT"), sku("prod-mug")] {
        let err = get(&mut stand, identifier.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{identifier:?}: {err:?}");
    }
    for identifier in [None, id(""), sku("")] {
        let err = get(&mut stand, identifier).await.unwrap_err();
        assert_invalid(&err, "identifier");
    }
    stand.server.stop().await;
}

#[tokio::test]
async fn serves_a_catalog_built_in_code_or_read_from_a_file() {
    let catalog = Catalog::from_products(vec![Product {
        id: "p-1".into(),
        sku: "SKU-1".into(),
        name: "Thing".into(),
        price_minor: 0,
        currency: "USD".into(),
        variants: vec![Variant { id: "big".into(), sku: "SKU-1-BIG".into(), price_minor: 500 }],
    }])
    .unwrap();
    let app = ProductApp::build_with_catalog(ProductSettings::loopback(), catalog).await.unwrap();
    let mut stand = start(app).await;
    let product = get(&mut stand, sku("SKU-1-BIG")).await.unwrap();
    assert_eq!((product.id.as_str(), product.currency.as_str()), ("p-1", "USD"));
    assert_eq!(get(&mut stand, id("prod-mug")).await.unwrap_err().code(), Code::NotFound);
    stand.server.stop().await;

    let path = std::env::temp_dir().join(format!("standin-catalog-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"id": "f-1", "sku": "FILE-1", "name": "From a file", "price_minor": 42, "currency": "GBP"}]"#,
    )
    .unwrap();
    let settings =
        ProductSettings { catalog_path: Some(path.clone()), ..ProductSettings::loopback() };
    let mut stand = start(ProductApp::build(settings).await.unwrap()).await;
    let product = get(&mut stand, id("f-1")).await.unwrap();
    assert_eq!((product.price_minor, product.variants.len()), (42, 0));
    stand.server.stop().await;

    std::fs::write(
        &path,
        r#"[{"id": "f-1", "sku": "FILE-1", "name": "x", "price_minor": -1, "currency": "gbp"}]"#,
    )
    .unwrap();
    let settings =
        ProductSettings { catalog_path: Some(path.clone()), ..ProductSettings::loopback() };
    let err = format!("{:#}", ProductApp::build(settings).await.unwrap_err());
    assert!(err.contains("price_minor must not be negative") && err.contains("\"gbp\""), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn faults_fail_and_delay_calls_at_runtime() {
    let mut stand = demo().await;
    stand.faults.fail_next_n(2);
    for _ in 0..2 {
        assert_eq!(get(&mut stand, id("prod-mug")).await.unwrap_err().code(), Code::Unavailable);
    }
    assert!(get(&mut stand, id("prod-mug")).await.is_ok());

    stand.faults.set_fail_all(true);
    assert_eq!(get(&mut stand, id("prod-mug")).await.unwrap_err().code(), Code::Unavailable);
    stand.faults.set_fail_all(false);

    stand.faults.set_latency_ms(150);
    let started = Instant::now();
    assert!(get(&mut stand, id("prod-mug")).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(150));
    stand.faults.reset();
    assert_eq!(stand.faults.calls(), 5);
    stand.server.stop().await;
}
