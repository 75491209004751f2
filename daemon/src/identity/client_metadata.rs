//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client whose
//! `client_id` is an https URL publishes its metadata at that URL. This module checks the URL,
//! fetches the document through the guarded outbound client, validates it, and keeps valid
//! documents for a bounded time. Errors and invalid documents are never cached.
//!
//! Client ids are compared by simple string comparison (draft §3), so `parse_client_id_url` only
//! accepts a string that is already in the canonical form the `url` crate serialises it to. The
//! string the client sent, the URL we fetch and the `client_id` the document must repeat are then
//! the same bytes: `https://example.com:443/c` or `https://EXAMPLE.com/c` cannot name the document
//! of `https://example.com/c` under a second identity. The refusal says which form to use instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use url::{Host, Url};

use super::outbound::{GuardedClient, OutboundError};

/// The largest document the draft recommends; give the resolver a client with this cap.
pub const CLIENT_METADATA_MAX_BYTES: usize = 5 * 1024;
/// How many valid documents the resolver keeps.
pub const CACHE_MAX_ENTRIES: usize = 1_000;
/// How long a document is kept when the server sends no `max-age`.
pub const CACHE_TTL_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// The longest a document is kept, whatever the server says: the bound on how late a change (a
/// removed redirect URI) takes effect.
pub const CACHE_TTL_MAX: Duration = Duration::from_secs(10 * 60);
const CLIENT_ID_URL_MAX_LENGTH: usize = 2_048;
const SHARED_SECRET_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "client_secret_jwt"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientMetadataError {
    #[error("the client_id is not a valid client metadata document URL: {0}")]
    InvalidClientIdUrl(String),
    #[error("client metadata document at {url} could not be fetched: {reason}")]
    Fetch { url: String, reason: OutboundError },
    #[error("client metadata document at {url}: the server answered HTTP {status}; only 200 is accepted")]
    Status { url: String, status: u16 },
    #[error("client metadata document at {url}: the content type is {content_type}; it must be application/json")]
    ContentType { url: String, content_type: String },
    #[error("client metadata document at {url}: {reason}")]
    InvalidDocument { url: String, reason: String },
}

/// The validated metadata of a client identified by a metadata document URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    pub client_id: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    /// As written in the document; compare the `redirect_uri` of a request against these exactly.
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    /// Always `none`: documents naming any other method are refused.
    pub token_endpoint_auth_method: String,
    pub scope: Option<String>,
}

/// True when `client_id` claims to be a metadata document URL. Castellan never issues ids that
/// start with `https://` (draft §7.1), so such an id is never one of ours.
pub fn looks_like_client_id_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// Checks the client identifier URL rules of draft §3: https; a host and no user name or password;
/// a path other than `/` without `.` or `..` segments; no fragment. Stricter than the draft, it
/// refuses any query (the draft says SHOULD NOT) and any string that is not in canonical form (see
/// the module comment). The raw string is checked as well as the parsed URL, because parsing
/// removes dot segments and an empty query.
pub fn parse_client_id_url(client_id: &str) -> Result<Url, ClientMetadataError> {
    let invalid = |reason: &str| ClientMetadataError::InvalidClientIdUrl(reason.to_owned());
    if client_id.len() > CLIENT_ID_URL_MAX_LENGTH {
        return Err(invalid("it is longer than 2048 characters"));
    }
    let Some(rest) = client_id.strip_prefix("https://") else {
        return Err(invalid("it must start with https://"));
    };
    if client_id.contains('#') {
        return Err(invalid("it must not contain a fragment (#)"));
    }
    if client_id.contains('?') {
        return Err(invalid("it must not contain a query (?)"));
    }
    let authority_end = rest.find(['/', '\\']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(invalid("it must not contain a user name or password"));
    }
    if authority.is_empty() {
        return Err(invalid("it must name a host"));
    }
    if path.is_empty() || path == "/" {
        return Err(invalid("it must have a path after the host, such as https://example.com/client.json"));
    }
    if path.split(['/', '\\']).any(is_dot_segment) {
        return Err(invalid("it must not contain . or .. path segments"));
    }
    let url = Url::parse(client_id).map_err(|_| invalid("it is not a valid URL"))?;
    // The raw checks above imply these; checking the parsed form too costs nothing.
    if url.scheme() != "https"
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
        || url.query().is_some()
        || url.path() == "/"
    {
        return Err(invalid("it does not follow the client metadata URL rules"));
    }
    if url.as_str() != client_id {
        return Err(ClientMetadataError::InvalidClientIdUrl(format!(
            "it is not in canonical form; use {} (client ids are compared character for character)",
            url.as_str()
        )));
    }
    Ok(url)
}

fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(lower.as_str(), "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e.")
}

/// Validates a fetched document against the draft and what Castellan supports (public clients
/// only). `fetched_url` is the URL it was fetched from, which `client_id` must equal exactly.
/// Unknown members are ignored, as RFC 7591 asks.
pub fn validate_document(fetched_url: &str, body: &[u8]) -> Result<ClientMetadata, ClientMetadataError> {
    let invalid = |reason: String| ClientMetadataError::InvalidDocument { url: fetched_url.to_owned(), reason };
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid("the document is not valid JSON".into()))?;
    let Value::Object(fields) = value else {
        return Err(invalid("the document is not a JSON object".into()));
    };
    validate_fields(fetched_url, &fields).map_err(invalid)
}

fn validate_fields(fetched_url: &str, fields: &Map<String, Value>) -> Result<ClientMetadata, String> {
    let client_id = optional_string(fields, "client_id")?.ok_or("client_id is required")?;
    if client_id != fetched_url {
        return Err("client_id does not match the URL the document was fetched from".into());
    }
    let client_name = optional_string(fields, "client_name")?.unwrap_or_default();
    if client_name.trim().is_empty() {
        return Err("client_name is required".into());
    }
    let redirect_uris = optional_string_list(fields, "redirect_uris")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err("redirect_uris is required and must list at least one URI".into());
    }
    for redirect_uri in &redirect_uris {
        check_redirect_uri(redirect_uri)?;
    }
    for secret_member in ["client_secret", "client_secret_expires_at"] {
        if fields.contains_key(secret_member) {
            return Err(format!("{secret_member} must not appear in a client metadata document"));
        }
    }
    let token_endpoint_auth_method =
        optional_string(fields, "token_endpoint_auth_method")?.unwrap_or_else(|| "none".to_owned());
    check_token_endpoint_auth_method(&token_endpoint_auth_method)?;
    let grant_types = optional_string_list(fields, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    check_grant_types(&grant_types)?;
    let response_types = optional_string_list(fields, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if response_types.is_empty() {
        return Err("response_types must not be empty".into());
    }
    if let Some(unsupported) = response_types.iter().find(|response_type| *response_type != "code") {
        return Err(format!("response type {unsupported:?} is not supported; only code is"));
    }
    let client_uri = optional_string(fields, "client_uri")?;
    let logo_uri = optional_string(fields, "logo_uri")?;
    // The consent page links to these, so only web URLs (no javascript: or data:) are accepted.
    for (member, value) in [("client_uri", &client_uri), ("logo_uri", &logo_uri)] {
        if let Some(value) = value
            && !Url::parse(value).is_ok_and(|url| matches!(url.scheme(), "https" | "http"))
        {
            return Err(format!("{member} must be an absolute http or https URL"));
        }
    }
    let scope = optional_string(fields, "scope")?;
    Ok(ClientMetadata {
        client_id,
        client_name,
        client_uri,
        logo_uri,
        redirect_uris,
        grant_types,
        response_types,
        token_endpoint_auth_method,
        scope,
    })
}

/// A redirect URI must be absolute, have no fragment, and use https, or http on a loopback host
/// (native apps, RFC 8252 §7.3).
fn check_redirect_uri(redirect_uri: &str) -> Result<(), String> {
    let url = Url::parse(redirect_uri).map_err(|_| format!("redirect URI {redirect_uri:?} is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!("redirect URI {redirect_uri:?} must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("redirect URI {redirect_uri:?} must not contain a user name or password"));
    }
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(address)) => address.is_loopback() && address.octets() == [127, 0, 0, 1],
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "redirect URI {redirect_uri:?} must use https, or http on a loopback host (127.0.0.1, [::1] or localhost)"
        )),
    }
}

fn check_token_endpoint_auth_method(method: &str) -> Result<(), String> {
    if method == "none" {
        Ok(())
    } else if SHARED_SECRET_METHODS.contains(&method) {
        Err(format!(
            "token_endpoint_auth_method {method} uses a shared secret, which a client metadata document must not; use none"
        ))
    } else if method == "private_key_jwt" {
        Err("token_endpoint_auth_method private_key_jwt is not supported; Castellan accepts only none for clients \
             identified by a metadata document"
            .into())
    } else {
        Err(format!("token_endpoint_auth_method {method:?} is not supported; use none"))
    }
}

fn check_grant_types(grant_types: &[String]) -> Result<(), String> {
    if let Some(unsupported) =
        grant_types.iter().find(|grant_type| !matches!(grant_type.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(format!(
            "grant type {unsupported:?} is not supported; only authorization_code and refresh_token are"
        ));
    }
    if !grant_types.iter().any(|grant_type| grant_type == "authorization_code") {
        return Err("grant_types must include authorization_code".into());
    }
    Ok(())
}

/// A string member; absent or `null` is `None`.
fn optional_string(fields: &Map<String, Value>, member: &str) -> Result<Option<String>, String> {
    match fields.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("{member} must be a string")),
    }
}

/// An array-of-strings member; absent or `null` is `None`.
fn optional_string_list(fields: &Map<String, Value>, member: &str) -> Result<Option<Vec<String>>, String> {
    let not_a_list = || format!("{member} must be an array of strings");
    match fields.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(not_a_list))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(not_a_list()),
    }
}

/// How long a valid document is kept: the server's `max-age` bounded by `CACHE_TTL_MAX`, or
/// `CACHE_TTL_DEFAULT` when it sent none. Zero means not at all.
pub fn cache_ttl(max_age: Option<Duration>) -> Duration {
    max_age.map_or(CACHE_TTL_DEFAULT, |max_age| max_age.min(CACHE_TTL_MAX))
}

struct CachedDocument {
    metadata: ClientMetadata,
    expires_at: Instant,
}

/// Resolves metadata document client ids to validated metadata, with a bounded cache of valid
/// documents. Give it a client whose body cap is `CLIENT_METADATA_MAX_BYTES`.
pub struct ClientMetadataResolver {
    client: GuardedClient,
    cache: Mutex<HashMap<String, CachedDocument>>,
}

impl ClientMetadataResolver {
    pub fn new(client: GuardedClient) -> Self {
        ClientMetadataResolver { client, cache: Mutex::new(HashMap::new()) }
    }

    /// The metadata of `client_id`, from the cache or fetched now. Any failure means the
    /// authorization request must end on an error page, never a redirect (the client is unverified).
    pub async fn resolve(&self, client_id: &str, now: Instant) -> Result<ClientMetadata, ClientMetadataError> {
        let url = parse_client_id_url(client_id)?;
        self.resolve_url(&url, now).await
    }

    /// `resolve` after the URL rules; split out so tests can use plain-http loopback servers.
    async fn resolve_url(&self, url: &Url, now: Instant) -> Result<ClientMetadata, ClientMetadataError> {
        if let Some(metadata) = self.cached(url.as_str(), now) {
            return Ok(metadata);
        }
        let (metadata, max_age) = self.fetch(url).await?;
        let ttl = cache_ttl(max_age);
        if let Some(expires_at) = now.checked_add(ttl)
            && !ttl.is_zero()
        {
            self.remember(url.as_str(), metadata.clone(), now, expires_at);
        }
        Ok(metadata)
    }

    async fn fetch(&self, url: &Url) -> Result<(ClientMetadata, Option<Duration>), ClientMetadataError> {
        let fetched = self.client.get(url, "application/json").await.map_err(|reason| match reason {
            OutboundError::Status(status) => ClientMetadataError::Status { url: url.to_string(), status },
            reason => ClientMetadataError::Fetch { url: url.to_string(), reason },
        })?;
        if fetched.status != 200 {
            return Err(ClientMetadataError::Status { url: url.to_string(), status: fetched.status });
        }
        let content_type = fetched.content_type.as_deref().unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            let shown =
                if content_type.is_empty() { "missing".to_owned() } else { content_type.chars().take(80).collect() };
            return Err(ClientMetadataError::ContentType { url: url.to_string(), content_type: shown });
        }
        let metadata = validate_document(url.as_str(), &fetched.body)?;
        Ok((metadata, fetched.cache_max_age))
    }

    fn cached(&self, key: &str, now: Instant) -> Option<ClientMetadata> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(key).filter(|entry| now < entry.expires_at).map(|entry| entry.metadata.clone())
    }

    fn remember(&self, key: &str, metadata: ClientMetadata, now: Instant, expires_at: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_MAX_ENTRIES && !cache.contains_key(key) {
            cache.retain(|_, entry| now < entry.expires_at);
            if cache.len() >= CACHE_MAX_ENTRIES
                && let Some(soonest) =
                    cache.iter().min_by_key(|(_, entry)| entry.expires_at).map(|(soonest, _)| soonest.clone())
            {
                cache.remove(&soonest);
            }
        }
        cache.insert(key.to_owned(), CachedDocument { metadata, expires_at });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::outbound::OutboundPolicy;
    use super::super::outbound::test_server::TestServer;
    use super::*;

    type Headers<'a> = &'a [(&'a str, &'a str)];
    use serde_json::json;

    const URL: &str = "https://app.example.com/oauth/client.json";

    #[test]
    fn client_id_urls_follow_the_draft_rules() {
        let good = [
            "https://example.com/client.json",
            "https://app.example.com/oauth/client-metadata",
            "https://example.com:8443/c",
            "https://example.com/a/b/",
            "https://example.com/.well-known/client",
            "https://example.com/a.b/..c",
            "https://8.8.8.8/c",
        ];
        for client_id in good {
            let parsed = parse_client_id_url(client_id);
            assert_eq!(parsed.as_ref().map(Url::as_str), Ok(client_id), "{client_id} is a valid client id URL");
        }
        let bad = [
            ("http://example.com/c", "start with https://"),
            ("ftp://example.com/c", "start with https://"),
            ("HTTPS://example.com/c", "start with https://"),
            ("", "start with https://"),
            ("https://user@example.com/c", "user name or password"),
            ("https://user:secret@example.com/c", "user name or password"),
            ("https://example.com", "must have a path"),
            ("https://example.com/", "must have a path"),
            ("https:///c", "must name a host"),
            ("https://example.com/a/../b", ". or .. path segments"),
            ("https://example.com/./c", ". or .. path segments"),
            ("https://example.com/a/.", ". or .. path segments"),
            ("https://example.com/a/%2E%2e/b", ". or .. path segments"),
            ("https://example.com/a\\..\\b", ". or .. path segments"),
            ("https://example.com/c#section", "fragment"),
            ("https://example.com/c#", "fragment"),
            ("https://example.com/c?x=1", "query"),
            ("https://example.com/c?", "query"),
            ("https://EXAMPLE.com/c", "use https://example.com/c"),
            ("https://example.com:443/c", "use https://example.com/c"),
            ("https://example.com/a b", "canonical form"),
            ("https://exa mple.com/c", "not a valid URL"),
        ];
        for (client_id, expected) in bad {
            let error = parse_client_id_url(client_id).expect_err(client_id);
            assert!(error.to_string().contains(expected), "{client_id}: expected {expected:?} in {error}");
        }
        let long = format!("https://example.com/{}", "a".repeat(CLIENT_ID_URL_MAX_LENGTH));
        assert!(parse_client_id_url(&long).is_err(), "an overlong client id is refused");
    }

    #[test]
    fn only_https_ids_look_like_metadata_urls() {
        assert!(looks_like_client_id_url(URL), "an https URL");
        assert!(!looks_like_client_id_url("http://example.com/c"), "http is not");
        assert!(!looks_like_client_id_url("castellan-client-123"), "an issued id is not");
    }

    fn document(overrides: &[(&str, Value)], removals: &[&str]) -> Vec<u8> {
        let mut fields = json!({
            "client_id": URL,
            "client_name": "Example App",
            "redirect_uris": ["https://app.example.com/callback"],
        });
        let object = fields.as_object_mut().unwrap();
        for (member, value) in overrides {
            object.insert((*member).to_owned(), value.clone());
        }
        for member in removals {
            object.remove(*member);
        }
        serde_json::to_vec(&fields).unwrap()
    }

    #[test]
    fn good_documents_are_accepted_with_defaults() {
        let minimal = validate_document(URL, &document(&[], &[])).expect("the minimal document is valid");
        assert_eq!(
            minimal,
            ClientMetadata {
                client_id: URL.into(),
                client_name: "Example App".into(),
                client_uri: None,
                logo_uri: None,
                redirect_uris: vec!["https://app.example.com/callback".into()],
                grant_types: vec!["authorization_code".into()],
                response_types: vec!["code".into()],
                token_endpoint_auth_method: "none".into(),
                scope: None,
            },
            "defaults are filled in"
        );
        let full = document(
            &[
                ("client_uri", "https://app.example.com".into()),
                ("logo_uri", "https://app.example.com/logo.png".into()),
                ("grant_types", json!(["authorization_code", "refresh_token"])),
                ("response_types", json!(["code"])),
                ("token_endpoint_auth_method", "none".into()),
                ("scope", "mcp:tools offline_access".into()),
                ("software_id", "unknown members are ignored".into()),
                ("jwks_uri", "https://app.example.com/jwks".into()),
            ],
            &[],
        );
        let full = validate_document(URL, &full).expect("the full document is valid");
        assert_eq!(full.grant_types, vec!["authorization_code", "refresh_token"], "grant types are kept");
        assert_eq!(full.scope.as_deref(), Some("mcp:tools offline_access"), "scope is kept");
        assert_eq!(full.logo_uri.as_deref(), Some("https://app.example.com/logo.png"), "logo_uri is kept");

        let loopback_uris = ["http://127.0.0.1:33333/callback", "http://[::1]/cb", "http://localhost:8080/cb"];
        for uri in loopback_uris {
            let body = document(&[("redirect_uris", json!([uri]))], &[]);
            assert!(validate_document(URL, &body).is_ok(), "{uri} is a valid loopback redirect URI");
        }
        let with_nulls = document(&[("scope", Value::Null), ("logo_uri", Value::Null)], &[]);
        assert!(validate_document(URL, &with_nulls).is_ok(), "null optional members count as absent");
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("not JSON", b"<html>".to_vec(), "not valid JSON"),
            ("an array", b"[]".to_vec(), "not a JSON object"),
            ("client_id missing", document(&[], &["client_id"]), "client_id is required"),
            ("client_id differs", document(&[("client_id", "https://evil.example/c".into())], &[]), "does not match"),
            (
                "client_id with port",
                document(&[("client_id", json!("https://app.example.com:443/oauth/client.json"))], &[]),
                "does not match",
            ),
            ("client_id a number", document(&[("client_id", json!(7))], &[]), "client_id must be a string"),
            ("client_name missing", document(&[], &["client_name"]), "client_name is required"),
            ("client_name blank", document(&[("client_name", json!("  "))], &[]), "client_name is required"),
            ("client_name an object", document(&[("client_name", json!({}))], &[]), "client_name must be a string"),
            ("redirect_uris missing", document(&[], &["redirect_uris"]), "redirect_uris is required"),
            ("redirect_uris empty", document(&[("redirect_uris", json!([]))], &[]), "redirect_uris is required"),
            ("redirect_uris a string", document(&[("redirect_uris", json!("https://a/cb"))], &[]), "array of strings"),
            ("redirect_uris with a number", document(&[("redirect_uris", json!([1]))], &[]), "array of strings"),
            ("relative redirect", document(&[("redirect_uris", json!(["/callback"]))], &[]), "not an absolute URL"),
            (
                "plain http redirect",
                document(&[("redirect_uris", json!(["http://app.example.com/cb"]))], &[]),
                "must use https",
            ),
            (
                "http on 127.0.0.2",
                document(&[("redirect_uris", json!(["http://127.0.0.2/cb"]))], &[]),
                "must use https",
            ),
            (
                "redirect with userinfo",
                document(&[("redirect_uris", json!(["https://u:p@a.example/cb"]))], &[]),
                "user name or password",
            ),
            (
                "redirect with fragment",
                document(&[("redirect_uris", json!(["https://a.example/cb#x"]))], &[]),
                "fragment",
            ),
            (
                "javascript redirect",
                document(&[("redirect_uris", json!(["javascript:alert(1)"]))], &[]),
                "must use https",
            ),
            (
                "custom scheme redirect",
                document(&[("redirect_uris", json!(["com.example.app:/cb"]))], &[]),
                "must use https",
            ),
            (
                "one bad among good",
                document(&[("redirect_uris", json!(["https://a.example/cb", "http://a.example/cb"]))], &[]),
                "must use https",
            ),
            (
                "client_secret_basic",
                document(&[("token_endpoint_auth_method", json!("client_secret_basic"))], &[]),
                "shared secret",
            ),
            (
                "client_secret_post",
                document(&[("token_endpoint_auth_method", json!("client_secret_post"))], &[]),
                "shared secret",
            ),
            (
                "client_secret_jwt",
                document(&[("token_endpoint_auth_method", json!("client_secret_jwt"))], &[]),
                "shared secret",
            ),
            (
                "private_key_jwt",
                document(&[("token_endpoint_auth_method", json!("private_key_jwt"))], &[]),
                "private_key_jwt is not supported",
            ),
            (
                "unknown auth method",
                document(&[("token_endpoint_auth_method", json!("tls_client_auth"))], &[]),
                "is not supported; use none",
            ),
            ("client_secret", document(&[("client_secret", json!("s3cret"))], &[]), "client_secret must not appear"),
            (
                "client_secret_expires_at",
                document(&[("client_secret_expires_at", json!(0))], &[]),
                "client_secret_expires_at must not appear",
            ),
            (
                "implicit grant",
                document(&[("grant_types", json!(["implicit"]))], &[]),
                "grant type \"implicit\" is not supported",
            ),
            (
                "client_credentials",
                document(&[("grant_types", json!(["authorization_code", "client_credentials"]))], &[]),
                "not supported",
            ),
            (
                "refresh_token only",
                document(&[("grant_types", json!(["refresh_token"]))], &[]),
                "must include authorization_code",
            ),
            ("grant_types empty", document(&[("grant_types", json!([]))], &[]), "must include authorization_code"),
            (
                "token response type",
                document(&[("response_types", json!(["token"]))], &[]),
                "response type \"token\" is not supported",
            ),
            ("response_types empty", document(&[("response_types", json!([]))], &[]), "must not be empty"),
            (
                "javascript client_uri",
                document(&[("client_uri", json!("javascript:alert(1)"))], &[]),
                "client_uri must be an absolute http or https URL",
            ),
            ("relative logo_uri", document(&[("logo_uri", json!("/logo.png"))], &[]), "logo_uri must be an absolute"),
            ("logo_uri a number", document(&[("logo_uri", json!(3))], &[]), "logo_uri must be a string"),
            ("scope an array", document(&[("scope", json!(["a"]))], &[]), "scope must be a string"),
        ];
        for (why, body, expected) in cases {
            let error = validate_document(URL, &body).expect_err(why);
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("client metadata document at {URL}: ")),
                "{why}: names the URL: {message}"
            );
            assert!(message.contains(expected), "{why}: expected {expected:?} in {message}");
        }
    }

    #[test]
    fn cache_ttl_is_bounded() {
        let cases = [
            (None, CACHE_TTL_DEFAULT, "no max-age"),
            (Some(Duration::ZERO), Duration::ZERO, "max-age=0"),
            (Some(Duration::from_secs(60)), Duration::from_secs(60), "short max-age"),
            (Some(Duration::from_secs(86_400)), CACHE_TTL_MAX, "long max-age"),
        ];
        for (max_age, expected, why) in cases {
            assert_eq!(cache_ttl(max_age), expected, "{why}");
        }
    }

    fn resolver(allow_private_addresses: bool) -> ClientMetadataResolver {
        let policy = OutboundPolicy {
            allow_private_addresses,
            require_https: false,
            extra_root_certificates_pem: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_body_bytes: CLIENT_METADATA_MAX_BYTES,
        };
        ClientMetadataResolver::new(GuardedClient::new(policy).unwrap())
    }

    async fn serve_document(headers: &[(&str, &str)], make_body: impl FnOnce(&str) -> Vec<u8>) -> (TestServer, Url) {
        // The document must name its own URL, which includes the port the server got.
        let server = TestServer::start_with(
            |address| {
                let body = make_body(&format!("http://{address}/client.json"));
                super::super::outbound::test_server::response("200 OK", headers, &body, true)
            },
            Duration::ZERO,
        )
        .await;
        let url = server.url("/client.json");
        (server, url)
    }

    fn good_body(url: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "client_id": url, "client_name": "Loopback App", "redirect_uris": ["http://127.0.0.1:9/cb"],
        }))
        .unwrap()
    }

    const JSON: (&str, &str) = ("Content-Type", "application/json; charset=utf-8");

    #[tokio::test]
    async fn valid_documents_are_cached_until_their_ttl() {
        let (server, url) = serve_document(&[JSON], good_body).await;
        let resolver = resolver(true);
        let now = Instant::now();
        let first = resolver.resolve_url(&url, now).await.expect("the document resolves");
        assert_eq!(first.client_name, "Loopback App", "the document's metadata");
        let second = resolver.resolve_url(&url, now + Duration::from_secs(60)).await.expect("cached");
        assert_eq!(second, first, "the cached metadata is the same");
        assert_eq!(server.connections(), 1, "the second resolve did not hit the server");
        let later = now + CACHE_TTL_DEFAULT + Duration::from_secs(1);
        resolver.resolve_url(&url, later).await.expect("fetched again");
        assert_eq!(server.connections(), 2, "after the TTL the document is fetched again");
    }

    #[tokio::test]
    async fn no_store_documents_are_not_cached() {
        let (server, url) = serve_document(&[JSON, ("Cache-Control", "no-store")], good_body).await;
        let resolver = resolver(true);
        let now = Instant::now();
        resolver.resolve_url(&url, now).await.expect("the document resolves");
        resolver.resolve_url(&url, now).await.expect("the document resolves again");
        assert_eq!(server.connections(), 2, "no-store: every resolve fetches");
    }

    #[tokio::test]
    async fn invalid_documents_are_refused_and_not_cached() {
        let (server, url) = serve_document(&[JSON], |_| br#"{"client_id":"https://other.example/c"}"#.to_vec()).await;
        let resolver = resolver(true);
        let now = Instant::now();
        for attempt in 1..=2 {
            let error = resolver.resolve_url(&url, now).await.expect_err("the document is invalid");
            assert!(error.to_string().contains("does not match"), "attempt {attempt}: {error}");
        }
        assert_eq!(server.connections(), 2, "the invalid document was not cached");
    }

    #[tokio::test]
    async fn wrong_statuses_and_content_types_are_refused() {
        let resolver = resolver(true);
        let now = Instant::now();
        let cases: &[(&str, Headers, &str)] = &[
            ("404 Not Found", &[JSON], "answered HTTP 404; only 200 is accepted"),
            ("204 No Content", &[JSON], "answered HTTP 204; only 200 is accepted"),
            ("301 Moved Permanently", &[JSON, ("Location", "http://127.0.0.1:9/")], "redirect"),
            ("200 OK", &[("Content-Type", "text/html")], "the content type is text/html"),
            ("200 OK", &[], "the content type is missing"),
        ];
        for (status_line, headers, expected) in cases {
            let server = TestServer::answering(status_line, headers, b"{}").await;
            let error = resolver.resolve_url(&server.url("/client.json"), now).await.expect_err(status_line);
            assert!(
                error.to_string().contains(expected),
                "{status_line} {headers:?}: expected {expected:?} in {error}"
            );
        }
        let oversized = vec![b' '; CLIENT_METADATA_MAX_BYTES + 1];
        let server = TestServer::answering("200 OK", &[JSON], &oversized).await;
        let error = resolver.resolve_url(&server.url("/client.json"), now).await.expect_err("too large");
        assert_eq!(
            error,
            ClientMetadataError::Fetch { url: server.url("/client.json").to_string(), reason: OutboundError::TooLarge },
            "a document over 5 KiB is refused"
        );
    }

    #[tokio::test]
    async fn resolve_refuses_bad_urls_and_forbidden_hosts_without_connecting() {
        let server = TestServer::answering("200 OK", &[JSON], b"{}").await;
        let resolver = resolver(false);
        let now = Instant::now();
        let plain = server.url("/client.json");
        let error = resolver.resolve(plain.as_str(), now).await.expect_err("http ids are refused");
        assert!(matches!(error, ClientMetadataError::InvalidClientIdUrl(_)), "http is a URL-rule error: {error}");
        let https = format!("https://{}/client.json", server.address);
        let error = resolver.resolve(&https, now).await.expect_err("loopback is refused");
        assert_eq!(
            error,
            ClientMetadataError::Fetch {
                url: https.clone(),
                reason: OutboundError::ForbiddenAddress("127.0.0.1".into())
            },
            "a loopback id is refused by the SSRF guard"
        );
        assert_eq!(server.connections(), 0, "the server saw no connection");
    }
}
