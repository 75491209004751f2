//! Skills in the Agent Skills format: a folder whose `SKILL.md` starts with YAML frontmatter (`name`,
//! `description`, optional `license`, `compatibility`, `metadata`, `allowed-tools`) followed by
//! Markdown, with any files beside it (`scripts/`, `references/`, `assets/`).
//!
//! Architecture invariants:
//! - Checking is pure apart from reading the folder; nothing here stores, signs or serves.
//! - Every problem names its file and line, as `castellan profile check` does for profiles.
//! - Untrusted input never panics and is bounded: frontmatter size, file count and sizes, no
//!   symlinks, no special files, no anchors or aliases in the frontmatter.

mod folder;
mod manifest;

use std::fmt;

pub use folder::{MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, Skill, SkillFile, check_dir};
pub use manifest::{
    MAX_COMPATIBILITY_LEN, MAX_DESCRIPTION_LEN, MAX_FRONTMATTER_BYTES, MAX_NAME_LEN, MAX_SKILL_MD_BYTES, Manifest,
    check_name, parse_skill_md,
};

/// One problem with a skill: `FILE:LINE: message` (line 0 when it concerns the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(formatter, "{}: {}", self.file, self.message)
        } else {
            write!(formatter, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}
