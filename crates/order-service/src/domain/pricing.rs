//! Prices an order from the catalog, in integer minor units with checked arithmetic, and
//! sums what it asks of the inventory per SKU. Pure: the catalog is passed in.

use std::collections::HashMap;

use super::commands::OrderLine;
use super::{Currency, ProductId, Quantity, VariantId};

/// A product as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub price_minor: i64,
    pub currency: String,
    pub variants: Vec<Variant>,
}

/// A variant of a product, with its own SKU and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub id: String,
    pub sku: String,
    pub price_minor: i64,
}

/// A line with the SKU and unit price the catalog gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub sku: String,
    pub quantity: Quantity,
    pub unit_price_minor: i64,
}

/// An order's lines and total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub lines: Vec<PricedLine>,
    pub total_minor: i64,
}

/// Units of one SKU an order needs (lines of the same SKU summed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuDemand {
    pub sku: String,
    pub product_id: String,
    pub quantity: i32,
}

/// Why an order cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PricingError {
    /// The catalog has no such product (line index, product id).
    UnknownProduct { line: usize, product_id: String },
    /// The product has no such variant.
    UnknownVariant { line: usize, product_id: String, variant_id: String },
    /// The product is sold in another currency than the order's.
    CurrencyMismatch { product_id: String, product_currency: String, order_currency: String },
    /// The catalog entry cannot be sold (no SKU, negative price).
    BadCatalogEntry { product_id: String, problem: &'static str },
    /// The total (or a line) does not fit in 64-bit minor units.
    Overflow,
}

/// Prices `lines` from `catalog` (keyed by product id) in `currency`.
pub fn price(
    lines: &[OrderLine],
    catalog: &HashMap<String, Product>,
    currency: &Currency,
) -> Result<Priced, PricingError> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut total: i64 = 0;
    for (i, line) in lines.iter().enumerate() {
        let product_id = line.product_id.as_str();
        let product = catalog.get(product_id).ok_or_else(|| PricingError::UnknownProduct {
            line: i,
            product_id: product_id.to_owned(),
        })?;
        if !product.currency.eq_ignore_ascii_case(currency.as_str()) {
            return Err(PricingError::CurrencyMismatch {
                product_id: product_id.to_owned(),
                product_currency: product.currency.clone(),
                order_currency: currency.as_str().to_owned(),
            });
        }
        let (sku, unit_price) = match &line.variant_id {
            None => (&product.sku, product.price_minor),
            Some(v) => {
                let variant =
                    product.variants.iter().find(|pv| pv.id == v.as_str()).ok_or_else(|| {
                        PricingError::UnknownVariant {
                            line: i,
                            product_id: product_id.to_owned(),
                            variant_id: v.as_str().to_owned(),
                        }
                    })?;
                (&variant.sku, variant.price_minor)
            }
        };
        if sku.is_empty() {
            return Err(PricingError::BadCatalogEntry {
                product_id: product_id.to_owned(),
                problem: "has no SKU",
            });
        }
        if unit_price < 0 {
            return Err(PricingError::BadCatalogEntry {
                product_id: product_id.to_owned(),
                problem: "has a negative price",
            });
        }
        let line_total =
            unit_price.checked_mul(i64::from(line.quantity.get())).ok_or(PricingError::Overflow)?;
        total = total.checked_add(line_total).ok_or(PricingError::Overflow)?;
        priced.push(PricedLine {
            product_id: line.product_id.clone(),
            variant_id: line.variant_id.clone(),
            sku: sku.clone(),
            quantity: line.quantity,
            unit_price_minor: unit_price,
        });
    }
    Ok(Priced { lines: priced, total_minor: total })
}

/// What the order asks of the inventory, one entry per SKU in first-seen order; None when a
/// SKU's summed quantity does not fit the inventory contract's 32-bit quantities.
pub fn demand<'a>(
    lines: impl IntoIterator<Item = (&'a str, &'a str, i32)>,
) -> Option<Vec<SkuDemand>> {
    let mut out: Vec<SkuDemand> = Vec::new();
    for (sku, product_id, quantity) in lines {
        match out.iter_mut().find(|d| d.sku == sku) {
            Some(d) => d.quantity = d.quantity.checked_add(quantity)?,
            None => out.push(SkuDemand {
                sku: sku.to_owned(),
                product_id: product_id.to_owned(),
                quantity,
            }),
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn catalog() -> HashMap<String, Product> {
        let shirt = Product {
            id: "shirt".into(),
            sku: "SHIRT".into(),
            price_minor: 1999,
            currency: "EUR".into(),
            variants: vec![Variant {
                id: "red".into(),
                sku: "SHIRT-RED".into(),
                price_minor: 2499,
            }],
        };
        let yen = Product {
            id: "fan".into(),
            sku: "FAN".into(),
            price_minor: 500,
            currency: "JPY".into(),
            variants: vec![],
        };
        let huge = Product {
            id: "huge".into(),
            sku: "HUGE".into(),
            price_minor: i64::MAX / 2,
            currency: "EUR".into(),
            variants: vec![],
        };
        [shirt, yen, huge].into_iter().map(|p| (p.id.clone(), p)).collect()
    }

    fn line(product: &str, variant: Option<&str>, qty: i32) -> OrderLine {
        OrderLine {
            product_id: ProductId::parse("p", product).unwrap(),
            variant_id: variant.map(|v| VariantId::parse("v", v).unwrap()),
            quantity: Quantity::parse("q", qty).unwrap(),
        }
    }

    fn eur() -> Currency {
        Currency::parse("c", "EUR").unwrap()
    }

    #[test]
    fn prices_products_and_variants() {
        let priced =
            price(&[line("shirt", None, 2), line("shirt", Some("red"), 1)], &catalog(), &eur())
                .unwrap();
        assert_eq!(priced.total_minor, 2 * 1999 + 2499);
        assert_eq!(priced.lines[1].sku, "SHIRT-RED");
        assert_eq!(priced.lines[1].unit_price_minor, 2499);
    }

    #[test]
    fn refuses_unknowns_currency_and_overflow() {
        assert!(matches!(
            price(&[line("nope", None, 1)], &catalog(), &eur()),
            Err(PricingError::UnknownProduct { line: 0, .. })
        ));
        assert!(matches!(
            price(&[line("shirt", None, 1), line("shirt", Some("blue"), 1)], &catalog(), &eur()),
            Err(PricingError::UnknownVariant { line: 1, .. })
        ));
        assert!(matches!(
            price(&[line("fan", None, 1)], &catalog(), &eur()),
            Err(PricingError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            price(&[line("huge", None, 3)], &catalog(), &eur()),
            Err(PricingError::Overflow)
        );
        assert_eq!(
            price(&[line("huge", None, 2), line("huge", None, 2)], &catalog(), &eur()),
            Err(PricingError::Overflow)
        );
    }

    #[test]
    fn demand_sums_lines_of_one_sku() {
        let d = demand([("A", "pa", 2), ("B", "pb", 1), ("A", "pa", 3)]).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].sku.as_str(), d[0].quantity), ("A", 5));
        assert!(demand([("A", "pa", i32::MAX), ("A", "pa", 1)]).is_none());
    }
}
