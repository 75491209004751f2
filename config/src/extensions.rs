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

/// A provider kind an extension adds to the AI gateway: its profile name, the wire format it speaks
/// (one of the three), and its default `base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionProviderKind {
    pub name: String,
    pub speaks: crate::ai::ProviderKind,
    pub default_base_url: String,
}

static PROVIDER_KINDS: OnceLock<Vec<ExtensionProviderKind>> = OnceLock::new();

/// Installs the provider kinds of the extensions built in; only the first call counts.
pub fn install_extension_provider_kinds(kinds: Vec<ExtensionProviderKind>) -> bool {
    PROVIDER_KINDS.set(kinds).is_ok()
}

pub(crate) fn provider_kind(name: &str) -> Option<&'static ExtensionProviderKind> {
    PROVIDER_KINDS.get()?.iter().find(|kind| kind.name == name)
}

pub(crate) fn provider_kind_names() -> Vec<&'static str> {
    PROVIDER_KINDS.get().map(|kinds| kinds.iter().map(|kind| kind.name.as_str()).collect()).unwrap_or_default()
}
