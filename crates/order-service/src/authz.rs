//! Who calls OrderService, and whose orders that caller may touch (user binding).
//!
//! With `TRUSTED_EDGE_IDENTITIES` or `OPERATOR_IDENTITIES` set, every call needs a verified
//! client certificate (mutual TLS) named on one of the lists. An edge (an API gateway or BFF)
//! states the end user in the `x-user-id` metadata and acts for that user only; an operator
//! (a support tool) acts for anyone. With neither set, binding is off and any caller may act
//! for any user: the service then trusts its network, as it always did.
//!
//! Outcomes: no client certificate, or an edge call without a usable `x-user-id`, is
//! `UNAUTHENTICATED`; a certificate on neither list, or an edge acting for another user on
//! CreateOrder or ListOrders, is `PERMISSION_DENIED`; GetOrder and CancelOrder of another
//! user's order answer exactly as for an order that does not exist (`NOT_FOUND`), so a caller
//! cannot learn which order ids exist.

use std::sync::Arc;

use security::tls::ServerTlsSettings;
use tonic::Request;
use tonic::metadata::MetadataMap;

use crate::domain::{OrderId, UserId};
use crate::error::OrderError;
use crate::settings::UserBindingSettings;

/// The metadata key in which an edge states the end user.
pub const USER_ID_METADATA: &str = "x-user-id";

/// Why the user binding settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BindingSettingsError {
    /// Binding is on but clients present no certificate, so no caller could be identified.
    #[error(
        "TRUSTED_EDGE_IDENTITIES and OPERATOR_IDENTITIES need mutual TLS (TLS_CERT_PATH, \
         TLS_KEY_PATH and TLS_CLIENT_CA_PATH): without it no client presents a certificate"
    )]
    NeedsMutualTls,
    /// A name on both lists: would its calls be bound to a user or not?
    #[error(
        "{0:?} is in both TRUSTED_EDGE_IDENTITIES and OPERATOR_IDENTITIES: an identity is an \
         edge or an operator, not both"
    )]
    OnBothLists(String),
}

/// Decides who a call comes from. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CallerPolicy {
    edges: Arc<[String]>,
    operators: Arc<[String]>,
}

/// Who a call comes from, once the policy let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Binding is off: any caller acts for any user.
    Unbound,
    /// An operator identity: acts for any user.
    Operator,
    /// An edge identity acting for this end user only.
    User(UserId),
}

impl CallerPolicy {
    /// The policy `binding` describes, checked against the server's TLS settings.
    pub fn from_settings(
        binding: &UserBindingSettings,
        tls: &ServerTlsSettings,
    ) -> Result<Self, BindingSettingsError> {
        let edges = names(&binding.trusted_edge_identities);
        let operators = names(&binding.operator_identities);
        if let Some(both) = edges.iter().find(|name| operators.contains(name)) {
            return Err(BindingSettingsError::OnBothLists(both.clone()));
        }
        let on = !edges.is_empty() || !operators.is_empty();
        let mutual_tls = tls.tls_cert_path.is_some()
            && tls.tls_key_path.is_some()
            && tls.requires_client_certs();
        if on && !mutual_tls {
            return Err(BindingSettingsError::NeedsMutualTls);
        }
        Ok(Self { edges: edges.into(), operators: operators.into() })
    }

    /// Whether calls are bound to users at all.
    pub fn is_on(&self) -> bool {
        !self.edges.is_empty() || !self.operators.is_empty()
    }

    /// Logs, once at start, whom the service trusts.
    pub fn log_startup(&self) {
        if self.is_on() {
            tracing::info!(
                edges = ?self.edges,
                operators = ?self.operators,
                "user binding on: edges act for the user in x-user-id, operators for anyone"
            );
        } else {
            tracing::info!(
                "user binding off: any caller may act for any user (set TRUSTED_EDGE_IDENTITIES \
                 or OPERATOR_IDENTITIES to bind calls to users)"
            );
        }
    }

    /// Who `request` comes from, or the error to answer it with.
    pub fn caller<T>(&self, request: &Request<T>) -> Result<Caller, OrderError> {
        if !self.is_on() {
            return Ok(Caller::Unbound);
        }
        let names = common::auth::client_names(request);
        self.decide(names.as_deref(), request.metadata())
    }

    /// [`caller`](Self::caller) on the verified client certificate names (`None` without a
    /// client certificate) and the call's metadata.
    pub fn decide(
        &self,
        names: Option<&[String]>,
        metadata: &MetadataMap,
    ) -> Result<Caller, OrderError> {
        if !self.is_on() {
            return Ok(Caller::Unbound);
        }
        let Some(names) = names else {
            tracing::warn!("order call refused: no client certificate");
            return Err(OrderError::Unauthenticated(
                "a client certificate is required to call order.v1.OrderService".to_owned(),
            ));
        };
        let named = |list: &[String]| names.iter().any(|name| list.contains(name));
        // An edge's calls are bound to a user even if one of its names is also an operator's
        // (not possible with one name on both lists; a certificate may carry several names):
        // the narrower right wins.
        if named(&self.edges) {
            return user_of(metadata).map(Caller::User);
        }
        if named(&self.operators) {
            return Ok(Caller::Operator);
        }
        tracing::warn!(identities = ?names, "order call refused: client identity not allowed");
        Err(OrderError::PermissionDenied(format!(
            "client certificate ({}) is not allowed to call order.v1.OrderService",
            if names.is_empty() { "without names".to_owned() } else { names.join(", ") }
        )))
    }
}

/// The end user an edge states: exactly one `x-user-id`, a valid user id.
fn user_of(metadata: &MetadataMap) -> Result<UserId, OrderError> {
    let refused = |why: &str| {
        tracing::warn!(reason = why, "order call refused: no usable x-user-id from an edge");
        Err(OrderError::Unauthenticated(format!(
            "calls through an edge must name their user in {USER_ID_METADATA} metadata: {why}"
        )))
    };
    let mut values = metadata.get_all(USER_ID_METADATA).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return refused("exactly one value is required");
    };
    let Ok(text) = value.to_str() else {
        return refused("the value is not printable ASCII");
    };
    match UserId::parse(USER_ID_METADATA, text) {
        Ok(user) if user.as_str() == text.trim() => Ok(user),
        Ok(_) => refused("the value has surrounding spaces"),
        Err(violation) => refused(&violation.description),
    }
}

impl Caller {
    /// `Ok` when the caller may create or list orders of `user` (PERMISSION_DENIED otherwise:
    /// the caller named that user itself, so refusing it leaks nothing).
    pub fn may_act_for(&self, user: &UserId) -> Result<(), OrderError> {
        match self {
            Self::Unbound | Self::Operator => Ok(()),
            Self::User(bound) if bound == user => Ok(()),
            Self::User(bound) => {
                tracing::warn!(bound_user = %bound, requested_user = %user, "order call refused: user is not the caller's");
                Err(OrderError::PermissionDenied(format!(
                    "this call acts for user {bound} and may not act for user {user}"
                )))
            }
        }
    }

    /// `Ok` when the caller may read or cancel order `id` of `owner`; otherwise the same
    /// NOT_FOUND an order that does not exist gets.
    pub fn may_see(&self, id: OrderId, owner: &str) -> Result<(), OrderError> {
        match self {
            Self::Unbound | Self::Operator => Ok(()),
            Self::User(bound) if bound.as_str() == owner => Ok(()),
            Self::User(_) => Err(OrderError::order_not_found(id)),
        }
    }

    /// Whether [`may_see`](Self::may_see) needs the order's owner at all.
    pub fn is_bound(&self) -> bool {
        matches!(self, Self::User(_))
    }
}

fn names(list: &[String]) -> Vec<String> {
    list.iter().map(|name| name.trim()).filter(|name| !name.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proto::status::CallError as _;
    use tonic::Code;
    use tonic::metadata::MetadataValue;

    use super::*;

    fn mtls() -> ServerTlsSettings {
        ServerTlsSettings {
            tls_cert_path: Some("cert.pem".into()),
            tls_key_path: Some("key.pem".into()),
            tls_client_ca_path: Some("ca.pem".into()),
        }
    }

    fn policy(edges: &[&str], operators: &[&str]) -> CallerPolicy {
        let binding = UserBindingSettings {
            trusted_edge_identities: edges.iter().map(|s| (*s).to_owned()).collect(),
            operator_identities: operators.iter().map(|s| (*s).to_owned()).collect(),
        };
        CallerPolicy::from_settings(&binding, &mtls()).unwrap()
    }

    fn user_header(values: &[&str]) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        for value in values {
            metadata.append(USER_ID_METADATA, MetadataValue::try_from(*value).unwrap());
        }
        metadata
    }

    fn code(result: Result<Caller, OrderError>) -> Result<Caller, Code> {
        result.map_err(|e| e.code())
    }

    fn user(id: &str) -> UserId {
        UserId::parse("user_id", id).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn off_when_neither_list_is_set() {
        let off = CallerPolicy::from_settings(
            &UserBindingSettings {
                trusted_edge_identities: vec![" ".into()],
                operator_identities: Vec::new(),
            },
            &ServerTlsSettings::default(),
        )
        .unwrap();
        assert!(!off.is_on());
        assert_eq!(code(off.decide(None, &MetadataMap::new())), Ok(Caller::Unbound));
        assert!(Caller::Unbound.may_act_for(&user("bob")).is_ok());
        assert!(Caller::Unbound.may_see(OrderId::new(), "bob").is_ok());
    }

    #[test]
    fn binding_needs_mutual_tls_and_disjoint_lists() {
        let binding = UserBindingSettings {
            trusted_edge_identities: vec!["bff".into()],
            operator_identities: Vec::new(),
        };
        let tls_only = ServerTlsSettings { tls_client_ca_path: None, ..mtls() };
        for tls in [ServerTlsSettings::default(), tls_only] {
            let err = CallerPolicy::from_settings(&binding, &tls).unwrap_err();
            let message = err.to_string();
            for setting in ["TRUSTED_EDGE_IDENTITIES", "TLS_CLIENT_CA_PATH", "TLS_CERT_PATH"] {
                assert!(message.contains(setting), "{message}");
            }
        }
        let operators_only =
            UserBindingSettings { operator_identities: vec!["support".into()], ..binding.clone() };
        assert!(CallerPolicy::from_settings(&operators_only, &mtls()).is_ok());
        let both = UserBindingSettings {
            trusted_edge_identities: vec!["x".into()],
            operator_identities: vec!["x".into()],
        };
        assert!(matches!(
            CallerPolicy::from_settings(&both, &mtls()),
            Err(BindingSettingsError::OnBothLists(name)) if name == "x"
        ));
    }

    #[test]
    fn identities() {
        let policy = policy(&["bff", " gateway.internal "], &["support"]);
        let none = MetadataMap::new();
        assert_eq!(code(policy.decide(None, &none)), Err(Code::Unauthenticated));
        assert_eq!(
            code(policy.decide(Some(&names(&["intruder"])), &none)),
            Err(Code::PermissionDenied)
        );
        let refused = policy.decide(Some(&names(&["intruder", "intruder.dns"])), &none);
        assert!(refused.unwrap_err().to_string().contains("intruder, intruder.dns"));
        assert_eq!(code(policy.decide(Some(&[]), &none)), Err(Code::PermissionDenied));
        assert_eq!(code(policy.decide(Some(&names(&["support"])), &none)), Ok(Caller::Operator));
        // An operator's x-user-id changes nothing.
        assert_eq!(
            code(policy.decide(Some(&names(&["support"])), &user_header(&["alice"]))),
            Ok(Caller::Operator)
        );
        // By DNS SAN too.
        assert_eq!(
            code(
                policy.decide(
                    Some(&names(&["edge-7", "gateway.internal"])),
                    &user_header(&["alice"])
                )
            ),
            Ok(Caller::User(user("alice")))
        );
        // An edge name wins over an operator name on the same certificate.
        assert_eq!(
            code(policy.decide(Some(&names(&["support", "bff"])), &user_header(&["alice"]))),
            Ok(Caller::User(user("alice")))
        );
    }

    #[test]
    fn an_edge_must_name_exactly_one_valid_user() {
        let policy = policy(&["bff"], &[]);
        let bff = names(&["bff"]);
        let decide = |metadata: &MetadataMap| code(policy.decide(Some(&bff), metadata));
        assert_eq!(decide(&user_header(&["alice"])), Ok(Caller::User(user("alice"))));
        for bad in [
            user_header(&[]),
            user_header(&[""]),
            user_header(&["   "]),
            user_header(&[" alice"]),
            user_header(&["alice", "bob"]),
            user_header(&[&"u".repeat(129)]),
        ] {
            assert_eq!(decide(&bad), Err(Code::Unauthenticated), "{bad:?}");
        }
        let mut binary = MetadataMap::new();
        binary.insert(USER_ID_METADATA, MetadataValue::try_from(&b"al\xffce"[..]).unwrap());
        assert_eq!(decide(&binary), Err(Code::Unauthenticated));
    }

    #[test]
    fn a_user_acts_for_itself_and_sees_only_its_orders() {
        let alice = Caller::User(user("alice"));
        assert!(alice.may_act_for(&user("alice")).is_ok());
        assert_eq!(alice.may_act_for(&user("bob")).unwrap_err().code(), Code::PermissionDenied);
        let id = OrderId::new();
        assert!(alice.may_see(id, "alice").is_ok());
        let hidden = alice.may_see(id, "bob").unwrap_err();
        let missing = OrderError::order_not_found(id);
        assert_eq!((hidden.code(), hidden.to_string()), (missing.code(), missing.to_string()));
        assert!(Caller::Operator.may_see(id, "bob").is_ok());
        assert!(Caller::Operator.may_act_for(&user("bob")).is_ok());
        assert!(alice.is_bound() && !Caller::Operator.is_bound());
    }
}
