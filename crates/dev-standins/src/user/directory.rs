//! The user directory: ids and their status, validated once at load.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::loading::{self, LoadError};

/// The built-in demo users.
const DEMO_USERS: &str = include_str!("../../users/demo.json");

/// Whether a user may order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    /// May order.
    Active,
    /// May not order.
    Blocked,
}

impl UserStatus {
    /// The wire name, as `User.status` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Blocked => "BLOCKED",
        }
    }
}

/// One user as the users file spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user id orders carry.
    pub id: String,
    /// ACTIVE or BLOCKED.
    pub status: UserStatus,
}

/// A validated set of users, optionally taking unknown ids as active.
#[derive(Debug, Clone)]
pub struct Directory {
    users: HashMap<String, UserStatus>,
    accept_any: bool,
}

impl Directory {
    /// Validates `users` (non-empty, unique ids); unknown ids are not found.
    pub fn from_users(users: Vec<User>) -> Result<Self, LoadError> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (index, user) in users.iter().enumerate() {
            if user.id.is_empty() {
                problems.push(format!("user #{index}: id must not be empty"));
            } else if !seen.insert(user.id.as_str()) {
                problems.push(format!("user {:?}: id is used more than once", user.id));
            }
        }
        loading::check("users", problems)?;
        let users = users.into_iter().map(|u| (u.id, u.status)).collect();
        Ok(Self { users, accept_any: false })
    }

    /// Parses and validates users JSON (a list of `{id, status}`).
    pub fn from_json(text: &str) -> Result<Self, LoadError> {
        Self::from_users(loading::parse_json("users", text)?)
    }

    /// Reads, parses and validates the users file at `path`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::from_users(loading::read_json("users", path)?)
    }

    /// The built-in demo users: `user-1`..`user-3` ACTIVE, `user-blocked` BLOCKED.
    pub fn demo() -> Result<Self, LoadError> {
        Self::from_json(DEMO_USERS)
    }

    /// The same directory, answering unknown ids as ACTIVE when `accept_any` is true.
    pub fn accept_any(mut self, accept_any: bool) -> Self {
        self.accept_any = accept_any;
        self
    }

    /// The status of `id`: listed, else ACTIVE in accept-any mode, else `None`.
    pub fn status(&self, id: &str) -> Option<UserStatus> {
        match self.users.get(id) {
            Some(&status) => Some(status),
            None if self.accept_any => Some(UserStatus::Active),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_users() {
        let directory = Directory::demo().unwrap();
        assert_eq!(directory.status("user-1"), Some(UserStatus::Active));
        assert_eq!(directory.status("user-3"), Some(UserStatus::Active));
        assert_eq!(directory.status("user-blocked"), Some(UserStatus::Blocked));
        assert_eq!(directory.status("user-4"), None);
        let open = directory.accept_any(true);
        assert_eq!(open.status("user-4"), Some(UserStatus::Active));
        // Accept-any never unblocks a listed user.
        assert_eq!(open.status("user-blocked"), Some(UserStatus::Blocked));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let err = Directory::from_json(r#"[{"id": "a", "status": "ACTIVE"}, {"id": "a", "status": "BLOCKED"}, {"id": "", "status": "ACTIVE"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"a\": id is used more than once"), "{err}");
        assert!(err.contains("user #2: id must not be empty"), "{err}");
        let err =
            Directory::from_json(r#"[{"id": "a", "status": "GONE"}]"#).unwrap_err().to_string();
        assert!(err.contains("parsing users") && err.contains("GONE"), "{err}");
    }
}
