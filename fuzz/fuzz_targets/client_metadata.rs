//! Client registration input from the network: RFC 7591 registration requests
//! (`castellan::oauth::register::parse_metadata`) and Client ID Metadata Documents
//! (`castellan::identity::client_metadata`).
//!
//! Checked besides "never panics":
//! - an accepted registration has 1 to 10 redirect URIs, each registrable (https, or http on
//!   loopback, no fragment or userinfo), grant types within authorization_code/refresh_token, and
//!   is confidential exactly when it asked for a secret method;
//! - an accepted client id URL is https, has no fragment, query or userinfo, and is canonical;
//! - an accepted metadata document names exactly the URL it was fetched from and uses no secret.
#![no_main]

use arbitrary::Arbitrary;
use castellan::identity::client_metadata::{parse_client_id_url, validate_document};
use castellan::identity::redirect_uri;
use castellan::oauth::register::parse_metadata;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    registration: Vec<u8>,
    client_id: String,
    document: Vec<u8>,
}

fuzz_target!(|input: Input| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&input.registration)
        && let Ok(parsed) = parse_metadata(&value)
    {
        assert!((1..=10).contains(&parsed.redirect_uris.len()));
        for uri in &parsed.redirect_uris {
            assert!(redirect_uri::check_registrable(uri).is_ok(), "{uri:?}");
        }
        assert!(parsed.grant_types.iter().all(|grant| grant == "authorization_code" || grant == "refresh_token"));
        assert_eq!(parsed.confidential, parsed.auth_method != "none");
    }

    if let Ok(url) = parse_client_id_url(&input.client_id) {
        assert_eq!(url.scheme(), "https");
        assert!(url.fragment().is_none() && url.query().is_none());
        assert!(url.username().is_empty() && url.password().is_none());
        assert_eq!(url.as_str(), input.client_id, "canonical");
        if let Ok(document) = validate_document(&input.client_id, &input.document) {
            assert_eq!(document.client_id, input.client_id);
            assert!(document.token_endpoint_auth_method == "none");
            assert!(!document.redirect_uris.is_empty());
        }
    }
});
