//! `castellan_config::parse_profile` on arbitrary UTF-8.
//!
//! The crate promises that untrusted text never panics the parser and that sizes and depths are
//! bounded; "finishes quickly" is enforced by libFuzzer's `-timeout` (scripts/fuzz.sh). Besides not
//! panicking, every failure must be a well-formed problem list as docs/profile.md describes it.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

/// docs/profile.md: "after 100 a final line says so".
const MAX_PROBLEMS: usize = 100;
const LABEL: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else { return Corpus::Reject };
    let Err(problems) = castellan_config::parse_profile(text, LABEL, &|_| None) else { return Corpus::Keep };

    assert!(!problems.is_empty(), "a refused profile names at least one problem");
    assert!(problems.len() <= MAX_PROBLEMS + 1, "{} problems", problems.len());
    // Every line break YAML knows (libyaml also breaks lines at NEL, LS and PS); positions may point
    // one line past the last break (the end of the stream).
    let breaks = text.chars().filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')).count();
    for problem in &problems {
        assert_eq!(problem.file, LABEL);
        assert!(problem.line >= 1 && problem.col >= 1, "1-based position: {problem}");
        assert!(problem.line <= breaks + 2, "line {} of a text with {breaks} line breaks: {problem}", problem.line);
        assert!(!problem.path.is_empty(), "a problem has a key path or (document): {problem}");
        assert!(!problem.message.is_empty(), "a problem says what is wrong: {problem}");
    }
    let summary = problems.iter().position(|problem| problem.message.starts_with("more than 100 problems"));
    if problems.len() > MAX_PROBLEMS {
        assert_eq!(summary, Some(MAX_PROBLEMS), "the last of {} problems says there are more", problems.len());
    }
    let listed = &problems[..problems.len().min(MAX_PROBLEMS)];
    assert!(
        listed.windows(2).all(|pair| (pair[0].line, pair[0].col) <= (pair[1].line, pair[1].col)),
        "problems are sorted by position: {problems:#?}"
    );
    Corpus::Keep
});
