//! Redirect URIs: what may be registered, and whether a requested URI matches a registered one.
//!
//! Matching is by exact string comparison. The one exception is RFC 8252 §7.3: for a loopback
//! redirect URI (`http` on 127.0.0.1, [::1] or `localhost`) the port may differ, because native
//! clients listen on an ephemeral port. Everything else (scheme, host spelling, path, query) must be
//! byte-identical, so prefix, suffix, encoding and userinfo variants never match.

use url::{Host, Url};

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI {0:?} is not an absolute URL")]
    NotAbsolute(String),
    #[error("redirect URI {0:?} must use https, or http on a loopback address")]
    Insecure(String),
    #[error("redirect URI {0:?} must not have a fragment")]
    Fragment(String),
    #[error("redirect URI {0:?} must not carry a user name or password")]
    Userinfo(String),
    #[error("redirect URI {given:?} is not written in canonical form; register it as {canonical:?}")]
    NotCanonical { given: String, canonical: String },
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks a URI offered for registration.
pub fn check_registrable(uri: &str) -> Result<(), RedirectUriError> {
    let parsed = Url::parse(uri).map_err(|_| RedirectUriError::NotAbsolute(uri.to_string()))?;
    if uri.contains('#') {
        return Err(RedirectUriError::Fragment(uri.to_string()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(RedirectUriError::Userinfo(uri.to_string()));
    }
    // Redirect URIs are compared as strings, so only the form the URL parser writes back is accepted:
    // no control characters, no missing `//`, no upper-case host, no default port spelled out.
    if parsed.as_str() != uri {
        return Err(RedirectUriError::NotCanonical { given: uri.to_string(), canonical: parsed.to_string() });
    }
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if is_loopback_host(&parsed) => Ok(()),
        _ => Err(RedirectUriError::Insecure(uri.to_string())),
    }
}

/// Whether the requested URI matches the registered one.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    // Loopback exception: equal except for the port, and only for http loopback URIs.
    let (Ok(registered_url), Ok(requested_url)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    if registered_url.scheme() != "http" || !is_loopback_host(&registered_url) {
        return false;
    }
    without_port(registered) == without_port(requested)
        && requested_url.scheme() == "http"
        && requested_url.host() == registered_url.host()
        && requested_url.username().is_empty()
        && requested_url.password().is_none()
        && requested_url.fragment().is_none()
}

/// The URI text with the `:port` of its authority removed, leaving every other byte as written.
fn without_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        return None;
    }
    let host = match authority.rfind(':') {
        // A colon inside an IPv6 literal is not a port separator.
        Some(colon) if !authority[colon..].contains(']') => {
            let port = &authority[colon + 1..];
            if !port.bytes().all(|byte| byte.is_ascii_digit()) {
                return None;
            }
            &authority[..colon]
        }
        _ => authority,
    };
    Some(format!("http://{host}{tail}"))
}

/// Appends the response parameters to the redirect URI (with `&` when it already has a query).
pub fn with_parameters(redirect_uri: &str, parameters: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in parameters {
        serializer.append_pair(name, value);
    }
    let query = serializer.finish();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_variants_never_match() {
        let registered = "http://127.0.0.1:5000/callback";
        let cases = [
            ("http://127.0.0.1:5000/callback", true, "identical"),
            ("http://127.0.0.1:61234/callback", true, "loopback: another port"),
            ("http://127.0.0.1/callback", true, "loopback: no port"),
            ("http://127.0.0.1:5000/callback/x", false, "path prefix"),
            ("http://127.0.0.1:5000/callbackx", false, "path suffix"),
            ("http://127.0.0.1:5000/Callback", false, "path case"),
            ("http://127.0.0.1:5000/callback/", false, "trailing slash"),
            ("http://127.0.0.1:5000/call%62ack", false, "percent-encoded path"),
            ("http://127.0.0.1:5000/other", false, "another path"),
            ("http://127.0.0.1.evil.com:5000/callback", false, "host suffix"),
            ("http://evil.com@127.0.0.1:5000/callback", false, "userinfo before the host"),
            ("http://127.0.0.1:5000@evil.com/callback", false, "userinfo that hides another host"),
            ("http://127.0.0.1:5000/callback#x", false, "fragment"),
            ("http://127.0.0.1:5000/callback?x=1", false, "added query"),
            ("https://127.0.0.1:5000/callback", false, "scheme change"),
            ("http://localhost:5000/callback", false, "another spelling of loopback"),
            ("http://[::1]:5000/callback", false, "IPv6 loopback for an IPv4 registration"),
            ("http://127.0.0.1:5000\\@evil.com/callback", false, "backslash trick"),
        ];
        for (requested, expected, what) in cases {
            assert_eq!(matches(registered, requested), expected, "{what}: {requested}");
        }
        let https = "https://app.example.com/cb";
        assert!(!matches(https, "https://app.example.com:8443/cb"), "non-loopback URIs may not change port");
        assert!(!matches(https, "https://app.example.com/cb/../cb"), "dot segments are not normalised");
        assert!(matches("http://[::1]:80/cb", "http://[::1]:9999/cb"), "IPv6 loopback port may change");
        assert!(matches("http://localhost/cb", "http://localhost:9/cb"), "localhost port may change");
    }

    #[test]
    fn only_https_or_loopback_http_without_fragment_or_userinfo_registers() {
        let cases = [
            ("https://app.example.com/cb", true),
            ("http://127.0.0.1:3000/cb", true),
            ("http://localhost/cb", true),
            ("http://[::1]:8080/cb", true),
            ("http://app.example.com/cb", false),
            ("https://app.example.com/cb#frag", false),
            ("https://user:pw@app.example.com/cb", false),
            ("/relative", false),
            ("javascript:alert(1)", false),
            ("com.example.app:/cb", false),
            ("https:.ue.-.....-\0", false),
            ("https:app.example.com/cb", false),
            ("https://App.example.com/cb", false),
            ("https://app.example.com:443/cb", false),
            ("https://app.example.com", false),
            ("http://127.0.0.1:3000/c b", false),
        ];
        for (uri, expected) in cases {
            assert_eq!(check_registrable(uri).is_ok(), expected, "{uri}");
        }
    }

    #[test]
    fn parameters_are_appended_encoded() {
        assert_eq!(
            with_parameters("http://h/cb", &[("code", "a b"), ("state", "s&t")]),
            "http://h/cb?code=a+b&state=s%26t",
            "fresh query"
        );
        assert_eq!(with_parameters("http://h/cb?x=1", &[("code", "c")]), "http://h/cb?x=1&code=c", "existing query");
    }
}
