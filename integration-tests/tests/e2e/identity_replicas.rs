//! Identity state shared through the database: two replicas on one PostgreSQL database trust each
//! other's tokens and keys, see each other's revocations, and finish each other's passkey ceremonies;
//! bad enrolment links are refused; signing out ends a browser session on every replica.

use std::time::Duration;

use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, Database, TestApp, eventually, spawn_app, spawn_app_with};
use serde_json::{Value, json};

fn status_of(result: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match result {
        Ok(response) => (response.status(), response.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap_or_default()),
        Err(error) => panic!("transport error: {error}"),
    }
}

fn client_credentials_token(app: &TestApp, id: &str, secret: &str) -> String {
    let response = ureq::post(&format!("{}/oauth/token", app.base_url))
        .set("Authorization", &format!("Basic {}", base64(&format!("{id}:{secret}"))))
        .send_form(&[("grant_type", "client_credentials"), ("scope", "mcp:tools")])
        .expect("client credentials grant");
    let body: Value = response.into_json().expect("json");
    body["access_token"].as_str().expect("access_token").to_string()
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| acc | (u32::from(*byte) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn mcp_status(app: &TestApp, token: &str) -> u16 {
    integration_tests::mcp::post_raw(
        &format!("{}/mcp", app.base_url),
        &integration_tests::mcp::standard_headers(&bearer(token), None),
        &integration_tests::mcp::initialize_body("2025-11-25"),
    )
    .status
}

/// A second replica on the first one's database, behind the same public URL (as behind a load
/// balancer): the issuer must be the same string on both.
fn second_replica(first: &TestApp) -> TestApp {
    let profile = integration_tests::DEFAULT_TEST_PROFILE
        .replace("server:\n", &format!("server:\n  public_url: {}\n", first.public_url));
    spawn_app_with(AppOptions::new(Database::Postgres).profile(&profile).sharing_database_of(first))
}

#[test]
fn replicas_share_keys_tokens_and_revocations() {
    let first = spawn_app(Database::Postgres);
    let second = second_replica(&first);
    let first_jwks: Value =
        ureq::get(&format!("{}/.well-known/jwks.json", first.base_url)).call().unwrap().into_json().unwrap();
    let second_jwks: Value =
        ureq::get(&format!("{}/.well-known/jwks.json", second.base_url)).call().unwrap().into_json().unwrap();
    assert_eq!(first_jwks, second_jwks, "one key table: both replicas publish the same keys");
    assert_eq!(
        first_jwks["keys"].as_array().map(Vec::len),
        Some(1),
        "the second replica did not mint a key of its own"
    );

    let (id, secret) = first.oauth_client("replicated-service", &["--tier", "user"]);
    let token = client_credentials_token(&first, &id, secret.as_deref().expect("a confidential client"));
    let mut session = Session::open(&format!("{}/mcp", second.base_url), &bearer(&token));
    let answer = session.call("customers__get_customer", json!({"id": 1}));
    assert!(answer["result"].is_object(), "a token minted by one replica works on the other: {answer}");
    let elsewhere = spawn_app_with(AppOptions::new(Database::Postgres).sharing_database_of(&first));
    assert_eq!(mcp_status(&elsewhere, &token), 401, "a replica with another public URL is another issuer");

    let secret = secret.unwrap_or_default();
    let revoked = ureq::post(&format!("{}/oauth/revoke", first.base_url))
        .set("Authorization", &format!("Basic {}", base64(&format!("{id}:{secret}"))))
        .send_form(&[("token", &token)]);
    assert_eq!(status_of(revoked).0, 200, "revocation answers 200");
    assert_eq!(mcp_status(&first, &token), 401, "revoked at once on the replica that revoked it");
    assert!(
        eventually(Duration::from_secs(5), || mcp_status(&second, &token) == 401),
        "the other replica sees the revocation within its poll interval"
    );
}

#[test]
fn a_passkey_ceremony_started_on_one_replica_is_finished_on_the_other_once() {
    let first = spawn_app(Database::Postgres);
    let second = second_replica(&first);
    let started: Value = ureq::post(&format!("{}/webauthn/login/start", first.base_url))
        .send_json(json!({}))
        .expect("login start")
        .into_json()
        .expect("json");
    let ceremony = started["ceremony"].as_str().expect("a ceremony id");
    assert!(started["options"]["publicKey"]["challenge"].is_string(), "a WebAuthn challenge: {started}");
    // A syntactically valid assertion that proves nothing: the point is which error comes back.
    let credential = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "e30", "signature": "AAAA", "userHandle": null}
    });
    let finish = |app: &TestApp| {
        status_of(
            ureq::post(&format!("{}/webauthn/login/finish", app.base_url))
                .send_json(json!({"ceremony": ceremony, "credential": credential})),
        )
    };
    let (status, body) = finish(&second);
    assert_eq!(status, 401, "the other replica found the ceremony and judged the assertion: {body}");
    let (status, body) = finish(&first);
    assert_eq!(status, 400, "the ceremony was spent by the first finish: {body}");
    assert!(body.contains("expired or was already finished"), "{body}");
}

#[test]
fn the_bootstrap_enrolment_link_opens_enrolment_and_bad_links_are_refused() {
    let app = spawn_app(Database::Sqlite);
    assert!(
        app.admin_enrolment_link.contains("/enrol?token=cas_en_"),
        "printed at first start: {}",
        app.admin_enrolment_link
    );
    let link = app.admin_enrolment_link.replace(&app.public_url, &app.base_url);
    let (status, page) = status_of(ureq::get(&link).call());
    assert_eq!(status, 200, "the link opens the enrolment page");
    assert!(page.contains("Create a passkey for <b>admin</b>"), "{page}");
    let forged = link.replace("token=cas_en_", "token=cas_en_x");
    assert_eq!(status_of(ureq::get(&forged).call()).0, 400, "an unknown token is refused");
    let (status, _) = status_of(ureq::get(&format!("{}/enrol?token=nope", app.base_url)).call());
    assert_eq!(status, 400, "a malformed token is refused");
    let started = status_of(
        ureq::post(&format!("{}/webauthn/register/start", app.base_url)).send_json(json!({"token": "cas_en_unknown"})),
    );
    assert_eq!(started.0, 400, "no ceremony without a valid link: {}", started.1);
}

#[test]
fn a_browser_session_works_on_every_replica_and_signing_out_ends_it_everywhere() {
    let first = spawn_app(Database::Postgres);
    let second = second_replica(&first);
    let job = json!({
        "enrol": first.admin_enrolment_link,
        "steps": [],
        "probe": format!("{}/", second.base_url),
        "sign_out": format!("{}/", first.public_url),
    });
    let outcome = integration_tests::run_python_job("passkey_browser.py", &job);
    assert_eq!(outcome["probe_signed_in_before_sign_out"], true, "the session opened the other replica: {outcome}");
    let cookie = outcome["session_cookie"].as_str().expect("the browser had a session cookie").to_string();
    assert!(cookie.starts_with("cas_ss_"), "a session credential: {outcome}");
    let home = |app: &TestApp| {
        status_of(ureq::get(&format!("{}/", app.base_url)).set("Cookie", &format!("castellan_session={cookie}")).call())
            .1
    };
    assert!(
        !home(&second).contains("Signed in as"),
        "after signing out the old cookie opens nothing on another replica"
    );
    assert!(!home(&first).contains("Signed in as"), "nor on the replica that ended it");
}
