//! Reading the stand-ins' JSON data files (catalog, users) with errors that say what is wrong.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a data file could not be used; the message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("reading {what} file {}: {source}", path.display())]
    Read {
        /// What the file holds, e.g. `catalog`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON of the expected shape.
    #[error("parsing {origin}: {source}")]
    Parse {
        /// What was parsed: `catalog`, or `catalog file <path>`.
        origin: String,
        /// Where and why parsing failed.
        #[source]
        source: serde_json::Error,
    },
    /// The data parsed but breaks a rule; every problem is listed.
    #[error("invalid {what}: {}", problems.join("; "))]
    Invalid {
        /// What the data holds.
        what: &'static str,
        /// One line per problem.
        problems: Vec<String>,
    },
}

/// Parses `text` as the JSON of `what`.
pub(crate) fn parse_json<T: DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, LoadError> {
    serde_json::from_str(text)
        .map_err(|source| LoadError::Parse { origin: what.to_owned(), source })
}

/// Reads and parses the JSON file of `what` at `path`.
pub(crate) fn read_json<T: DeserializeOwned>(
    what: &'static str,
    path: &Path,
) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    // "line 3 column 7" is only useful next to the file it is about.
    serde_json::from_str(&text).map_err(|source| LoadError::Parse {
        origin: format!("{what} file {}", path.display()),
        source,
    })
}

/// Turns a list of rule violations into `Ok` or [`LoadError::Invalid`].
pub(crate) fn check(what: &'static str, problems: Vec<String>) -> Result<(), LoadError> {
    if problems.is_empty() { Ok(()) } else { Err(LoadError::Invalid { what, problems }) }
}
