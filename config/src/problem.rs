//! One thing wrong with a profile, located the way compilers do so editors can jump to it.

/// A problem found while loading a profile. `line` and `col` are 1-based (columns count characters);
/// `path` is the dotted key path with `[N]` for list items, or `(document)` when the problem is about the
/// file as a whole (a YAML syntax error, an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {path}: {message}")]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub path: String,
    pub message: String,
}

/// The path reported for problems that belong to no key.
pub const DOCUMENT_PATH: &str = "(document)";
