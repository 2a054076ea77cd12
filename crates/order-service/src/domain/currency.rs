//! The ISO 4217 codes CreateOrder accepts: the common trading currencies, not the full list
//! (a code missing here is refused rather than passed to a payment service that may not know it).

const KNOWN: &[&str] = &[
    "AED", "ARS", "AUD", "BGN", "BRL", "CAD", "CHF", "CLP", "CNY", "COP", "CZK", "DKK", "EGP",
    "EUR", "GBP", "HKD", "HUF", "IDR", "ILS", "INR", "ISK", "JPY", "KRW", "MAD", "MXN", "MYR",
    "NGN", "NOK", "NZD", "PEN", "PHP", "PKR", "PLN", "RON", "RSD", "SAR", "SEK", "SGD", "THB",
    "TRY", "TWD", "UAH", "USD", "VND", "ZAR",
];

/// Every accepted code, sorted (the only values a currency metric label takes).
pub fn all() -> &'static [&'static str] {
    KNOWN
}

/// Whether `code` (upper case) is one of the accepted ISO 4217 codes.
pub fn is_known(code: &str) -> bool {
    KNOWN.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_for_binary_search() {
        assert!(KNOWN.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn knows_the_common_codes() {
        for code in ["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "PLN", "CZK"] {
            assert!(is_known(code), "{code}");
        }
        assert!(!is_known("eur"));
        assert!(!is_known("XXX"));
    }
}
