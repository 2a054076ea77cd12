//! Who may call what: the caller policy of a mutual-TLS deployment (`AUTHZ_POLICY_FILE`).
//!
//! Three modes, from the settings:
//! - **open** (no mutual TLS): callers are not identified; every RPC is open (the admin RPCs
//!   keep their own guard) and holds belong to nobody, so the server trusts its network;
//! - **identified** (mutual TLS, no policy): every RPC is open to every verified client, and a
//!   hold belongs to the identity that took it: nobody else may commit, cancel or read it;
//! - **policy** (mutual TLS and a policy file): an identity may call only the RPCs its entry
//!   lists, reserve only under the reference types it lists, and touch only its own holds
//!   unless its entry says `settle_any_hold` (an operator). Everyone else is refused.
//!
//! The policy file is JSON:
//! ```json
//! { "callers": [
//!     { "identity": "order-service",
//!       "rpcs": ["CheckInventoryAvailability", "ReserveInventory", "CommitReservation",
//!                "CancelReservation", "GetReservation"],
//!       "reference_types": ["ORDER"] },
//!     { "identity": "ops-console", "rpcs": ["*"], "reference_types": ["*"],
//!       "settle_any_hold": true },
//!     { "identity": "search-indexer", "rpcs": ["WatchEvents"],
//!       "event_types": ["stock.changed"] } ] }
//! ```
//! `event_types` bounds what WatchEvents streams to the identity (absent: every type).
//! An identity is a name of the client's certificate (subject CN or DNS SAN). The admin RPCs
//! (UpsertInventoryItem, AdjustStock, SetStockPolicy, VerifyLedger) need both: the policy's permission and the admin guard.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::domain::HoldCaller;
use crate::error::{CALLER_NOT_ALLOWED, InventoryError};

/// Every RPC of `inventory.v1.InventoryService`, as a policy names them.
pub const RPCS: [&str; 14] = [
    "CheckInventoryAvailability",
    "ReserveInventory",
    "CommitReservation",
    "CancelReservation",
    "ReturnStock",
    "UpsertInventoryItem",
    "AdjustStock",
    "GetInventoryItem",
    "ListInventoryItems",
    "GetReservation",
    "SetStockPolicy",
    "ListLowStock",
    "VerifyLedger",
    "WatchEvents",
];

/// Stands for every RPC, or every reference type, in a policy.
const ANY: &str = "*";
/// The longest reference type a reserve request may carry (as `domain::Reference`).
const MAX_REFERENCE_TYPE_LEN: usize = 64;

/// Why a caller policy cannot be used; start-up fails with it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("AUTHZ_POLICY_FILE: cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not a policy.
    #[error("AUTHZ_POLICY_FILE {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A policy without mutual TLS would authorize callers nobody identified.
    #[error(
        "AUTHZ_POLICY_FILE needs mutual TLS (TLS_CERT_PATH, TLS_KEY_PATH and \
         TLS_CLIENT_CA_PATH): without it no caller has an identity to authorize"
    )]
    WithoutMutualTls,
}

/// The file's shape; unknown keys are refused, so a typo never silently widens access.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    callers: Vec<CallerEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    identity: String,
    rpcs: Vec<String>,
    #[serde(default)]
    reference_types: Vec<String>,
    #[serde(default)]
    settle_any_hold: bool,
    /// The event types WatchEvents may stream to it; absent: every type.
    #[serde(default)]
    event_types: Option<Vec<String>>,
}

/// A set of names from a policy: some, or all (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    All,
    Some(HashSet<String>),
}

impl Names {
    fn parse(values: Vec<String>) -> Self {
        if values.iter().any(|v| v == ANY) {
            Self::All
        } else {
            Self::Some(values.into_iter().collect())
        }
    }

    fn contains(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Some(names) => names.contains(name),
        }
    }
}

/// What one identity may do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    identity: String,
    rpcs: Names,
    reference_types: Names,
    settle_any_hold: bool,
    event_types: Names,
}

/// The rules of a policy file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    grants: Vec<Grant>,
}

impl Policy {
    /// Reads and checks the policy at `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|reason| PolicyError::Invalid { path: path.to_owned(), reason })
    }

    /// Checks a policy's text; the error says what is wrong, naming the entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = HashSet::new();
        let mut grants = Vec::with_capacity(file.callers.len());
        for (i, entry) in file.callers.into_iter().enumerate() {
            let at = format!("callers[{i}]");
            let identity = entry.identity.trim().to_owned();
            if identity.is_empty() {
                return Err(format!("{at}.identity must not be empty"));
            }
            if !seen.insert(identity.clone()) {
                return Err(format!("{at}.identity {identity:?} appears twice"));
            }
            if entry.rpcs.is_empty() {
                return Err(format!("{at}.rpcs must name at least one RPC (or \"*\")"));
            }
            if let Some(unknown) =
                entry.rpcs.iter().find(|r| *r != ANY && !RPCS.contains(&r.as_str()))
            {
                return Err(format!(
                    "{at}.rpcs: unknown RPC {unknown:?}; the RPCs are {}",
                    RPCS.join(", ")
                ));
            }
            if let Some(bad) = entry
                .reference_types
                .iter()
                .find(|t| t.is_empty() || t.len() > MAX_REFERENCE_TYPE_LEN)
            {
                return Err(format!("{at}.reference_types: {bad:?} is not a reference type"));
            }
            let event_types = match entry.event_types {
                None => Names::All,
                Some(types) => {
                    if let Some(bad) = types.iter().find(|t| {
                        *t != ANY && !common::events::INVENTORY_TYPES.contains(&t.as_str())
                    }) {
                        return Err(format!(
                            "{at}.event_types: unknown event type {bad:?}; the types are {}",
                            common::events::INVENTORY_TYPES.join(", ")
                        ));
                    }
                    Names::parse(types)
                }
            };
            let rpcs = Names::parse(entry.rpcs);
            let reference_types = Names::parse(entry.reference_types);
            if rpcs.contains("ReserveInventory") && reference_types == Names::Some(HashSet::new()) {
                return Err(format!(
                    "{at} may call ReserveInventory but lists no reference_types (use [\"*\"] for any)"
                ));
            }
            grants.push(Grant {
                identity,
                rpcs,
                reference_types,
                settle_any_hold: entry.settle_any_hold,
                event_types,
            });
        }
        Ok(Self { grants })
    }

    /// The grant of the first identity among `names` the policy knows.
    fn grant_for(&self, names: &[String]) -> Option<&Grant> {
        self.grants.iter().find(|g| names.contains(&g.identity))
    }
}

/// How callers are told apart and what they may do; cheap to clone.
#[derive(Debug, Clone)]
pub struct Access {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    Open,
    Identified,
    Policy(Arc<Policy>),
}

/// A caller let through for one RPC: who it is for the rules on holds, and the reference
/// types it may reserve under.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// Who the caller is, as the store checks holds against it.
    pub hold: HoldCaller,
    reference_types: Option<Names>,
    event_types: Option<Names>,
}

impl Authorized {
    /// `Ok` when the caller may reserve under `reference_type`.
    pub fn check_reference_type(&self, reference_type: &str) -> Result<(), InventoryError> {
        match &self.reference_types {
            Some(allowed) if !allowed.contains(reference_type) => {
                Err(InventoryError::PermissionDenied {
                    reason: CALLER_NOT_ALLOWED,
                    message: format!(
                        "caller {} may not reserve under reference_type {reference_type:?}",
                        self.hold.principal.as_deref().unwrap_or("(unidentified)")
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// The event types the caller asked for, if it may watch them all: an empty request
    /// means every type it may watch (all of them, or its policy's `event_types`).
    pub fn check_event_types(&self, asked: Vec<String>) -> Result<Vec<String>, InventoryError> {
        let Some(Names::Some(allowed)) = &self.event_types else { return Ok(asked) };
        if asked.is_empty() {
            let mut all: Vec<String> = allowed.iter().cloned().collect();
            all.sort();
            return Ok(all);
        }
        match asked.iter().position(|t| !allowed.contains(t)) {
            Some(i) => Err(InventoryError::PermissionDenied {
                reason: CALLER_NOT_ALLOWED,
                message: format!(
                    "caller {} may not watch events of type {:?} (types[{i}])",
                    self.hold.principal.as_deref().unwrap_or("(unidentified)"),
                    asked[i]
                ),
            }),
            None => Ok(asked),
        }
    }
}

impl Access {
    /// Callers are not identified (plaintext or TLS without client certificates).
    pub fn open() -> Self {
        Self { mode: Mode::Open }
    }

    /// The mode the settings describe: `policy` (a loaded [`Policy`]) needs mutual TLS.
    pub fn new(mutual_tls: bool, policy: Option<Policy>) -> Result<Self, PolicyError> {
        let mode = match (mutual_tls, policy) {
            (false, None) => Mode::Open,
            (false, Some(_)) => return Err(PolicyError::WithoutMutualTls),
            (true, None) => Mode::Identified,
            (true, Some(policy)) => Mode::Policy(Arc::new(policy)),
        };
        Ok(Self { mode })
    }

    /// Whether a policy decides who may call what.
    pub fn has_policy(&self) -> bool {
        matches!(self.mode, Mode::Policy(_))
    }

    /// Lets a caller call `rpc`, or says why not; `names` gives the names of its verified
    /// client certificate (None: it has none), read only when a mode needs them.
    pub fn authorize(
        &self,
        rpc: &str,
        names: impl FnOnce() -> Option<Vec<String>>,
    ) -> Result<Authorized, InventoryError> {
        if matches!(self.mode, Mode::Open) {
            return Ok(Authorized {
                hold: HoldCaller::anonymous(),
                reference_types: None,
                event_types: None,
            });
        }
        let names = names();
        let names = names.as_deref();
        match &self.mode {
            Mode::Open => Ok(Authorized {
                hold: HoldCaller::anonymous(),
                reference_types: None,
                event_types: None,
            }),
            Mode::Identified => {
                let principal = names.and_then(<[String]>::first).ok_or_else(unauthenticated)?;
                Ok(Authorized {
                    hold: HoldCaller::identified(principal.clone(), false),
                    reference_types: None,
                    event_types: None,
                })
            }
            Mode::Policy(policy) => {
                let names = names.filter(|n| !n.is_empty()).ok_or_else(unauthenticated)?;
                let grant = policy.grant_for(names).filter(|g| g.rpcs.contains(rpc));
                let Some(grant) = grant else {
                    return Err(InventoryError::PermissionDenied {
                        reason: CALLER_NOT_ALLOWED,
                        message: format!(
                            "client certificate ({}) is not allowed to call {rpc}",
                            names.join(", ")
                        ),
                    });
                };
                Ok(Authorized {
                    hold: HoldCaller::identified(grant.identity.clone(), grant.settle_any_hold),
                    reference_types: Some(grant.reference_types.clone()),
                    event_types: Some(grant.event_types.clone()),
                })
            }
        }
    }
}

fn unauthenticated() -> InventoryError {
    InventoryError::Unauthenticated("this server authorizes callers by client certificate".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message as _;
    use proto::status::CallError as _;
    use tonic::Code;

    use super::*;

    const POLICY: &str = r#"{ "callers": [
        { "identity": "order-service",
          "rpcs": ["CheckInventoryAvailability", "ReserveInventory", "CommitReservation",
                   "CancelReservation", "GetReservation"],
          "reference_types": ["ORDER"] },
        { "identity": "ops-console", "rpcs": ["*"], "reference_types": ["*"],
          "settle_any_hold": true },
        { "identity": "dashboard", "rpcs": ["GetInventoryItem", "ListInventoryItems"] } ] }"#;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    fn code(result: Result<Authorized, InventoryError>) -> Result<HoldCaller, Code> {
        result.map(|a| a.hold).map_err(|e| e.code())
    }

    #[test]
    fn the_rpc_list_is_the_services() {
        let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
        let service = set
            .file
            .iter()
            .filter(|f| f.package() == "inventory.v1")
            .flat_map(|f| &f.service)
            .find(|s| s.name() == "InventoryService")
            .unwrap();
        let mut served: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        let mut listed = RPCS.to_vec();
        served.sort_unstable();
        listed.sort_unstable();
        assert_eq!(served, listed);
    }

    #[test]
    fn a_policy_grants_rpcs_reference_types_and_operators() {
        let access = Access::new(true, Some(Policy::parse(POLICY).unwrap())).unwrap();
        let order = names(&["order-service", "order.internal"]);
        let reserve = access.authorize("ReserveInventory", || Some(order.clone())).unwrap();
        assert_eq!(reserve.hold, HoldCaller::identified("order-service", false));
        assert!(reserve.check_reference_type("ORDER").is_ok());
        let other = reserve.check_reference_type("CART").unwrap_err();
        assert_eq!(other.code(), Code::PermissionDenied);
        assert_eq!(
            code(access.authorize("AdjustStock", || Some(order.clone()))),
            Err(Code::PermissionDenied)
        );

        // Matched by a DNS SAN; `*` grants every RPC and reference type.
        let ops = names(&["someone", "ops-console"]);
        let adjust = access.authorize("AdjustStock", || Some(ops.clone())).unwrap();
        assert_eq!(adjust.hold, HoldCaller::identified("ops-console", true));
        assert!(adjust.check_reference_type("ANYTHING").is_ok());

        let dashboard = names(&["dashboard"]);
        assert!(access.authorize("ListInventoryItems", || Some(dashboard.clone())).is_ok());
        assert_eq!(
            code(access.authorize("ReserveInventory", || Some(dashboard.clone()))),
            Err(Code::PermissionDenied)
        );
        let stranger = names(&["intruder"]);
        assert_eq!(
            code(access.authorize("GetInventoryItem", || Some(stranger.clone()))),
            Err(Code::PermissionDenied)
        );
        assert_eq!(code(access.authorize("GetInventoryItem", || None)), Err(Code::Unauthenticated));
    }

    #[test]
    fn without_a_policy_mutual_tls_identifies_and_plaintext_trusts() {
        let identified = Access::new(true, None).unwrap();
        let caller = code(identified.authorize("AdjustStock", || Some(names(&["a", "b"]))));
        assert_eq!(caller, Ok(HoldCaller::identified("a", false)));
        assert_eq!(code(identified.authorize("AdjustStock", || None)), Err(Code::Unauthenticated));
        let open = Access::new(false, None).unwrap();
        assert_eq!(code(open.authorize("ReserveInventory", || None)), Ok(HoldCaller::anonymous()));
        assert!(!open.has_policy());
        assert!(matches!(
            Access::new(false, Some(Policy::parse(POLICY).unwrap())),
            Err(PolicyError::WithoutMutualTls)
        ));
    }

    #[test]
    fn bad_policies_are_refused_naming_the_entry() {
        for (text, says) in [
            ("{", "EOF"),
            (r#"{"callers": [], "extra": 1}"#, "unknown field"),
            (
                r#"{"callers": [{"identity": "a", "rpcs": ["*"], "settle_any": true}]}"#,
                "unknown field",
            ),
            (r#"{"callers": [{"identity": " ", "rpcs": ["*"]}]}"#, "callers[0].identity"),
            (
                r#"{"callers": [{"identity": "a", "rpcs": ["GetInventoryItem"]},
                                {"identity": "a", "rpcs": ["GetInventoryItem"]}]}"#,
                "callers[1].identity \"a\" appears twice",
            ),
            (r#"{"callers": [{"identity": "a", "rpcs": []}]}"#, "callers[0].rpcs"),
            (r#"{"callers": [{"identity": "a", "rpcs": ["Reserve"]}]}"#, "unknown RPC \"Reserve\""),
            (
                r#"{"callers": [{"identity": "a", "rpcs": ["ReserveInventory"]}]}"#,
                "no reference_types",
            ),
            (
                r#"{"callers": [{"identity": "a", "rpcs": ["*"], "reference_types": [""]}]}"#,
                "not a reference type",
            ),
            (
                r#"{"callers": [{"identity": "a", "rpcs": ["WatchEvents"],
                                 "event_types": ["stock.moved"]}]}"#,
                "unknown event type \"stock.moved\"",
            ),
        ] {
            let err = Policy::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn event_types_bound_what_an_identity_may_watch() {
        let policy = Policy::parse(
            r#"{ "callers": [
                { "identity": "indexer", "rpcs": ["WatchEvents"], "event_types": ["stock.changed"] },
                { "identity": "ops", "rpcs": ["*"], "reference_types": ["*"] } ] }"#,
        )
        .unwrap();
        let access = Access::new(true, Some(policy)).unwrap();
        let indexer = access.authorize("WatchEvents", || Some(names(&["indexer"]))).unwrap();
        // Nothing asked: every type it may watch.
        assert_eq!(indexer.check_event_types(vec![]).unwrap(), ["stock.changed"]);
        assert_eq!(
            indexer.check_event_types(vec!["stock.changed".into()]).unwrap(),
            ["stock.changed"]
        );
        let refused = indexer
            .check_event_types(vec!["stock.changed".into(), "reservation.created".into()])
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.to_string().contains("types[1]"), "{refused}");
        // No event_types: every type, as asked.
        let ops = access.authorize("WatchEvents", || Some(names(&["ops"]))).unwrap();
        assert!(ops.check_event_types(vec![]).unwrap().is_empty());
        assert_eq!(
            code(access.authorize("WatchEvents", || Some(names(&["nobody"])))),
            Err(Code::PermissionDenied)
        );
    }
}
