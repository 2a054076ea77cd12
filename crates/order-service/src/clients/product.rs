//! The product catalog client.

use proto::product::v1::{
    self as pb, get_product_request::Identifier, product_service_client::ProductServiceClient,
};
use tonic::{Code, Status};

use super::{PeerChannel, PeerError, request, retrying, with_deadline};
use crate::domain::pricing::{Product, Variant};
use crate::settings::CallPolicy;

const PEER: &str = "product";

/// Client of `product.v1.ProductService`.
#[derive(Debug, Clone)]
pub struct ProductPeer {
    client: ProductServiceClient<PeerChannel>,
    policy: CallPolicy,
}

impl ProductPeer {
    /// A client over `channel`.
    pub fn new(channel: PeerChannel, policy: CallPolicy) -> Self {
        Self { client: ProductServiceClient::new(channel), policy }
    }

    /// The product `id`, or None when the catalog does not know it.
    pub async fn get(&self, id: &str) -> Result<Option<Product>, PeerError> {
        let msg = pb::GetProductRequest { identifier: Some(Identifier::Id(id.to_owned())) };
        let result = retrying(self.policy, PEER, "get_product", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            with_deadline(self.policy.timeout, async move { client.get_product(req).await })
        })
        .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(err) if err.peer_code() == Code::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let product = reply.product.ok_or_else(|| PeerError {
            peer: PEER,
            call: "get_product",
            status: Status::internal("answer without a product"),
        })?;
        Ok(Some(Product {
            id: product.id,
            sku: product.sku,
            price_minor: product.price_minor,
            currency: product.currency,
            variants: product
                .variants
                .into_iter()
                .map(|v| Variant { id: v.id, sku: v.sku, price_minor: v.price_minor })
                .collect(),
        }))
    }
}
