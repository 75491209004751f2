//! Skills in the Agent Skills format: a folder whose `SKILL.md` starts with YAML frontmatter (`name`,
//! `description`, optional `license`, `compatibility`, `metadata`, `allowed-tools`) followed by
//! Markdown, with any files beside it (`scripts/`, `references/`, `assets/`).
//!
//! Code map:
//! - `manifest`: `SKILL.md` parsed; `folder`: a folder on disk checked ([`check_dir`]).
//! - `bundle`: a skill's content in memory, content-addressed ([`load_dir`], [`from_files`],
//!   [`digest_of`], whose module doc defines the digest for re-implementations).
//! - `signature`: Ed25519 over a skill's name and digest ([`sign`], [`verify`]), the signature file
//!   [`SIGNATURE_FILE`] in the folder's root.
//! - `version`: `metadata.version` as SemVer or a sequence number, ordered ([`Version`]).
//!
//! Architecture invariants:
//! - Checking, hashing and signing are pure apart from reading the folder (and [`write_signature`],
//!   which writes only the signature file); nothing here stores or serves skills, or decides which
//!   keys to trust: the caller passes them.
//! - A bundle's digest covers every byte of every file and its path; the signature file is not
//!   content. A signature binds the skill's name as well as its digest.
//! - Every problem names its file and line, as `castellan profile check` does for profiles.
//! - Untrusted input never panics and is bounded: frontmatter size, file count and sizes, no
//!   symlinks, no special files, no anchors or aliases in the frontmatter, no path that climbs out
//!   of its folder, reads that stop one byte past the limit.
//! - No error message holds key material.

mod bundle;
mod folder;
mod manifest;
mod signature;
#[cfg(test)]
mod test_folder;
mod version;

use std::fmt;

pub use bundle::{Bundle, BundleFile, MAX_PATH_BYTES, digest_of, from_files, load_dir, sha256_hex};
pub use folder::{MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, Skill, SkillFile, check_dir};
pub use manifest::{
    MAX_COMPATIBILITY_LEN, MAX_DESCRIPTION_LEN, MAX_FRONTMATTER_BYTES, MAX_NAME_LEN, MAX_SKILL_MD_BYTES, Manifest,
    check_name, parse_skill_md,
};
pub use signature::{
    MAX_SIGNATURE_FILE_BYTES, SIGNATURE_FILE, Signature, SignatureError, parse_public_key, public_key_text, sign,
    signed_message, signing_key_from_pem, verify, write_signature,
};
pub use version::{Version, version_of};

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
