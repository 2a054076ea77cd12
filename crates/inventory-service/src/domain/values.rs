//! Newtypes built only through validation, so handlers and the store never see bad values.

use std::fmt;

use uuid::Uuid;

/// Longest SKU, warehouse id or reference we accept: keys, not prose.
const MAX_KEY_LEN: usize = 64;
const MAX_REFERENCE_ID_LEN: usize = 128;
const MAX_REASON_LEN: usize = 500;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

pub use proto::status::FieldViolation;

fn key(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldViolation::new(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldViolation::new(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A stock keeping unit: 1 to 64 printable characters without whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    /// Validates `value` as the SKU in `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        key(field, value, MAX_KEY_LEN).map(Self)
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A warehouse name; requests that leave it empty mean [`WarehouseId::DEFAULT`] or "any".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WarehouseId(String);

impl WarehouseId {
    /// Where stock goes when a request names no warehouse.
    pub const DEFAULT: &'static str = "default";

    /// Validates a non-empty warehouse id.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        key(field, value, MAX_KEY_LEN).map(Self)
    }

    /// Empty means `default`: stock writes always land in a concrete warehouse.
    pub fn parse_or_default(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            Ok(Self(Self::DEFAULT.to_owned()))
        } else {
            Self::parse(field, value)
        }
    }

    /// Empty means "any warehouse" (None): the reservation allocates across them.
    pub fn parse_optional(field: &str, value: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() { Ok(None) } else { Self::parse(field, value).map(Some) }
    }

    /// The warehouse id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WarehouseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// A reservation's id: a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservationId(Uuid);

impl ReservationId {
    /// Validates `value` as a UUID in `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        Uuid::parse_str(value).map(Self).map_err(|_| FieldViolation::new(field, "must be a UUID"))
    }

    /// A fresh, time-ordered id (UUIDv7 keeps the primary key index append-mostly).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id as a UUID.
    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl Default for ReservationId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for ReservationId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a reservation line names its item: by SKU, or by the item's id (a UUID).
///
/// A UUID-shaped value may still be a SKU, so the store matches either.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemRef {
    text: String,
    id: Option<Uuid>,
}

impl ItemRef {
    /// Validates `value` as a SKU or an item id.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let text = key(field, value, MAX_KEY_LEN.max(36))?;
        let id = Uuid::parse_str(&text).ok();
        Ok(Self { text, id })
    }

    /// The value as given: matched against SKUs.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value as an item id, when it is a UUID.
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }
}

impl fmt::Display for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a reservation is for, e.g. `(ORDER, <order id>)`: at most one live hold each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub kind: String,
    pub id: String,
}

impl Reference {
    /// Validates the reference type and id of a reserve request, reporting both when both
    /// are wrong.
    pub fn parse(kind: &str, id: &str) -> Result<Self, Vec<FieldViolation>> {
        match (
            key("reference_type", kind, MAX_KEY_LEN),
            key("reference_id", id, MAX_REFERENCE_ID_LEN),
        ) {
            (Ok(kind), Ok(id)) => Ok(Self { kind, id }),
            (kind, id) => Err(kind.err().into_iter().chain(id.err()).collect()),
        }
    }
}

/// Why stock was adjusted: required, short free text for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Validates a non-blank reason of at most 500 characters.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        if trimmed.chars().count() > MAX_REASON_LEN {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_REASON_LEN} characters"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            // PostgreSQL text cannot hold NUL; other control characters only garble logs.
            return Err(FieldViolation::new(field, "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The reason text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes a change (an adjustment, a return) apply once, however
/// often it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A key that must be given.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        key(field, value, MAX_IDEMPOTENCY_KEY_LEN).map(Self)
    }

    /// Empty means the adjustment is not deduplicated.
    pub fn parse_optional(field: &str, value: &str) -> Result<Option<Self>, FieldViolation> {
        if value.is_empty() {
            return Ok(None);
        }
        key(field, value, MAX_IDEMPOTENCY_KEY_LEN).map(|k| Some(Self(k)))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page size clamped to the server's bounds; 0 means the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    const DEFAULT: u32 = 50;
    const MAX: u32 = 500;

    /// Validates a requested page size: negative is refused, 0 is the default, large is capped.
    pub fn parse(field: &str, value: i32) -> Result<Self, FieldViolation> {
        match u32::try_from(value) {
            Err(_) => Err(FieldViolation::new(field, "must not be negative")),
            Ok(0) => Ok(Self(Self::DEFAULT)),
            Ok(n) => Ok(Self(n.min(Self::MAX))),
        }
    }

    /// The number of rows in a page.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Lifecycle of a hold: PENDING, then exactly one of COMMITTED, CANCELLED or EXPIRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Pending,
    Committed,
    Cancelled,
    Expired,
}

impl ReservationStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Committed => "COMMITTED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Parses a stored status; None for text the schema's CHECK would not allow.
    pub fn from_db(value: &str) -> Option<Self> {
        match value {
            "PENDING" => Some(Self::Pending),
            "COMMITTED" => Some(Self::Committed),
            "CANCELLED" => Some(Self::Cancelled),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_rejects_empty_long_and_blank() {
        assert_eq!(Sku::parse("sku", "").unwrap_err().field, "sku");
        assert!(Sku::parse("sku", &"x".repeat(65)).is_err());
        assert!(Sku::parse("sku", "a b").is_err());
        assert!(Sku::parse("sku", "a\n").is_err());
        assert_eq!(Sku::parse("sku", &"x".repeat(64)).map(|s| s.0.len()), Ok(64));
    }

    #[test]
    fn quantity_must_be_positive() {
        assert!(Quantity::parse("q", 0).is_err());
        assert!(Quantity::parse("q", -3).is_err());
        assert_eq!(Quantity::parse("q", 7).map(Quantity::get), Ok(7));
    }

    #[test]
    fn reservation_id_must_be_uuid() {
        let err = ReservationId::parse("reservation_id", "nope").unwrap_err();
        assert_eq!(err.description, "must be a UUID");
        assert!(ReservationId::parse("reservation_id", "").is_err());
        assert!(ReservationId::parse("r", "0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f").is_ok());
    }

    #[test]
    fn warehouse_defaults() {
        assert_eq!(WarehouseId::parse_or_default("w", "").map(|w| w.0), Ok("default".into()));
        assert_eq!(WarehouseId::parse_optional("w", ""), Ok(None));
        assert!(WarehouseId::parse_optional("w", "eu-1").is_ok_and(|w| w.is_some()));
    }

    #[test]
    fn item_ref_recognises_uuids() {
        let by_sku = ItemRef::parse("i", "SKU-1").unwrap();
        assert_eq!(by_sku.id(), None);
        let by_id = ItemRef::parse("i", "0190a5c2-7d4e-7c3a-9b1e-2f8a1c0d3e4f").unwrap();
        assert!(by_id.id().is_some());
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(PageSize::parse("p", 0).map(PageSize::get), Ok(50));
        assert_eq!(PageSize::parse("p", 10_000).map(PageSize::get), Ok(500));
        assert!(PageSize::parse("p", -1).is_err());
    }

    #[test]
    fn status_round_trips() {
        for s in [
            ReservationStatus::Pending,
            ReservationStatus::Committed,
            ReservationStatus::Cancelled,
            ReservationStatus::Expired,
        ] {
            assert_eq!(ReservationStatus::from_db(s.as_str()), Some(s));
        }
        assert_eq!(ReservationStatus::from_db("HELD"), None);
    }
}
