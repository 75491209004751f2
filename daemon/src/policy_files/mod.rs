//! Policy as files: `castellan export` writes the profile's policy sections, the users and the
//! skills as Markdown with YAML frontmatter (for keeping in git); `castellan import` checks such a
//! folder whole and then applies it. docs/export.md describes the layout and the guarantees.
//!
//! Code map:
//! - `layout`: the file names and the fixed texts; `frontmatter`: writing and reading one file.
//! - `export`: the folder built in memory (deterministic: export twice, same bytes) and written.
//! - `read`: a folder read and checked into an [`read::ImportSet`].
//! - `merge`: its sections put into the profile's text (`splice`: line by line, comments kept) and
//!   validated, problems located in the policy files.
//! - `plan`: what an import would change; `apply`: doing it; `import`: the three steps in order.
//!
//! Invariants:
//! - Profile sections are taken from the profile's text, never from the parsed `Profile`, so a
//!   `${secret:NAME}` or `${VAR}` reference stays a reference; nothing here reads the secret store.
//! - Users are exported without credentials: name, tier, scopes, disabled.
//! - An import writes nothing until every file has been read and checked and the merged profile is
//!   valid; the profile file is written last, atomically, and only when the database part succeeded.

pub mod apply;
pub mod export;
pub mod frontmatter;
pub mod import;
pub mod layout;
pub mod merge;
pub mod plan;
pub mod read;
mod splice;

use std::fmt;

/// One problem with a file of an import folder or with the profile: `FILE:LINE:COL: message`, the
/// line and column where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
}

impl FileProblem {
    pub fn at(file: &str, line: usize, col: Option<usize>, message: String) -> FileProblem {
        FileProblem { file: file.to_string(), line: Some(line), col, message }
    }

    pub fn whole(file: &str, message: String) -> FileProblem {
        FileProblem { file: file.to_string(), line: None, col: None, message }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
            if let Some(col) = self.col {
                write!(formatter, ":{col}")?;
            }
        }
        write!(formatter, ": {}", self.message)
    }
}
