//! The `skills` section: folders published at start and on change, and the keys whose signatures
//! are required.

use std::path::PathBuf;

/// The prefix of a signing key in `skills.signing_keys`.
pub const SIGNING_KEY_PREFIX: &str = "ed25519:";

/// `skills`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkillsSettings {
    /// `dirs`: folders of skill folders (each child holding a `SKILL.md`), published when the daemon
    /// starts and whenever they change; relative paths are from the daemon's working directory.
    pub dirs: Vec<PathBuf>,
    /// `signing_keys`: `ed25519:` and the base64 of a raw 32-byte public key. When any is listed,
    /// only skills signed by one of them are published.
    pub signing_keys: Vec<String>,
}
