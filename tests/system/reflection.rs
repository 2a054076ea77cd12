//! Reflection for every client: the servers and the stand-ins answer both v1 and the older
//! v1alpha (grpcurl before 1.8.8, Postman, BloomRPC, Kreya, evans builds speak only that).

use std::net::SocketAddr;

use prost::Message;
use system_tests::TestSystem;
use tokio_stream::StreamExt;
use tonic_reflection::pb::v1alpha::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// One v1alpha request's answer.
async fn ask(addr: SocketAddr, request: MessageRequest) -> anyhow::Result<MessageResponse> {
    let mut client = ServerReflectionClient::new(system_tests::channel(addr).await?);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut stream = client.server_reflection_info(tokio_stream::iter([req])).await?.into_inner();
    let Some(resp) = stream.next().await.transpose()? else {
        anyhow::bail!("no reflection answer from {addr}")
    };
    resp.message_response.ok_or_else(|| anyhow::anyhow!("an empty reflection answer"))
}

#[tokio::test]
async fn v1alpha_reflection_lists_and_describes_every_server_s_services() -> anyhow::Result<()> {
    let system = TestSystem::start().await?;
    let servers = [
        (system.inventory_addr, "inventory.v1.InventoryService", "ReserveInventory"),
        (system.orders[0].addr, "order.v1.OrderService", "CreateOrder"),
        (system.payment_addr, "payment.v1.PaymentService", "ProcessPayment"),
    ];
    for (addr, service, method) in servers {
        let MessageResponse::ListServicesResponse(list) =
            ask(addr, MessageRequest::ListServices(String::new())).await?
        else {
            anyhow::bail!("{service}: not a service list")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for wanted in [service, "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == wanted), "{service}: {wanted} missing in {names:?}");
        }
        // What grpcurl does next: the file declaring the service, by symbol.
        let MessageResponse::FileDescriptorResponse(files) =
            ask(addr, MessageRequest::FileContainingSymbol(service.into())).await?
        else {
            anyhow::bail!("{service}: no file for the symbol")
        };
        let short = service.rsplit('.').next().unwrap_or(service);
        let mut methods = Vec::new();
        for bytes in files.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())?;
            for declared in file.service.iter().filter(|s| s.name() == short) {
                methods.extend(declared.method.iter().map(|m| m.name().to_owned()));
            }
        }
        assert!(methods.iter().any(|m| m == method), "{service}: {methods:?}");
    }
    Ok(())
}
