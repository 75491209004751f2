//! `castellan export`: the folder built in memory from the profile's text, the users and the
//! skills (a pure function: the same inputs give the same bytes), then written over the owned
//! entries of the output folder.

use std::collections::BTreeMap;
use std::path::Path;

use castellan_config::Tier;
use castellan_schema::users::UserRow;
use sea_orm::DatabaseConnection;
use serde_yaml_ng::Value;

use super::frontmatter::{emit, render};
use super::layout::{
    OWNED_ENTRIES, POLICY_SECTIONS, PolicySection, README_FILE, README_FIRST_LINE, README_TEXT, SKILLS_DIR, USERS_DIR,
    UserFrontmatter, policy_body, user_body, user_file_name,
};

/// The latest version of one skill, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSkill {
    pub name: String,
    /// Every file with its bytes, by `/`-separated path.
    pub files: Vec<(String, Vec<u8>)>,
    /// The stored signature JSON, when the version was signed.
    pub signature: Option<String>,
}

/// The export in memory: every file by its `/`-separated path in the folder, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<String, Vec<u8>>,
    pub sections: usize,
    pub users: usize,
    pub skills: usize,
    /// Things the operator should know (a literal credential in a section), one line each.
    pub warnings: Vec<String>,
}

/// The profile's policy sections present in `text`, each as the YAML value the file holds (`<<`
/// merges applied, aliases expanded), in [`POLICY_SECTIONS`] order.
pub fn policy_sections(text: &str, label: &str) -> Result<Vec<(&'static PolicySection, Value)>, String> {
    let mut document: Value =
        serde_yaml_ng::from_str(text).map_err(|error| format!("{label}: not readable as YAML: {error}"))?;
    document.apply_merge().map_err(|error| format!("{label}: invalid `<<` merge: {error}"))?;
    let mapping = match document {
        Value::Mapping(mapping) => mapping,
        Value::Null => return Ok(Vec::new()),
        _ => return Err(format!("{label}: a profile is a mapping of sections")),
    };
    Ok(POLICY_SECTIONS
        .iter()
        .filter_map(|section| mapping.get(section.key).map(|value| (section, value.clone())))
        .collect())
}

/// Builds the export of a profile (`profile_text`, named `profile_label` in messages), its users
/// and its skills.
pub fn build(
    profile_text: &str,
    profile_label: &str,
    users: &[UserRow],
    skills: &[ExportedSkill],
) -> Result<Tree, String> {
    let mut tree = Tree::default();
    tree.files.insert(README_FILE.to_string(), README_TEXT.as_bytes().to_vec());
    for (section, value) in policy_sections(profile_text, profile_label)? {
        tree.warnings.extend(literal_credentials(section, &value));
        let yaml = emit(&value).map_err(|error| format!("{profile_label}: {}: {error}", section.key))?;
        tree.files.insert(section.relative_path(), render(&yaml, &policy_body(section)).into_bytes());
        tree.sections += 1;
    }
    for user in users {
        let tier = Tier::parse(&user.tier)
            .ok_or_else(|| format!("user {:?} has an unknown tier {:?}", user.name, user.tier))?;
        let frontmatter =
            UserFrontmatter { name: user.name.clone(), tier, scopes: user.scopes.clone(), disabled: user.disabled };
        let yaml = serde_yaml_ng::to_string(&frontmatter).map_err(|error| format!("user {:?}: {error}", user.name))?;
        let path = format!("{USERS_DIR}/{}", user_file_name(&user.name));
        tree.files.insert(path, render(&yaml, &user_body(&user.name)).into_bytes());
        tree.users += 1;
    }
    for skill in skills {
        castellan_skills::check_name(&skill.name).map_err(|reason| format!("skill {:?}: {reason}", skill.name))?;
        for (path, bytes) in &skill.files {
            check_relative_path(path).map_err(|reason| format!("skill {}: file {path:?}: {reason}", skill.name))?;
            tree.files.insert(format!("{SKILLS_DIR}/{}/{path}", skill.name), bytes.clone());
        }
        if let Some(signature) = &skill.signature {
            let path = format!("{SKILLS_DIR}/{}/{}", skill.name, castellan_skills::SIGNATURE_FILE);
            tree.files.insert(path, signature.clone().into_bytes());
        }
        tree.skills += 1;
    }
    Ok(tree)
}

/// The latest version of every skill that has one not yanked, sorted by name.
pub async fn read_skills(db: &DatabaseConnection) -> Result<Vec<ExportedSkill>, String> {
    let latest = castellan_schema::skills::latest_versions(db).await.map_err(|error| error.to_string())?;
    let mut skills = Vec::with_capacity(latest.len());
    for version in latest {
        let files = castellan_schema::skills::read_all_files(db, version.id)
            .await
            .map_err(|error| format!("skill {} {}: {error}", version.name, version.version))?;
        skills.push(ExportedSkill {
            name: version.name,
            files: files.into_iter().map(|(entry, bytes)| (entry.path, bytes)).collect(),
            signature: version.signature,
        });
    }
    Ok(skills)
}

/// Writes `tree` into `out`: a missing folder is created; an existing one must be empty or hold an
/// earlier export (its `README.md`), whose owned entries are removed first so nothing stale stays.
/// Other entries (`.git`, ...) are left alone.
pub fn write(out: &Path, tree: &Tree) -> Result<(), String> {
    let shown = out.display();
    if out.exists() {
        if !out.is_dir() {
            return Err(format!("{shown} exists and is not a folder"));
        }
        let mut entries = std::fs::read_dir(out).map_err(|error| format!("cannot read {shown}: {error}"))?;
        if entries.next().is_some() && !is_earlier_export(out) {
            return Err(format!(
                "{shown} is not empty and holds no {README_FILE} of an earlier export; choose an empty or new folder \
                 with --out"
            ));
        }
        for entry in OWNED_ENTRIES {
            remove_entry(&out.join(entry))?;
        }
    }
    for (path, bytes) in &tree.files {
        check_relative_path(path).map_err(|reason| format!("{path:?}: {reason}"))?;
        let target = out.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|error| format!("cannot write {}: {error}", target.display()))?;
    }
    Ok(())
}

fn is_earlier_export(out: &Path) -> bool {
    std::fs::read_to_string(out.join(README_FILE)).is_ok_and(|text| text.lines().next() == Some(README_FIRST_LINE))
}

/// Removes a file or a folder (not following a link), if there is one.
fn remove_entry(path: &Path) -> Result<(), String> {
    let removed = match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => Err(error),
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    removed.map_err(|error| format!("cannot remove {} of the earlier export: {error}", path.display()))
}

/// A path that stays inside the folder: relative, `/`-separated, no empty, `.` or `..` segment,
/// no backslash or NUL. Stored skill paths were checked when published; this is the last guard
/// before the file system.
fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.contains(['\\', '\0']) {
        return Err("holds a backslash or NUL");
    }
    if path.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err("is not a plain relative path");
    }
    Ok(())
}

/// Warnings for credentials written as literal text in the providers section (an `api_key` or a
/// header without a `${...}` reference): the export holds what the profile holds, so they would be
/// committed with it.
fn literal_credentials(section: &PolicySection, value: &Value) -> Vec<String> {
    let Some(providers) = value.as_mapping().filter(|_| section.key == "providers") else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for (name, provider) in providers {
        let name = name.as_str().unwrap_or("?");
        let literal = |value: &Value| value.as_str().is_some_and(|text| !text.contains("${"));
        if provider.get("api_key").is_some_and(literal) {
            warnings.push(format!(
                "{}: providers.{name}.api_key is a literal value, not a ${{secret:NAME}} reference; it is in the export",
                section.relative_path()
            ));
        }
        if let Some(headers) = provider.get("headers").and_then(Value::as_mapping) {
            for (header, header_value) in headers {
                if literal(header_value) {
                    warnings.push(format!(
                        "{}: providers.{name}.headers.{} is a literal value; it is in the export",
                        section.relative_path(),
                        header.as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "# top comment
server: { listen: 127.0.0.1:0 }
base: &rule { effect: allow, min_tier: user }
rbac:
  default: deny
  rules:
    - <<: *rule
      servers: [\"*\"]
models:
  \"claude-*\": { provider: anthropic }
  fast: { provider: anthropic, model: claude-haiku-4-5 }
  alpha: { provider: anthropic }
providers:
  anthropic: { api_key: \"${secret:anthropic_key}\", headers: { x-team: platform, x-token: \"${TOKEN}\" } }
";

    fn user(name: &str, tier: &str) -> UserRow {
        UserRow {
            id: 1,
            name: name.into(),
            tier: tier.into(),
            scopes: vec!["mcp:tools".into()],
            disabled: false,
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn text(tree: &Tree, path: &str) -> String {
        String::from_utf8(tree.files.get(path).cloned().unwrap_or_default()).unwrap()
    }

    #[test]
    fn sections_keep_their_references_and_their_order() {
        let skills = [ExportedSkill {
            name: "notes".into(),
            files: vec![("SKILL.md".into(), b"---\nname: notes\n---\n".to_vec()), ("a/b.md".into(), b"b".to_vec())],
            signature: Some("{\"key\":\"k\",\"signature\":\"s\"}".into()),
        }];
        let tree = build(PROFILE, "profile.yaml", &[user("bob", "user"), user("a/b", "admin")], &skills).unwrap();
        let paths: Vec<&str> = tree.files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "README.md",
                "policy/models.md",
                "policy/providers.md",
                "policy/rbac.md",
                "skills/notes/.castellan-signature.json",
                "skills/notes/SKILL.md",
                "skills/notes/a/b.md",
                "users/a%2Fb.md",
                "users/bob.md"
            ]
        );
        let providers = text(&tree, "policy/providers.md");
        assert!(providers.contains("api_key: ${secret:anthropic_key}"), "{providers}");
        assert!(providers.contains("x-token: ${TOKEN}"), "{providers}");
        assert_eq!(
            tree.warnings,
            ["policy/providers.md: providers.anthropic.headers.x-team is a literal value; it is in the export"]
        );
        let models = text(&tree, "policy/models.md");
        let order: Vec<usize> = ["claude-*", "fast:", "alpha:"].iter().filter_map(|key| models.find(key)).collect();
        assert!(order.len() == 3 && order.windows(2).all(|pair| pair[0] < pair[1]), "first match wins: {models}");
        let rbac = text(&tree, "policy/rbac.md");
        assert!(
            rbac.starts_with(
                "---\ndefault: deny\nrules:\n- servers:\n  - '*'\n  effect: allow\n  min_tier: user\n---\n"
            ),
            "the merge is expanded: {rbac}"
        );
        assert_eq!(
            text(&tree, "users/bob.md").split("---\n").nth(1),
            Some("name: bob\ntier: user\nscopes:\n- mcp:tools\ndisabled: false\n")
        );
        assert_eq!((tree.sections, tree.users, tree.skills), (3, 2, 1));
        assert_eq!(
            build(PROFILE, "profile.yaml", &[user("bob", "user"), user("a/b", "admin")], &skills).unwrap(),
            tree
        );
    }

    #[test]
    fn a_path_that_leaves_the_folder_is_refused() {
        for path in ["../x", "a//b", "/etc/x", "a\\b", "./a"] {
            let skills =
                [ExportedSkill { name: "notes".into(), files: vec![(path.into(), Vec::new())], signature: None }];
            assert!(build("", "p", &[], &skills).is_err(), "{path}");
        }
        assert!(build("[1]", "p", &[], &[]).is_err(), "not a mapping");
        assert_eq!(build("", "p", &[], &[]).unwrap().files.len(), 1, "an empty profile: the README alone");
    }
}
