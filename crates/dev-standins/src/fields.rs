//! Field checks shared by the stand-ins' requests and data files.

pub(crate) use proto::status::FieldViolation;

/// Collects every violation of a request, so one answer names all bad fields at once.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records a violation of `field` when `ok` is false.
    pub(crate) fn check(&mut self, ok: bool, field: &'static str, description: &str) {
        if !ok {
            self.0.push(FieldViolation::new(field, description));
        }
    }

    /// Records a violation when `value` is empty.
    pub(crate) fn non_empty(&mut self, field: &'static str, value: &str) {
        self.check(!value.is_empty(), field, "must not be empty");
    }

    /// Records a violation when `value` is not a currency code.
    pub(crate) fn currency(&mut self, field: &'static str, value: &str) {
        self.check(
            is_currency_code(value),
            field,
            "must be an ISO 4217 code: three uppercase letters, e.g. EUR",
        );
    }

    /// `Ok` when nothing was recorded, else every violation.
    pub(crate) fn finish(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() { Ok(()) } else { Err(self.0) }
    }
}

/// Whether `code` has the shape of an ISO 4217 code (three uppercase ASCII letters).
pub(crate) fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_three_uppercase_letters() {
        assert!(is_currency_code("EUR"));
        for bad in ["", "eur", "EU", "EURO", "E1R", "ÉUR"] {
            assert!(!is_currency_code(bad), "{bad}");
        }
    }

    #[test]
    fn violations_collect_every_field() {
        let mut v = Violations::default();
        v.non_empty("order_id", "");
        v.currency("currency", "eur");
        v.non_empty("method", "card");
        let fields: Vec<_> = v.finish().unwrap_err().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["order_id", "currency"]);
    }
}
