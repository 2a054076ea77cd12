//! Who may watch the order service's events besides operators: `EVENT_WATCHERS`, identities
//! of mutual TLS with the event types each may stream (a warehouse system `order.confirmed`,
//! a notification service `order.payment_failed`), so a service that reacts to orders needs
//! no operator rights, and sees only what its entry lists.
//!
//! The format is `identity=type,type;identity=*`: `*` stands for every type. An identity is a
//! name of the client's certificate (subject CN or DNS SAN), as for the admin identities.

use std::sync::Arc;

use common::events::ORDER_TYPES;
use proto::status::FieldViolation;
use tonic::Status;

/// Stands for every type.
const ANY: &str = "*";

/// The identities that may watch, with their types; empty: operators only. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventWatchers {
    grants: Arc<[Grant]>,
}

/// What one identity may watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    identity: String,
    /// None: every type.
    types: Option<Vec<String>>,
}

impl EventWatchers {
    /// Parses `EVENT_WATCHERS`; the error names the entry and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut grants: Vec<Grant> = Vec::new();
        for (i, entry) in text.split(';').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let Some((identity, types)) = entry.split_once('=') else {
                return Err(format!(
                    "EVENT_WATCHERS entry {i} ({entry:?}): want identity=type,type"
                ));
            };
            let identity = identity.trim();
            if identity.is_empty() {
                return Err(format!("EVENT_WATCHERS entry {i}: the identity is empty"));
            }
            if grants.iter().any(|g| g.identity == identity) {
                return Err(format!("EVENT_WATCHERS: {identity:?} appears twice"));
            }
            let types: Vec<String> = types
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            if types.is_empty() {
                return Err(format!(
                    "EVENT_WATCHERS entry {i} ({identity}): no types (use * for all)"
                ));
            }
            if let Some(bad) =
                types.iter().find(|t| *t != ANY && !ORDER_TYPES.contains(&t.as_str()))
            {
                return Err(format!(
                    "EVENT_WATCHERS entry {i} ({identity}): unknown event type {bad:?}; the types are {}",
                    ORDER_TYPES.join(", ")
                ));
            }
            let types = if types.iter().any(|t| t == ANY) { None } else { Some(types) };
            grants.push(Grant { identity: identity.to_owned(), types });
        }
        Ok(Self { grants: grants.into() })
    }

    /// Whether no identity is listed (operators only).
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The listed identities, for the start-up log.
    pub fn identities(&self) -> Vec<&str> {
        self.grants.iter().map(|g| g.identity.as_str()).collect()
    }

    /// The grant of the first of `names` that is listed.
    pub fn grant(&self, names: &[String]) -> Option<&Grant> {
        self.grants.iter().find(|g| names.contains(&g.identity))
    }
}

impl Grant {
    /// The types to stream for a request asking `asked`: all it asked, if its entry allows
    /// them (an empty request: every type the entry lists); else PERMISSION_DENIED naming the
    /// first one it may not watch.
    pub fn check(&self, asked: Vec<String>) -> Result<Vec<String>, Status> {
        let Some(allowed) = &self.types else { return Ok(asked) };
        if asked.is_empty() {
            return Ok(allowed.clone());
        }
        match asked.iter().position(|t| !allowed.contains(t)) {
            None => Ok(asked),
            Some(i) => {
                let field = FieldViolation::new(
                    format!("types[{i}]"),
                    format!("{} may not watch {:?} (EVENT_WATCHERS)", self.identity, asked[i]),
                );
                Err(Status::permission_denied(proto::status::describe(&[field])))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn entries_bound_the_types_of_their_identity() {
        let watchers =
            EventWatchers::parse("warehouse = order.confirmed, order.cancelled ; analytics=*")
                .unwrap();
        assert_eq!(watchers.identities(), ["warehouse", "analytics"]);
        let warehouse = watchers.grant(&names(&["warehouse.example", "warehouse"])).unwrap();
        assert_eq!(warehouse.check(vec![]).unwrap(), ["order.confirmed", "order.cancelled"]);
        assert_eq!(warehouse.check(names(&["order.cancelled"])).unwrap(), ["order.cancelled"]);
        let refused = warehouse.check(names(&["order.confirmed", "order.created"])).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("types[1]"), "{}", refused.message());
        let analytics = watchers.grant(&names(&["analytics"])).unwrap();
        assert!(analytics.check(vec![]).unwrap().is_empty(), "every type");
        assert!(watchers.grant(&names(&["stranger"])).is_none());
        assert!(EventWatchers::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_are_refused_naming_them() {
        for (text, says) in [
            ("warehouse", "want identity=type"),
            ("=order.created", "identity is empty"),
            ("a=", "no types"),
            ("a=order.shipped", "unknown event type \"order.shipped\""),
            ("a=*;a=order.created", "appears twice"),
        ] {
            let err = EventWatchers::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
