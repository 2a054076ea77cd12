//! Who asks for a hold to be taken, settled or read, and the one rule on whose hold is whose.

/// The caller of a hold operation, as authorization left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldCaller {
    /// The client identity (a mutual-TLS certificate name), recorded with every hold it takes;
    /// `None` when callers are not identified (no mutual TLS).
    pub principal: Option<String>,
    /// An operator: may settle and read every hold, whoever took it.
    pub any_hold: bool,
}

impl HoldCaller {
    /// A caller nobody identified: the server trusts its network, and holds belong to nobody.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A caller identified as `principal`; `any_hold` for an operator.
    pub fn identified(principal: impl Into<String>, any_hold: bool) -> Self {
        Self { principal: Some(principal.into()), any_hold }
    }

    /// Whether this caller may settle or read a hold taken by `owner`: its own, one taken
    /// without an identity, any hold for an operator, and every hold for a caller nobody
    /// identified (without mutual TLS nobody can be told apart).
    pub fn may_touch(&self, owner: Option<&str>) -> bool {
        match (owner, self.restricted_to()) {
            (Some(owner), Some(me)) => owner == me,
            _ => true,
        }
    }

    /// The identity whose holds alone this caller may touch; `None` when it may touch any.
    pub fn restricted_to(&self) -> Option<&str> {
        if self.any_hold { None } else { self.principal.as_deref() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_touched_by_its_owner_operators_and_unidentified_callers() {
        let order = HoldCaller::identified("order-service", false);
        let ops = HoldCaller::identified("ops", true);
        let nobody = HoldCaller::anonymous();
        assert!(order.may_touch(Some("order-service")));
        assert!(!order.may_touch(Some("storefront")));
        assert!(order.may_touch(None), "holds taken without an identity are anyone's");
        assert!(ops.may_touch(Some("order-service")));
        assert!(nobody.may_touch(Some("order-service")));
        assert_eq!(order.restricted_to(), Some("order-service"));
        assert_eq!(ops.restricted_to(), None);
        assert_eq!(nobody.restricted_to(), None);
    }
}
