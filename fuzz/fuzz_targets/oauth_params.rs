//! The authorization server's own parsers of request parameters: form bodies and query strings
//! (`castellan::oauth::Form`), scopes, PKCE values and redirect URIs.
//!
//! Checked besides "never panics":
//! - a parsed form never holds a repeated parameter, and serialising it back parses to the same values;
//! - `parse_scope` yields only known scopes, without duplicates;
//! - a PKCE verifier only matches the S256 challenge computed from it;
//! - a redirect URI matches a different registered one only as an http loopback URI that differs in
//!   the port alone, and the loopback exception never lets userinfo or a fragment through;
//! - `with_parameters` always produces a URI that starts with the redirect URI and parses.
#![no_main]

use arbitrary::Arbitrary;
use castellan::identity::{grants, pkce, redirect_uri};
use castellan::oauth::Form;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    scope: String,
    verifier: String,
    challenge: String,
    registered: String,
    requested: String,
    value: String,
}

fuzz_target!(|input: Input| {
    if let Ok(form) = Form::parse(&input.body) {
        for name in ["client_id", "redirect_uri", "scope", "code", "state"] {
            if let Some(value) = form.get(name) {
                assert!(!value.is_empty(), "empty values are absent");
                let rebuilt = url::form_urlencoded::Serializer::new(String::new()).append_pair(name, value).finish();
                let again = Form::parse(rebuilt.as_bytes()).expect("a single pair parses");
                assert_eq!(again.get(name), Some(value), "round trip of {name}");
            }
        }
    }

    if let Ok(scopes) = grants::parse_scope(Some(&input.scope)) {
        let mut seen = std::collections::HashSet::new();
        for scope in &scopes {
            assert!(seen.insert(scope.clone()), "duplicate scope {scope:?}");
            assert!(
                grants::FINE_SCOPES.contains(&scope.as_str()) || castellan_config::Tier::parse(scope).is_some(),
                "unknown scope {scope:?} accepted"
            );
        }
    }

    let matched = pkce::verifier_matches(&input.verifier, &input.challenge);
    if matched {
        assert!(pkce::is_valid_verifier(&input.verifier));
        assert_eq!(pkce::s256(&input.verifier), input.challenge, "only the S256 challenge matches");
    }
    assert!(pkce::verifier_matches(&"a".repeat(43), &pkce::s256(&"a".repeat(43))));

    let _ = redirect_uri::check_registrable(&input.registered);
    if redirect_uri::matches(&input.registered, &input.requested) && input.registered != input.requested {
        let registered = url::Url::parse(&input.registered).expect("a loopback match parses");
        let requested = url::Url::parse(&input.requested).expect("a loopback match parses");
        assert_eq!(registered.scheme(), "http");
        assert_eq!(requested.scheme(), "http");
        assert_eq!(registered.host(), requested.host(), "same host spelling");
        assert!(requested.username().is_empty() && requested.password().is_none(), "no userinfo");
        assert!(!input.requested.contains('#'), "no fragment");
        assert_eq!(registered.path(), requested.path(), "same path");
        assert_eq!(registered.query(), requested.query(), "same query");
    }
    if redirect_uri::check_registrable(&input.registered).is_ok() {
        let answered = redirect_uri::with_parameters(&input.registered, &[("code", &input.value), ("state", &input.scope)]);
        assert!(answered.starts_with(&input.registered));
        assert!(url::Url::parse(&answered).is_ok(), "{answered:?}");
    }
});
