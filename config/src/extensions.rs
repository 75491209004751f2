//! Profile sections that belong to extensions compiled into this binary.
//!
//! Which sections exist is fixed when the binary is built (extensions register at compile time), so
//! the daemon installs them once at start, before any profile is read; parsing stays free of I/O.
//! A section's value reaches its extension's validator as JSON, and each problem the validator names
//! by a path inside the section is reported at that key's line and column like any other.

use std::sync::OnceLock;

/// A problem an extension found in its section, at a path relative to the section
/// (`queues[0].name`; empty for the section itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionProblem {
    pub path: String,
    pub message: String,
}

/// Checks a section's value; no problems means it is valid.
pub type SectionValidator = Box<dyn Fn(&serde_json::Value) -> Vec<SectionProblem> + Send + Sync>;

/// One extension's section: its top-level key and its validator.
pub struct ExtensionSection {
    pub prefix: String,
    pub validate: SectionValidator,
}

static SECTIONS: OnceLock<Vec<ExtensionSection>> = OnceLock::new();

/// Installs the sections of the extensions built in. Only the first call counts: the set is a
/// property of the binary. Returns false when sections were installed already.
pub fn install_extension_sections(sections: Vec<ExtensionSection>) -> bool {
    SECTIONS.set(sections).is_ok()
}

pub(crate) fn installed() -> &'static [ExtensionSection] {
    SECTIONS.get().map_or(&[], Vec::as_slice)
}
