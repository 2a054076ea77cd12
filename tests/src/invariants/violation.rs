//! What the checker finds: one [`Violation`] per broken invariant, with what was expected and
//! what was found, its kind for counting, and how it reads in a report.

use std::fmt;

use uuid::Uuid;

/// One broken invariant, with what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// An order still has a saga step to do, or rests in a non-terminal status.
    NotTerminal { order_id: Uuid, status: String, next_action: Option<String> },
    /// initial − sold (confirmed orders, committed holds of other references) + restocked
    /// returns + admin changes ≠ final on_hand for a SKU.
    StockDrift {
        sku: String,
        initial: i64,
        confirmed: i64,
        returned: i64,
        adjusted: i64,
        on_hand: i64,
    },
    /// A stock row's `reserved` differs from the sum of its PENDING hold lines.
    ReservedDrift { level: i64, sku: String, warehouse: String, reserved: i64, pending: i64 },
    /// A stock row differs from the sums of its movement ledger.
    LedgerDrift {
        level: i64,
        sku: String,
        warehouse: String,
        on_hand: i64,
        ledger_on_hand: i64,
        reserved: i64,
        ledger_reserved: i64,
    },
    /// `0 <= reserved` and `on_hand - reserved >= -backorder_limit` do not both hold for a
    /// stock row (without a backorder limit: `0 <= reserved <= on_hand`).
    ImpossibleLevel { level: i64, sku: String, warehouse: String, on_hand: i64, reserved: i64 },
    /// A reserve left a stock row with fewer unreserved units than its safety stock (the ledger
    /// replayed in movement order, checked after each RESERVE).
    SafetyStockSold {
        level: i64,
        sku: String,
        warehouse: String,
        movement: i64,
        on_hand: i64,
        reserved: i64,
        safety_stock: i64,
    },
    /// A hold is still PENDING more than one sweep after its expiry.
    StaleHold { reservation_id: Uuid, reference: String, overdue_ms: i64 },
    /// A CONFIRMED order does not have exactly one successful, unrefunded charge of its total.
    ConfirmedPayment { order_id: Uuid, problem: String },
    /// A CONFIRMED order's hold is missing, not COMMITTED, or does not match its items.
    ConfirmedHold { order_id: Uuid, reservation_id: Option<Uuid>, problem: String },
    /// A REJECTED/PAYMENT_FAILED/CANCELLED order still holds stock.
    SettledOrderHoldsStock { order_id: Uuid, status: String, reservation_id: Uuid, hold: String },
    /// A REJECTED/PAYMENT_FAILED/CANCELLED order (or no order at all) kept money.
    UnrefundedCharge {
        order_id: String,
        status: String,
        payment_id: String,
        amount_minor: i64,
        refunded_minor: i64,
    },
    /// A live (PENDING/COMMITTED) ORDER hold whose order does not exist.
    OrphanHold { reservation_id: Uuid, reference_id: String, status: String },
    /// A hold taken for an order after the order had settled, and never cancelled: nobody
    /// released it, so it kept its stock until it expired (caught here even after the sweeper
    /// released it). A late hold its own superseded driver cancelled at once is no leak.
    LateHold {
        order_id: Uuid,
        status: String,
        reservation_id: Uuid,
        hold: String,
        after_settle_ms: i64,
    },
    /// A return that did not reach COMPLETED once the system was quiet.
    ReturnNotFinished { return_id: Uuid, order_id: Uuid, status: String },
    /// An order's returns disagree with its lines, its prices or the inventory's returns.
    ReturnMismatch { order_id: Uuid, problem: String },
    /// What the payment kept (charges minus refunds) ≠ confirmed orders' value minus the
    /// value of their completed returns.
    MoneyDrift { kept: i64, expected: i64 },
    /// A consumer of a service's event log was sent a position other than the one after the
    /// last it handled: a gap (events lost) or a repeat (an event sent twice).
    EventGap { service: &'static str, expected: u64, got: u64 },
    /// A consumer did not reach the head of its service's event log in time once the run was
    /// quiet, so the replay check would compare an unfinished fold.
    EventsNotCaughtUp { service: &'static str, reached: u64, head: u64 },
    /// Replaying a service's events does not lead to what its database holds, or the events
    /// contradict each other (a status change from a status the events never left).
    EventReplayMismatch { service: &'static str, subject: String, problem: String },
}

impl Violation {
    /// A short name of the invariant, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotTerminal { .. } => "not_terminal",
            Self::StockDrift { .. } => "stock_drift",
            Self::ReservedDrift { .. } => "reserved_drift",
            Self::LedgerDrift { .. } => "ledger_drift",
            Self::ImpossibleLevel { .. } => "impossible_level",
            Self::SafetyStockSold { .. } => "safety_stock_sold",
            Self::StaleHold { .. } => "stale_hold",
            Self::ConfirmedPayment { .. } => "confirmed_payment",
            Self::ConfirmedHold { .. } => "confirmed_hold",
            Self::SettledOrderHoldsStock { .. } => "settled_order_holds_stock",
            Self::UnrefundedCharge { .. } => "unrefunded_charge",
            Self::OrphanHold { .. } => "orphan_hold",
            Self::LateHold { .. } => "late_hold",
            Self::ReturnNotFinished { .. } => "return_not_finished",
            Self::ReturnMismatch { .. } => "return_mismatch",
            Self::MoneyDrift { .. } => "money_drift",
            Self::EventGap { .. } => "event_gap",
            Self::EventsNotCaughtUp { .. } => "events_not_caught_up",
            Self::EventReplayMismatch { .. } => "event_replay_mismatch",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTerminal { order_id, status, next_action } => write!(
                f,
                "order {order_id} is not terminal: status {status}, next action {}",
                next_action.as_deref().unwrap_or("none")
            ),
            Self::StockDrift { sku, initial, confirmed, returned, adjusted, on_hand } => write!(
                f,
                "SKU {sku}: initial {initial} - sold {confirmed} + restocked returns \
                 {returned} + adjustments {adjusted} = {} but on_hand is {on_hand}",
                initial - confirmed + returned + adjusted
            ),
            Self::ReservedDrift { level, sku, warehouse, reserved, pending } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): reserved {reserved} but PENDING holds \
                 sum to {pending}"
            ),
            Self::LedgerDrift {
                level,
                sku,
                warehouse,
                on_hand,
                ledger_on_hand,
                reserved,
                ledger_reserved,
            } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): on_hand {on_hand} / reserved {reserved} \
                 but the movement ledger sums to {ledger_on_hand} / {ledger_reserved}"
            ),
            Self::ImpossibleLevel { level, sku, warehouse, on_hand, reserved } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): 0 <= reserved {reserved} <= on_hand \
                 {on_hand} does not hold"
            ),
            Self::SafetyStockSold {
                level,
                sku,
                warehouse,
                movement,
                on_hand,
                reserved,
                safety_stock,
            } => write!(
                f,
                "stock row {level} ({sku}@{warehouse}): the reserve of movement {movement} left \
                 on_hand {on_hand} - reserved {reserved} below its safety stock {safety_stock}"
            ),
            Self::StaleHold { reservation_id, reference, overdue_ms } => write!(
                f,
                "hold {reservation_id} ({reference}) is PENDING {overdue_ms} ms after its expiry \
                 plus one sweep"
            ),
            Self::ConfirmedPayment { order_id, problem } => {
                write!(f, "CONFIRMED order {order_id}: {problem}")
            }
            Self::ConfirmedHold { order_id, reservation_id, problem } => match reservation_id {
                Some(r) => write!(f, "CONFIRMED order {order_id}, hold {r}: {problem}"),
                None => write!(f, "CONFIRMED order {order_id}: {problem}"),
            },
            Self::SettledOrderHoldsStock { order_id, status, reservation_id, hold } => write!(
                f,
                "{status} order {order_id} still holds stock: hold {reservation_id} is {hold}"
            ),
            Self::UnrefundedCharge {
                order_id,
                status,
                payment_id,
                amount_minor,
                refunded_minor,
            } => {
                write!(
                    f,
                    "{status} order {order_id} kept money: payment {payment_id} took \
                     {amount_minor}, refunded {refunded_minor}"
                )
            }
            Self::OrphanHold { reservation_id, reference_id, status } => write!(
                f,
                "hold {reservation_id} is {status} for order {reference_id}, which does not exist"
            ),
            Self::LateHold { order_id, status, reservation_id, hold, after_settle_ms } => write!(
                f,
                "hold {reservation_id} (now {hold}) was taken {after_settle_ms} ms after order \
                 {order_id} settled as {status}: leaked until its expiry"
            ),
            Self::ReturnNotFinished { return_id, order_id, status } => {
                write!(f, "return {return_id} of order {order_id} rests {status}, not COMPLETED")
            }
            Self::ReturnMismatch { order_id, problem } => {
                write!(f, "returns of order {order_id}: {problem}")
            }
            Self::MoneyDrift { kept, expected } => write!(
                f,
                "the payment kept {kept} (charges minus refunds) but confirmed orders minus \
                 completed returns come to {expected}"
            ),
            Self::EventGap { service, expected, got } if got < expected => write!(
                f,
                "{service} events: expected position {expected}, got {got} again (a repeat)"
            ),
            Self::EventGap { service, expected, got } => write!(
                f,
                "{service} events: expected position {expected}, got {got} ({} position(s) \
                 never sent)",
                got - expected
            ),
            Self::EventsNotCaughtUp { service, reached, head } => write!(
                f,
                "{service} events: the consumer reached position {reached}, not the log's head \
                 {head}, in time"
            ),
            Self::EventReplayMismatch { service, subject, problem } => {
                write!(f, "{service} events replayed, {subject}: {problem}")
            }
        }
    }
}
