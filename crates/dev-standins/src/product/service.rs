//! The `product.v1.ProductService` handler over a [`Catalog`].

use std::sync::Arc;

use proto::product::v1::{self as pb, get_product_request::Identifier};
use tonic::{Request, Response, Status};

use super::catalog::{Catalog, Product};
use crate::error::StandinError;
use crate::faults::Faults;

/// The gRPC face of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct ProductApi {
    catalog: Arc<Catalog>,
    faults: Faults,
}

impl ProductApi {
    /// Handlers over `catalog`, under `faults`.
    pub(crate) fn new(catalog: Arc<Catalog>, faults: Faults) -> Self {
        Self { catalog, faults }
    }

    fn lookup(&self, identifier: Option<Identifier>) -> Result<pb::Product, StandinError> {
        let found = match identifier {
            None => return Err(StandinError::invalid("identifier", "set id or sku")),
            Some(Identifier::Id(id)) if id.is_empty() => {
                return Err(StandinError::invalid("identifier", "id must not be empty"));
            }
            Some(Identifier::Sku(sku)) if sku.is_empty() => {
                return Err(StandinError::invalid("identifier", "sku must not be empty"));
            }
            Some(Identifier::Id(id)) => {
                self.catalog.by_id(&id).ok_or_else(|| StandinError::not_found("product", id))?
            }
            Some(Identifier::Sku(sku)) => self
                .catalog
                .by_sku(&sku)
                .ok_or_else(|| StandinError::not_found("product sku", sku))?,
        };
        Ok(to_proto(found))
    }
}

fn to_proto(product: &Product) -> pb::Product {
    pb::Product {
        id: product.id.clone(),
        sku: product.sku.clone(),
        name: product.name.clone(),
        price_minor: product.price_minor,
        currency: product.currency.clone(),
        variants: product
            .variants
            .iter()
            .map(|v| pb::ProductVariant {
                id: v.id.clone(),
                sku: v.sku.clone(),
                price_minor: v.price_minor,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::product_service_server::ProductService for ProductApi {
    #[tracing::instrument(skip_all, fields(identifier = ?request.get_ref().identifier))]
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let identifier = request.into_inner().identifier;
        let product = self.faults.around(async { self.lookup(identifier) }).await?;
        Ok(Response::new(pb::GetProductResponse { product: Some(product) }))
    }
}
