//! Client ID Metadata Documents end to end: a client whose id is an https URL (served on loopback
//! with a throwaway CA that the profile trusts) is fetched, shown on the consent page, gets a code in
//! headless Chromium, redeems it as a public client, and calls a tool with the token.

use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, Fixture, TestApp, spawn_app_with};
use serde_json::{Value, json};

/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct DocumentServer {
    _fixture: Fixture,
    client_id: String,
}

fn start_document_server(ca_out: &std::path::Path, redirect_uri: &str) -> DocumentServer {
    let args = ["--ca-out", ca_out.to_str().unwrap(), "--redirect-uri", redirect_uri];
    let fixture = Fixture::start("cimd_server.py", &args, "cimd listening on ");
    DocumentServer { client_id: format!("{}/client.json", fixture.url), _fixture: fixture }
}

/// Runs integration-tests/clients/passkey_browser.py with a JSON job.
fn browser(job: &Value) -> Value {
    integration_tests::run_python_job("passkey_browser.py", job)
}

fn app_trusting(ca: &std::path::Path, allow_private: bool) -> TestApp {
    let profile = format!(
        "{DEFAULT_TEST_PROFILE}identity:\n  allow_private_addresses: {allow_private}\n  extra_ca_file: {}\n",
        ca.display()
    );
    spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile))
}

fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str) -> String {
    let query = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
        ("scope", "mcp:tools"),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}", urlencode(value)))
    .collect::<Vec<_>>()
    .join("&");
    format!("{}/oauth/authorize?{query}", app.public_url)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%3A", ":").replace("%2F", "/"))
    })
}

#[test]
fn a_metadata_document_client_signs_in_redeems_its_code_and_calls_a_tool() {
    let dir = tempdir();
    let ca = dir.join("ca.pem");
    let redirect_uri = format!("http://127.0.0.1:{}/cb", integration_tests::free_port());
    let document = start_document_server(&ca, &redirect_uri);
    let app = app_trusting(&ca, true);

    let job = json!({
        "enrol": app.admin_enrolment_link,
        "steps": [{"authorize": authorize_url(&app, &document.client_id, &redirect_uri), "callback": redirect_uri}],
    });
    let outcome = browser(&job);
    let result = &outcome["results"][0];
    assert!(result["error_page"].is_null(), "the authorization finished: {outcome}");
    let consent = result["consent"].as_str().expect("a first authorization asks for consent");
    for (shown, what) in [
        ("Metadata Document Client", "the client's name from its document"),
        ("Published at localhost", "the host of the client id URL"),
        ("127.0.0.1", "the redirect host"),
        ("runs on this computer", "the warning for a redirect to this machine"),
        ("mcp:tools", "the scope"),
    ] {
        assert!(consent.contains(shown), "the consent page shows {what}: {consent}");
    }
    let callback = result["url"].as_str().unwrap();
    assert_eq!(query_value(callback, "iss").as_deref(), Some(app.public_url.as_str()), "RFC 9207 iss: {callback}");
    let code = query_value(callback, "code").expect("a code");

    let token = ureq::post(&format!("{}/oauth/token", app.base_url)).send_form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", VERIFIER),
        ("client_id", &document.client_id),
    ]);
    let token: Value = token.expect("the public metadata-document client redeems its code").into_json().unwrap();
    let access = token["access_token"].as_str().expect("an access token");
    assert!(token["refresh_token"].is_string(), "a refresh token too: {token}");

    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(access));
    assert!(session.tool_names().contains(&"customers__list_customers".to_string()), "the token lists tools");
    let called = session.call("customers__get_customer", json!({"id": 1}));
    assert!(called["result"].is_object(), "the token calls a tool: {called}");
    let rows = app.audit_rows();
    assert_eq!(rows.last().unwrap()["user_id"], "admin", "the call is audited as the signed-in person: {rows:?}");

    let secret_attempt = ureq::post(&format!("{}/oauth/token", app.base_url)).send_form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", token["refresh_token"].as_str().unwrap()),
        ("client_id", &document.client_id),
        ("client_secret", "anything"),
    ]);
    let status = secret_attempt.err().and_then(|error| error.into_response()).map(|response| response.status());
    assert_eq!(status, Some(401), "a metadata-document client never authenticates with a secret");
}

#[test]
fn without_the_private_address_allowance_a_loopback_document_is_never_fetched() {
    let dir = tempdir();
    let ca = dir.join("ca.pem");
    let redirect_uri = format!("http://127.0.0.1:{}/cb", integration_tests::free_port());
    let document = start_document_server(&ca, &redirect_uri);
    let app = app_trusting(&ca, false);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let response = match agent.get(&authorize_url(&app, &document.client_id, &redirect_uri)).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(response.status(), 400, "refused with a page");
    assert!(response.header("location").is_none(), "never redirected to the client");
    let body = response.into_string().unwrap();
    assert!(body.contains("not allowed") || body.contains("address"), "the page says why: {body}");

    // The token endpoint resolves URL client ids too: the same per-address bound applies there.
    let statuses: Vec<u16> = (0..12)
        .map(|_| {
            let attempt = ureq::post(&format!("{}/oauth/token", app.base_url)).send_form(&[
                ("grant_type", "authorization_code"),
                ("code", "cas_ac_x"),
                ("client_id", &document.client_id),
            ]);
            match attempt {
                Ok(response) => response.status(),
                Err(ureq::Error::Status(status, _)) => status,
                Err(error) => panic!("{error}"),
            }
        })
        .collect();
    assert!(statuses.iter().take(9).all(|status| *status == 401), "refused clients first: {statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "then the address is slowed down: {statuses:?}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("castellan-cimd-{}", integration_tests::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
