//! The authorization server driven by client code that is not ours: authlib (authorization code with
//! PKCE, refresh rotation, introspection, revocation; client credentials), a passkey sign-in in
//! headless Chromium followed by a plain `requests` code exchange, and the official MCP Python SDK's
//! OAuth client, which finds everything on its own from a 401. Plus the discovery documents and
//! challenges those clients rely on. The scripts are in `integration-tests/clients/oauth_*.py`.

use integration_tests::mcp::{Session, bearer, initialize_body, post_raw, standard_headers};
use integration_tests::{
    AppOptions, DEFAULT_TEST_PROFILE, Database, TestApp, free_port, run_python_client, spawn_app, spawn_app_with,
};
use serde_json::{Value, json};

/// The venv with authlib, the mcp 2.x SDK and the CDP driver's dependencies.
const VENV: &str = "py2";

fn authlib(mode: &str, job: Value) -> Value {
    run_python_client(VENV, "oauth_authlib.py", &[mode, &job.to_string()])
}

/// A loopback redirect URI nobody serves: the browser's attempt to load it is where the flow ends.
fn unserved_loopback_callback() -> String {
    format!("http://127.0.0.1:{}/callback", free_port())
}

/// Opens an MCP session on `{base_url}/mcp` with `access_token`, calls `customers__list_customers`,
/// and returns the visible tool names and the customer names listed.
fn list_customers_on_mcp(app: &TestApp, access_token: &str, what: &str) -> (Vec<String>, Vec<String>) {
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(access_token));
    let tools = session.tool_names();
    let listed = session.call("customers__list_customers", json!({}));
    assert_eq!(listed["result"]["isError"], false, "{what}: the tool call succeeds: {listed}");
    let customers = listed["result"]["structuredContent"]["customers"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: a customer list: {listed}"))
        .iter()
        .map(|customer| customer["name"].as_str().unwrap_or_default().to_string())
        .collect();
    (tools, customers)
}

/// The audit rows of successful `list_customers` calls.
fn list_customers_rows(app: &TestApp) -> Vec<Value> {
    app.audit_rows().into_iter().filter(|row| row["tool"] == "list_customers" && row["status"] == "success").collect()
}

/// The strings of a JSON array (empty if it is not one).
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// GET and parse JSON; any status comes back, transport errors panic.
fn get_json(url: &str) -> (u16, Value) {
    match ureq::get(url).call() {
        Ok(response) => (response.status(), response.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(status, response)) => (status, response.into_json().unwrap_or(Value::Null)),
        Err(error) => panic!("GET {url}: {error}"),
    }
}

fn authlib_authorization_code_flow(database: Database) {
    let app = spawn_app(database);
    let issuer = app.public_url.clone();
    let redirect_uri = unserved_loopback_callback();
    let (client_id, secret) = app.oauth_client(
        "authlib app",
        &["--tier", "user", "--grant", "authorization_code", "--redirect-uri", &redirect_uri],
    );
    let report = authlib(
        "code",
        json!({"issuer": issuer, "client_id": client_id, "client_secret": secret.expect("a confidential client"),
               "redirect_uri": redirect_uri, "enrolment_link": app.admin_enrolment_link}),
    );
    let what = format!("{database:?}");

    let request = &report["request"];
    assert_eq!(request["code_challenge_method"], "S256", "{what}: authlib sent a PKCE S256 challenge: {request}");
    assert_eq!(request["resource"], format!("{issuer}/mcp"), "{what}: RFC 8707 resource sent: {request}");
    let callback = &report["callback"];
    assert_eq!(callback["iss"], issuer.as_str(), "{what}: RFC 9207 iss in the callback is the issuer: {callback}");
    assert_eq!(callback["state_matches"], true, "{what}: state came back unchanged: {callback}");
    assert_eq!(callback["has_code"], true, "{what}: a code in the callback: {callback}");
    let token = &report["token"];
    assert_eq!(token["token_type"], "Bearer", "{what}: {token}");
    assert_eq!(token["scope"], "mcp:tools offline_access", "{what}: the requested scopes were granted: {token}");
    assert_eq!(token["has_refresh_token"], true, "{what}: offline_access yields a refresh token: {token}");

    let refresh = &report["refresh"];
    assert_eq!(refresh["refresh_token_rotated"], true, "{what}: every refresh rotates the refresh token: {refresh}");
    assert_eq!(refresh["access_token_new"], true, "{what}: a refresh mints a new access token: {refresh}");
    assert_eq!(refresh["scope"], "mcp:tools offline_access", "{what}: refresh keeps the grant's scope: {refresh}");

    let introspection = &report["introspection"];
    assert_eq!(introspection["status"], 200, "{what}: introspection answers the client: {introspection}");
    let body = &introspection["body"];
    assert_eq!(body["active"], true, "{what}: the refreshed access token is active: {body}");
    assert_eq!(body["scope"], "mcp:tools offline_access", "{what}: introspected scope: {body}");
    assert_eq!(body["client_id"], client_id.as_str(), "{what}: introspected client_id: {body}");
    assert_eq!(body["sub"], "admin", "{what}: the token is the signed-in admin's: {body}");
    assert_eq!(body["iss"], issuer.as_str(), "{what}: introspected iss: {body}");
    assert_eq!(body["aud"], format!("{issuer}/mcp"), "{what}: the audience is the resource asked for: {body}");
    let refresh_introspection = &report["introspection_of_refresh_token"];
    assert_eq!(refresh_introspection["active"], true, "{what}: the current refresh token: {refresh_introspection}");
    assert_eq!(refresh_introspection["token_type"], "refresh_token", "{what}: {refresh_introspection}");
    assert_eq!(refresh_introspection["client_id"], client_id.as_str(), "{what}: {refresh_introspection}");
    let userinfo = &report["userinfo"];
    assert_eq!(userinfo["status"], 200, "{what}: userinfo answers the bearer: {userinfo}");
    assert_eq!(userinfo["body"]["sub"], "admin", "{what}: {userinfo}");
    assert_eq!(userinfo["body"]["tier"], "admin", "{what}: {userinfo}");
    assert_eq!(
        report["introspection_of_spent_refresh_token"]["active"], false,
        "{what}: a rotated-away refresh token is inactive: {report}"
    );

    assert_eq!(report["mcp_before_revocation"]["status"], 200, "{what}: the token opened /mcp before: {report}");
    assert_eq!(report["revocation_status"], 200, "{what}: RFC 7009 revocation answers 200: {report}");
    assert_eq!(
        report["refresh_after_revocation"], "invalid_grant",
        "{what}: the revoked refresh token no longer refreshes: {report}"
    );
    for field in ["mcp_after_revocation", "mcp_first_access_token_after_revocation"] {
        let answer = &report[field];
        assert_eq!(answer["status"], 401, "{what}: {field}: access tokens of a revoked family are refused: {answer}");
        let challenge = answer["www_authenticate"].as_str().unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{what}: {field}: invalid_token challenge: {challenge}");
    }
    assert_eq!(
        report["introspection_after_revocation"]["active"], false,
        "{what}: introspection agrees the revoked token is inactive: {report}"
    );

    let consent = "POST /oauth/consent".to_string();
    let pages = strings(&report["pages"]);
    assert!(pages.contains(&consent), "{what}: the first authorization asked for consent: {pages:?}");
    assert!(!pages.contains(&"GET /login".to_string()), "{what}: enrolment left the person signed in: {pages:?}");
    // The second authorization started a family of its own, untouched by the revocation above.
    let second = &report["second_grant"];
    assert!(!strings(&second["pages"]).contains(&consent), "{what}: consent is remembered: {second}");
    assert_eq!(second["iss"], issuer.as_str(), "{what}: {second}");
    let access_token = report["access_token"].as_str().expect("an access token from the second grant");
    let (tools, customers) = list_customers_on_mcp(&app, access_token, &what);
    assert!(tools.contains(&"customers__list_customers".to_string()), "{what}: tools listed: {tools:?}");
    assert_eq!(customers.len(), 5, "{what}: the demo server's customers: {customers:?}");
    let rows = list_customers_rows(&app);
    assert_eq!(rows.len(), 1, "{what}: one audited call: {rows:?}");
    assert_eq!(rows[0]["user_id"], "admin", "{what}: the audit row names the person who signed in: {rows:?}");
}

#[test]
fn authlib_authorization_code_with_pkce_refresh_introspection_and_revocation() {
    authlib_authorization_code_flow(Database::Sqlite);
}

#[test]
fn authlib_authorization_code_with_pkce_refresh_introspection_and_revocation_on_postgres() {
    authlib_authorization_code_flow(Database::Postgres);
}

fn authlib_client_credentials(database: Database) {
    let app = spawn_app(database);
    let issuer = app.public_url.clone();
    let (client_id, secret) = app.oauth_client("reporting robot", &["--tier", "service"]);
    let report = authlib(
        "client-credentials",
        json!({"issuer": issuer, "client_id": client_id, "client_secret": secret.expect("a confidential client")}),
    );
    let what = format!("{database:?}");

    let token = &report["token"];
    assert_eq!(token["scope"], "mcp:tools", "{what}: the default scope: {token}");
    assert_eq!(token["has_refresh_token"], false, "{what}: client credentials get no refresh token: {token}");
    let header = &report["header"];
    assert_eq!(header["typ"], "at+jwt", "{what}: RFC 9068 typ: {header}");
    assert_eq!(header["alg"], "EdDSA", "{what}: signed with Ed25519: {header}");
    assert!(header["kid"].as_str().is_some_and(|kid| !kid.is_empty()), "{what}: a key id: {header}");
    let claims = &report["claims"];
    assert_eq!(claims["iss"], issuer.as_str(), "{what}: iss: {claims}");
    assert_eq!(claims["aud"], format!("{issuer}/mcp"), "{what}: aud defaults to the MCP gateway: {claims}");
    assert_eq!(claims["sub"], client_id.as_str(), "{what}: a service client acts as itself: {claims}");
    assert_eq!(claims["client_id"], client_id.as_str(), "{what}: client_id: {claims}");
    assert_eq!(claims["scope"], "mcp:tools", "{what}: scope: {claims}");
    assert_eq!(claims["tier"], "service", "{what}: the client's tier: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()), "{what}: a token id: {claims}");
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert_eq!(Some(lifetime), token["expires_in"].as_i64(), "{what}: exp - iat is expires_in: {claims}");
    assert_eq!(&report["verified_claims"], claims, "{what}: PyJWT verified the EdDSA signature via the JWKS");
    assert!(
        report["jwks_key_types"].as_array().is_some_and(|keys| keys.contains(&json!(["OKP", "Ed25519", "EdDSA"]))),
        "{what}: the JWKS publishes an Ed25519 key: {report}"
    );
    assert_eq!(report["tampered_token_rejected"], true, "{what}: a changed claim breaks the signature: {report}");
    assert_eq!(
        report["rfc9068_validator_error"],
        Value::Null,
        "{what}: authlib's RFC 9068 validator accepts the token (typ, iss, aud, exp, required claims)"
    );
    let introspection = &report["introspection"];
    assert_eq!(introspection["status"], 200, "{what}: {introspection}");
    assert_eq!(introspection["body"]["active"], true, "{what}: the client may introspect its own token");
    assert_eq!(introspection["body"]["client_id"], client_id.as_str(), "{what}: {introspection}");
    assert_eq!(introspection["body"]["scope"], "mcp:tools", "{what}: {introspection}");
    let revoked = &report["revoked_access_token"];
    assert_eq!(revoked["mcp_before"], 200, "{what}: the second token worked: {revoked}");
    assert_eq!(revoked["revocation_status"], 200, "{what}: {revoked}");
    assert_eq!(revoked["mcp_after"], 401, "{what}: a revoked access token is refused at once: {revoked}");
    assert_eq!(revoked["introspection_after"]["active"], false, "{what}: {revoked}");

    let access_token = report["access_token"].as_str().expect("access token");
    let (tools, customers) = list_customers_on_mcp(&app, access_token, &what);
    assert_eq!(customers.len(), 5, "{what}: {customers:?}");
    assert!(
        !tools.contains(&"customers__delete_customer".to_string()),
        "{what}: the token's tier (service) is what RBAC sees: no destructive tool: {tools:?}"
    );
    let rows = list_customers_rows(&app);
    assert_eq!(rows.len(), 1, "{what}: {rows:?}");
    assert_eq!(rows[0]["user_id"], client_id.as_str(), "{what}: the audit row names the service client: {rows:?}");
}

#[test]
fn authlib_client_credentials_token_is_a_verifiable_rfc9068_jwt() {
    authlib_client_credentials(Database::Sqlite);
}

#[test]
fn authlib_client_credentials_token_is_a_verifiable_rfc9068_jwt_on_postgres() {
    authlib_client_credentials(Database::Postgres);
}

#[test]
fn passkey_sign_in_in_headless_chromium_then_a_plain_code_exchange() {
    let app = spawn_app(Database::Sqlite);
    let issuer = app.public_url.clone();
    let redirect_uri = unserved_loopback_callback();
    let (client_id, secret) = app.oauth_client(
        "desktop app",
        &["--tier", "user", "--public", "--grant", "authorization_code", "--redirect-uri", &redirect_uri],
    );
    assert_eq!(secret, None, "a public client has no secret");
    let report = authlib(
        "passkey",
        json!({"issuer": issuer, "client_id": client_id, "redirect_uri": redirect_uri,
               "enrolment_link": app.admin_enrolment_link}),
    );

    let enrolled = report["credentials_after_enrolment"].as_array().expect("credentials");
    assert_eq!(enrolled.len(), 1, "enrolment created one passkey: {enrolled:?}");
    assert_eq!(enrolled[0]["rpId"], "localhost", "the relying party is the public host: {enrolled:?}");
    assert_eq!(enrolled[0]["resident"], true, "a discoverable (resident) credential: {enrolled:?}");
    let after = report["credentials_after_sign_in"].as_array().expect("credentials");
    assert_eq!(after.len(), 1, "signing in used the passkey, it made no new one: {after:?}");
    assert_eq!(after[0]["rpId"], "localhost", "{after:?}");
    assert!(
        after[0]["signCount"].as_u64() > enrolled[0]["signCount"].as_u64(),
        "the authenticator signed an assertion: signCount {} -> {}",
        enrolled[0]["signCount"],
        after[0]["signCount"]
    );
    let pages = strings(&report["pages"]);
    assert_eq!(pages.first().map(String::as_str), Some("GET /oauth/authorize"), "{pages:?}");
    assert!(
        pages.contains(&"GET /login".to_string()),
        "without a session the request went to the login page: {pages:?}"
    );
    assert!(pages.contains(&"POST /oauth/consent".to_string()), "a first grant asks for consent: {pages:?}");
    assert_eq!(pages.last().map(String::as_str), Some("GET /callback"), "and ends at the client: {pages:?}");
    assert_eq!(report["callback"]["iss"], issuer.as_str(), "RFC 9207 iss: {report}");
    assert_eq!(report["callback"]["state_matches"], true, "{report}");
    assert_eq!(report["exchange_status"], 200, "a public client redeems its code with PKCE only: {report}");
    assert_eq!(report["token"]["scope"], "mcp:tools", "{report}");

    let access_token = report["access_token"].as_str().expect("access token");
    let (_, customers) = list_customers_on_mcp(&app, access_token, "passkey");
    assert_eq!(customers.first().map(String::as_str), Some("Ada Lovelace"), "{customers:?}");
    let rows = list_customers_rows(&app);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["user_id"], "admin", "the passkey's owner is the audited user: {rows:?}");
}

/// Short enough that the SDK must refresh within the test, long enough for one authorization.
const SHORT_ACCESS_TOKEN_TTL_SECONDS: f64 = 2.0;

#[test]
fn mcp_sdk_discovers_registers_signs_in_calls_a_tool_and_refreshes() {
    let profile = format!("{DEFAULT_TEST_PROFILE}identity:\n  access_token_ttl: {SHORT_ACCESS_TOKEN_TTL_SECONDS}s\n");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let issuer = app.public_url.clone();
    // The gateway in the stateless revision (calling again once the token has expired, so the SDK
    // refreshes), and one server's endpoint with a 2025-11-25 session (GET stream, DELETE).
    let endpoints = [
        (format!("{issuer}/mcp"), "customers__list_customers", "auto", "2026-07-28"),
        (format!("{issuer}/mcp/customers"), "list_customers", "legacy", "2025-11-25"),
    ];
    let job = json!({
        "enrolment_link": app.admin_enrolment_link,
        "endpoints": [
            {"url": endpoints[0].0, "tool": endpoints[0].1, "mode": endpoints[0].2,
             "call_again_after": SHORT_ACCESS_TOKEN_TTL_SECONDS + 0.5},
            {"url": endpoints[1].0, "tool": endpoints[1].1, "mode": endpoints[1].2},
        ],
    });
    let report = run_python_client(VENV, "oauth_mcp_sdk.py", &[&job.to_string()]);
    let runs = report["runs"].as_array().expect("one run per endpoint");
    assert_eq!(runs.len(), endpoints.len(), "{report}");

    let mut client_ids = Vec::new();
    for (run, (url, tool, _, protocol_version)) in runs.iter().zip(&endpoints) {
        let path = url.strip_prefix(&issuer).expect("an issuer URL");
        let exchanges: Vec<String> = run["exchanges"]
            .as_array()
            .expect("exchanges")
            .iter()
            .map(|exchange| {
                format!(
                    "{} {} {}",
                    exchange["method"].as_str().unwrap_or("?"),
                    exchange["path"].as_str().unwrap_or("?"),
                    exchange["status"]
                )
            })
            .collect();
        let discovery = [
            format!("POST {path} 401"),
            format!("GET /.well-known/oauth-protected-resource{path} 200"),
            "GET /.well-known/oauth-authorization-server 200".to_string(),
            "POST /oauth/register 201".to_string(),
            "POST /oauth/token 200".to_string(),
            format!("POST {path} 200"),
        ];
        assert!(
            exchanges.starts_with(&discovery),
            "{url}: 401, resource metadata from the challenge, AS metadata, registration, token, retry: {exchanges:#?}"
        );
        let after_discovery = &exchanges[discovery.len()..];
        assert!(
            after_discovery.iter().all(|exchange| !exchange.ends_with(" 401") && !exchange.ends_with(" 403")),
            "{url}: once authorized, every request (streams and DELETE included) is accepted: {exchanges:#?}"
        );
        assert_eq!(run["protocol_version"], *protocol_version, "{url}: {run}");
        let requests = run["authorization_requests"].as_array().expect("authorization requests");
        assert_eq!(requests.len(), 1, "{url}: one trip through the browser: {requests:?}");
        let request = &requests[0];
        assert_eq!(request["endpoint"], format!("{issuer}/oauth/authorize"), "{url}: {request}");
        assert_eq!(request["code_challenge_method"], "S256", "{url}: {request}");
        assert_eq!(request["resource"], url.as_str(), "{url}: the resource is the endpoint's own: {request}");
        let registered = run["registered_client_id"].as_str().unwrap_or_default();
        assert!(registered.starts_with("dyn_"), "{url}: a dynamically registered client: {run}");
        assert_eq!(request["client_id"], registered, "{url}: {request}");
        client_ids.push(registered.to_string());
        assert_eq!(run["callbacks"][0]["iss"], issuer.as_str(), "{url}: RFC 9207 iss reached the SDK: {run}");
        assert_eq!(run["token_scope"], "mcp:tools offline_access", "{url}: {run}");
        assert_eq!(run["has_refresh_token"], true, "{url}: {run}");
        let tools: Vec<&str> = run["tools"].as_array().expect("tools").iter().filter_map(Value::as_str).collect();
        assert!(tools.contains(tool), "{url}: {tool} listed: {tools:?}");
        assert_eq!(run["call"]["is_error"], false, "{url}: {run}");
        let customers = run["call"]["structured"]["customers"].as_array().map(Vec::len);
        assert_eq!(customers, Some(5), "{url}: the tool's structured result: {}", run["call"]);
    }
    assert_ne!(client_ids[0], client_ids[1], "each fresh SDK client registered itself");
    let listed = app.cli(&["clients", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    for client_id in &client_ids {
        let line = listed.lines().find(|line| line.starts_with(client_id.as_str())).unwrap_or_default();
        assert!(line.contains("MCP SDK test client"), "registered under the SDK's client_name: {listed}");
    }

    let refreshed = &runs[0];
    assert_eq!(refreshed["call_after_expiry"]["is_error"], false, "the call after expiry succeeded: {refreshed}");
    assert_eq!(refreshed["call_after_expiry"]["refresh_token_rotated"], true, "{refreshed}");
    let refreshes: Vec<&Value> = refreshed["exchanges"]
        .as_array()
        .expect("exchanges")
        .iter()
        .filter(|exchange| exchange["grant_type"] == "refresh_token")
        .collect();
    assert!(!refreshes.is_empty(), "the SDK refreshed the expired token: {refreshed}");
    assert!(refreshes.iter().all(|exchange| exchange["status"] == 200), "every refresh succeeded: {refreshes:?}");

    let rows = list_customers_rows(&app);
    assert_eq!(rows.len(), endpoints.len() + 1, "every call audited (two on the first endpoint): {rows:?}");
    assert!(
        rows.iter().all(|row| row["user_id"] == "admin" && row["server"] == "customers"),
        "the audit rows name the person who consented: {rows:?}"
    );
}

#[test]
fn discovery_documents_validate_and_agree_on_one_issuer() {
    let app = spawn_app(Database::Sqlite);
    let issuer = app.public_url.clone();
    let (service_id, service_secret) = app.oauth_client("discovery robot", &["--tier", "service"]);
    let redirect_uri = unserved_loopback_callback();
    let (code_client_id, _) = app.oauth_client(
        "discovery app",
        &["--tier", "user", "--public", "--grant", "authorization_code", "--redirect-uri", &redirect_uri],
    );
    let report = authlib(
        "metadata",
        json!({"issuer": issuer, "client_id": service_id, "client_secret": service_secret,
               "code_client_id": code_client_id, "redirect_uri": redirect_uri}),
    );
    for (path, document) in report["documents"].as_object().expect("documents") {
        assert_eq!(document["status"], 200, "{path}: {document}");
        assert_eq!(document["rfc8414_error"], Value::Null, "{path}: authlib's RFC 8414 validator accepts it");
        assert_eq!(document["issuer"], issuer.as_str(), "{path}: the issuer is the public URL, byte for byte");
    }
    let redirect = &report["error_redirect"];
    assert_eq!(redirect["status"], 302, "an error after the redirect URI is known goes back to the client: {redirect}");
    assert_eq!(redirect["parameters"]["error"], "invalid_request", "PKCE plain is refused: {redirect}");
    assert_eq!(redirect["parameters"]["iss"], issuer.as_str(), "RFC 9207 iss on errors too: {redirect}");
    assert_eq!(report["token_iss"], issuer.as_str(), "the token's iss: {report}");
    let (_, metadata) = get_json(&format!("{}/.well-known/oauth-authorization-server", app.base_url));
    assert_eq!(metadata["authorization_response_iss_parameter_supported"], true, "RFC 9207 advertised: {metadata}");
    assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]), "PKCE S256 only: {metadata}");

    let resources = [
        ("", issuer.clone()),
        ("/mcp", format!("{issuer}/mcp")),
        ("/mcp/customers", format!("{issuer}/mcp/customers")),
    ];
    for (path, resource) in &resources {
        let (status, document) = get_json(&format!("{}/.well-known/oauth-protected-resource{path}", app.base_url));
        assert_eq!(status, 200, "PRM for {path:?}: {document}");
        assert_eq!(&document["resource"], resource, "RFC 9728 §3.3: resource is what the URL was built from");
        assert_eq!(document["authorization_servers"], json!([issuer]), "PRM for {path:?} names the issuer: {document}");
        assert_eq!(document["scopes_supported"], json!(["mcp:tools"]), "PRM for {path:?}: {document}");
    }
    let (status, _) = get_json(&format!("{}/.well-known/oauth-protected-resource/mcp/unknown", app.base_url));
    assert_eq!(status, 404, "no metadata for a server that is not configured");
}

#[test]
fn mcp_challenges_point_at_the_metadata_and_refuse_tokens_scoped_elsewhere() {
    let app = spawn_app(Database::Sqlite);
    let issuer = app.public_url.clone();

    for path in ["/mcp", "/mcp/customers"] {
        let reply =
            post_raw(&format!("{}{path}", app.base_url), &standard_headers("", None), &initialize_body("2025-11-25"));
        assert_eq!(reply.status, 401, "{path}: no credential: {}", reply.raw);
        let challenge = reply.www_authenticate.unwrap_or_default();
        let metadata_url = format!("{issuer}/.well-known/oauth-protected-resource{path}");
        assert!(
            challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
            "{path}: names the PRM: {challenge}"
        );
        assert!(challenge.contains("scope=\"mcp:tools\""), "{path}: a scope hint: {challenge}");
        assert!(!challenge.contains("error="), "{path}: RFC 6750 §3: no error code without a credential: {challenge}");
    }

    // Our own tokens carry OAuth scopes in the strict sense (`identity::has_scope`): a token granted
    // only its tier was never granted mcp:tools and is refused with 403. API keys keep their own
    // vocabulary: only a fine scope other than mcp:tools restricts them.
    let (service_id, service_secret) = app.oauth_client("tier-scoped robot", &["--tier", "service"]);
    let service_secret = service_secret.expect("a confidential client");
    let tier_only = ureq::post(&format!("{}/oauth/token", app.base_url))
        .send_form(&[
            ("grant_type", "client_credentials"),
            ("scope", "service"),
            ("client_id", &service_id),
            ("client_secret", &service_secret),
        ])
        .expect("a token scoped to the service tier")
        .into_json::<Value>()
        .expect("json");
    assert_eq!(tier_only["scope"], "service", "{tier_only}");
    let reply = post_raw(
        &format!("{}/mcp", app.base_url),
        &standard_headers(&bearer(tier_only["access_token"].as_str().unwrap_or_default()), None),
        &initialize_body("2025-11-25"),
    );
    assert_eq!(reply.status, 403, "a token granted only a tier does not reach /mcp: {}", reply.raw);
    let challenge = reply.www_authenticate.clone().unwrap_or_default();
    assert!(challenge.contains("error=\"insufficient_scope\""), "step-up is offered: {challenge}");
    let added = app.cli(&["users", "add", "analyst", "--tier", "user"]);
    assert!(added.status.success(), "users add: {}", String::from_utf8_lossy(&added.stderr));
    let key = app.cli(&["keys", "create", "--user", "analyst", "--scope", "ai:messages"]);
    assert!(key.status.success(), "keys create: {}", String::from_utf8_lossy(&key.stderr));
    let key = String::from_utf8_lossy(&key.stdout).trim().to_string();
    let reply = post_raw(
        &format!("{}/mcp", app.base_url),
        &standard_headers(&bearer(&key), None),
        &initialize_body("2025-11-25"),
    );
    assert_eq!(reply.status, 403, "a credential scoped to something else is refused: {}", reply.raw);
    let challenge = reply.www_authenticate.unwrap_or_default();
    assert!(challenge.contains("error=\"insufficient_scope\""), "the 403 says why: {challenge}");
    assert!(challenge.contains("scope=\"mcp:tools\""), "and which scope would do: {challenge}");
    assert_eq!(reply.body["error"], "insufficient_scope", "{}", reply.raw);
}
