//! The folder's layout: which file holds what, and the fixed texts `castellan export` writes. These
//! names are a compatibility promise (folders kept in git rely on them); docs/export.md lists them.

use castellan_config::Tier;
use serde::{Deserialize, Serialize};

/// The folder's own description, at its root.
pub const README_FILE: &str = "README.md";
/// One Markdown file per profile section.
pub const POLICY_DIR: &str = "policy";
/// One Markdown file per user.
pub const USERS_DIR: &str = "users";
/// One folder per skill.
pub const SKILLS_DIR: &str = "skills";

/// The first line of [`README_TEXT`]: how a later export recognises a folder it may rewrite.
pub const README_FIRST_LINE: &str = "# Castellan export";

/// The entries an export owns in its folder: removed and rewritten by the next export.
pub const OWNED_ENTRIES: [&str; 4] = [README_FILE, POLICY_DIR, SKILLS_DIR, USERS_DIR];

/// One profile section and the file that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySection {
    /// The top-level key in the profile.
    pub key: &'static str,
    /// The file's stem under `policy/` (what `import --dry-run` names).
    pub stem: &'static str,
    /// The heading of the file's body.
    pub title: &'static str,
}

impl PolicySection {
    /// `policy/STEM.md`, relative to the folder.
    pub fn relative_path(&self) -> String {
        format!("{POLICY_DIR}/{}.md", self.stem)
    }
}

/// The profile sections an export holds, in the order the profile lists them.
pub const POLICY_SECTIONS: [PolicySection; 8] = [
    PolicySection { key: "rbac", stem: "rbac", title: "RBAC" },
    PolicySection { key: "rate_limits", stem: "rate-limits", title: "Rate limits" },
    PolicySection { key: "hooks", stem: "hooks", title: "Hooks" },
    PolicySection { key: "providers", stem: "providers", title: "AI providers" },
    PolicySection { key: "models", stem: "models", title: "Model routes" },
    PolicySection { key: "pricing", stem: "pricing", title: "Pricing" },
    PolicySection { key: "budgets", stem: "budgets", title: "Budgets" },
    PolicySection { key: "skills", stem: "skills", title: "Skills settings" },
];

/// The section kept in `policy/FILE_NAME`, if any.
pub fn section_of_file(file_name: &str) -> Option<&'static PolicySection> {
    POLICY_SECTIONS.iter().find(|section| format!("{}.md", section.stem) == file_name)
}

/// The frontmatter of `users/NAME.md`: what the users table holds that is policy. Never a
/// credential: API keys, passkeys and OAuth grants live in their own tables and stay there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFrontmatter {
    pub name: String,
    pub tier: Tier,
    /// The scopes the user may be granted; none when absent.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A disabled user cannot sign in or use its keys; false when absent.
    #[serde(default)]
    pub disabled: bool,
}

/// `README.md`.
pub const README_TEXT: &str = "# Castellan export

This folder was written by `castellan export`: Castellan's policy, users and skills as Markdown files
with YAML frontmatter, for keeping in git. `castellan import DIR --dry-run` lists what importing it
would change; `castellan import DIR` applies it.

- `policy/*.md`: one profile section per file; the frontmatter is the section as YAML. Secrets are
  `${secret:NAME}` references, never values.
- `users/NAME.md`: a user's name, tier, scopes and whether it is disabled; never credentials.
- `skills/NAME/`: the latest version of each skill, its files as published, and its signature
  (`.castellan-signature.json`) when it was signed.

Text below a file's frontmatter is not read back. `castellan export` rewrites `README.md`, `policy/`,
`users/` and `skills/`, and leaves anything else here (such as `.git`) alone.
";

/// The body under a policy file's frontmatter.
pub fn policy_body(section: &PolicySection) -> String {
    format!(
        "# {}\n\nThe frontmatter above is the profile's `{}` section, written by `castellan export`. `castellan import` \
         puts it back into the profile; this text is not read.\n",
        section.title, section.key
    )
}

/// The body under a user's frontmatter.
pub fn user_body(name: &str) -> String {
    format!(
        "# User {name}\n\nWritten by `castellan export`. Credentials (API keys, passkeys, OAuth grants) are not \
         exported; this text is not read.\n"
    )
}

/// `NAME.md` with every byte outside `A-Z a-z 0-9 - _ @ + .` (and a leading `.`) as `%XX`, so any
/// user name is one plain file name that cannot climb out of `users/` or hide.
pub fn user_file_name(name: &str) -> String {
    let mut file_name = String::with_capacity(name.len() + 3);
    for (index, byte) in name.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || b"-_@+".contains(&byte) || (byte == b'.' && index > 0);
        if plain {
            file_name.push(char::from(byte));
        } else {
            file_name.push_str(&format!("%{byte:02X}"));
        }
    }
    file_name.push_str(".md");
    file_name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_file_names_are_plain_and_distinct() {
        let cases = [
            ("alice", "alice.md"),
            ("bob.smith@example.com", "bob.smith@example.com.md"),
            ("..", "%2E..md"),
            ("a/b", "a%2Fb.md"),
            ("a%2Fb", "a%252Fb.md"),
            ("Zoë Q", "Zo%C3%AB%20Q.md"),
        ];
        for (name, expected) in cases {
            assert_eq!(user_file_name(name), expected, "{name:?}");
        }
    }

    #[test]
    fn every_policy_file_maps_back_to_its_section() {
        for section in &POLICY_SECTIONS {
            let file_name = format!("{}.md", section.stem);
            assert_eq!(section_of_file(&file_name), Some(section));
            assert!(castellan_config::BUILT_IN_SECTIONS.contains(&section.key), "{}", section.key);
        }
        assert_eq!(section_of_file("rate_limits.md"), None);
    }
}
