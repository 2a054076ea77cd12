//! Newtypes built only through validation, so handlers and the store never see bad values.

use std::fmt;

pub use proto::status::FieldViolation;
use uuid::Uuid;

use super::currency;

const MAX_ID_LEN: usize = 128;
const MAX_METHOD_LEN: usize = 64;
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;

/// A non-empty identifier of at most `max` characters, without control characters.
fn text_id(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    if value.trim().is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldViolation::new(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as the field `field`.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
                text_id(field, value, $max).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// Who places the order: 1 to 128 characters.
    UserId,
    MAX_ID_LEN
);
text_newtype!(
    /// A catalog product id: 1 to 128 characters.
    ProductId,
    MAX_ID_LEN
);
text_newtype!(
    /// A product variant id: 1 to 128 characters.
    VariantId,
    MAX_ID_LEN
);
text_newtype!(
    /// The client's key that makes CreateOrder safe to retry: 1 to 128 characters.
    IdempotencyKey,
    MAX_ID_LEN
);
text_newtype!(
    /// How the order is paid (passed to the payment service as is): 1 to 64 characters.
    PaymentMethod,
    MAX_METHOD_LEN
);

/// A strictly positive number of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i32);

impl Quantity {
    /// Validates `value` as a quantity of at least one unit.
    pub fn parse(field: &str, value: i32) -> Result<Self, FieldViolation> {
        if value <= 0 {
            return Err(FieldViolation::new(field, "must be greater than 0"));
        }
        Ok(Self(value))
    }

    /// The number of units.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// An ISO 4217 currency code from the list this service accepts, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// Validates `value` (any case) as a known ISO 4217 code.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let code = value.trim().to_ascii_uppercase();
        if code.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        if !currency::is_known(&code) {
            return Err(FieldViolation::new(
                field,
                // Echo at most a few characters: a violation must stay short whatever was sent.
                format!(
                    "must be an ISO 4217 currency code such as EUR or USD, not {:?}",
                    value.chars().take(8).collect::<String>()
                ),
            ));
        }
        Ok(Self(code))
    }

    /// The code, e.g. `EUR`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order's id: a UUID (v7 when this service creates it, so ids sort by creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Validates `value` as a UUID in `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        Uuid::parse_str(value).map(Self).map_err(|_| FieldViolation::new(field, "must be a UUID"))
    }

    /// The UUID.
    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for OrderId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many orders one ListOrders page holds: 0 means the default (20), at most 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// Validates a requested page size.
    pub fn parse(field: &str, value: i32) -> Result<Self, FieldViolation> {
        match u32::try_from(value) {
            Err(_) => Err(FieldViolation::new(field, "must not be negative")),
            Ok(0) => Ok(Self(DEFAULT_PAGE_SIZE)),
            Ok(n) if n > MAX_PAGE_SIZE => {
                Err(FieldViolation::new(field, format!("must be at most {MAX_PAGE_SIZE}")))
            }
            Ok(n) => Ok(Self(n)),
        }
    }

    /// The number of orders.
    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_control_characters() {
        assert!(UserId::parse("user_id", "u-1").is_ok());
        assert_eq!(UserId::parse("user_id", "").unwrap_err().field, "user_id");
        assert!(UserId::parse("user_id", "   ").is_err());
        assert!(UserId::parse("user_id", &"u".repeat(129)).is_err());
        assert!(UserId::parse("user_id", &"u".repeat(128)).is_ok());
        assert!(ProductId::parse("p", "a\nb").is_err());
    }

    #[test]
    fn currency_is_normalised_and_checked() {
        assert_eq!(Currency::parse("currency", "eur").map(|c| c.0), Ok("EUR".to_owned()));
        assert!(Currency::parse("currency", "").is_err());
        assert!(Currency::parse("currency", "EURO").is_err());
        assert!(Currency::parse("currency", "XYZ").is_err());
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(PageSize::parse("page_size", 0).map(PageSize::get), Ok(20));
        assert_eq!(PageSize::parse("page_size", 100).map(PageSize::get), Ok(100));
        assert!(PageSize::parse("page_size", 101).is_err());
        assert!(PageSize::parse("page_size", -1).is_err());
    }

    #[test]
    fn order_ids_parse_uuids_only() {
        assert!(OrderId::parse("order_id", &OrderId::new().to_string()).is_ok());
        assert!(OrderId::parse("order_id", "nope").is_err());
        assert!(OrderId::parse("order_id", "").is_err());
    }
}
