//! OAuth helpers for the authorization-server tests: PKCE pairs and authorization URLs, a passkey
//! browser that turns authorization requests into codes, raw calls to the token, introspection and
//! revocation endpoints (status, headers and body visible, redirects never followed), and
//! hand-assembled JWTs for the forgery cases.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::mcp::Reply;
use crate::{TestApp, free_port, mcp};

/// One HTTP answer, whatever its status.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The RFC 6749 `error` member of a JSON body, or "" when there is none.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_string()
    }
}

impl std::fmt::Display for HttpReply {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "HTTP {} {:?} {}", self.status, self.headers, self.body)
    }
}

/// An agent that never follows redirects: a `302` is an answer to look at, not a hop to take.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(30)).build()
}

fn reply_from(response: ureq::Response) -> HttpReply {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| response.header(&name).map(|value| (name.clone(), value.to_string())))
        .collect();
    let body = response.into_string().unwrap_or_default();
    HttpReply { status, headers, body }
}

fn finish(url: &str, outcome: Result<ureq::Response, ureq::Error>) -> HttpReply {
    match outcome {
        Ok(response) | Err(ureq::Error::Status(_, response)) => reply_from(response),
        Err(error) => panic!("transport error on {url}: {error}"),
    }
}

/// `GET url` with no redirect following.
pub fn get(url: &str) -> HttpReply {
    finish(url, agent().get(url).call())
}

/// `POST url` with these headers and this raw body.
pub fn post(url: &str, headers: &[(&str, &str)], body: &str) -> HttpReply {
    let mut request = agent().post(url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    finish(url, request.send_string(body))
}

/// `POST url` with this JSON body from the loopback address `source` (any of 127.0.0.0/8 works on
/// Linux without configuration), one HTTP/1.1 request on its own connection. For limits keyed by the
/// client's address.
pub fn post_json_from(source: std::net::Ipv4Addr, url: &str, body: &str) -> HttpReply {
    use std::io::{Read, Write};
    let parsed = url::Url::parse(url).unwrap_or_else(|error| panic!("{url}: {error}"));
    let target: std::net::SocketAddr = parsed
        .socket_addrs(|| None)
        .ok()
        .and_then(|addresses| addresses.into_iter().next())
        .unwrap_or_else(|| panic!("{url} names no address"));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|error| panic!("bind {source}: {error}"));
    socket
        .connect_timeout(&target.into(), Duration::from_secs(10))
        .unwrap_or_else(|error| panic!("connect {url} from {source}: {error}"));
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        parsed.path(),
        target,
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {url}: {text}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    HttpReply { status, headers, body: body.to_string() }
}

/// `application/x-www-form-urlencoded` text of `pairs`, in order (repeats kept).
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

pub const FORM: &str = "application/x-www-form-urlencoded";

/// How a client presents itself at the token, introspection and revocation endpoints.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1: id and secret form-encoded, then base64).
    Basic { client_id: String, secret: String },
    /// A public client: `client_id` in the body, no secret.
    Public { client_id: String },
}

impl ClientAuth {
    /// A confidential client as returned by [`TestApp::oauth_client`].
    pub fn basic(registered: &(String, Option<String>)) -> ClientAuth {
        let secret = registered.1.clone().expect("a confidential client has a secret");
        ClientAuth::Basic { client_id: registered.0.clone(), secret }
    }

    pub fn public(client_id: &str) -> ClientAuth {
        ClientAuth::Public { client_id: client_id.to_string() }
    }

    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Basic { client_id, .. } | ClientAuth::Public { client_id } => client_id,
        }
    }
}

/// The `Authorization: Basic` value for an id and secret.
pub fn basic_authorization(client_id: &str, secret: &str) -> String {
    let encode = |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret))))
}

/// A form POST to `path` of `app` authenticated as `auth` (or not at all).
pub fn form_post(app: &TestApp, path: &str, auth: Option<&ClientAuth>, pairs: &[(&str, &str)]) -> HttpReply {
    let mut pairs = pairs.to_vec();
    let authorization = match auth {
        Some(ClientAuth::Basic { client_id, secret }) => Some(basic_authorization(client_id, secret)),
        Some(ClientAuth::Public { client_id }) => {
            pairs.push(("client_id", client_id));
            None
        }
        None => None,
    };
    let mut headers = vec![("content-type", FORM)];
    if let Some(authorization) = authorization.as_deref() {
        headers.push(("authorization", authorization));
    }
    post(&format!("{}{path}", app.base_url), &headers, &form_body(&pairs))
}

/// `grant_type=authorization_code` for `code`.
pub fn redeem_code(
    app: &TestApp,
    auth: &ClientAuth,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> HttpReply {
    let mut pairs = vec![("grant_type", "authorization_code"), ("code", code)];
    if let Some(redirect_uri) = redirect_uri {
        pairs.push(("redirect_uri", redirect_uri));
    }
    if let Some(verifier) = verifier {
        pairs.push(("code_verifier", verifier));
    }
    form_post(app, "/oauth/token", Some(auth), &pairs)
}

/// `grant_type=refresh_token`.
pub fn refresh(app: &TestApp, auth: &ClientAuth, refresh_token: &str) -> HttpReply {
    form_post(app, "/oauth/token", Some(auth), &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
}

/// `grant_type=client_credentials`, for `resource` when given.
pub fn client_credentials(app: &TestApp, auth: &ClientAuth, resource: Option<&str>) -> HttpReply {
    let mut pairs = vec![("grant_type", "client_credentials")];
    if let Some(resource) = resource {
        pairs.push(("resource", resource));
    }
    form_post(app, "/oauth/token", Some(auth), &pairs)
}

/// The access token of a successful token response; panics with the response otherwise.
pub fn access_token_of(reply: &HttpReply) -> String {
    assert_eq!(reply.status, 200, "the token request succeeds: {reply}");
    reply.json()["access_token"].as_str().expect("access_token").to_string()
}

/// The refresh token of a successful token response.
pub fn refresh_token_of(reply: &HttpReply) -> String {
    assert_eq!(reply.status, 200, "the token request succeeds: {reply}");
    reply.json()["refresh_token"].as_str().expect("refresh_token").to_string()
}

/// MCP `initialize` on `path` (`/mcp` or `/mcp/{server}`) with `token` as the bearer.
pub fn mcp_initialize(app: &TestApp, path: &str, token: &str) -> mcp::Reply {
    let authorization = mcp::bearer(token);
    mcp::post_raw(
        &format!("{}{path}", app.base_url),
        &mcp::standard_headers(&authorization, None),
        &mcp::initialize_body("2025-06-18"),
    )
}

// ---------------------------------------------------------------------------------------------
// Clients, tokens and what the answers must look like

/// A loopback redirect URI on a port nobody serves: the browser's last navigation names it.
pub fn loopback_redirect_uri() -> String {
    format!("http://127.0.0.1:{}/callback", free_port())
}

/// A confidential client for the authorization code flow with these redirect URIs.
pub fn code_client(app: &TestApp, name: &str, redirect_uris: &[&str]) -> ClientAuth {
    let mut args = vec!["--tier", "user", "--grant", "authorization_code"];
    for uri in redirect_uris {
        args.extend(["--redirect-uri", uri]);
    }
    ClientAuth::basic(&app.oauth_client(name, &args))
}

/// A confidential service client (client credentials).
pub fn service_client(app: &TestApp, name: &str) -> ClientAuth {
    ClientAuth::basic(&app.oauth_client(name, &["--tier", "service"]))
}

/// A client-credentials access token for `resource` (default: `/mcp`).
pub fn service_token(app: &TestApp, client: &ClientAuth, resource: Option<&str>) -> String {
    access_token_of(&client_credentials(app, client, resource))
}

/// Exchanges a fresh code with the right client, redirect URI and verifier: (access, refresh).
pub fn tokens_for(app: &TestApp, client: &ClientAuth, request: &AuthorizationRequest, code: &str) -> (String, String) {
    let reply = redeem_code(app, client, code, Some(&request.redirect_uri), Some(&request.pkce.verifier));
    (access_token_of(&reply), refresh_token_of(&reply))
}

/// The MCP endpoint accepted the token.
pub fn assert_accepted(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 200, "{what}: accepted on the MCP endpoint: {} {:?}", reply.raw, reply.www_authenticate);
}

/// The MCP endpoint refused the token with 401 `invalid_token`, for the reason `reason` names (a
/// phrase of the error description, so the test knows which check fired).
pub fn assert_invalid_token(reply: &Reply, what: &str, reason: &str) {
    assert_eq!(reply.status, 401, "{what}: 401 for a bad token: {}", reply.raw);
    let challenge = reply.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{what}: WWW-Authenticate: Bearer error=\"invalid_token\": {challenge:?}"
    );
    assert!(challenge.contains(reason), "{what}: refused because {reason:?}: {challenge:?}");
}

/// An RFC 6749 §5.2 error from the token endpoint.
pub fn assert_token_error(reply: &HttpReply, status: u16, error: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: status: {reply}");
    assert_eq!(reply.error(), error, "{what}: error code: {reply}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}: errors are not cached: {reply}");
}

/// Castellan's own error page: 400, HTML, no `Location` (nothing redirected anywhere).
pub fn assert_error_page(reply: &HttpReply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: status: {reply}");
    assert_eq!(reply.header("location"), None, "{what}: no redirect: {reply}");
    assert!(
        reply.header("content-type").unwrap_or_default().starts_with("text/html")
            && reply.body.contains("cannot continue"),
        "{what}: Castellan's error page: {reply}"
    );
}

/// A PKCE pair (RFC 7636, S256).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = s256(&verifier);
        Pkce { verifier, challenge }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// `BASE64URL-NOPAD(SHA-256(verifier))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A well-formed authorization request of a client, with its own PKCE pair and `state`.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub pkce: Pkce,
    pub state: String,
    pub scope: String,
}

impl AuthorizationRequest {
    pub fn new(client_id: &str, redirect_uri: &str) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            pkce: Pkce::new(),
            state: crate::random_suffix(),
            scope: "mcp:tools".to_string(),
        }
    }

    /// The query parameters, in the order a client sends them.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".to_string()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_challenge", self.pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
            ("state", self.state.clone()),
            ("scope", self.scope.clone()),
        ]
    }

    /// The request as a URL on `origin` (the public URL for a browser, the base URL otherwise).
    pub fn url(&self, origin: &str) -> String {
        let parameters = self.parameters();
        let pairs: Vec<(&str, &str)> = parameters.iter().map(|(name, value)| (*name, value.as_str())).collect();
        authorization_url(origin, &pairs)
    }
}

/// `{origin}/oauth/authorize?` + `pairs` (in order, repeats kept): for requests spoiled on purpose.
pub fn authorization_url(origin: &str, pairs: &[(&str, &str)]) -> String {
    format!("{origin}/oauth/authorize?{}", form_body(pairs))
}

/// One query parameter of a URL, decoded.
pub fn query_parameter(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?').map(|(_, query)| query.split('#').next().unwrap_or_default())?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// Where the browser ended for one authorization request: the redirect URI with its parameters.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: String,
    pub code: String,
    pub state: Option<String>,
    pub iss: Option<String>,
}

/// Signs in as the bootstrap admin with a passkey in headless Chromium (one browser for all
/// requests), allows each authorization request, and returns the codes in request order. Panics
/// with the page text when a request ends on an error page instead of its redirect URI.
pub fn authorize_in_browser(app: &TestApp, requests: &[&AuthorizationRequest]) -> Vec<Callback> {
    assert!(!app.admin_enrolment_link.is_empty(), "the daemon printed an enrolment link; log:\n{}", app.log());
    let steps: Vec<Value> = requests
        .iter()
        .map(|request| {
            serde_json::json!({
                "authorize": request.url(&app.public_url),
                "callback": request.redirect_uri,
                "decision": "allow",
                "fresh_session": false,
            })
        })
        .collect();
    let job = serde_json::json!({"enrol": app.admin_enrolment_link, "steps": steps});
    let answer = run_passkey_browser(&job);
    let results = answer["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), requests.len(), "one result per authorization request: {answer}");
    results
        .iter()
        .zip(requests)
        .map(|(result, request)| {
            let url = result["url"].as_str().unwrap_or_default().to_string();
            assert!(result["error_page"].is_null(), "authorization ended on an error page: {result}");
            assert!(url.starts_with(&request.redirect_uri), "the browser reached the redirect URI: {url}");
            let code = query_parameter(&url, "code").unwrap_or_else(|| panic!("no code in {url}"));
            Callback { code, state: query_parameter(&url, "state"), iss: query_parameter(&url, "iss"), url }
        })
        .collect()
}

/// Runs `integration-tests/clients/passkey_browser.py` with `job` on stdin; returns what it prints.
pub fn run_passkey_browser(job: &Value) -> Value {
    crate::run_python_job("passkey_browser.py", job)
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_else(|_| panic!("not base64url: {text}"))
}

/// The decoded header and claims of a compact JWS (the signature is not checked).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut segments = token.split('.');
    let mut next_json = || {
        let segment = segments.next().unwrap_or_else(|| panic!("not a JWT: {token}"));
        serde_json::from_slice::<Value>(&b64url_decode(segment)).expect("a JSON segment")
    };
    let header = next_json();
    let claims = next_json();
    (header, claims)
}

/// `base64url(header).base64url(claims)`: the bytes a JWS signature covers.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
}

/// A compact JWS from its parts and a signature over [`signing_input`].
pub fn assemble_jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = signing_input(header, claims);
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature))
}

/// HMAC-SHA256 of `message` under `key` (the JWS `HS256` signature).
pub fn hs256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The Ed25519 signature of `message` by the key with this 32-byte seed (the JWS `EdDSA` signature).
pub fn eddsa(seed: &[u8; 32], message: &[u8]) -> Vec<u8> {
    use ed25519_dalek::Signer;
    ed25519_dalek::SigningKey::from_bytes(seed).sign(message).to_bytes().to_vec()
}

/// The published JWK Set.
pub fn jwks(app: &TestApp) -> Value {
    let reply = get(&format!("{}/.well-known/jwks.json", app.base_url));
    assert_eq!(reply.status, 200, "the JWKS is served: {reply}");
    reply.json()
}
