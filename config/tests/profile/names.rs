//! Server names and name patterns.

use castellan_config::{NamePattern, ServerName};

#[test]
fn name_patterns_match_whole_names() {
    let cases = [
        ("*", "", true),
        ("*", "anything at all", true),
        ("**", "", true),
        ("a*", "", false),
        ("x", "x", true),
        ("x", "xx", false),
        ("x", "", false),
        ("delete_*", "delete_customer", true),
        ("delete_*", "delete_", true),
        ("delete_*", "Delete_customer", false),
        ("delete_*", "undelete_customer", false),
        ("*_admin", "is_admin", true),
        ("*_admin", "_admin", true),
        ("*_admin", "is_admin_not", false),
        ("a*b", "ab", true),
        ("a*b", "axxxb", true),
        ("a*b", "a", false),
        ("a*b", "b", false),
        ("a*b", "abba", false),
        ("ab*b", "ab", false),
        ("ab*b", "abb", true),
        ("a**b", "axb", true),
        ("*a*a*", "aa", true),
        ("*a*a*", "xaxax", true),
        ("*a*a*", "a", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "acb", false),
        ("a*b*c", "abcbc", true),
        ("*.*", "a.b", true),
        ("*.*", "ab", false),
        ("ünï*", "ünïcode", true),
        ("ünï*", "uni", false),
        ("*ö", "öö", true),
        ("日本*", "日本語", true),
        ("*語", "日本語", true),
        ("*本*", "日本語", true),
        ("日*語", "日語", true),
        ("é", "e\u{301}", false),
    ];
    for (pattern, name, expected) in cases {
        let parsed = NamePattern::parse(pattern).unwrap();
        assert_eq!(parsed.matches(name), expected, "{pattern:?} matching {name:?}");
        assert_eq!(parsed.as_str(), pattern, "as_str of {pattern:?}");
    }
}

#[test]
fn an_empty_pattern_is_refused() {
    assert!(NamePattern::parse("").is_err(), "empty pattern");
    assert_eq!(NamePattern::any(), NamePattern::parse("*").unwrap(), "any() is *");
}

#[test]
fn server_names_follow_the_contract() {
    let cases = [
        ("a", true),
        ("customers", true),
        ("my-server-2", true),
        ("0", true),
        ("-", true),
        (&*"a".repeat(48), true),
        (&*"a".repeat(49), false),
        ("", false),
        ("A", false),
        ("Customers", false),
        ("a_b", false),
        ("a__b", false),
        ("a.b", false),
        ("a b", false),
        ("ünï", false),
        ("a/b", false),
    ];
    for (name, valid) in cases {
        let parsed = ServerName::parse(name);
        assert_eq!(parsed.is_ok(), valid, "ServerName::parse({name:?}) = {parsed:?}");
        if let Ok(parsed) = parsed {
            assert_eq!(parsed.as_str(), name, "as_str of {name:?}");
            assert_eq!(parsed.to_string(), name, "Display of {name:?}");
        }
    }
}

#[test]
fn server_names_order_and_serialise_as_strings() {
    let mut names: Vec<ServerName> = ["b", "a-2", "a"].iter().map(|name| ServerName::parse(name).unwrap()).collect();
    names.sort();
    let sorted: Vec<&str> = names.iter().map(ServerName::as_str).collect();
    assert_eq!(sorted, ["a", "a-2", "b"], "ordered by text");

    let yaml = serde_yaml_ng::to_string(&names[0]).unwrap();
    assert_eq!(yaml.trim(), "a", "serialised as the plain name");
    let parsed: Result<ServerName, _> = serde_yaml_ng::from_str("Bad_Name");
    assert!(parsed.is_err(), "deserialising validates");
}
