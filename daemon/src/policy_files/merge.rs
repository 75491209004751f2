//! Putting imported sections into the profile's text: each changed section's lines are replaced
//! (or appended), everything else stays as written, comments included. The merged text is
//! validated with `castellan_config::parse_profile`, and its problems are reported against the
//! file each line came from: an imported section's problems at their line in its policy file.

use castellan_config::{Problem, Profile};
use serde_yaml_ng::{Mapping, Value};

use super::FileProblem;
use super::frontmatter::{emit, same_yaml};
use super::layout::PolicySection;
use super::read::PolicyFile;
use super::splice::{Lines, Origin, splice};

/// How an imported section changes the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionChange {
    /// The profile had no such section.
    Added(&'static PolicySection),
    /// The profile's section differs (key order counts).
    Changed(&'static PolicySection),
}

/// The profile after the import.
#[derive(Debug)]
pub struct Merged {
    /// The text to write: the profile's own text when nothing changed.
    pub text: String,
    /// `text`, parsed and valid.
    pub profile: Profile,
    pub changes: Vec<SectionChange>,
}

/// Merges `policy` into the profile `target_text` (named `target_label`), expanding `${VAR}` with
/// `env` for validation only.
pub fn merge(
    target_text: &str,
    target_label: &str,
    policy: &[PolicyFile],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Merged, Vec<FileProblem>> {
    let target = parse_mapping(target_text, target_label)?;
    let mut compared = Value::Mapping(target.clone());
    compared
        .apply_merge()
        .map_err(|error| vec![FileProblem::at(target_label, 1, None, format!("invalid `<<` merge: {error}"))])?;
    let changed: Vec<(&PolicyFile, SectionChange)> = policy
        .iter()
        .filter_map(|file| match compared.get(file.section.key) {
            None => Some((file, SectionChange::Added(file.section))),
            Some(old) if !same_yaml(old, &file.value) => Some((file, SectionChange::Changed(file.section))),
            Some(_) => None,
        })
        .collect();
    let changes: Vec<SectionChange> = changed.iter().map(|(_, change)| *change).collect();
    if changed.is_empty() {
        let profile = castellan_config::parse_profile(target_text, target_label, env)
            .map_err(|problems| problems.into_iter().map(unmapped).collect::<Vec<_>>())?;
        return Ok(Merged { text: target_text.to_string(), profile, changes });
    }
    let mut expected = target.clone();
    for (file, _) in &changed {
        expected.insert(Value::from(file.section.key), file.value.clone());
    }
    let expected = Value::Mapping(expected);
    let files: Vec<&PolicyFile> = changed.iter().map(|(file, _)| *file).collect();
    let canonical = canonical_text(target_text, target_label, &files, &expected)?;
    match castellan_config::parse_profile(&canonical.text, target_label, env) {
        Ok(profile) => Ok(Merged { text: canonical.text, profile, changes }),
        Err(problems) => Err(locate(target_text, target_label, &files, &expected, env)
            .unwrap_or_else(|| problems.iter().map(|problem| mapped(problem, &canonical.origins)).collect())),
    }
}

/// The target's text as a mapping (an empty file is an empty profile).
fn parse_mapping(text: &str, label: &str) -> Result<Mapping, Vec<FileProblem>> {
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Mapping(mapping)) => Ok(mapping),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(vec![FileProblem::at(label, 1, None, "a profile is a mapping of sections".into())]),
        Err(error) => {
            let frontmatter = super::frontmatter::Frontmatter { yaml: text, first_line: 1 };
            let mut problem = super::frontmatter::yaml_problem(&error, label, frontmatter);
            problem.message = format!("not readable as YAML: {}", problem.message);
            Err(vec![problem])
        }
    }
}

/// The text to write: the changed sections re-emitted in place of their lines. When the target's
/// layout defeats the line splice (a flow-style document, anchors used across sections), the whole
/// profile is re-emitted instead (its comments are then lost).
fn canonical_text(
    target_text: &str,
    target_label: &str,
    files: &[&PolicyFile],
    expected: &Value,
) -> Result<Lines, Vec<FileProblem>> {
    let blocks: Vec<(&str, Lines)> = files
        .iter()
        .map(|file| {
            let mut single = Mapping::new();
            single.insert(Value::from(file.section.key), file.value.clone());
            let text = emit(&Value::Mapping(single)).map_err(|error| vec![FileProblem::whole(&file.label, error)])?;
            Ok((file.section.key, generated(&text, &file.label)))
        })
        .collect::<Result<_, Vec<FileProblem>>>()?;
    if let Some(spliced) = splice(target_text, target_label, &blocks)
        && reads_as(&spliced.text, expected)
    {
        return Ok(spliced);
    }
    let Some(entries) = expected.as_mapping() else { return Ok(Lines::default()) };
    let mut whole = Lines::default();
    for (key, value) in entries {
        let file = files.iter().find(|file| key.as_str() == Some(file.section.key));
        let label = file.map_or(target_label, |file| file.label.as_str());
        let mut single = Mapping::new();
        single.insert(key.clone(), value.clone());
        let text = emit(&Value::Mapping(single)).map_err(|error| vec![FileProblem::whole(label, error)])?;
        for line in text.split_inclusive('\n') {
            whole.push(line, Origin { file: label.to_string(), line: None, indent: 0 });
        }
    }
    Ok(whole)
}

/// The problems of the merged profile at their lines in the policy files: the same merge with
/// each section's frontmatter put in verbatim (indented under its key), which reads as the same
/// YAML. None when it does not.
fn locate(
    target_text: &str,
    target_label: &str,
    files: &[&PolicyFile],
    expected: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<FileProblem>> {
    let blocks: Vec<(&str, Lines)> = files.iter().map(|file| (file.section.key, verbatim(file))).collect();
    let spliced = splice(target_text, target_label, &blocks)?;
    if !reads_as(&spliced.text, expected) {
        return None;
    }
    let problems = castellan_config::parse_profile(&spliced.text, target_label, env).err()?;
    Some(problems.iter().map(|problem| mapped(problem, &spliced.origins)).collect())
}

fn reads_as(text: &str, expected: &Value) -> bool {
    serde_yaml_ng::from_str::<Value>(text).is_ok_and(|value| same_yaml(&value, expected))
}

/// Lines generated for `file`: the file is known, the line is not.
fn generated(text: &str, file: &str) -> Lines {
    let mut lines = Lines::default();
    for line in text.split_inclusive('\n') {
        lines.push(line, Origin { file: file.to_string(), line: None, indent: 0 });
    }
    lines
}

/// `KEY:` then the file's frontmatter indented two columns, each line at its place in the file.
fn verbatim(file: &PolicyFile) -> Lines {
    let mut lines = Lines::default();
    lines.push(&format!("{}:\n", file.section.key), Origin { file: file.label.clone(), line: Some(1), indent: 0 });
    for (index, line) in file.yaml.split_inclusive('\n').enumerate() {
        let origin = Origin { file: file.label.clone(), line: Some(file.first_line + index), indent: 2 };
        lines.push(&format!("  {line}"), origin);
    }
    lines
}

/// A problem at the line of the text it was found in, put back where that line came from.
fn mapped(problem: &Problem, origins: &[Origin]) -> FileProblem {
    let message = format!("{}: {}", problem.path, problem.message);
    let origin = origins.get(problem.line.saturating_sub(1)).or(origins.last());
    match origin {
        Some(Origin { file, line: Some(line), indent }) => FileProblem {
            file: file.clone(),
            line: Some(*line),
            col: Some(problem.col.saturating_sub(*indent).max(1)),
            message,
        },
        Some(Origin { file, line: None, .. }) => FileProblem::whole(file, message),
        None => unmapped(problem.clone()),
    }
}

fn unmapped(problem: Problem) -> FileProblem {
    FileProblem {
        file: problem.file,
        line: Some(problem.line),
        col: Some(problem.col),
        message: format!("{}: {}", problem.path, problem.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_files::layout::POLICY_SECTIONS;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(key: &str, yaml: &str) -> PolicyFile {
        let section = POLICY_SECTIONS.iter().find(|section| section.key == key).unwrap();
        let mut value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        value.apply_merge().unwrap();
        PolicyFile { section, label: section.relative_path(), value, yaml: yaml.to_string(), first_line: 2 }
    }

    const TARGET: &str = "# The profile.
server:
  listen: 127.0.0.1:0   # a comment that stays

rbac:
  default: allow
# about rate limits
rate_limits:
  per_second: { mcp_tool_call: 5 }
";

    #[test]
    fn a_changed_section_replaces_its_lines_and_the_rest_stays_as_written() {
        let policy = [
            file("rbac", "default: deny\nrules:\n- { effect: allow, min_tier: user }\n"),
            file("rate_limits", "per_second: { mcp_tool_call: 5 }\n"),
            file("budgets", "- { name: daily, user: alice, usd: 5, period: day }\n"),
        ];
        let merged = merge(TARGET, "profile.yaml", &policy, &no_env).unwrap();
        assert_eq!(
            merged.text,
            "# The profile.
server:
  listen: 127.0.0.1:0   # a comment that stays

rbac:
  default: deny
  rules:
  - effect: allow
    min_tier: user
# about rate limits
rate_limits:
  per_second: { mcp_tool_call: 5 }
budgets:
- name: daily
  user: alice
  usd: 5
  period: day
"
        );
        let stems: Vec<String> = merged
            .changes
            .iter()
            .map(|change| match change {
                SectionChange::Added(section) => format!("+{}", section.stem),
                SectionChange::Changed(section) => format!("~{}", section.stem),
            })
            .collect();
        assert_eq!(stems, ["~rbac", "+budgets"], "an unchanged section is no change");
        assert_eq!(merged.profile.budgets.len(), 1);
        let again = merge(&merged.text, "profile.yaml", &policy, &no_env).unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(again.text, merged.text);
    }

    #[test]
    fn a_flow_style_profile_is_re_emitted_whole() {
        let policy = [file("rbac", "default: deny\n")];
        let merged =
            merge("{server: {listen: \"127.0.0.1:0\"}, rbac: {default: allow}}", "p.yaml", &policy, &no_env).unwrap();
        assert_eq!(merged.text, "server:\n  listen: 127.0.0.1:0\nrbac:\n  default: deny\n");
    }

    #[test]
    fn problems_are_reported_at_their_line_in_the_policy_file() {
        let policy = [file("rbac", "default: deny\nrules:\n  - effect: allow\n    colour: red\n")];
        let problems: Vec<String> =
            merge(TARGET, "profile.yaml", &policy, &no_env).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("policy/rbac.md:5:5: rbac.rules[0].colour: unknown key"), "{problems:?}");
    }

    /// Top-level sections as profiles write them (block, flow, quoted key, an anchor, a comment
    /// inside), each with its key.
    const PROFILE_SECTIONS: &[(&str, &str)] = &[
        ("server", "server:\n  listen: 127.0.0.1:0   # loopback\n"),
        ("server", "server: {listen: \"127.0.0.1:0\"}\n"),
        ("rbac", "rbac:\n  default: allow\n"),
        ("rbac", "rbac: &shared\n  default: allow\n"),
        ("rbac", "\"rbac\":\n  default: allow\n# inside\n  rules: []\n"),
        ("rate_limits", "rate_limits:\n  burst_multiplier: 2\n"),
        ("rate_limits", "rate_limits: {burst_multiplier: 2}\n"),
        ("budgets", "budgets: []\n"),
        ("budgets", "budgets:\n- {name: daily, user: alice, usd: 5, period: day}\n"),
        ("hooks", "hooks:\n  PreToolUse: []\n"),
    ];

    /// What comes between sections.
    const SEPARATORS: &[&str] = &["", "\n", "# a comment\n", "\n# about the next one\n", "  # indented\n"];

    /// Frontmatters an imported `rbac` or `rate_limits` file may hold.
    const SECTION_YAML: &[&str] = &[
        "default: deny\n",
        "default: allow\nrules: []\n",
        "burst_multiplier: 3\n",
        "null\n",
        "{default: deny}\n",
        "# only a comment\n",
        "{}\n",
    ];

    proptest::proptest! {
        #[test]
        fn a_merge_that_succeeds_holds_the_section_and_keeps_every_other(
            sections in proptest::collection::vec((0..PROFILE_SECTIONS.len(), 0..SEPARATORS.len()), 0..8),
            document_start in proptest::bool::ANY,
            yaml in 0..SECTION_YAML.len(),
            rate_limits in proptest::bool::ANY,
        ) {
            let mut target = if document_start { "---\n".to_string() } else { String::new() };
            let mut keys = Vec::new();
            for (section, separator) in sections {
                let (key, text) = PROFILE_SECTIONS[section];
                if !keys.contains(&key) {
                    keys.push(key);
                    target.push_str(SEPARATORS[separator]);
                    target.push_str(text);
                }
            }
            let policy = [file(if rate_limits { "rate_limits" } else { "rbac" }, SECTION_YAML[yaml])];
            let key = policy[0].section.key;
            if let Ok(merged) = merge(&target, "p.yaml", &policy, &no_env) {
                for comment in ["# a comment\n", "# about the next one\n"] {
                    proptest::prop_assert_eq!(
                        merged.text.matches(comment).count(),
                        target.matches(comment).count(),
                        "first-column comments between sections stay:\n{}---- became ----\n{}", target, merged.text
                    );
                }
                let mut after: Value = serde_yaml_ng::from_str(&merged.text).unwrap();
                after.apply_merge().unwrap();
                proptest::prop_assert!(same_yaml(after.get(key).unwrap(), &policy[0].value), "{}", merged.text);
                let mut before: Value = serde_yaml_ng::from_str(&target).unwrap();
                before.apply_merge().unwrap();
                for (name, old) in before.as_mapping().into_iter().flatten() {
                    if name.as_str() != Some(key) {
                        proptest::prop_assert!(
                            after.get(name).is_some_and(|new| same_yaml(new, old)),
                            "{name:?} changed:\n{target}---- became ----\n{}", merged.text
                        );
                    }
                }
            }
        }
    }
}
