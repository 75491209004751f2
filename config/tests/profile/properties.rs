//! Properties over arbitrary input: the parser never panics, and star-free patterns are exact.

use castellan_config::{DEFAULT_PROFILE_YAML, NamePattern, parse_profile};
use proptest::prelude::*;

/// Pieces that make random text look enough like a profile to reach the deeper checks.
const TOKENS: &[&str] = &[
    "server:",
    "database:",
    "mcp_servers:",
    "rbac:",
    "rules:",
    "hooks:",
    "listen:",
    "url:",
    "command:",
    "args:",
    "env:",
    "port: auto",
    "headers:",
    "restart:",
    "backoff_max:",
    "effect:",
    "min_tier:",
    "tools:",
    "servers:",
    "\n",
    "\n  ",
    "\n    ",
    "  ",
    " ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "'",
    "${",
    "${secret:",
    "${PORT}",
    "$${",
    "}",
    "&a ",
    "*a",
    "<<: ",
    "!tag ",
    "#",
    "|",
    ">",
    "---",
    "...",
    "?",
    "@",
    "`",
    "\t",
    "\\",
    "é",
    "💥",
    "http://h:1/",
    "127.0.0.1:8080",
    "5s",
    "0",
    "-1",
    "99999999999999999999",
    "~",
    "null",
    "true",
    "allow",
    "user",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|tokens| tokens.concat())
}

/// A richer profile than the default, to mutate.
const RICH_PROFILE: &str = "server:\n  listen: 127.0.0.1:8080\n  allowed_origins: [\"https://a.example\"]\nmcp_servers:\n  s:\n    command: x\n    args: [\"--p=${PORT}\"]\n    url: http://127.0.0.1:${PORT}/mcp\n    port: auto\n    headers: { A: \"${secret:a}\" }\n    restart: { backoff_initial: 1s, backoff_max: 2s }\nrbac:\n  rules:\n    - { name: r, effect: deny, min_tier: user, max_tier: admin, servers: [\"*\"], tools: [\"d*\"] }\n";

fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    (0..=base.len(), 0usize..8, prop::sample::select(TOKENS)).prop_map(move |(at, remove, insert)| {
        let mut chars: Vec<char> = base.chars().collect();
        let at = at.min(chars.len());
        let end = (at + remove).min(chars.len());
        chars.splice(at..end, insert.chars());
        chars.into_iter().collect()
    })
}

fn env(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| format!("v-{name}"))
}

fn check_never_panics(text: &str) {
    if let Err(problems) = parse_profile(text, "fuzz.yaml", &env) {
        assert!(!problems.is_empty(), "an Err carries problems");
        for problem in problems {
            assert!(problem.line >= 1 && problem.col >= 1, "positions are 1-based: {problem}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_never_panics(&text);
    }

    #[test]
    fn profile_like_text_never_panics(text in token_soup()) {
        check_never_panics(&text);
    }

    #[test]
    fn mutated_default_profile_never_panics(text in mutated(DEFAULT_PROFILE_YAML)) {
        check_never_panics(&text);
    }

    #[test]
    fn mutated_rich_profile_never_panics(text in mutated(RICH_PROFILE)) {
        check_never_panics(&text);
    }

    #[test]
    fn star_free_patterns_match_only_themselves(pattern in "[^*]{1,12}", name in any::<String>()) {
        let parsed = NamePattern::parse(&pattern).unwrap();
        prop_assert!(parsed.matches(&pattern), "{:?} must match itself", pattern);
        prop_assert_eq!(parsed.matches(&name), name == pattern, "{:?} against {:?}", pattern, name);
    }

    #[test]
    fn star_free_patterns_reject_near_misses(pattern in "[^*]{1,12}", extra in "[^*]{1,3}") {
        let parsed = NamePattern::parse(&pattern).unwrap();
        let longer = format!("{pattern}{extra}");
        let prefixed = format!("{extra}{pattern}");
        prop_assert!(!parsed.matches(&longer), "{:?} must not match {:?}", pattern, longer);
        prop_assert!(!parsed.matches(&prefixed), "{:?} must not match {:?}", pattern, prefixed);
    }
}

#[test]
fn the_rich_profile_is_valid_before_mutation() {
    assert!(parse_profile(RICH_PROFILE, "rich.yaml", &|_| None).is_ok(), "the mutation base must be valid");
}

#[test]
fn hostile_shapes_are_refused_without_crashing() {
    let deep_flow = "[".repeat(100_000);
    let deep_block: String = (0..2_000).map(|depth| format!("{}k{depth}:\n", " ".repeat(depth))).collect();
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let wide: String = (0..50_000).map(|index| format!("k{index}: v\n")).collect();
    let huge = "#".repeat(castellan_config::MAX_PROFILE_BYTES + 1);
    for (what, text) in [
        ("deep flow nesting", deep_flow.as_str()),
        ("deep block nesting", deep_block.as_str()),
        ("alias bomb", laughs),
        ("many keys", wide.as_str()),
        ("oversized", huge.as_str()),
    ] {
        let result = parse_profile(text, "hostile.yaml", &|_| None);
        assert!(result.is_err(), "{what} must be refused");
    }
}
