//! Tests of the profile crate through its public API only, as the daemon and the actors use it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support panics on purpose

mod ai;
mod expansion;
mod jobs;
mod names;
mod problems;
mod properties;
mod skills;
mod templates;
mod tiers;
mod valid;

use castellan_config::{Problem, Profile, parse_profile};

/// The file label every test profile is reported under.
pub const FILE: &str = "p.yaml";

/// Parses with the given environment.
pub fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Profile, Vec<Problem>> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    parse_profile(text, FILE, &env)
}

/// Parses with an empty environment.
pub fn parse(text: &str) -> Result<Profile, Vec<Problem>> {
    parse_with(text, &[])
}

/// Parses text that must be valid, failing the test with every problem otherwise.
pub fn parse_ok(text: &str) -> Profile {
    match parse(text) {
        Ok(profile) => profile,
        Err(problems) => panic!("expected a valid profile, got:\n{}\n--- profile ---\n{text}", lines(&problems)),
    }
}

/// The problems of text that must be invalid, one `Display` line each.
pub fn problem_lines(text: &str) -> Vec<String> {
    problem_lines_with(text, &[])
}

pub fn problem_lines_with(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match parse_with(text, vars) {
        Ok(profile) => panic!("expected problems, the profile parsed:\n{profile:#?}\n--- profile ---\n{text}"),
        Err(problems) => {
            assert!(!problems.is_empty(), "an Err must carry at least one problem for:\n{text}");
            problems.iter().map(ToString::to_string).collect()
        }
    }
}

pub fn lines(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
