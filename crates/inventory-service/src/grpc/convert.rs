//! Protobuf <-> domain conversion: requests are parsed into commands (naming the offending
//! field on failure), store views are turned into replies. Protobuf types stop here.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::NaiveDate;
use proto::inventory::v1 as pb;

use crate::domain::{
    AvailabilityStatus, FieldViolation, HoldCaller, IdempotencyKey, ItemRef, PageSize, Quantity,
    Reason, Reference, ReservationId, ReservationStatus, Sku, WarehouseId,
    allocation::{Line, Shortage},
    commands::{Adjust, CheckLine, ListPage, LowStockPage, Reserve, SetPolicy, Settle, Upsert},
    returns::{ReturnLine, ReturnStock},
};
use crate::error::InventoryError;
use crate::store::{
    BackorderedView, ItemView, LevelView, LowStockView, ReservationView, ReserveOutcome,
    ReturnView, SettleOutcome, SkuAvailability,
};

/// The most lines one return may carry: bounds one request's work and its transaction.
pub const MAX_RETURN_LINES: usize = 500;

/// Bounds on what one request may carry; set from the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_items: usize,
    pub default_expiry_minutes: u32,
    pub max_expiry_minutes: u32,
}

/// Collects every violation of a request instead of stopping at the first.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn take<T>(&mut self, r: Result<T, FieldViolation>) -> Option<T> {
        r.map_err(|v| self.0.push(v)).ok()
    }

    fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, InventoryError> {
        if !self.0.is_empty() {
            return Err(InventoryError::InvalidArgument(self.0));
        }
        value().ok_or_else(|| InventoryError::Internal(anyhow::anyhow!("validation lost a value")))
    }
}

fn check_count(v: &mut Violations, len: usize, limits: &Limits) {
    if len == 0 {
        v.0.push(FieldViolation::new("items", "must contain at least one item"));
    } else if len > limits.max_items {
        v.0.push(FieldViolation::new(
            "items",
            format!("must contain at most {} items", limits.max_items),
        ));
    }
}

/// Parses a check request into its lines.
pub fn check_lines(
    req: &pb::CheckInventoryAvailabilityRequest,
    limits: &Limits,
) -> Result<Vec<CheckLine>, InventoryError> {
    let mut v = Violations::default();
    check_count(&mut v, req.items.len(), limits);
    let lines: Vec<Option<CheckLine>> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let sku = v.take(Sku::parse(&format!("items[{i}].sku"), &item.sku));
            let quantity = v.take(Quantity::parse(&format!("items[{i}].quantity"), item.quantity));
            Some(CheckLine { sku: sku?, quantity: quantity? })
        })
        .collect();
    v.finish(|| lines.into_iter().collect())
}

/// Parses a reserve request into a command.
pub fn reserve(
    req: &pb::ReserveInventoryRequest,
    limits: &Limits,
    caller: HoldCaller,
) -> Result<Reserve, InventoryError> {
    let mut v = Violations::default();
    check_count(&mut v, req.items.len(), limits);
    let lines: Vec<Option<Line>> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_ref = v.take(ItemRef::parse(
                &format!("items[{i}].inventory_item_id"),
                &item.inventory_item_id,
            ));
            let warehouse = v.take(WarehouseId::parse_optional(
                &format!("items[{i}].warehouse_id"),
                &item.warehouse_id,
            ));
            let quantity = v.take(Quantity::parse(&format!("items[{i}].quantity"), item.quantity));
            Some(Line { item: item_ref?, warehouse: warehouse?, quantity: quantity? })
        })
        .collect();
    let reference = Reference::parse(&req.reference_type, &req.reference_id)
        .map_err(|violations| v.0.extend(violations))
        .ok();
    let minutes = v.take(expiry_minutes(req.expiration_minutes, limits));
    v.finish(|| {
        Some(Reserve {
            lines: lines.into_iter().collect::<Option<_>>()?,
            reference: reference?,
            expires_in_minutes: minutes?,
            caller,
        })
    })
}

fn expiry_minutes(requested: i32, limits: &Limits) -> Result<u32, FieldViolation> {
    match u32::try_from(requested) {
        Err(_) => Err(FieldViolation::new("expiration_minutes", "must not be negative")),
        Ok(0) => Ok(limits.default_expiry_minutes),
        Ok(m) if m > limits.max_expiry_minutes => Err(FieldViolation::new(
            "expiration_minutes",
            format!("must be at most {}", limits.max_expiry_minutes),
        )),
        Ok(m) => Ok(m),
    }
}

/// Parses the reservation id of a commit, cancel or get request.
pub fn reservation_id(value: &str) -> Result<ReservationId, InventoryError> {
    Ok(ReservationId::parse("reservation_id", value)?)
}

/// How a request names a hold: its id, or the reference it was taken under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldName {
    /// The reservation id (the seed's field 1).
    Id(ReservationId),
    /// The live hold of a reference.
    Reference(Reference),
}

/// A hold's name from either arm of a request's `hold` oneof (`None`: neither was sent,
/// which is how an old client's empty reservation_id arrives).
fn hold_name(
    id: Option<&str>,
    reference: Option<&pb::ReservationReference>,
) -> Result<HoldName, InventoryError> {
    match (id, reference) {
        (Some(id), _) => Ok(HoldName::Id(reservation_id(id)?)),
        (None, Some(r)) => Reference::parse(&r.reference_type, &r.reference_id)
            .map(HoldName::Reference)
            .map_err(|violations| {
                InventoryError::InvalidArgument(
                    violations
                        .into_iter()
                        .map(|v| {
                            FieldViolation::new(format!("reference.{}", v.field), v.description)
                        })
                        .collect(),
                )
            }),
        (None, None) => Err(FieldViolation::new("reservation_id", "must not be empty").into()),
    }
}

macro_rules! hold_of {
    ($fn_name:ident, $request:ident, $module:ident) => {
        /// The hold a request names, by id or by reference.
        pub fn $fn_name(req: &pb::$request) -> Result<HoldName, InventoryError> {
            use pb::$module::Hold;
            match &req.hold {
                Some(Hold::ReservationId(id)) => hold_name(Some(id), None),
                Some(Hold::Reference(r)) => hold_name(None, Some(r)),
                None => hold_name(None, None),
            }
        }
    };
}

hold_of!(cancel_hold, CancelReservationRequest, cancel_reservation_request);
hold_of!(get_hold, GetReservationRequest, get_reservation_request);
hold_of!(return_hold, ReturnStockRequest, return_stock_request);

/// A ReturnStock request's lines, key and reason, parsed; the hold is resolved apart (a
/// reference needs the store).
#[derive(Debug)]
pub struct ParsedReturn {
    lines: Vec<ReturnLine>,
    key: IdempotencyKey,
    reason: Option<Reason>,
}

impl ParsedReturn {
    /// The command for the resolved hold, on behalf of `caller`.
    pub fn into_command(self, reservation: ReservationId, caller: HoldCaller) -> ReturnStock {
        ReturnStock { reservation, lines: self.lines, key: self.key, reason: self.reason, caller }
    }
}

/// Parses a ReturnStock request's lines, key and reason, collecting every violation.
pub fn return_lines(req: &pb::ReturnStockRequest) -> Result<ParsedReturn, InventoryError> {
    let mut v = Violations::default();
    if req.lines.is_empty() {
        v.0.push(FieldViolation::new("lines", "must name at least one line"));
    }
    if req.lines.len() > MAX_RETURN_LINES {
        v.0.push(FieldViolation::new("lines", format!("must be at most {MAX_RETURN_LINES}")));
    }
    let lines: Vec<Option<ReturnLine>> = req
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let sku = v.take(Sku::parse(&format!("lines[{i}].sku"), &line.sku));
            let warehouse = v.take(WarehouseId::parse_optional(
                &format!("lines[{i}].warehouse_id"),
                &line.warehouse_id,
            ));
            let quantity = v.take(Quantity::parse(&format!("lines[{i}].quantity"), line.quantity));
            Some(ReturnLine {
                sku: sku?,
                warehouse: warehouse?,
                quantity: quantity?,
                restock: !line.do_not_restock,
            })
        })
        .collect();
    let key = v.take(IdempotencyKey::parse("idempotency_key", &req.idempotency_key));
    let reason = if req.reason.is_empty() {
        Some(None)
    } else {
        v.take(Reason::parse("reason", &req.reason).map(Some))
    };
    v.finish(|| {
        Some(ParsedReturn {
            lines: lines.into_iter().collect::<Option<_>>()?,
            key: key?,
            reason: reason?,
        })
    })
}

/// The answer to a ReturnStock request.
pub fn return_reply(view: ReturnView) -> pb::ReturnStockResponse {
    pb::ReturnStockResponse {
        return_id: view.id.to_string(),
        reservation_id: view.reservation_id.to_string(),
        lines: view
            .lines
            .into_iter()
            .map(|l| pb::ReturnedLine {
                sku: l.sku,
                warehouse_id: l.warehouse_id,
                quantity: l.quantity,
                do_not_restock: !l.restock,
            })
            .collect(),
        replayed: view.replayed,
    }
}

/// Parses an upsert request.
pub fn upsert(req: &pb::UpsertInventoryItemRequest) -> Result<Upsert, InventoryError> {
    let mut v = Violations::default();
    let sku = v.take(Sku::parse("sku", &req.sku));
    let product_id =
        v.take(Sku::parse("product_id", &req.product_id).map(|p| p.as_str().to_owned()));
    let variant_id = match &req.variant_id {
        None => Some(None),
        Some(w) => v.take(Sku::parse("variant_id", w).map(|s| Some(s.as_str().to_owned()))),
    };
    let warehouse = v.take(WarehouseId::parse_or_default("warehouse_id", &req.warehouse_id));
    if req.on_hand < 0 {
        v.0.push(FieldViolation::new("on_hand", "must not be negative"));
    }
    v.finish(|| {
        Some(Upsert {
            sku: sku?,
            product_id: product_id?,
            variant_id: variant_id?,
            warehouse: warehouse?,
            on_hand: req.on_hand,
        })
    })
}

/// Parses an adjustment request.
pub fn adjust(req: &pb::AdjustStockRequest) -> Result<Adjust, InventoryError> {
    let mut v = Violations::default();
    let sku = v.take(Sku::parse("sku", &req.sku));
    let warehouse = v.take(WarehouseId::parse_or_default("warehouse_id", &req.warehouse_id));
    if req.delta == 0 {
        v.0.push(FieldViolation::new("delta", "must not be 0"));
    }
    let reason = v.take(Reason::parse("reason", &req.reason));
    let key = v.take(IdempotencyKey::parse_optional("idempotency_key", &req.idempotency_key));
    v.finish(|| {
        Some(Adjust {
            sku: sku?,
            warehouse: warehouse?,
            delta: req.delta,
            reason: reason?,
            key: key?,
        })
    })
}

/// Parses a policy request; `changed_by` is the caller's identity, recorded with the change.
pub fn set_policy(
    req: &pb::SetStockPolicyRequest,
    changed_by: Option<String>,
) -> Result<SetPolicy, InventoryError> {
    let mut v = Violations::default();
    let sku = v.take(Sku::parse("sku", &req.sku));
    let warehouse = v.take(WarehouseId::parse_or_default("warehouse_id", &req.warehouse_id));
    for (field, value) in [
        ("safety_stock", req.safety_stock),
        ("low_stock_threshold", req.low_stock_threshold),
        ("backorder_limit", req.backorder_limit),
    ] {
        if value.is_some_and(|n| n < 0) {
            v.0.push(FieldViolation::new(field, "must not be negative"));
        }
    }
    let restock_date = match req.expected_restock_date.as_deref() {
        None => Some(None),
        Some("") => Some(Some(None)),
        Some(text) => {
            v.take(NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| Some(Some(d))).map_err(
                |_| FieldViolation::new("expected_restock_date", "must be a date, YYYY-MM-DD"),
            ))
        }
    };
    if req.safety_stock.is_none()
        && req.low_stock_threshold.is_none()
        && req.backorder_limit.is_none()
        && req.expected_restock_date.is_none()
    {
        v.0.push(FieldViolation::new(
            "safety_stock",
            "set at least one of safety_stock, low_stock_threshold, backorder_limit and \
             expected_restock_date: the request changes nothing",
        ));
    }
    let reason = v.take(Reason::parse("reason", &req.reason));
    v.finish(|| {
        Some(SetPolicy {
            sku: sku?,
            warehouse: warehouse?,
            safety_stock: req.safety_stock,
            low_stock_threshold: req.low_stock_threshold,
            backorder_limit: req.backorder_limit,
            restock_date: restock_date?,
            reason: reason?,
            changed_by,
        })
    })
}

/// Parses a low-stock list request; the page token is the last row's SKU and warehouse.
pub fn low_stock_page(req: &pb::ListLowStockRequest) -> Result<LowStockPage, InventoryError> {
    let mut v = Violations::default();
    let warehouse = if req.warehouse_id.is_empty() {
        Some(None)
    } else {
        v.take(WarehouseId::parse("warehouse_id", &req.warehouse_id).map(Some))
    };
    let size = v.take(PageSize::parse("page_size", req.page_size));
    let after = if req.page_token.is_empty() {
        Some(None)
    } else {
        // Text of either part never holds a NUL (both are validated), so it separates them.
        let row = URL_SAFE_NO_PAD
            .decode(&req.page_token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                let (sku, wh) = text.split_once('\0')?;
                Sku::parse("page_token", sku).ok()?;
                WarehouseId::parse("page_token", wh).ok()?;
                Some((sku.to_owned(), wh.to_owned()))
            });
        match row {
            Some(row) => Some(Some(row)),
            None => {
                v.0.push(FieldViolation::new("page_token", "is not a token this server issued"));
                None
            }
        }
    };
    v.finish(|| Some(LowStockPage { warehouse: warehouse?, size: size?, after: after? }))
}

/// The page token that continues after the low-stock row (sku, warehouse).
pub fn low_stock_token(sku: &str, warehouse: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{sku}\0{warehouse}"))
}

/// A low-stock row as the wire shows it.
pub fn low_stock_row(view: LowStockView) -> pb::LowStockRow {
    pb::LowStockRow { sku: view.sku, level: Some(level(view.level)) }
}

/// Parses the SKU of a get request.
pub fn sku(value: &str) -> Result<Sku, InventoryError> {
    Ok(Sku::parse("sku", value)?)
}

/// Parses a list request; the page token is the last SKU of the previous page, encoded.
pub fn list_page(req: &pb::ListInventoryItemsRequest) -> Result<ListPage, InventoryError> {
    let mut v = Violations::default();
    let size = v.take(PageSize::parse("page_size", req.page_size));
    let after = if req.page_token.is_empty() {
        Some(None)
    } else {
        // A token decodes to a SKU: anything else was not issued by this server.
        let sku = URL_SAFE_NO_PAD
            .decode(&req.page_token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|text| Sku::parse("page_token", text).is_ok());
        match sku {
            Some(sku) => Some(Some(sku)),
            None => {
                v.0.push(FieldViolation::new("page_token", "is not a token this server issued"));
                None
            }
        }
    };
    v.finish(|| Some(ListPage { size: size?, after: after? }))
}

/// The page token that continues after `last_sku`.
pub fn page_token(last_sku: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_sku)
}

/// The reply to a reserve request; `backordered`: the hold's units on backorder, if any.
pub fn reserve_reply(
    outcome: ReserveOutcome,
    backordered: Vec<BackorderedView>,
) -> pb::ReservationResponse {
    let (reservation_id, success, message, status) = match outcome {
        ReserveOutcome::Reserved(id) => {
            (id.to_string(), true, "reserved".to_owned(), ReservationStatus::Pending.as_str())
        }
        ReserveOutcome::ReservedOnBackorder(id) => {
            let units: i64 = backordered.iter().map(|b| i64::from(b.quantity)).sum();
            let message = format!("reserved, {units} unit(s) on backorder");
            (id.to_string(), true, message, ReservationStatus::Pending.as_str())
        }
        ReserveOutcome::Existing(id, status) => (
            id.to_string(),
            true,
            format!(
                "the reference already holds reservation {id} ({})",
                status.as_str().to_lowercase()
            ),
            status.as_str(),
        ),
        ReserveOutcome::Short(shortages) => {
            return pb::ReservationResponse {
                reservation_id: String::new(),
                success: false,
                message: shortage_message(&shortages),
                status: String::new(),
                shortages: shortages
                    .into_iter()
                    .map(|s| pb::ShortLine {
                        sku: s.sku,
                        warehouse_id: s.warehouse.unwrap_or_default(),
                        requested_quantity: s.requested,
                        available_quantity: available_for_wire(s.available),
                    })
                    .collect(),
                backordered: Vec::new(),
            };
        }
    };
    pb::ReservationResponse {
        reservation_id,
        success,
        message,
        status: status.to_owned(),
        shortages: Vec::new(),
        backordered: backordered
            .into_iter()
            .map(|b| pb::BackorderedLine {
                sku: b.sku,
                warehouse_id: b.warehouse_id,
                quantity: b.quantity,
                expected_restock_date: date(b.restock_date),
            })
            .collect(),
    }
}

/// A date as the wire spells it: YYYY-MM-DD, empty for none.
fn date(day: Option<NaiveDate>) -> String {
    day.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// The reply to a commit or cancel: success unless the hold's status refused it; the status
/// the hold has now.
pub fn settle_reply(op: Settle, outcome: SettleOutcome) -> pb::ReservationResponse {
    let (success, message, status) = match outcome {
        SettleOutcome::Applied => (true, format!("reservation {}", op.done()), op.applied()),
        SettleOutcome::AlreadyDone(status) => {
            (true, format!("reservation already {}", status.as_str().to_lowercase()), status)
        }
        SettleOutcome::Refused(status) => (
            false,
            format!(
                "cannot {} a reservation that is {}",
                op.verb(),
                status.as_str().to_lowercase()
            ),
            status,
        ),
    };
    pb::ReservationResponse {
        reservation_id: op.reservation().to_string(),
        success,
        message,
        status: status.as_str().to_owned(),
        shortages: Vec::new(),
        backordered: Vec::new(),
    }
}

/// The answer for one checked line: what was `asked` (echoed), against the SKU's stock when
/// `known`; product and variant ids the request left empty are filled from the item.
pub fn item_availability(
    asked: pb::AvailabilityCheckItem,
    line: &CheckLine,
    known: Option<&SkuAvailability>,
) -> pb::ItemAvailability {
    let available = known.map(|k| k.available);
    let in_stock = known.map_or(0, |k| k.in_stock);
    let status = AvailabilityStatus::classify(line.quantity.get(), available, in_stock);
    pb::ItemAvailability {
        product_id: if asked.product_id.is_empty() {
            known.map(|k| k.product_id.clone()).unwrap_or_default()
        } else {
            asked.product_id
        },
        variant_id: asked.variant_id.or_else(|| known.and_then(|k| k.variant_id.clone())),
        sku: asked.sku,
        requested_quantity: line.quantity.get(),
        available_quantity: available_for_wire(available.unwrap_or(0)),
        is_available: matches!(
            status,
            AvailabilityStatus::InStock | AvailabilityStatus::AvailableOnBackorder
        ),
        status: status.as_str().to_owned(),
        in_stock_quantity: available_for_wire(in_stock),
        expected_restock_date: if status == AvailabilityStatus::AvailableOnBackorder {
            date(known.and_then(|k| k.restock_date))
        } else {
            String::new()
        },
    }
}

/// The human-readable refusal of a short reservation, naming each short SKU.
pub fn shortage_message(shortages: &[Shortage]) -> String {
    let parts: Vec<String> = shortages
        .iter()
        .map(|s| match &s.warehouse {
            Some(w) => {
                format!("{} in {w}: requested {}, available {}", s.sku, s.requested, s.available)
            }
            None => format!("{}: requested {}, available {}", s.sku, s.requested, s.available),
        })
        .collect();
    format!("insufficient stock: {}", parts.join("; "))
}

fn clamp(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

/// An item as the wire shows it, with totals over its warehouses.
pub fn item(view: ItemView) -> pb::InventoryItem {
    let on_hand: i64 = view.levels.iter().map(|l| i64::from(l.on_hand)).sum();
    let reserved: i64 = view.levels.iter().map(|l| i64::from(l.reserved)).sum();
    let available: i64 = view.levels.iter().map(|l| i64::from(l.available())).sum();
    pb::InventoryItem {
        id: view.id.to_string(),
        sku: view.sku,
        product_id: view.product_id,
        variant_id: view.variant_id,
        on_hand: clamp(on_hand),
        reserved: clamp(reserved),
        available: clamp(available),
        levels: view.levels.into_iter().map(level).collect(),
    }
}

fn level(l: LevelView) -> pb::StockLevel {
    pb::StockLevel {
        available: l.available(),
        low_stock: l.is_low(),
        safety_stock: l.policy.safety_stock,
        low_stock_threshold: l.policy.low_stock_threshold,
        backorder_limit: l.policy.backorder_limit,
        expected_restock_date: date(l.policy.restock_date),
        in_stock: l.in_stock(),
        warehouse_id: l.warehouse_id,
        on_hand: l.on_hand,
        reserved: l.reserved,
    }
}

/// A hold as the wire shows it.
pub fn reservation(view: ReservationView) -> pb::Reservation {
    pb::Reservation {
        reservation_id: view.id.to_string(),
        reference_id: view.reference_id,
        reference_type: view.reference_type,
        status: view.status.as_str().to_owned(),
        expires_at: Some(prost_types::Timestamp {
            seconds: view.expires_at.timestamp(),
            nanos: i32::try_from(view.expires_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        items: view
            .items
            .into_iter()
            .map(|l| pb::ReservedItem {
                sku: l.sku,
                warehouse_id: l.warehouse_id,
                quantity: l.quantity,
                returned_quantity: l.returned,
                not_restocked_quantity: l.not_restocked,
                backordered_quantity: l.backordered,
                expected_restock_date: if l.backordered > 0 {
                    date(l.restock_date)
                } else {
                    String::new()
                },
            })
            .collect(),
    }
}

/// The clamped available count for the wire (sums over warehouses are i64 internally).
pub fn available_for_wire(available: i64) -> i32 {
    clamp(available.max(0))
}
