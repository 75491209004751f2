//! No bypass: every route of the HTTP surface, called without a credential, with a user's key and
//! with an admin's key, answers exactly as this table says. The table is checked against the routes
//! declared in the daemon's source, so a new route without an entry here fails the test.

use std::collections::BTreeSet;

use integration_tests::mcp::{bearer, initialize_body};
use integration_tests::{Database, repo_root, spawn_app};

/// (method, route as declared, path to call, body, statuses for: no credential, user key, admin key).
const TABLE: &[(&str, &str, &str, &str, [u16; 3])] = &[
    ("GET", "/", "/", "", [200, 200, 200]),
    ("GET", "/healthz", "/healthz", "", [200, 200, 200]),
    ("GET", "/readyz", "/readyz", "", [200, 200, 200]),
    ("GET", "/metrics", "/metrics", "", [200, 200, 200]),
    ("GET", "/.well-known/jwks.json", "/.well-known/jwks.json", "", [200, 200, 200]),
    ("GET", "/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server", "", [200, 200, 200]),
    ("GET", "/.well-known/openid-configuration", "/.well-known/openid-configuration", "", [200, 200, 200]),
    ("GET", "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource", "", [200, 200, 200]),
    (
        "GET",
        "/.well-known/oauth-protected-resource/{tail:.*}",
        "/.well-known/oauth-protected-resource/mcp",
        "",
        [200, 200, 200],
    ),
    // A streaming 200: the status arrives with the headers and the unread body is dropped (hang-up).
    ("GET", "/api/v1/events", "/api/v1/events", "", [401, 403, 200]),
    ("GET", "/api/v1/traces/{trace_id}", "/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736", "", [401, 403, 200]),
    ("GET", "/api/v1/ai-requests", "/api/v1/ai-requests", "", [401, 403, 200]),
    ("GET", "/api/v1/budgets", "/api/v1/budgets", "", [401, 403, 200]),
    ("GET", "/api/v1/costs", "/api/v1/costs", "", [401, 403, 200]),
    // Skills: any Castellan credential; the default profile names no skill rule, so the listing is
    // empty and a named skill is unknown (404) to everyone.
    ("GET", "/api/v1/skills", "/api/v1/skills", "", [401, 200, 200]),
    ("GET", "/api/v1/skills/{name}", "/api/v1/skills/pdf", "", [401, 404, 404]),
    ("GET", "/api/v1/skills/{name}/{version}", "/api/v1/skills/pdf/1.0.0", "", [401, 404, 404]),
    (
        "GET",
        "/api/v1/skills/{name}/{version}/archive.tar.gz",
        "/api/v1/skills/pdf/1.0.0/archive.tar.gz",
        "",
        [401, 404, 404],
    ),
    (
        "GET",
        "/marketplace/.claude-plugin/marketplace.json",
        "/marketplace/.claude-plugin/marketplace.json",
        "",
        [401, 200, 200],
    ),
    ("GET", "/marketplace/plugins/{name}/plugin.zip", "/marketplace/plugins/pdf/plugin.zip", "", [401, 404, 404]),
    ("GET", "/enrol", "/enrol", "", [400, 400, 400]),
    ("POST", "/hooks/{event}", "/hooks/PreToolUse", "", [401, 400, 400]),
    ("GET", "/login", "/login", "", [200, 200, 200]),
    ("GET", "/login/federated/callback", "/login/federated/callback", "", [404, 404, 404]),
    ("GET", "/login/federated/{index}", "/login/federated/0", "", [404, 404, 404]),
    ("POST", "/logout", "/logout", "", [303, 303, 303]),
    ("POST", "/mcp", "/mcp", "INIT", [401, 200, 200]),
    ("GET", "/mcp", "/mcp", "", [401, 406, 406]),
    ("DELETE", "/mcp", "/mcp", "", [401, 400, 400]),
    ("POST", "/mcp/{server}", "/mcp/customers", "INIT", [401, 200, 200]),
    ("GET", "/mcp/{server}", "/mcp/customers", "", [401, 406, 406]),
    ("DELETE", "/mcp/{server}", "/mcp/customers", "", [401, 400, 400]),
    // The AI gateway: authenticated before the body is read; an empty body without a JSON
    // Content-Type is then a 415.
    ("POST", "/v1/chat/completions", "/v1/chat/completions", "", [401, 415, 415]),
    ("POST", "/v1/messages", "/v1/messages", "", [401, 415, 415]),
    ("POST", "/v1/messages/count_tokens", "/v1/messages/count_tokens", "", [401, 415, 415]),
    ("GET", "/v1/models", "/v1/models", "", [401, 200, 200]),
    ("POST", "/v1/models/{call}", "/v1/models/gemini-2.5-flash:generateContent", "", [401, 415, 415]),
    ("POST", "/v1/responses", "/v1/responses", "", [401, 415, 415]),
    ("GET", "/v1beta/models", "/v1beta/models", "", [401, 200, 200]),
    ("POST", "/v1beta/models/{call}", "/v1beta/models/gemini-2.5-flash:generateContent", "", [401, 415, 415]),
    ("GET", "/oauth/authorize", "/oauth/authorize", "", [400, 400, 400]),
    ("GET", "/oauth/authorize/continue", "/oauth/authorize/continue", "", [400, 400, 400]),
    ("POST", "/oauth/consent", "/oauth/consent", "", [400, 400, 400]),
    ("POST", "/oauth/token", "/oauth/token", "", [400, 400, 400]),
    ("POST", "/oauth/revoke", "/oauth/revoke", "", [400, 400, 400]),
    ("POST", "/oauth/introspect", "/oauth/introspect", "", [400, 400, 400]),
    ("POST", "/oauth/register", "/oauth/register", "", [400, 400, 400]),
    ("GET", "/oauth/userinfo", "/oauth/userinfo", "", [401, 200, 200]),
    ("POST", "/oauth/userinfo", "/oauth/userinfo", "", [401, 200, 200]),
    ("GET", "/static/passkeys.js", "/static/passkeys.js", "", [200, 200, 200]),
    ("POST", "/webauthn/login/start", "/webauthn/login/start", "", [200, 200, 200]),
    ("POST", "/webauthn/login/finish", "/webauthn/login/finish", "", [415, 415, 415]),
    ("POST", "/webauthn/register/start", "/webauthn/register/start", "", [415, 415, 415]),
    ("POST", "/webauthn/register/finish", "/webauthn/register/finish", "", [415, 415, 415]),
];

/// Every `.route("PATH", web::METHOD()` in the daemon's source, whitespace and line breaks allowed.
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut pending = vec![repo_root().join("daemon/src")];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).expect("read dir").map(|entry| entry.expect("entry").path()));
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("read source");
        for piece in source.split(".route(").skip(1) {
            let rest = piece.trim_start();
            let Some(rest) = rest.strip_prefix('"') else { continue };
            let Some((route, rest)) = rest.split_once('"') else { continue };
            let rest = rest.trim_start().trim_start_matches(',').trim_start();
            let Some(rest) = rest.strip_prefix("web::") else { continue };
            let method: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            routes.insert((method.to_ascii_uppercase(), route.to_string()));
        }
    }
    routes
}

#[test]
fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let declared = declared_routes();
    let tabled: BTreeSet<(String, String)> =
        TABLE.iter().map(|(method, route, ..)| (method.to_string(), route.to_string())).collect();
    let missing: Vec<_> = declared.difference(&tabled).collect();
    assert!(missing.is_empty(), "routes without an entry in the no-bypass table: {missing:?}");
    let stale: Vec<_> = tabled.difference(&declared).collect();
    assert!(stale.is_empty(), "table entries for routes that no longer exist: {stale:?}");

    let app = spawn_app(Database::Sqlite);
    let user_key = app.user_with_key("ulrich", "user");
    let credentials = [String::new(), bearer(&user_key), bearer(&app.admin_key)];
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut mismatches = Vec::new();
    for (method, route, path, body, expected) in TABLE {
        for (index, authorization) in credentials.iter().enumerate() {
            let mut request = agent.request(method, &format!("{}{path}", app.base_url));
            if !authorization.is_empty() {
                request = request.set("Authorization", authorization);
            }
            let result = if *body == "INIT" {
                request
                    .set("Content-Type", "application/json")
                    .set("Accept", "application/json, text/event-stream")
                    .send_string(&initialize_body("2025-11-25"))
            } else if *method == "POST" {
                request.send_string(body)
            } else {
                request.call()
            };
            let status = match result {
                Ok(response) => response.status(),
                Err(ureq::Error::Status(status, _)) => status,
                Err(error) => panic!("{method} {path}: {error}"),
            };
            if status != expected[index] {
                let who = ["no credential", "user key", "admin key"][index];
                mismatches.push(format!("{method} {route} ({who}): {status}, expected {}", expected[index]));
            }
        }
    }
    assert!(mismatches.is_empty(), "routes answering differently from the table:\n{}", mismatches.join("\n"));
}
