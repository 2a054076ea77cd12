//! The texts the saga writes into an order's `status_reason`, which every client reading the
//! order sees. They are fixed texts naming a gRPC code, never a peer's error message (which may
//! describe the peer's internals: that goes to the logs and the `saga_steps` audit only). The
//! business texts a peer answers on purpose (a decline reason, the SKUs that ran short) are
//! kept, bounded and without control characters.

use tonic::Code;

use proto::status::code_name;

/// Longest business text of a peer kept in a reason, in characters.
pub const MAX_PEER_TEXT: usize = 200;

/// Reason of a declined payment whose answer carried no message.
pub const PAYMENT_DECLINED: &str = "payment declined";

/// Reason of a paid order whose stock could not be taken again.
pub const STOCK_GONE_AFTER_PAYMENT: &str = "stock no longer available after payment";

/// Reason kept on a paid order whose hold another caller cancelled before the commit: the saga
/// takes the stock again, and the order says why its first hold is not the one it sold.
pub const HOLD_CANCELLED_ELSEWHERE: &str =
    "its first inventory hold was cancelled by another caller and had to be taken again";

/// Reason of a paid order whose hold another caller cancelled and whose stock was gone by the
/// time the saga tried to take it again.
pub const STOCK_GONE_AFTER_FOREIGN_CANCEL: &str = "stock no longer available after payment: \
     its inventory hold was cancelled by another caller before the commit; the payment is refunded";

/// Reason of an unpaid order whose inventory reference another caller holds.
pub const REFERENCE_TAKEN: &str = "another caller holds this order's inventory reference \
     (ORDER, order id); the order was not placed and nothing was charged";

/// Reason of a paid order whose inventory reference another caller took before the saga
/// could take the stock again.
pub const REFERENCE_TAKEN_AFTER_PAYMENT: &str = "another caller took this order's inventory \
     reference (ORDER, order id) after payment; the payment is refunded";

/// Reason of an order cancelled because it was not paid within its age limit
/// (`ORDER_PAYMENT_DEADLINE_MS`): its hold is released and it is never charged.
pub const NOT_PAID_IN_TIME: &str =
    "not reserved and paid within the order's time limit; nothing was charged";

/// The reason of a declined payment: the provider's own text, bounded.
pub fn payment_declined(message: &str) -> String {
    let text = peer_text(message);
    if text.is_empty() { PAYMENT_DECLINED.to_owned() } else { text }
}

/// The reason of a payment the provider refused before processing it.
pub fn payment_refused(code: Code) -> String {
    format!("payment refused by the payment service ({})", code_name(code))
}

/// The reason of a return whose restock the inventory refused for good.
pub fn return_restock_refused(code: Code) -> String {
    format!(
        "the inventory refused to take the returned units back ({}); once the cause is fixed, \
         the same ReturnOrder request retries it",
        code_name(code)
    )
}

/// The reason of a return whose refund the payment service refused for good.
pub fn return_refund_refused(code: Code) -> String {
    format!(
        "the payment service refused the refund ({}); once the cause is fixed, the same \
         ReturnOrder request retries it",
        code_name(code)
    )
}

/// The reason of a return whose order has no payment recorded to refund.
pub const RETURN_NOTHING_TO_REFUND: &str =
    "the order has no payment recorded to refund; an operator must look";

/// The reason of an order whose items the inventory refused (unknown SKU, bad request).
pub fn inventory_refused(code: Code) -> String {
    format!("inventory refused the items ({})", code_name(code))
}

/// The reason of an order without enough stock: the inventory's list of short SKUs, bounded.
pub fn short_stock(message: &str) -> String {
    let text = peer_text(message);
    if text.is_empty() { "not enough stock".to_owned() } else { text }
}

/// `previous` (the reason the order ended with) plus the news that its hold was committed by
/// another caller, so its stock left the inventory without a sale.
pub fn hold_committed_elsewhere(previous: &str) -> String {
    let news = "its inventory hold was committed by another caller: the stock left the \
                inventory without a sale";
    if previous.is_empty() { news.to_owned() } else { format!("{previous}; {news}") }
}

/// `previous` plus the news that another caller holds the order's inventory reference, so the
/// saga could not release whatever that caller holds under it.
pub fn reference_taken_at_release(previous: &str) -> String {
    let news = "another caller holds this order's inventory reference (ORDER, order id); \
                what it holds there was not released by the order service";
    if previous.is_empty() { news.to_owned() } else { format!("{previous}; {news}") }
}

/// A peer's business text as an order may show it: control characters dropped, surrounding
/// space trimmed, at most [`MAX_PEER_TEXT`] characters (cut ones end with `…`).
pub fn peer_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    match clean.char_indices().nth(MAX_PEER_TEXT) {
        Some((cut, _)) => format!("{}…", clean[..cut].trim_end()),
        None => clean.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_texts_are_bounded_and_lose_control_characters() {
        assert_eq!(peer_text("  card declined\r\n\u{0}"), "card declined");
        let long = "é".repeat(MAX_PEER_TEXT + 50);
        let kept = peer_text(&long);
        assert_eq!(kept.chars().count(), MAX_PEER_TEXT + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(peer_text(&"x".repeat(MAX_PEER_TEXT)).chars().count(), MAX_PEER_TEXT);
        assert_eq!(payment_declined("\n\t"), PAYMENT_DECLINED);
        assert_eq!(payment_declined("insufficient funds"), "insufficient funds");
    }

    #[test]
    fn fixed_reasons_name_the_code_only() {
        assert_eq!(
            payment_refused(Code::InvalidArgument),
            "payment refused by the payment service (INVALID_ARGUMENT)"
        );
        assert_eq!(inventory_refused(Code::NotFound), "inventory refused the items (NOT_FOUND)");
    }

    #[test]
    fn foreign_settlement_news_keeps_the_earlier_reason() {
        let reason = hold_committed_elsewhere("card declined");
        assert!(reason.starts_with("card declined; "), "{reason}");
        assert!(reason.contains("committed by another caller"), "{reason}");
        assert!(!hold_committed_elsewhere("").starts_with(';'));
        assert!(reference_taken_at_release("cancelled by request").contains("another caller"));
    }
}
