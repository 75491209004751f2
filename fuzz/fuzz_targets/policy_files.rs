//! `castellan import`'s parsers on any text: a policy file's frontmatter
//! (`policy_files::frontmatter::parse_value`) and the merge of that section into any profile text
//! (`policy_files::merge::merge`, whose line splice finds the profile's top-level sections).
//!
//! Checked, besides never panicking: a refusal names a line of the file; a merge that succeeds
//! gives a text that reads back with the imported section equal to the file's frontmatter and every
//! other section of the profile unchanged.
#![no_main]

use arbitrary::Arbitrary;
use castellan::policy_files::frontmatter::{parse_value, same_yaml};
use castellan::policy_files::layout::POLICY_SECTIONS;
use castellan::policy_files::merge::merge;
use castellan::policy_files::read::PolicyFile;
use libfuzzer_sys::fuzz_target;
use serde_yaml_ng::Value;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    section: u8,
    file: &'a str,
    profile: &'a str,
}

fuzz_target!(|input: Input| {
    let section = &POLICY_SECTIONS[usize::from(input.section) % POLICY_SECTIONS.len()];
    let (value, frontmatter) = match parse_value(input.file, "policy/x.md") {
        Ok(parsed) => parsed,
        Err(problem) => {
            // YAML's line breaks: CR LF, a lone CR and LF (a lone CR starts a line, as in editors).
            let lines = input.file.replace("\r\n", "\n").split(['\r', '\n']).count().max(1) + 1;
            assert!(problem.line.is_none_or(|line| line >= 1 && line <= lines), "{problem}");
            return;
        }
    };
    let file = PolicyFile {
        section,
        label: "policy/x.md".into(),
        value: value.clone(),
        yaml: frontmatter.yaml.to_string(),
        first_line: frontmatter.first_line,
    };
    let env = |_: &str| Some("x".to_string());
    let Ok(merged) = merge(input.profile, "profile.yaml", std::slice::from_ref(&file), &env) else { return };
    let Ok(Value::Mapping(after)) = serde_yaml_ng::from_str::<Value>(&merged.text) else {
        panic!("the merged text does not read as a mapping: {:?}", merged.text);
    };
    let mut after = Value::Mapping(after);
    after.apply_merge().expect("the merged text was validated");
    let imported = after.get(section.key).expect("the imported section is there");
    assert!(same_yaml(imported, &value), "{:?}", merged.text);
    if let Ok(Value::Mapping(before)) = serde_yaml_ng::from_str::<Value>(input.profile) {
        let mut before = Value::Mapping(before);
        if before.apply_merge().is_ok() {
            for (key, old) in before.as_mapping().into_iter().flatten() {
                if key.as_str() != Some(section.key) {
                    assert!(after.get(key).is_some_and(|new| same_yaml(new, old)), "{key:?}: {:?}", merged.text);
                }
            }
        }
    }
});
