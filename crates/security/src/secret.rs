//! A secret setting (a token) that never shows in logs or `--help`.

use std::fmt;

/// A secret setting (a token): usable through [`Secret::expose`], but never shown by `{:?}`,
/// so settings structs that derive `Debug` can still be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

// clap's value parser picks this up for `Option<Secret>` settings.
impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_debug_print() {
        let secret = Secret::new("t0ken-value");
        assert_eq!(secret.expose(), "t0ken-value");
        let debug = format!("{:?}", Some(&secret));
        assert!(!debug.contains("t0ken"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }
}
