#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, encode};
use serde_json::json;

use super::*;

/// A P-256 key made for these tests only (never used anywhere else), and its public JWK.
const TEST_EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+5vSAZGEfIVxzoXb
SxY+RBXgfiSXfp0DkogWYofEhwGhRANCAATKg5fhAdqLwZHaMQC63+6mlAST5LA8
AA0NEArZMATrOsrpOFgUr1SoeqlBKNO9Fo7zyVWuXySZ2EfCEI/884p3
-----END PRIVATE KEY-----
";
const TEST_EC_X: &str = "yoOX4QHai8GR2jEAut_uppQEk-SwPAANDRAK2TAE6zo";
const TEST_EC_Y: &str = "yuk4WBSvVKh6qUEo070WjvPJVa5fJJnYR8IQj_zzinc";
/// Another P-256 public key: a valid key that did not sign anything here.
const OTHER_EC_X: &str = "0PmgfO6--dIxemL4m9YSLgwpsAfNrqVG5lRq7AyH3TQ";
const OTHER_EC_Y: &str = "pNSW_lhAFryIVWrLY_O2uDIukgEyC-llLAziY4mfFrI";

const ISSUER: &str = "https://idp.example.com/tenant";
const NOW: i64 = 1_800_000_000;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).unwrap()
}

fn configured() -> ExternalIssuer {
    ExternalIssuer {
        issuer: ISSUER.into(),
        audience: "castellan-api".into(),
        algorithms: vec!["ES256".into()],
        subject_claim: "sub".into(),
        tier_claim: Some("groups".into()),
        tier_map: BTreeMap::from([
            ("engineers".to_string(), Tier::User),
            ("robots".to_string(), Tier::Service),
            ("platform-admins".to_string(), Tier::Admin),
        ]),
        default_tier: None,
        scope_claim: "scope".into(),
        client_id: Some("castellan-web".into()),
        client_secret: None,
        display_name: "Example".into(),
    }
}

fn rules() -> IssuerRules {
    IssuerRules::from_config(&configured()).unwrap()
}

fn keys() -> JwkSet {
    convert_key_set(&json!({"keys": [
        {"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": "k1", "alg": "ES256", "use": "sig"},
    ]}))
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": "castellan-api", "sub": "alice", "exp": NOW + 300, "iat": NOW,
           "groups": ["engineers"], "scope": "mcp:tools"})
}

fn sign(header: &Header, claims: &Value) -> String {
    let body: String = TEST_EC_KEY.lines().filter(|line| !line.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    encode(header, claims, &EncodingKey::from_ec_der(&der)).unwrap()
}

fn header(typ: Option<&str>, kid: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = typ.map(str::to_string);
    header.kid = kid.map(str::to_string);
    header
}

/// A token whose header says anything at all, with a garbage signature: for checks that must
/// refuse it before any key is involved.
fn unsigned(header: &Value, claims: &Value) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.c2lnbmF0dXJl", part(header), part(claims))
}

fn as_claims(value: Value) -> Claims {
    value.as_object().unwrap().clone()
}

#[test]
fn a_good_token_becomes_the_prefixed_subject_with_its_mapped_tier_and_scopes() {
    let token = sign(&header(Some("at+jwt"), Some("k1")), &good_claims());
    let verified = verify_access_token(&rules(), &keys(), &token, now()).expect("a good token verifies");
    assert_eq!(verified.identity.subject, "Example/alice", "display name, slash, subject claim");
    assert_eq!(verified.identity.tier, Tier::User, "engineers map to user");
    assert_eq!(verified.identity.scopes, vec!["mcp:tools".to_string()], "scope claim");
    assert_eq!(verified.expires_at, NOW + 300, "exp kept for the cache");
    assert_eq!(verified.kid, "k1", "the signing key is remembered");
    let principal = verified.identity.into_principal(ISSUER);
    assert_eq!(principal.credential, Credential::Federated { issuer: ISSUER.into() }, "credential names the issuer");
}

#[test]
fn claims_map_to_tier_scopes_and_subject() {
    struct Case {
        what: &'static str,
        claims: Value,
        default_tier: Option<Tier>,
        expected: Result<(&'static str, Tier, Vec<&'static str>), TokenError>,
    }
    let case = |what, claims, default_tier, expected| Case { what, claims, default_tier, expected };
    let cases = [
        case(
            "one group as a string",
            json!({"sub": "a", "groups": "engineers"}),
            None,
            Ok(("Example/a", Tier::User, vec![])),
        ),
        case(
            "the highest of several groups wins",
            json!({"sub": "a", "groups": ["robots", "platform-admins", "engineers"]}),
            None,
            Ok(("Example/a", Tier::Admin, vec![])),
        ),
        case(
            "unmapped groups fall back to the default",
            json!({"sub": "a", "groups": ["sales"]}),
            Some(Tier::Service),
            Ok(("Example/a", Tier::Service, vec![])),
        ),
        case(
            "no tier claim falls back to the default",
            json!({"sub": "a"}),
            Some(Tier::User),
            Ok(("Example/a", Tier::User, vec![])),
        ),
        case(
            "no mapping and no default is refused",
            json!({"sub": "a", "groups": ["sales"]}),
            None,
            Err(TokenError::NoTier),
        ),
        case("a non-string tier claim maps nothing", json!({"sub": "a", "groups": 7}), None, Err(TokenError::NoTier)),
        case(
            "default admin is lowered to user",
            json!({"sub": "a", "groups": ["sales"]}),
            Some(Tier::Admin),
            Ok(("Example/a", Tier::User, vec![])),
        ),
        case(
            "scopes as a space-separated string",
            json!({"sub": "a", "groups": "engineers", "scope": "mcp:tools  offline_access"}),
            None,
            Ok(("Example/a", Tier::User, vec!["mcp:tools", "offline_access"])),
        ),
        case(
            "scopes as an array",
            json!({"sub": "a", "groups": "engineers", "scope": ["mcp:tools", 3, "ai:messages"]}),
            None,
            Ok(("Example/a", Tier::User, vec!["mcp:tools", "ai:messages"])),
        ),
        case(
            "a numeric subject",
            json!({"sub": 1234, "groups": "engineers"}),
            None,
            Ok(("Example/1234", Tier::User, vec![])),
        ),
        case(
            "a subject with a slash stays under the prefix",
            json!({"sub": "x/y", "groups": "engineers"}),
            None,
            Ok(("Example/x/y", Tier::User, vec![])),
        ),
        case("no subject", json!({"groups": "engineers"}), None, Err(TokenError::MissingSubject)),
        case("an empty subject", json!({"sub": "", "groups": "engineers"}), None, Err(TokenError::MissingSubject)),
        case(
            "a subject with a control character",
            json!({"sub": "a\nb", "groups": "engineers"}),
            None,
            Err(TokenError::MissingSubject),
        ),
        case(
            "an object as subject",
            json!({"sub": {"id": 1}, "groups": "engineers"}),
            None,
            Err(TokenError::MissingSubject),
        ),
    ];
    for Case { what, claims, default_tier, expected } in cases {
        let rules = IssuerRules::from_config(&ExternalIssuer { default_tier, ..configured() }).unwrap();
        let got = rules.identity(&as_claims(claims)).map(|identity| (identity.subject, identity.tier, identity.scopes));
        let expected = expected.map(|(subject, tier, scopes)| {
            (subject.to_string(), tier, scopes.into_iter().map(str::to_string).collect::<Vec<_>>())
        });
        assert_eq!(got, expected, "{what}");
    }
}

#[test]
fn the_subject_claim_is_configurable() {
    let rules = IssuerRules::from_config(&ExternalIssuer {
        subject_claim: "email".into(),
        default_tier: Some(Tier::User),
        ..configured()
    })
    .unwrap();
    let identity = rules.identity(&as_claims(json!({"sub": "00u1", "email": "a@example.com"}))).unwrap();
    assert_eq!(identity.subject, "Example/a@example.com", "the configured claim names the user");
}

#[test]
fn headers_are_checked_before_any_key() {
    let claims = good_claims();
    let cases = [
        (
            "RS256 when only ES256 is pinned",
            json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}),
            TokenError::AlgorithmNotAllowed,
        ),
        (
            "HS256 keyed with anything",
            json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}),
            TokenError::AlgorithmNotAllowed,
        ),
        ("EdDSA, not pinned", json!({"alg": "EdDSA", "kid": "k1"}), TokenError::AlgorithmNotAllowed),
        ("alg none does not even parse", json!({"alg": "none", "kid": "k1"}), TokenError::Malformed),
        ("no kid", json!({"alg": "ES256", "typ": "at+jwt"}), TokenError::UnknownKey),
        ("an empty kid", json!({"alg": "ES256", "kid": ""}), TokenError::UnknownKey),
        ("a kid nobody published", json!({"alg": "ES256", "kid": "k9"}), TokenError::UnknownKey),
        ("a logout token", json!({"alg": "ES256", "kid": "k1", "typ": "logout+jwt"}), TokenError::WrongType),
        ("a DPoP proof", json!({"alg": "ES256", "kid": "k1", "typ": "dpop+jwt"}), TokenError::WrongType),
        (
            "a good header with a bad signature",
            json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}),
            TokenError::BadSignature,
        ),
    ];
    for (what, header, expected) in cases {
        let token = unsigned(&header, &claims);
        assert_eq!(verify_access_token(&rules(), &keys(), &token, now()), Err(expected), "{what}");
    }
}

#[test]
fn access_token_types_accepted() {
    for typ in [Some("at+jwt"), Some("application/at+jwt"), Some("JWT"), Some("jwt"), None] {
        let token = sign(&header(typ, Some("k1")), &good_claims());
        assert!(verify_access_token(&rules(), &keys(), &token, now()).is_ok(), "typ {typ:?} is an access token");
    }
}

#[test]
fn a_key_is_used_only_for_the_algorithm_and_purpose_it_states() {
    let token = sign(&header(Some("at+jwt"), Some("k1")), &good_claims());
    let cases = [
        (
            "the key says RS256",
            json!({"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": "k1", "alg": "RS256"}),
            Err(TokenError::AlgorithmNotAllowed),
        ),
        (
            "an encryption key",
            json!({"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": "k1", "use": "enc"}),
            Err(TokenError::UnknownKey),
        ),
        (
            "a symmetric key under the kid",
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}),
            Err(TokenError::UnknownKey),
        ),
        (
            "no alg and no use is fine",
            json!({"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": "k1"}),
            Ok(()),
        ),
        (
            "another EC key under the same kid",
            json!({"kty": "EC", "crv": "P-256", "x": OTHER_EC_X, "y": OTHER_EC_Y, "kid": "k1"}),
            Err(TokenError::BadSignature),
        ),
        (
            "a point that is not on the curve",
            json!({"kty": "EC", "crv": "P-256", "x": TEST_EC_Y, "y": TEST_EC_X, "kid": "k1"}),
            Err(TokenError::Malformed),
        ),
    ];
    for (what, jwk, expected) in cases {
        let keys = convert_key_set(&json!({"keys": [jwk]}));
        let got = verify_access_token(&rules(), &keys, &token, now()).map(|_| ());
        assert_eq!(got, expected, "{what}");
    }
}

#[test]
fn an_id_token_used_as_a_bearer_is_refused() {
    let cases = [
        (
            "typ JWT, addressed to our client id",
            Some("JWT"),
            json!({"iss": ISSUER, "aud": "castellan-web", "sub": "alice", "exp": NOW + 300, "groups": "engineers"}),
            TokenError::IdToken,
        ),
        (
            "no typ, addressed to our client id and the API",
            None,
            json!({"iss": ISSUER, "aud": ["castellan-api", "castellan-web"], "sub": "alice", "exp": NOW + 300, "groups": "engineers"}),
            TokenError::IdToken,
        ),
        (
            "a nonce, even with the API audience",
            Some("JWT"),
            json!({"iss": ISSUER, "aud": "castellan-api", "sub": "alice", "exp": NOW + 300, "nonce": "n", "groups": "engineers"}),
            TokenError::IdToken,
        ),
        (
            "an ID token for another client",
            Some("JWT"),
            json!({"iss": ISSUER, "aud": "someone-else", "sub": "alice", "exp": NOW + 300, "groups": "engineers"}),
            TokenError::WrongAudience,
        ),
    ];
    for (what, typ, claims, expected) in cases {
        let token = sign(&header(typ, Some("k1")), &claims);
        assert_eq!(verify_access_token(&rules(), &keys(), &token, now()), Err(expected), "{what}");
    }
    let token = sign(
        &header(Some("at+jwt"), Some("k1")),
        &json!({"iss": ISSUER, "aud": ["castellan-api", "castellan-web"], "sub": "alice", "exp": NOW + 300, "groups": "engineers"}),
    );
    assert!(verify_access_token(&rules(), &keys(), &token, now()).is_ok(), "at+jwt vouches for an access token");
}

#[test]
fn issuer_and_audience_are_exact() {
    let cases = [
        ("issuer with a trailing slash", json!({"iss": format!("{ISSUER}/")}), TokenError::WrongIssuer),
        ("issuer in another case", json!({"iss": ISSUER.to_uppercase()}), TokenError::WrongIssuer),
        ("no issuer", json!({"iss": null}), TokenError::WrongIssuer),
        ("another audience", json!({"aud": "castellan"}), TokenError::WrongAudience),
        ("audience list without ours", json!({"aud": ["a", "b"]}), TokenError::WrongAudience),
        ("no audience", json!({"aud": null}), TokenError::WrongAudience),
    ];
    for (what, changes, expected) in cases {
        let mut claims = good_claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        let token = sign(&header(Some("at+jwt"), Some("k1")), &claims);
        assert_eq!(verify_access_token(&rules(), &keys(), &token, now()), Err(expected), "{what}");
    }
    let mut listed = good_claims();
    listed["aud"] = json!(["other", "castellan-api"]);
    let token = sign(&header(Some("at+jwt"), Some("k1")), &listed);
    assert!(verify_access_token(&rules(), &keys(), &token, now()).is_ok(), "aud may be a list containing ours");
}

#[test]
fn time_is_checked_against_the_given_now_with_leeway() {
    let leeway = tokens::LEEWAY_SECONDS;
    let cases: [(&str, Value, Result<(), TokenError>); 9] = [
        ("valid", json!({"exp": NOW + 60}), Ok(())),
        ("expired within the leeway", json!({"exp": NOW - leeway + 1}), Ok(())),
        ("expired at the leeway", json!({"exp": NOW - leeway}), Err(TokenError::Expired)),
        ("long expired", json!({"exp": NOW - 3600}), Err(TokenError::Expired)),
        ("no exp", json!({}), Err(TokenError::Malformed)),
        ("exp as text", json!({"exp": "soon"}), Err(TokenError::Malformed)),
        ("not before, later", json!({"exp": NOW + 600, "nbf": NOW + leeway + 1}), Err(TokenError::NotYetValid)),
        ("issued in the future", json!({"exp": NOW + 600, "iat": NOW + leeway + 1}), Err(TokenError::NotYetValid)),
        ("fractional seconds", json!({"exp": (NOW + 60) as f64 + 0.5, "nbf": NOW as f64 - 0.5}), Ok(())),
    ];
    for (what, claims, expected) in cases {
        assert_eq!(check_times(&as_claims(claims), now()), expected, "{what}");
    }
    // The library's own clock plays no part: a token long expired in real time verifies at its `now`.
    let token = sign(&header(Some("at+jwt"), Some("k1")), &good_claims());
    assert!(verify_access_token(&rules(), &keys(), &token, now()).is_ok(), "verified at the given now");
    let later = now() + chrono::Duration::seconds(300 + leeway);
    assert_eq!(verify_access_token(&rules(), &keys(), &token, later), Err(TokenError::Expired), "expired later");
}

#[test]
fn configuration_pins_asymmetric_algorithms_only() {
    let parsed =
        IssuerRules::from_config(&ExternalIssuer { algorithms: vec!["RS256".into(), "ES256".into()], ..configured() });
    assert_eq!(parsed.unwrap().algorithms, vec![Algorithm::RS256, Algorithm::ES256], "both pinned, in order");
    let defaulted = IssuerRules::from_config(&ExternalIssuer { algorithms: vec![], ..configured() });
    assert_eq!(defaulted.unwrap().algorithms, vec![Algorithm::RS256], "RS256 by default");
    for bad in ["HS256", "none", "ES999"] {
        let refused = IssuerRules::from_config(&ExternalIssuer { algorithms: vec![bad.into()], ..configured() });
        assert!(refused.is_err(), "{bad} is refused");
    }
}

#[test]
fn key_sets_convert_key_by_key() {
    let converted = convert_key_set(&json!({"keys": [
        {"kty": "EC", "crv": "P-256", "x": TEST_EC_X, "y": TEST_EC_Y, "kid": "good"},
        {"kty": "EC", "kid": "bad", "alg": 7},
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB", "use": "sig", "alg": "RS256", "key_ops": ["verify"]},
    ]}));
    let kids: Vec<_> = converted.keys.iter().filter_map(|key| key.common.key_id.clone()).collect();
    assert_eq!(kids, vec!["good".to_string(), "rsa".to_string()], "the unusable key is skipped, the others kept");
    assert!(convert_key_set(&json!({"nothing": []})).keys.is_empty(), "no keys member: an empty set");
}
