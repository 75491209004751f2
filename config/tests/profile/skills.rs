//! The `skills` section and RBAC `skills`.

use std::path::PathBuf;

use super::{parse_ok, problem_lines};

const KEY: &str = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

#[test]
fn the_interface_skills_section_parses() {
    let profile = parse_ok(&format!("skills:\n  dirs: [./skills, /srv/skills]\n  signing_keys: [\"{KEY}\"]\n"));
    assert_eq!(profile.skills.dirs, [PathBuf::from("./skills"), PathBuf::from("/srv/skills")]);
    assert_eq!(profile.skills.signing_keys, [KEY]);
    assert_eq!(parse_ok("rbac: { default: deny }\n").skills, Default::default(), "absent: nothing published, no keys");
}

#[test]
fn rbac_rules_read_skills_and_keep_them_apart_from_tools_and_models() {
    let profile = parse_ok("rbac:\n  rules:\n    - { effect: allow, min_tier: user, skills: [\"release-*\", pdf] }\n");
    let rule = &profile.rbac.rules[0];
    assert_eq!(rule.skills, ["release-*", "pdf"]);
    assert!(rule.servers.is_empty() && rule.tools.is_empty() && rule.models.is_empty(), "{rule:?}");
    let profile = parse_ok("rbac:\n  rules:\n    - { effect: allow }\n");
    assert!(profile.rbac.rules[0].skills.is_empty(), "a rule without skills matches no skill");
}

const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "skills with tools",
        "rbac:\n  rules:\n    - { effect: allow, tools: [x], skills: [y] }\n",
        "p.yaml:3:36: rbac.rules[0].skills: ",
        "cannot also have `tools`",
    ),
    (
        "skills with models",
        "rbac:\n  rules:\n    - { effect: allow, models: [x], skills: [y] }\n",
        "p.yaml:3:37: rbac.rules[0].skills: ",
        "cannot also have `skills`",
    ),
    (
        "skills empty",
        "rbac:\n  rules:\n    - { effect: allow, skills: [] }\n",
        "p.yaml:3:32: rbac.rules[0].skills: ",
        "an empty list matches nothing",
    ),
    (
        "skills bad name",
        "rbac:\n  rules:\n    - { effect: allow, skills: [Release] }\n",
        "p.yaml:3:33: rbac.rules[0].skills[0]: ",
        "could never match",
    ),
    (
        "key without prefix",
        "skills:\n  signing_keys: [AAAA]\n",
        "p.yaml:2:18: skills.signing_keys[0]: ",
        "starts with `ed25519:`",
    ),
    (
        "key too short",
        "skills:\n  signing_keys: [\"ed25519:AAAA\"]\n",
        "p.yaml:2:18: skills.signing_keys[0]: ",
        "decodes to 3",
    ),
    (
        "key twice",
        "skills:\n  signing_keys: [\"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\", \"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"]\n",
        "p.yaml:2:74: skills.signing_keys[1]: ",
        "listed twice",
    ),
    ("unknown key", "skills:\n  folders: [x]\n", "p.yaml:2:3: skills.folders: ", "unknown key `folders`"),
    ("dirs not a list", "skills:\n  dirs: ./skills\n", "p.yaml:2:9: skills.dirs: ", "expected a list"),
];

#[test]
fn every_skills_rule_has_a_failing_case_at_the_right_place() {
    let mut failures = Vec::new();
    for (what, text, prefix, fragment) in CASES {
        let lines = problem_lines(text);
        let right = lines.len() == 1 && lines[0].starts_with(prefix) && lines[0].contains(fragment);
        if !right {
            failures.push(format!("{what}: expected one problem `{prefix}…{fragment}…`, got {lines:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
