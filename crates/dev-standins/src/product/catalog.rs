//! The product catalog: products with their variants, validated once at load.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::fields::is_currency_code;
use crate::loading::{self, LoadError};

/// The built-in demo catalog; its SKUs match the inventory demo stock.
const DEMO_CATALOG: &str = include_str!("../../catalog/demo.json");

/// One product as the catalog file spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// The product id clients order by, e.g. `prod-mug`.
    pub id: String,
    /// The SKU of the product itself (used when an order names no variant).
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price in minor units (cents).
    pub price_minor: i64,
    /// ISO 4217 code of the price, e.g. `EUR`.
    pub currency: String,
    /// Variants with their own SKU and price.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

/// One variant of a product (size, colour...), priced in the product's currency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The variant id, unique within its product, e.g. `red-m`.
    pub id: String,
    /// The variant's SKU.
    pub sku: String,
    /// Unit price in minor units (cents).
    pub price_minor: i64,
}

/// A validated catalog, indexed by product id and by every SKU (product and variant).
#[derive(Debug, Clone)]
pub struct Catalog {
    products: Vec<Product>,
    by_id: HashMap<String, usize>,
    by_sku: HashMap<String, usize>,
}

impl Catalog {
    /// Validates `products` (unique ids and SKUs, non-negative prices, currency codes).
    pub fn from_products(products: Vec<Product>) -> Result<Self, LoadError> {
        loading::check("catalog", problems(&products))?;
        let by_id = products.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
        let by_sku = products
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                std::iter::once(p.sku.clone())
                    .chain(p.variants.iter().map(|v| v.sku.clone()))
                    .map(move |sku| (sku, i))
            })
            .collect();
        Ok(Self { products, by_id, by_sku })
    }

    /// Parses and validates catalog JSON (a list of products).
    pub fn from_json(text: &str) -> Result<Self, LoadError> {
        Self::from_products(loading::parse_json("catalog", text)?)
    }

    /// Reads, parses and validates the catalog file at `path`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::from_products(loading::read_json("catalog", path)?)
    }

    /// The built-in demo catalog (`prod-tshirt`, `prod-mug`, `prod-poster`, `prod-cap`).
    pub fn demo() -> Result<Self, LoadError> {
        Self::from_json(DEMO_CATALOG)
    }

    /// The product with this id.
    pub fn by_id(&self, id: &str) -> Option<&Product> {
        self.by_id.get(id).and_then(|&i| self.products.get(i))
    }

    /// The product with this SKU, or the product owning a variant with this SKU.
    pub fn by_sku(&self, sku: &str) -> Option<&Product> {
        self.by_sku.get(sku).and_then(|&i| self.products.get(i))
    }

    /// Every product, in file order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }
}

/// Every rule `products` breaks, one line each; empty when the catalog is valid.
fn problems(products: &[Product]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    // SKUs share one namespace across products and variants: a SKU lookup must be unambiguous.
    let mut skus = HashSet::new();
    let mut sku_seen = |sku: &str, owner: &str, problems: &mut Vec<String>| {
        if sku.is_empty() {
            problems.push(format!("{owner}: sku must not be empty"));
        } else if !skus.insert(sku.to_owned()) {
            problems.push(format!("{owner}: sku {sku:?} is used more than once"));
        }
    };
    for (index, product) in products.iter().enumerate() {
        let owner = if product.id.is_empty() {
            problems.push(format!("product #{index}: id must not be empty"));
            format!("product #{index}")
        } else {
            format!("product {:?}", product.id)
        };
        if !product.id.is_empty() && !ids.insert(product.id.as_str()) {
            problems.push(format!("{owner}: id is used more than once"));
        }
        sku_seen(&product.sku, &owner, &mut problems);
        if product.price_minor < 0 {
            problems.push(format!("{owner}: price_minor must not be negative"));
        }
        if !is_currency_code(&product.currency) {
            problems.push(format!(
                "{owner}: currency {:?} must be three uppercase letters, e.g. EUR",
                product.currency
            ));
        }
        let mut variant_ids = HashSet::new();
        for variant in &product.variants {
            let variant_owner = format!("{owner} variant {:?}", variant.id);
            if variant.id.is_empty() {
                problems.push(format!("{owner}: a variant id is empty"));
            } else if !variant_ids.insert(variant.id.as_str()) {
                problems.push(format!("{variant_owner}: id is used more than once"));
            }
            sku_seen(&variant.sku, &variant_owner, &mut problems);
            if variant.price_minor < 0 {
                problems.push(format!("{variant_owner}: price_minor must not be negative"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, sku: &str) -> Product {
        Product {
            id: id.to_owned(),
            sku: sku.to_owned(),
            name: id.to_owned(),
            price_minor: 100,
            currency: "EUR".to_owned(),
            variants: Vec::new(),
        }
    }

    #[test]
    fn demo_catalog_matches_the_inventory_demo_stock() {
        let catalog = Catalog::demo().unwrap();
        let tshirt = catalog.by_id("prod-tshirt").unwrap();
        assert_eq!(tshirt.sku, "TSHIRT");
        assert_eq!(
            tshirt.variants,
            [Variant { id: "red-m".into(), sku: "TSHIRT-RED-M".into(), price_minor: 1999 }]
        );
        for (id, sku, price) in [
            ("prod-mug", "MUG-CLASSIC", 1250),
            ("prod-poster", "POSTER-ORBIT", 3000),
            ("prod-cap", "SOLD-OUT-CAP", 1500),
        ] {
            let product = catalog.by_sku(sku).unwrap();
            assert_eq!((product.id.as_str(), product.price_minor), (id, price));
            assert_eq!(product.currency, "EUR");
        }
    }

    #[test]
    fn variant_skus_find_their_product() {
        let catalog = Catalog::demo().unwrap();
        assert_eq!(catalog.by_sku("TSHIRT-RED-M").unwrap().id, "prod-tshirt");
        assert!(catalog.by_sku("prod-tshirt").is_none());
        assert!(catalog.by_id("TSHIRT").is_none());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut bad = product("p1", "SKU-1");
        bad.price_minor = -1;
        bad.currency = "eur".into();
        bad.variants = vec![
            Variant { id: "v".into(), sku: "SKU-2".into(), price_minor: -5 },
            Variant { id: "v".into(), sku: "SKU-1".into(), price_minor: 1 },
        ];
        let err = Catalog::from_products(vec![bad, product("p1", "SKU-2"), product("", "")])
            .unwrap_err()
            .to_string();
        for needle in [
            "product \"p1\": price_minor must not be negative",
            "currency \"eur\"",
            "variant \"v\": price_minor must not be negative",
            "variant \"v\": id is used more than once",
            "sku \"SKU-1\" is used more than once",
            "product \"p1\": id is used more than once",
            "sku \"SKU-2\" is used more than once",
            "product #2: id must not be empty",
            "product #2: sku must not be empty",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
    }

    #[test]
    fn malformed_json_is_a_clear_error() {
        let err = Catalog::from_json(r#"[{"id": "p", "sku": "S", "name": "n", "price_minor": 1, "currency": "EUR", "colour": "red"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("parsing catalog") && err.contains("colour"), "{err}");
        let err = Catalog::load(Path::new("/no/such/catalog.json")).unwrap_err().to_string();
        assert!(err.contains("/no/such/catalog.json"), "{err}");
    }
}
