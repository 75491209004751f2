//! The attack checklist of the authorization server (issue 3), one test each, against the real
//! binary: redirect URI variants and the errors that must or must not redirect, code reuse and
//! binding, PKCE, forged and misdirected access tokens, refresh-token replay, introspection and
//! revocation across clients, client metadata document URLs on private addresses, registration
//! flooding, and malformed token requests. Every case checks the answer and the state change that
//! must (or must not) follow. What each case must do is docs/identity-notes.md section 4.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use castellan::identity::master_key::MasterKey;
use integration_tests::oauth::{
    AuthorizationRequest, ClientAuth, FORM, HttpReply, Pkce, access_token_of, assemble_jwt, assert_accepted,
    assert_error_page, assert_invalid_token, assert_token_error, authorization_url, authorize_in_browser, b64url,
    b64url_decode, basic_authorization, code_client, eddsa, form_body, form_post, get, hs256, jwks, jwt_parts,
    loopback_redirect_uri, mcp_initialize, post, post_json_from, query_parameter, redeem_code, refresh,
    refresh_token_of, service_client, service_token, signing_input, tokens_for,
};
use integration_tests::{
    AppOptions, DEFAULT_TEST_PROFILE, Database, TEST_MASTER_KEY, TestApp, free_port, spawn_app, spawn_app_with,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Shared pieces

fn seconds_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

/// The token signing key as the operator holds it: the row in the database, unsealed with the
/// master key (the daemon's sealing purpose is `signing-key:{kid}`). With it a test mints tokens
/// that differ from genuine ones in exactly one claim. No test-only hook in the server is involved.
struct OperatorKey {
    kid: String,
    seed: [u8; 32],
}

impl OperatorKey {
    fn read(app: &TestApp) -> OperatorKey {
        let path = app.database.url.trim_start_matches("sqlite://");
        let script = "import sqlite3, sys, json\n\
            rows = sqlite3.connect(sys.argv[1]).execute('SELECT kid, sealed_private_key FROM signing_keys \
            WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1').fetchall()\n\
            print(json.dumps(rows[0]))";
        let output = std::process::Command::new("python3").args(["-c", script, path]).output().expect("python3 runs");
        assert!(output.status.success(), "reading signing_keys: {}", String::from_utf8_lossy(&output.stderr));
        let row: Vec<String> = serde_json::from_slice(&output.stdout).expect("kid and sealed key");
        let master = MasterKey::parse(TEST_MASTER_KEY).expect("the test master key parses");
        let seed = master.open(&format!("signing-key:{}", row[0]), &row[1]).expect("the key opens with the master key");
        OperatorKey { kid: row[0].clone(), seed: seed.try_into().expect("a 32-byte Ed25519 seed") }
    }

    /// A token with this header and these claims, signed with the real key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        assemble_jwt(header, claims, |input| eddsa(&self.seed, input))
    }

    /// An access-token header exactly like the daemon's.
    fn header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid})
    }
}

/// The claims of a genuine token with a fresh `jti` and the given claims replaced.
fn claims_like(genuine: &str, changes: Value) -> Value {
    let (_, mut claims) = jwt_parts(genuine);
    claims["jti"] = json!(format!("at_minted_{}", integration_tests::random_suffix()));
    for (name, value) in changes.as_object().expect("changes are an object") {
        claims[name] = value.clone();
    }
    claims
}

/// A fresh attacker-held Ed25519 key seed.
fn attacker_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    seed
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint

/// A base authorization request with one parameter replaced (or removed with `None`) or added.
fn spoiled(request: &AuthorizationRequest, name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        request.parameters().into_iter().map(|(key, value)| (key.to_string(), value)).collect();
    let found = pairs.iter().position(|(key, _)| key == name);
    match (found, value) {
        (Some(index), Some(value)) => pairs[index].1 = value.to_string(),
        (Some(index), None) => {
            pairs.remove(index);
        }
        (None, Some(value)) => pairs.push((name.to_string(), value.to_string())),
        (None, None) => {}
    }
    pairs
}

fn authorize_with(app: &TestApp, pairs: &[(String, String)]) -> HttpReply {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    get(&authorization_url(&app.base_url, &pairs))
}

#[test]
fn redirect_uri_variants_get_an_error_page_and_no_redirect() {
    let app = spawn_app(Database::Sqlite);
    let port = free_port();
    let other = free_port();
    let registered = format!("http://127.0.0.1:{port}/callback");
    let loopback = code_client(&app, "loopback app", &[&registered]);
    let web_registered = "https://app.example.com/cb";
    let web = code_client(&app, "web app", &[web_registered]);
    let loopback_variants = [
        ("path prefix (registered is a prefix of it)", format!("http://127.0.0.1:{port}/callback/x")),
        ("path suffix", format!("http://127.0.0.1:{port}/callbackx")),
        ("shorter path (it is a prefix of the registered one)", format!("http://127.0.0.1:{port}/call")),
        ("different path", format!("http://127.0.0.1:{port}/other")),
        ("path case", format!("http://127.0.0.1:{port}/Callback")),
        ("percent-encoded letter", format!("http://127.0.0.1:{port}/call%62ack")),
        ("percent-encoded slash", format!("http://127.0.0.1:{port}%2Fcallback")),
        ("dot segment", format!("http://127.0.0.1:{port}/x/../callback")),
        ("userinfo hiding another host", format!("http://127.0.0.1:{port}@evil.example/callback")),
        ("userinfo before the loopback host", format!("http://evil@127.0.0.1:{port}/callback")),
        ("backslash before @", format!("http://127.0.0.1:{port}\\@evil.example/callback")),
        ("fragment", format!("http://127.0.0.1:{port}/callback#evil.example")),
        ("added query", format!("http://127.0.0.1:{port}/callback?next=http://evil.example")),
        ("host suffix", format!("http://127.0.0.1.evil.example:{port}/callback")),
        ("scheme change", format!("https://127.0.0.1:{port}/callback")),
        ("scheme case", format!("HTTP://127.0.0.1:{port}/callback")),
        ("trailing slash", format!("http://127.0.0.1:{port}/callback/")),
        ("another loopback spelling", format!("http://localhost:{port}/callback")),
        ("short IPv4 form of loopback", format!("http://127.1:{port}/callback")),
        ("another host", "http://evil.example/callback".to_string()),
        ("tab inside the path (URL parsers drop it)", format!("http://127.0.0.1:{port}/call\tback")),
        ("leading space", format!(" http://127.0.0.1:{port}/callback")),
        ("CRLF and a header", format!("http://127.0.0.1:{port}/callback\r\nSet-Cookie: evil.example=1")),
        ("NUL byte", format!("http://127.0.0.1:{port}/callback%00")),
        // The loopback rule lets the port change; nothing else may change along with it.
        ("another port and a fragment", format!("http://127.0.0.1:{other}/callback#evil.example")),
        ("another port and userinfo", format!("http://evil@127.0.0.1:{other}/callback")),
        ("another port hiding another host", format!("http://127.0.0.1:{other}@evil.example/callback")),
        ("another port and a trailing slash", format!("http://127.0.0.1:{other}/callback/")),
        ("another port and another path", format!("http://127.0.0.1:{other}/other")),
        ("a port that is not a number", format!("http://127.0.0.1:{port}x/callback")),
    ];
    let web_variants = [
        ("port change on a non-loopback URI", "https://app.example.com:8443/cb"),
        ("host suffix", "https://app.example.com.evil.example/cb"),
        ("subdomain", "https://evil.app.example.com/cb"),
        ("scheme downgrade", "http://app.example.com/cb"),
        ("userinfo", "https://app.example.com@evil.example/cb"),
        ("trailing slash", "https://app.example.com/cb/"),
        ("fragment", "https://app.example.com/cb#x"),
        ("host case", "https://APP.example.com/cb"),
    ];
    let cases = loopback_variants
        .iter()
        .map(|(what, uri)| (&loopback, *what, uri.clone()))
        .chain(web_variants.iter().map(|(what, uri)| (&web, *what, uri.to_string())));
    for (client, what, uri) in cases {
        let request = AuthorizationRequest::new(ClientAuth::client_id(client), &uri);
        let reply = authorize_with(&app, &spoiled(&request, "redirect_uri", Some(&uri)));
        assert_error_page(&reply, &format!("{what}: {uri}"));
        assert!(reply.body.contains("redirect_uri is not registered"), "{what}: the page says why: {}", reply.body);
        assert!(!reply.body.contains("evil.example"), "{what}: the attacker's URI is not echoed: {}", reply.body);
    }
    // Control: the registered URIs themselves are accepted (the person is sent to sign in).
    for (client, uri) in [(&loopback, registered.as_str()), (&web, web_registered)] {
        let reply = get(&AuthorizationRequest::new(ClientAuth::client_id(client), uri).url(&app.base_url));
        assert_eq!(reply.status, 302, "the registered URI {uri} is accepted: {reply}");
    }
}

#[test]
fn a_loopback_redirect_uri_may_change_only_its_port() {
    let app = spawn_app(Database::Sqlite);
    let (v4, name, v6) = ("http://127.0.0.1:5000/v4", "http://localhost:5000/name", "http://[::1]:5000/v6");
    let client = code_client(&app, "native app", &[v4, name, v6]);
    let accepted = [
        ("the registered URI", v4.to_string()),
        ("IPv4 loopback, another port (RFC 8252 §7.3)", format!("http://127.0.0.1:{}/v4", free_port())),
        ("IPv4 loopback, no port", "http://127.0.0.1/v4".to_string()),
        ("localhost, another port", format!("http://localhost:{}/name", free_port())),
        ("IPv6 loopback, another port", format!("http://[::1]:{}/v6", free_port())),
    ];
    for (what, uri) in accepted {
        let reply = get(&AuthorizationRequest::new(client.client_id(), &uri).url(&app.base_url));
        assert_eq!(reply.status, 302, "{what}: {uri} is accepted: {reply}");
        let location = reply.header("location").unwrap_or_default();
        assert!(
            location.starts_with("/login?flow="),
            "{what}: not signed in, so the answer is the sign-in page, not the client: {location}"
        );
    }
    // Only the port: the other parts stay exact even for loopback.
    for uri in [format!("http://127.0.0.1:{}/v4/", free_port()), format!("http://localhost:{}/v4", free_port())] {
        let reply = get(&AuthorizationRequest::new(client.client_id(), &uri).url(&app.base_url));
        assert_error_page(&reply, &format!("a port change plus another change: {uri}"));
    }
}

#[test]
fn errors_before_the_client_and_redirect_uri_are_known_show_a_page_and_never_redirect() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let two_uris = code_client(&app, "app with two", &[&redirect, "https://app.example.com/cb"]);
    let request = AuthorizationRequest::new(client.client_id(), &redirect);
    let id = client.client_id().to_string();
    let mut duplicated_client = spoiled(&request, "client_id", Some(&id));
    duplicated_client.push(("client_id".into(), id.clone()));
    let mut duplicated_to_other = spoiled(&request, "client_id", Some(&id));
    duplicated_to_other.push(("client_id".into(), "cl_unknown".into()));
    let mut duplicated_redirect = spoiled(&request, "redirect_uri", Some(&redirect));
    duplicated_redirect.push(("redirect_uri".into(), "http://evil.example/cb".into()));
    let cases = vec![
        ("unknown client_id", spoiled(&request, "client_id", Some("cl_doesnotexist"))),
        ("missing client_id", spoiled(&request, "client_id", None)),
        ("empty client_id", spoiled(&request, "client_id", Some(""))),
        ("unregistered redirect_uri", spoiled(&request, "redirect_uri", Some("http://evil.example/cb"))),
        ("duplicated client_id", duplicated_client),
        ("duplicated client_id naming another client", duplicated_to_other),
        ("duplicated redirect_uri", duplicated_redirect),
        (
            "missing redirect_uri with two registered",
            spoiled(&AuthorizationRequest::new(two_uris.client_id(), &redirect), "redirect_uri", None),
        ),
        (
            "unknown client and an otherwise redirectable error",
            spoiled(&spoiled_request(&request, "cl_doesnotexist"), "response_type", Some("token")),
        ),
    ];
    for (what, pairs) in cases {
        let reply = authorize_with(&app, &pairs);
        assert_error_page(&reply, what);
    }
}

/// The request with another client id.
fn spoiled_request(request: &AuthorizationRequest, client_id: &str) -> AuthorizationRequest {
    AuthorizationRequest { client_id: client_id.to_string(), ..request.clone() }
}

#[test]
fn errors_after_the_redirect_uri_is_known_redirect_with_error_state_and_iss() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let request = AuthorizationRequest::new(client.client_id(), &redirect);
    let cases = [
        ("missing code_challenge", spoiled(&request, "code_challenge", None), "invalid_request"),
        ("code_challenge_method=plain", spoiled(&request, "code_challenge_method", Some("plain")), "invalid_request"),
        (
            "missing code_challenge_method (plain by default)",
            spoiled(&request, "code_challenge_method", None),
            "invalid_request",
        ),
        ("malformed code_challenge", spoiled(&request, "code_challenge", Some("short")), "invalid_request"),
        (
            "response_type=token (implicit)",
            spoiled(&request, "response_type", Some("token")),
            "unsupported_response_type",
        ),
        ("unknown scope", spoiled(&request, "scope", Some("mcp:tools root")), "invalid_scope"),
        ("resource not ours", spoiled(&request, "resource", Some("https://evil.example/mcp")), "invalid_target"),
        (
            "resource on our host but not a resource",
            spoiled(&request, "resource", Some(&format!("{}/admin", app.public_url))),
            "invalid_target",
        ),
    ];
    for (what, pairs, error) in cases {
        let reply = authorize_with(&app, &pairs);
        assert_eq!(reply.status, 302, "{what}: redirected to the client: {reply}");
        let location = reply.header("location").unwrap_or_default();
        assert!(location.starts_with(&format!("{redirect}?")), "{what}: to the registered redirect URI: {location}");
        assert_eq!(query_parameter(location, "error").as_deref(), Some(error), "{what}: error: {location}");
        assert_eq!(query_parameter(location, "state"), Some(request.state.clone()), "{what}: state: {location}");
        assert_eq!(query_parameter(location, "iss"), Some(app.public_url.clone()), "{what}: iss (RFC 9207)");
        assert_eq!(query_parameter(location, "code"), None, "{what}: no code: {location}");
    }
}

#[test]
fn client_metadata_document_urls_on_private_addresses_are_never_fetched() {
    let app = spawn_app(Database::Sqlite);
    // Listeners where a fetch would land: any connection means the guard let a request through.
    let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    v4.set_nonblocking(true).expect("nonblocking");
    let port = v4.local_addr().expect("addr").port();
    let v6 = TcpListener::bind("[::1]:0").ok();
    let port6 = v6.as_ref().map(|listener| {
        listener.set_nonblocking(true).expect("nonblocking");
        listener.local_addr().expect("addr").port()
    });
    let mut private = vec![
        format!("https://127.0.0.1:{port}/client.json"),
        format!("https://localhost:{port}/client.json"),
        "https://127.0.0.1/client.json".to_string(),
        "https://localhost/client.json".to_string(),
        "https://10.0.0.1/client.json".to_string(),
        "https://169.254.169.254/latest".to_string(),
        "https://[::1]/x".to_string(),
        "https://[::ffff:7f00:1]/x".to_string(),
    ];
    if let Some(port6) = port6 {
        private.push(format!("https://[::1]:{port6}/x"));
    }
    let redirect = "https://evil.example/cb";
    // The token endpoint resolves URL client ids too: the same guard holds there (and the same
    // per-address bound, so this counts towards the burst below).
    let client_id = &private[1];
    let pairs = [("grant_type", "authorization_code"), ("code", "cas_code_x"), ("client_id", client_id.as_str())];
    let reply = post(&format!("{}/oauth/token", app.base_url), &[("content-type", FORM)], &form_body(&pairs));
    assert_token_error(
        &reply,
        401,
        "invalid_client",
        &format!("a private client_id URL at the token endpoint: {client_id}"),
    );
    for client_id in &private {
        let request = AuthorizationRequest::new(client_id, redirect);
        let reply = get(&request.url(&app.base_url));
        assert_error_page(&reply, client_id);
        assert!(
            reply.body.contains("special-use address"),
            "{client_id}: refused by the address guard, not by a failed connection: {}",
            reply.body
        );
    }
    let not_https = [format!("http://127.0.0.1:{port}/client.json"), "http://example.com/client.json".to_string()];
    for client_id in &not_https {
        let reply = get(&AuthorizationRequest::new(client_id, redirect).url(&app.base_url));
        assert_error_page(&reply, &format!("a non-https client_id URL: {client_id}"));
    }
    // Each URL client id may make Castellan fetch, so an address gets ten of them in a burst; the
    // eleventh is refused before any fetch, still on a page and never redirected.
    for _ in private.len() + 1..10 {
        assert_error_page(
            &get(&AuthorizationRequest::new("https://10.0.0.2/x", redirect).url(&app.base_url)),
            "filler",
        );
    }
    let limited = get(&AuthorizationRequest::new("https://10.0.0.3/x", redirect).url(&app.base_url));
    assert_eq!(limited.status, 429, "the eleventh URL client id from one address is rate limited: {limited}");
    assert_eq!(limited.header("location"), None, "the rate-limit page does not redirect: {limited}");
    // Give a stray connection time to arrive before declaring there was none.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(v4.accept(), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "nothing connected to 127.0.0.1:{port}"
    );
    if let Some(v6) = v6 {
        assert!(
            matches!(v6.accept(), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
            "nothing connected to [::1]"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Codes

#[test]
fn a_reused_code_fails_and_revokes_what_its_first_redemption_issued() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let request = AuthorizationRequest::new(client.client_id(), &redirect);
    let callback = &authorize_in_browser(&app, &[&request])[0];
    assert_eq!(callback.state.as_deref(), Some(request.state.as_str()), "state comes back: {}", callback.url);
    assert_eq!(callback.iss.as_deref(), Some(app.public_url.as_str()), "iss comes back (RFC 9207): {}", callback.url);

    let (access, refresh_token) = tokens_for(&app, &client, &request, &callback.code);
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "the first redemption's access token");

    let second = redeem_code(&app, &client, &callback.code, Some(&redirect), Some(&request.pkce.verifier));
    assert_token_error(&second, 400, "invalid_grant", "the second redemption");
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &access), "the first access token after the replay", "revoked");
    assert_token_error(
        &refresh(&app, &client, &refresh_token),
        400,
        "invalid_grant",
        "the first refresh token after the replay",
    );
}

#[test]
fn parallel_redemptions_of_one_code_yield_exactly_one_token_and_then_none() {
    for database in Database::ALL {
        let app = spawn_app(database);
        let redirect = loopback_redirect_uri();
        let client = code_client(&app, "app", &[&redirect]);
        let request = AuthorizationRequest::new(client.client_id(), &redirect);
        let code = authorize_in_browser(&app, &[&request]).remove(0).code;
        // Two would do; four make the race likelier to interleave inside the server.
        let contenders = 4;
        let barrier = Arc::new(Barrier::new(contenders));
        let replies: Vec<HttpReply> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..contenders)
                .map(|_| {
                    let barrier = Arc::clone(&barrier);
                    let (app, client, request, code) = (&app, &client, &request, &code);
                    scope.spawn(move || {
                        barrier.wait();
                        redeem_code(app, client, code, Some(&request.redirect_uri), Some(&request.pkce.verifier))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("redeeming thread")).collect()
        });
        let winners: Vec<&HttpReply> = replies.iter().filter(|reply| reply.status == 200).collect();
        assert_eq!(winners.len(), 1, "{database:?}: exactly one redemption succeeds: {replies:?}");
        for reply in replies.iter().filter(|reply| reply.status != 200) {
            assert_token_error(reply, 400, "invalid_grant", &format!("{database:?}: the losing redemption"));
        }
        // The loser is a second redemption: what the winner got is revoked (RFC 6749 §4.1.2).
        let access = access_token_of(winners[0]);
        assert_invalid_token(
            &mcp_initialize(&app, "/mcp", &access),
            &format!("{database:?}: the winner's access token"),
            "revoked",
        );
        assert_token_error(
            &refresh(&app, &client, &refresh_token_of(winners[0])),
            400,
            "invalid_grant",
            &format!("{database:?}: the winner's refresh token"),
        );
    }
}

#[test]
fn a_code_is_bound_to_its_client_and_its_redirect_uri() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let other_registered = loopback_redirect_uri().replace("/callback", "/other");
    let client = code_client(&app, "app", &[&redirect, &other_registered]);
    let intruder = code_client(&app, "intruder", &[&redirect]);
    let requests: Vec<AuthorizationRequest> =
        (0..5).map(|_| AuthorizationRequest::new(client.client_id(), &redirect)).collect();
    let callbacks = authorize_in_browser(&app, &requests.iter().collect::<Vec<_>>());
    let other_port = format!("http://127.0.0.1:{}/callback", free_port());
    let verifier = |index: usize| requests[index].pkce.verifier.clone();

    let stolen = redeem_code(&app, &intruder, &callbacks[0].code, Some(&redirect), Some(&verifier(0)));
    assert_token_error(&stolen, 400, "invalid_grant", "another client's credentials");
    let cases = [
        (1, Some(other_registered.as_str()), "another redirect URI registered for the same client"),
        (2, Some(other_port.as_str()), "the same loopback redirect URI on another port"),
        (3, None, "no redirect_uri although the authorization request had one"),
    ];
    for (index, uri, what) in cases {
        let reply = redeem_code(&app, &client, &callbacks[index].code, uri, Some(&verifier(index)));
        assert_token_error(&reply, 400, "invalid_grant", what);
    }
    // Each refused attempt spent its code: the rightful exchange fails afterwards.
    for (index, callback) in callbacks.iter().enumerate().take(4) {
        let retry = redeem_code(&app, &client, &callback.code, Some(&redirect), Some(&verifier(index)));
        assert_token_error(&retry, 400, "invalid_grant", &format!("code {index} after a refused attempt"));
    }
    // Control: the same exchange with nothing wrong works.
    let (access, _) = tokens_for(&app, &client, &requests[4], &callbacks[4].code);
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "a correctly redeemed code");
}

#[test]
fn pkce_failures_refuse_the_code_and_spend_it() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let requests: Vec<AuthorizationRequest> =
        (0..5).map(|_| AuthorizationRequest::new(client.client_id(), &redirect)).collect();
    let callbacks = authorize_in_browser(&app, &requests.iter().collect::<Vec<_>>());
    let cases = [
        (0, Some(Pkce::new().verifier), "a wrong (well-formed) verifier"),
        (1, None, "no verifier"),
        (2, Some(requests[2].pkce.challenge.clone()), "the challenge itself as the verifier (plain downgrade)"),
        (3, Some("short".to_string()), "a malformed verifier"),
    ];
    for (index, verifier, what) in cases {
        let reply = redeem_code(&app, &client, &callbacks[index].code, Some(&redirect), verifier.as_deref());
        assert_token_error(&reply, 400, "invalid_grant", what);
        let retry =
            redeem_code(&app, &client, &callbacks[index].code, Some(&redirect), Some(&requests[index].pkce.verifier));
        assert_token_error(
            &retry,
            400,
            "invalid_grant",
            &format!("the right verifier after {what}: the code is spent"),
        );
    }
    let (access, _) = tokens_for(&app, &client, &requests[4], &callbacks[4].code);
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "control: the right verifier on a fresh code");
}

// ---------------------------------------------------------------------------------------------
// Access tokens

#[test]
fn an_alg_none_token_is_refused() {
    let app = spawn_app(Database::Sqlite);
    let genuine = service_token(&app, &service_client(&app, "svc"), None);
    assert_accepted(&mcp_initialize(&app, "/mcp", &genuine), "control: the genuine token");
    let (header, claims) = jwt_parts(&genuine);
    let genuine_signature = genuine.rsplit('.').next().expect("signature").to_string();
    for alg in ["none", "None", "NONE"] {
        let unsigned_header = json!({"alg": alg, "typ": "at+jwt", "kid": header["kid"]});
        let input = signing_input(&unsigned_header, &claims);
        for (what, token) in [
            ("empty signature", format!("{input}.")),
            ("genuine signature kept", format!("{input}.{genuine_signature}")),
        ] {
            assert_invalid_token(&mcp_initialize(&app, "/mcp", &token), &format!("alg {alg}, {what}"), "well-formed");
        }
    }
}

#[test]
fn an_hs256_token_keyed_with_our_public_key_is_refused() {
    let app = spawn_app(Database::Sqlite);
    let genuine = service_token(&app, &service_client(&app, "svc"), None);
    assert_accepted(&mcp_initialize(&app, "/mcp", &genuine), "control: the genuine token");
    let (header, claims) = jwt_parts(&genuine);
    let keys = jwks(&app);
    let jwk = keys["keys"].as_array().expect("keys").iter().find(|key| key["kid"] == header["kid"]).expect("our jwk");
    let x = jwk["x"].as_str().expect("x");
    // Whatever bytes a confused verifier would use as the HMAC key: the raw public key, its
    // base64url text, or the whole JWK.
    let secrets = [
        ("raw public key", b64url_decode(x)),
        ("x as text", x.as_bytes().to_vec()),
        ("the JWK", jwk.to_string().into_bytes()),
    ];
    for (what, secret) in secrets {
        let forged_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]});
        let forged = assemble_jwt(&forged_header, &claims, |input| hs256(&secret, input));
        assert_invalid_token(&mcp_initialize(&app, "/mcp", &forged), &format!("HS256 keyed with {what}"), "algorithm");
    }
}

#[test]
fn a_token_signed_by_an_unknown_key_is_refused() {
    let app = spawn_app(Database::Sqlite);
    let genuine = service_token(&app, &service_client(&app, "svc"), None);
    assert_accepted(&mcp_initialize(&app, "/mcp", &genuine), "control: the genuine token");
    let (header, claims) = jwt_parts(&genuine);
    let seed = attacker_seed();
    let public = ed25519_public(&seed);
    let sign = |header: Value| assemble_jwt(&header, &claims, |input| eddsa(&seed, input));
    let cases = [
        ("an unknown kid", sign(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key"})), "does not trust"),
        ("no kid", sign(json!({"alg": "EdDSA", "typ": "at+jwt"})), "does not trust"),
        (
            "the attacker's key embedded as jwk",
            sign(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key",
                "jwk": {"kty": "OKP", "crv": "Ed25519", "x": public, "kid": "attacker-key"}})),
            "does not trust",
        ),
        (
            "a jku pointing at the attacker",
            sign(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker-key", "jku": "https://evil.example/jwks"})),
            "does not trust",
        ),
        (
            "our kid, the attacker's signature",
            sign(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": header["kid"]})),
            "signature",
        ),
    ];
    for (what, token, reason) in cases {
        assert_invalid_token(&mcp_initialize(&app, "/mcp", &token), what, reason);
    }
}

fn ed25519_public(seed: &[u8; 32]) -> String {
    b64url(ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().as_bytes())
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let app = spawn_app(Database::Sqlite);
    let client = service_client(&app, "svc");
    let for_gateway = service_token(&app, &client, None);
    let customers = format!("{}/mcp/customers", app.public_url);
    let for_customers = service_token(&app, &client, Some(&customers));
    assert_eq!(jwt_parts(&for_customers).1["aud"], json!(customers), "the resource parameter sets aud");
    assert_accepted(&mcp_initialize(&app, "/mcp/customers", &for_customers), "a /mcp/customers token there");
    assert_accepted(&mcp_initialize(&app, "/mcp", &for_gateway), "a /mcp token on /mcp");
    // By design (authority.rs audience_accepts): the gateway's token also opens each server behind it.
    assert_accepted(&mcp_initialize(&app, "/mcp/customers", &for_gateway), "a /mcp token on /mcp/customers");
    assert_invalid_token(
        &mcp_initialize(&app, "/mcp", &for_customers),
        "a /mcp/customers token on /mcp",
        "another resource",
    );

    let key = OperatorKey::read(&app);
    let minted = |aud: Value| key.sign(&key.header(), &claims_like(&for_gateway, json!({"aud": aud})));
    assert_accepted(
        &mcp_initialize(&app, "/mcp", &minted(json!(format!("{}/mcp", app.public_url)))),
        "control: minted like a genuine token",
    );
    let wrong = [
        ("another server's resource", json!("https://elsewhere.example/mcp")),
        ("the bare issuer", json!(app.public_url)),
        ("a trailing slash", json!(format!("{}/mcp/", app.public_url))),
        ("the 127.0.0.1 spelling of our host", json!(format!("{}/mcp", app.base_url))),
        ("an unconfigured server", json!(format!("{}/mcp/nosuchserver", app.public_url))),
    ];
    for (what, aud) in wrong {
        let reason = "another resource";
        assert_invalid_token(&mcp_initialize(&app, "/mcp", &minted(aud)), &format!("aud: {what}"), reason);
    }
}

#[test]
fn a_token_from_another_issuer_is_refused() {
    let app = spawn_app(Database::Sqlite);
    let genuine = service_token(&app, &service_client(&app, "svc"), None);
    assert_accepted(&mcp_initialize(&app, "/mcp", &genuine), "control: the genuine token");
    // Without the key: edit a genuine token and keep its signature. A foreign iss is refused when
    // the verifier is chosen (no configured issuer has that name); edits that keep our iss reach
    // the signature check and fail there.
    let (header, claims) = jwt_parts(&genuine);
    let signature = genuine.rsplit('.').next().expect("signature");
    let tampered = |changes: Value| format!("{}.{signature}", signing_input(&header, &claims_like(&genuine, changes)));
    let foreign = tampered(json!({"iss": "https://evil.example"}));
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &foreign), "iss changed in a genuine token", "someone else");
    let mut same_claims = claims.clone();
    same_claims["tier"] = json!("admin");
    let escalated = format!("{}.{signature}", signing_input(&header, &same_claims));
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &escalated), "tier raised in a genuine token", "signature");
    let other_subject = tampered(json!({"sub": "admin", "client_id": "cl_other"}));
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &other_subject), "sub changed in a genuine token", "signature");
    // With the key (what a second Castellan sharing the key store could sign): a valid signature
    // over another issuer's name is refused by the issuer check.
    let key = OperatorKey::read(&app);
    let minted = |iss: &str| key.sign(&key.header(), &claims_like(&genuine, json!({"iss": iss})));
    assert_accepted(&mcp_initialize(&app, "/mcp", &minted(&app.public_url)), "control: minted with our iss");
    for (what, iss) in [
        ("another issuer", "https://evil.example".to_string()),
        ("our 127.0.0.1 spelling", app.base_url.clone()),
        ("a trailing slash", format!("{}/", app.public_url)),
    ] {
        assert_invalid_token(&mcp_initialize(&app, "/mcp", &minted(&iss)), &format!("iss: {what}"), "someone else");
    }
}

#[test]
fn an_expired_token_is_refused_after_the_leeway() {
    // The server allows 30 s of clock skew (tokens.rs LEEWAY_SECONDS). A token that expires on its
    // own would need `access_token_ttl: 1s` and a 31 s wait; instead the operator's key mints
    // tokens whose exp is already in the past, which the server cannot tell apart.
    const LEEWAY: i64 = 30;
    let app = spawn_app(Database::Sqlite);
    let genuine = service_token(&app, &service_client(&app, "svc"), None);
    let key = OperatorKey::read(&app);
    let minted = |exp: i64| key.sign(&key.header(), &claims_like(&genuine, json!({"exp": exp, "iat": exp - 600})));
    let now = seconds_now();
    assert_invalid_token(
        &mcp_initialize(&app, "/mcp", &minted(now - LEEWAY - 1)),
        "expired beyond the leeway",
        "expired",
    );
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &minted(now - 3600)), "expired an hour ago", "expired");
    // Within the leeway it is accepted (and cached); once past it, the cached entry is refused too.
    let exp = now - LEEWAY + 8;
    let almost = minted(exp);
    assert_accepted(&mcp_initialize(&app, "/mcp", &almost), "expired 22 s ago: within the leeway");
    let wait = (exp + LEEWAY + 1 - seconds_now()).max(0) as u64;
    std::thread::sleep(Duration::from_secs(wait) + Duration::from_millis(200));
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &almost), "the same token once past the leeway", "expired");
}

#[test]
fn an_id_token_is_not_an_access_token() {
    let app = spawn_app(Database::Sqlite);
    let genuine = service_token(&app, &service_client(&app, "svc"), None);
    let key = OperatorKey::read(&app);
    // An OIDC ID token as Castellan would sign one (it issues none): typ JWT, aud = the client.
    let (_, genuine_claims) = jwt_parts(&genuine);
    let id_claims = claims_like(&genuine, json!({"aud": genuine_claims["client_id"], "nonce": "n-0S6_WzA2Mj"}));
    let with_our_claims = claims_like(&genuine, json!({}));
    let id_header = json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid});
    let untyped = json!({"alg": "EdDSA", "kid": key.kid});
    let cases = [
        ("an ID token signed with our key", key.sign(&id_header, &id_claims)),
        ("typ JWT with access-token claims, signed with our key", key.sign(&id_header, &with_our_claims)),
        ("no typ, signed with our key", key.sign(&untyped, &with_our_claims)),
        // Refused on typ before the signature is looked at.
        ("typ JWT, forged signature", assemble_jwt(&id_header, &with_our_claims, |_| vec![0u8; 64])),
    ];
    assert_accepted(&mcp_initialize(&app, "/mcp", &key.sign(&key.header(), &with_our_claims)), "control: typ at+jwt");
    for (what, token) in cases {
        assert_invalid_token(&mcp_initialize(&app, "/mcp", &token), what, "not an access token");
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens, introspection, revocation

#[test]
fn a_replayed_refresh_token_revokes_its_whole_family() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let request = AuthorizationRequest::new(client.client_id(), &redirect);
    let code = authorize_in_browser(&app, &[&request]).remove(0).code;
    let (first_access, first_refresh) = tokens_for(&app, &client, &request, &code);
    let rotated = refresh(&app, &client, &first_refresh);
    let (second_access, second_refresh) = (access_token_of(&rotated), refresh_token_of(&rotated));
    assert_ne!(second_refresh, first_refresh, "the refresh token rotates");
    assert_accepted(&mcp_initialize(&app, "/mcp", &second_access), "the rotated access token");

    let replay = refresh(&app, &client, &first_refresh);
    assert_token_error(&replay, 400, "invalid_grant", "the spent refresh token presented again");
    assert_token_error(&refresh(&app, &client, &second_refresh), 400, "invalid_grant", "the newest refresh token");
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &second_access), "the newest access token", "revoked");
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &first_access), "the first access token", "revoked");
}

#[test]
fn introspection_answers_only_about_the_callers_own_tokens() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let owner = code_client(&app, "owner", &[&redirect]);
    let other = service_client(&app, "other");
    let public = ClientAuth::public(
        &app.oauth_client(
            "public",
            &["--tier", "user", "--grant", "authorization_code", "--redirect-uri", &redirect, "--public"],
        )
        .0,
    );
    let request = AuthorizationRequest::new(owner.client_id(), &redirect);
    let code = authorize_in_browser(&app, &[&request]).remove(0).code;
    let (access, refresh_token) = tokens_for(&app, &owner, &request, &code);

    let own = form_post(&app, "/oauth/introspect", Some(&owner), &[("token", &access)]);
    assert_eq!(own.status, 200, "control: the owner introspects: {own}");
    assert_eq!(own.json()["active"], true, "control: the owner's token is active: {own}");
    assert_eq!(own.json()["client_id"], json!(owner.client_id()), "control: {own}");
    for (what, token) in [("access token", &access), ("refresh token", &refresh_token)] {
        let answer = form_post(&app, "/oauth/introspect", Some(&other), &[("token", token)]);
        assert_eq!(answer.status, 200, "another client's {what}: {answer}");
        assert_eq!(answer.json(), json!({"active": false}), "another client's {what}: exactly inactive: {answer}");
    }
    let unauthenticated = form_post(&app, "/oauth/introspect", None, &[("token", &access)]);
    assert_token_error(&unauthenticated, 401, "invalid_client", "introspection without client authentication");
    let public_caller = form_post(&app, "/oauth/introspect", Some(&public), &[("token", &access)]);
    assert_token_error(&public_caller, 401, "invalid_client", "introspection by a public client");
    let ClientAuth::Basic { client_id, .. } = &other else { unreachable!("a confidential client") };
    let wrong_secret = ClientAuth::Basic { client_id: client_id.clone(), secret: "cas_cs_wrong".into() };
    let refused = form_post(&app, "/oauth/introspect", Some(&wrong_secret), &[("token", &access)]);
    assert_token_error(&refused, 401, "invalid_client", "introspection with a wrong secret");
    assert!(refused.header("www-authenticate").unwrap_or_default().starts_with("Basic"), "Basic challenge: {refused}");
    // Introspection changed nothing.
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "the token after being introspected by others");
}

#[test]
fn revocation_by_another_client_leaves_the_token_working() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let owner = code_client(&app, "owner", &[&redirect]);
    let other = service_client(&app, "other");
    let request = AuthorizationRequest::new(owner.client_id(), &redirect);
    let code = authorize_in_browser(&app, &[&request]).remove(0).code;
    let (access, refresh_token) = tokens_for(&app, &owner, &request, &code);

    for (what, token) in [
        ("access token", access.as_str()),
        ("refresh token", refresh_token.as_str()),
        ("unknown token", "cas_rt_nonsense"),
    ] {
        let answer = form_post(&app, "/oauth/revoke", Some(&other), &[("token", token)]);
        assert_eq!(answer.status, 200, "revoking another client's {what} answers like any revocation: {answer}");
    }
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "the access token after another client revoked it");
    let still = form_post(&app, "/oauth/introspect", Some(&owner), &[("token", &access)]);
    assert_eq!(still.json()["active"], true, "the owner still sees it active: {still}");
    let rotated = refresh(&app, &owner, &refresh_token);
    assert_eq!(rotated.status, 200, "the refresh token still works: {rotated}");
    // Control: the owner's own revocation does take effect.
    let new_access = access_token_of(&rotated);
    let revoked = form_post(&app, "/oauth/revoke", Some(&owner), &[("token", &new_access)]);
    assert_eq!(revoked.status, 200, "the owner revokes: {revoked}");
    assert_invalid_token(&mcp_initialize(&app, "/mcp", &new_access), "after the owner's revocation", "revoked");
}

// ---------------------------------------------------------------------------------------------
// The admin API

/// The bootstrap admin signs in and authorizes one client twice: once for `mcp:tools` alone (what
/// an MCP client asks for), once for `admin mcp:tools`. Before, both tokens opened the admin API
/// because the user's tier is admin; now only the one that carries the `admin` scope does. The
/// admin's API key keeps working.
#[test]
fn the_admin_api_needs_the_admin_scope_on_our_access_tokens() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let narrow = AuthorizationRequest::new(client.client_id(), &redirect);
    let mut wide = AuthorizationRequest::new(client.client_id(), &redirect);
    wide.scope = "admin mcp:tools".into();
    let callbacks = authorize_in_browser(&app, &[&narrow, &wide]);
    let (narrow_token, _) = tokens_for(&app, &client, &narrow, &callbacks[0].code);
    let (wide_token, _) = tokens_for(&app, &client, &wide, &callbacks[1].code);
    assert_eq!(jwt_parts(&narrow_token).1["scope"], "mcp:tools", "the narrow token's scope");
    assert_eq!(jwt_parts(&wide_token).1["scope"], "admin mcp:tools", "the wide token's scope");
    assert_accepted(&mcp_initialize(&app, "/mcp", &narrow_token), "the narrow token on /mcp");

    let trace = format!("{}/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736", app.base_url);
    let get_with = |token: &str| {
        let bearer = format!("Bearer {token}");
        match ureq::get(&trace).set("authorization", &bearer).call() {
            Ok(response) => (response.status(), response.header("www-authenticate").map(str::to_string)),
            Err(ureq::Error::Status(status, response)) => {
                (status, response.header("www-authenticate").map(str::to_string))
            }
            Err(error) => panic!("transport error on {trace}: {error}"),
        }
    };
    let (status, challenge) = get_with(&narrow_token);
    assert_eq!(status, 403, "an admin's token with only mcp:tools is refused on /api/v1/traces");
    assert!(
        challenge
            .as_deref()
            .is_some_and(|text| text.contains("insufficient_scope") && text.contains("scope=\"admin\"")),
        "the challenge names the missing scope: {challenge:?}"
    );
    assert_eq!(get_with(&wide_token).0, 200, "an admin's token with the admin scope is accepted on /api/v1/traces");
    assert_eq!(get_with(&app.admin_key).0, 200, "the admin's API key still works on /api/v1/traces");

    let events =
        |token: &str| integration_tests::events::EventStream::open(&app.base_url, &format!("Bearer {token}"), "");
    assert_eq!(
        events(&narrow_token).err().map(|(status, _)| status),
        Some(403),
        "/api/v1/events refuses mcp:tools only"
    );
    assert!(events(&wide_token).is_ok(), "/api/v1/events accepts the admin scope");
}

/// A client-credentials token of an admin-tier client with the admin scope opens the admin API when
/// it is for the whole gateway (`/mcp`), and not when it is for one server (`/mcp/customers`):
/// before, any of our audiences did.
#[test]
fn the_admin_api_refuses_a_token_for_one_server() {
    let app = spawn_app(Database::Sqlite);
    let robot = ClientAuth::basic(&app.oauth_client("robot", &["--tier", "admin"]));
    let token_for = |resource: &str| {
        let pairs = [("grant_type", "client_credentials"), ("scope", "admin mcp:tools"), ("resource", resource)];
        access_token_of(&form_post(&app, "/oauth/token", Some(&robot), &pairs))
    };
    let gateway = token_for(&format!("{}/mcp", app.public_url));
    let one_server = token_for(&format!("{}/mcp/customers", app.public_url));
    let status_with = |token: &str| {
        let url = format!("{}/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736", app.base_url);
        match ureq::get(&url).set("authorization", &format!("Bearer {token}")).call() {
            Ok(response) => response.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(error) => panic!("transport error on {url}: {error}"),
        }
    };
    assert_eq!(status_with(&gateway), 200, "a gateway token with the admin scope");
    assert_eq!(status_with(&one_server), 401, "a token for one server's resource is not for the admin API");
}

// ---------------------------------------------------------------------------------------------
// Registration and malformed requests

fn register(app: &TestApp) -> HttpReply {
    let metadata = json!({"client_name": "flood", "redirect_uris": ["http://127.0.0.1:9/cb"]});
    post(&format!("{}/oauth/register", app.base_url), &[("content-type", "application/json")], &metadata.to_string())
}

/// How many dynamic clients `castellan clients list` shows.
fn dynamic_clients(app: &TestApp) -> usize {
    let output = app.cli(&["clients", "list"]);
    assert!(output.status.success(), "clients list: {}", String::from_utf8_lossy(&output.stderr));
    let listing = String::from_utf8_lossy(&output.stdout);
    listing.lines().skip(1).filter(|line| line.split_whitespace().nth_back(1) == Some("true")).count()
}

#[test]
fn registration_flooding_from_one_address_is_rate_limited() {
    let app = spawn_app(Database::Sqlite);
    let statuses: Vec<u16> = (0..10).map(|_| register(&app).status).collect();
    assert_eq!(statuses, vec![201; 10], "a burst of ten registrations is allowed");
    for attempt in 11..=13 {
        let reply = register(&app);
        assert_eq!(reply.status, 429, "registration {attempt} is rate limited: {reply}");
        assert!(reply.header("retry-after").is_some(), "registration {attempt}: Retry-After: {reply}");
    }
    assert_eq!(dynamic_clients(&app), 10, "the refused registrations created no client");
}

fn register_from(app: &TestApp, source: Ipv4Addr) -> HttpReply {
    let metadata = json!({"client_name": "flood", "redirect_uris": ["http://127.0.0.1:9/cb"]});
    post_json_from(source, &format!("{}/oauth/register", app.base_url), &metadata.to_string())
}

/// 100 loopback addresses, ten registrations each, as fast as one client sends them: before the
/// global bound all 1,000 got through (the default cap, filled in about 2 s) and the next real
/// client got 403 for a day. Now the registrations of every address together are bounded (a burst
/// of 50, then one a second), and a real client registers once the burst has refilled a little.
#[test]
fn a_registration_flood_from_many_addresses_is_bounded_globally() {
    for database in Database::ALL {
        let app = spawn_app(database);
        let started = Instant::now();
        let mut statuses = Vec::new();
        for host in 1..=100u8 {
            for _ in 0..10 {
                statuses.push(register_from(&app, Ipv4Addr::new(127, 0, 1, host)).status);
            }
        }
        let elapsed = started.elapsed();
        let created = statuses.iter().filter(|status| **status == 201).count();
        let limited = statuses.iter().filter(|status| **status == 429).count();
        eprintln!("{database:?}: {created} of 1000 registrations from 100 addresses got through in {elapsed:?}");
        assert_eq!(created + limited, 1000, "{database:?}: every attempt was registered or rate limited");
        let bound = 50 + elapsed.as_secs() as usize + 1;
        assert!(created <= bound, "{database:?}: at most the global burst plus one a second ({bound}), got {created}");
        assert!(created >= 50, "{database:?}: the global burst itself is let through, got {created}");
        assert_eq!(dynamic_clients(&app), created, "{database:?}: refused registrations created no client");

        std::thread::sleep(Duration::from_millis(1_100));
        let real = register_from(&app, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(real.status, 201, "{database:?}: a real client registers after the flood: {real}");
    }
}

/// With the cap reached by registrations that were never used, a new registration displaces the
/// oldest of them instead of being refused (403, before): a flood cannot lock real clients out,
/// and the table stays at the cap.
#[test]
fn never_used_registrations_cannot_lock_real_clients_out() {
    for database in Database::ALL {
        let profile = format!("{DEFAULT_TEST_PROFILE}identity:\n  max_dynamic_clients: 3\n");
        let app = spawn_app_with(AppOptions::new(database).profile(&profile));
        let mut flood_ids = Vec::new();
        for host in 1..=8u8 {
            let reply = register_from(&app, Ipv4Addr::new(127, 0, 2, host));
            assert_eq!(reply.status, 201, "{database:?}: flood registration {host}: {reply}");
            flood_ids.push(reply.json()["client_id"].as_str().unwrap_or_default().to_string());
        }
        assert_eq!(dynamic_clients(&app), 3, "{database:?}: the table stays at the cap");
        let real = register_from(&app, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(real.status, 201, "{database:?}: a real client still registers: {real}");
        let listing = String::from_utf8_lossy(&app.cli(&["clients", "list"]).stdout).to_string();
        let real_id = real.json()["client_id"].as_str().unwrap_or_default().to_string();
        assert!(listing.contains(&real_id), "{database:?}: the real client is registered: {listing}");
        assert!(!listing.contains(&flood_ids[0]), "{database:?}: the oldest unused registration made room: {listing}");
        assert_eq!(dynamic_clients(&app), 3, "{database:?}: still at the cap");
    }
}

/// A client that redeemed a code holds its place for good: with the cap filled by such clients, a
/// new registration is refused (403), as before; nothing is evicted.
#[test]
fn a_cap_filled_by_clients_that_were_used_refuses_new_registrations() {
    let profile = format!("{DEFAULT_TEST_PROFILE}identity:\n  max_dynamic_clients: 1\n");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let redirect = loopback_redirect_uri();
    let metadata = json!({"client_name": "real", "redirect_uris": [redirect], "token_endpoint_auth_method": "none"});
    let registered = post(
        &format!("{}/oauth/register", app.base_url),
        &[("content-type", "application/json")],
        &metadata.to_string(),
    );
    assert_eq!(registered.status, 201, "the real client registers: {registered}");
    let client_id = registered.json()["client_id"].as_str().expect("client_id").to_string();
    let client = ClientAuth::Public { client_id: client_id.clone() };
    let request = AuthorizationRequest::new(&client_id, &redirect);
    let code = authorize_in_browser(&app, &[&request]).remove(0).code;
    let (access, _) = tokens_for(&app, &client, &request, &code);
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "the real client's token");

    let refused = register(&app);
    assert_eq!(refused.status, 403, "the cap is filled by a used client: {refused}");
    assert_eq!(refused.error(), "access_denied", "{refused}");
    let listing = String::from_utf8_lossy(&app.cli(&["clients", "list"]).stdout).to_string();
    assert!(listing.contains(&client_id), "the used client was not evicted: {listing}");
    assert_eq!(dynamic_clients(&app), 1, "no client beyond the cap");
}

#[test]
fn malformed_token_requests_are_refused_and_change_nothing() {
    let app = spawn_app(Database::Sqlite);
    let redirect = loopback_redirect_uri();
    let client = code_client(&app, "app", &[&redirect]);
    let ClientAuth::Basic { client_id, secret } = &client else { unreachable!("a confidential client") };
    let request = AuthorizationRequest::new(client_id, &redirect);
    let code = authorize_in_browser(&app, &[&request]).remove(0).code;
    let verifier = request.pkce.verifier.as_str();
    let good = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &redirect),
        ("code_verifier", verifier),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs: Vec<(&str, &str)> = good.to_vec();
        pairs.extend_from_slice(extra);
        form_body(&pairs)
    };
    let token_url = format!("{}/oauth/token", app.base_url);
    let authorization = basic_authorization(client_id, secret);
    let json_body =
        json!({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": verifier})
            .to_string();
    let repeated_code = format!("{}&code={code}", form_body(&good));
    let bad_requests: Vec<(&str, &str, String)> = vec![
        ("a JSON body", "application/json", json_body.clone()),
        ("JSON sent as a form", FORM, json_body),
        ("a form labelled text/plain", "text/plain", form_body(&good)),
        ("a multipart content type", "multipart/form-data; boundary=x", form_body(&good)),
        ("repeated code", FORM, repeated_code),
        ("repeated grant_type", FORM, with(&[("grant_type", "authorization_code")])),
        (
            "repeated code_verifier",
            FORM,
            with(&[("code_verifier", "another-verifier-another-verifier-another-verifier")]),
        ),
        ("repeated redirect_uri", FORM, with(&[("redirect_uri", "http://evil.example/cb")])),
        ("an empty body", FORM, String::new()),
        ("garbage", FORM, "\u{1}\u{2}%%%;;;&&&==".to_string()),
        ("no grant_type", FORM, form_body(&good[1..])),
    ];
    for (what, content_type, body) in bad_requests {
        let reply = post(&token_url, &[("content-type", content_type), ("authorization", &authorization)], &body);
        assert_token_error(&reply, 400, "invalid_request", what);
    }
    let garbage_basic = [
        ("not base64", "Basic !!!not-base64!!!".to_string()),
        ("no colon", format!("Basic {}", integration_tests::oauth::b64url(b"no-colon"))),
        ("not UTF-8", format!("Basic {}", base64_standard(&[0xff, 0xfe, b':', 0xfd]))),
        ("the scheme alone", "Basic".to_string()),
        ("a wrong secret", basic_authorization(client_id, "cas_cs_wrong")),
        ("an unknown client", basic_authorization("cl_unknown", secret)),
        ("an empty id and secret", basic_authorization("", "")),
    ];
    for (what, header) in garbage_basic {
        let reply = post(&token_url, &[("content-type", FORM), ("authorization", &header)], &form_body(&good));
        assert_token_error(&reply, 401, "invalid_client", &format!("Basic with {what}"));
        assert!(
            reply.header("www-authenticate").unwrap_or_default().starts_with("Basic"),
            "Basic with {what}: WWW-Authenticate: Basic (RFC 6749 §5.2): {reply}"
        );
    }
    // None of that spent the code.
    let (access, _) = tokens_for(&app, &client, &request, &code);
    assert_accepted(&mcp_initialize(&app, "/mcp", &access), "the code still redeems after the refused requests");
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn stored_flows_from_one_address_are_rate_limited() {
    let app = spawn_app(Database::Sqlite);
    let start = |app: &TestApp| match ureq::post(&format!("{}/webauthn/login/start", app.base_url)).send_json(json!({}))
    {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(error) => panic!("{error}"),
    };
    let statuses: Vec<u16> = (0..31).map(|_| start(&app)).collect();
    assert!(statuses[..30].iter().all(|status| *status == 200), "a burst of 30 ceremonies: {statuses:?}");
    assert_eq!(statuses[30], 429, "the 31st ceremony from one address is refused before anything is stored");
    let started: u64 = app
        .database
        .query_scalar("SELECT count(*) FROM auth_flow_states WHERE kind = 'webauthn-login'")
        .parse()
        .expect("a count");
    assert_eq!(started, 30, "only the admitted ceremonies were stored");
}
