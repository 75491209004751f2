//! Federation end to end: the real binary trusts a loopback fake OIDC issuer
//! (`fixtures/fake_issuer.py`) through `identity.issuers`. Its access tokens call tools under the
//! federated subject and mapped tier (RBAC and audit as for anyone else), bad tokens are refused
//! with 401 `invalid_token`, its keys rotate in the middle of a test with exactly one refetch, and a
//! person signs in through it in headless Chromium and then uses Castellan's own token.

use std::time::{Duration, Instant};

use integration_tests::mcp::{Reply, Session, bearer, initialize_body, post_raw, standard_headers};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, Fixture, TestApp, eventually, spawn_app_with};
use serde_json::{Value, json};

/// The API audience the issuer's access tokens carry for Castellan, and Castellan's client id at the
/// issuer (the audience of its ID tokens): different, as at a real identity provider.
const AUDIENCE: &str = "castellan-api";
const CLIENT_ID: &str = "castellan-web";
/// The on-demand fetch interval of the rotation test (production: 30 s).
const FETCH_INTERVAL_SECONDS: u64 = 4;

/// The fake issuer, killed on drop.
struct FakeIssuer {
    /// Kept for its lifetime: dropping it stops the issuer.
    _fixture: Fixture,
    url: String,
}

impl FakeIssuer {
    fn start() -> FakeIssuer {
        let fixture = Fixture::start(
            "fake_issuer.py",
            &["--audience", AUDIENCE, "--client-id", CLIENT_ID],
            "fake-issuer listening on ",
        );
        FakeIssuer { url: fixture.url.clone(), _fixture: fixture }
    }

    fn admin(&self, path: &str, body: Value) -> Value {
        ureq::post(&format!("{}{path}", self.url))
            .send_json(body)
            .unwrap_or_else(|error| panic!("fake issuer {path}: {error}"))
            .into_json()
            .expect("json")
    }

    /// A token with the issuer's defaults (iss, iat, exp in 5 min, jti) and these claims / controls.
    fn mint(&self, body: Value) -> String {
        self.admin("/admin/mint", body)["token"].as_str().expect("a token").to_string()
    }

    /// An access token for `sub` in `groups`, with the `mcp:tools` scope.
    fn access_token(&self, sub: &str, groups: &[&str]) -> String {
        self.mint(json!({"sub": sub, "aud": AUDIENCE, "groups": groups, "scope": "mcp:tools"}))
    }

    /// The new current key id; the previous key stays published as retired.
    fn rotate(&self) -> String {
        self.admin("/admin/rotate", json!({"alg": "RS256"}))["current"].as_str().expect("current kid").to_string()
    }

    fn request_log(&self) -> Vec<String> {
        ureq::get(&format!("{}/admin/log", self.url)).call().expect("log").into_json().expect("json")
    }

    fn count(&self, request: &str) -> usize {
        self.request_log().iter().filter(|line| *line == request).count()
    }

    fn jwks_fetches(&self) -> usize {
        self.count("GET /jwks")
    }
}

/// The default test profile trusting the issuer at `issuer_url`: `engineers` map to user,
/// `platform-admins` to admin.
fn profile(issuer_url: &str, default_tier: Option<&str>) -> String {
    let default_tier = default_tier.map(|tier| format!(", default_tier: {tier}")).unwrap_or_default();
    format!(
        "{DEFAULT_TEST_PROFILE}identity:\n  key_refetch_interval: {FETCH_INTERVAL_SECONDS}s\n  issuers:\n    - {{ issuer: \"{}\", audience: {AUDIENCE}, algorithms: [RS256], \
tier_claim: groups, tier_map: {{ engineers: user, platform-admins: admin }}, client_id: {CLIENT_ID}, \
display_name: fake{default_tier} }}\n",
        issuer_url
    )
}

fn app_trusting(issuer: &FakeIssuer, default_tier: Option<&str>, options: AppOptions) -> TestApp {
    let app = spawn_app_with(options.profile(&profile(&issuer.url, default_tier)));
    assert!(
        eventually(Duration::from_secs(10), || app.log().contains("federated issuer discovered")),
        "the issuer is discovered at start; log:\n{}",
        app.log()
    );
    app
}

fn initialize(app: &TestApp, token: &str) -> Reply {
    let authorization = bearer(token);
    post_raw(&format!("{}/mcp", app.base_url), &standard_headers(&authorization, None), &initialize_body("2025-06-18"))
}

/// Asserts a 401 `invalid_token` whose description contains `reason`.
fn assert_refused(app: &TestApp, token: &str, reason: &str, what: &str) {
    let reply = initialize(app, token);
    assert_eq!(reply.status, 401, "{what}: refused: {}", reply.raw);
    let challenge = reply.www_authenticate.unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{what}: invalid_token challenge: {challenge}");
    assert!(challenge.contains(reason), "{what}: the description says {reason:?}: {challenge}");
}

fn userinfo(app: &TestApp, token: &str) -> Value {
    ureq::get(&format!("{}/oauth/userinfo", app.base_url))
        .set("authorization", &bearer(token))
        .call()
        .expect("userinfo answers")
        .into_json()
        .expect("json")
}

#[test]
fn federated_tokens_call_tools_as_the_prefixed_subject_under_the_mapped_tier() {
    let issuer = FakeIssuer::start();
    let app = app_trusting(&issuer, None, AppOptions::new(Database::Sqlite));
    let url = format!("{}/mcp", app.base_url);

    let engineer = issuer.access_token("carol", &["engineers", "sales"]);
    let info = userinfo(&app, &engineer);
    assert_eq!(info["sub"], "fake/carol", "the subject is display name, slash, sub: {info}");
    assert_eq!(info["tier"], "user", "engineers map to user: {info}");

    let mut carol = Session::open(&url, &bearer(&engineer));
    let tools = carol.tool_names();
    assert!(tools.contains(&"customers__get_customer".to_string()), "a user sees read tools: {tools:?}");
    assert!(!tools.contains(&"customers__delete_customer".to_string()), "a user does not see delete: {tools:?}");
    let read = carol.call("customers__get_customer", json!({"id": 1}));
    assert_eq!(read["result"]["structuredContent"]["name"], "Ada Lovelace", "the call goes through: {read}");
    let denied = carol.call("customers__delete_customer", json!({"id": 1}));
    assert_eq!(denied["error"]["code"], -32003, "RBAC denies delete to the user tier: {denied}");
    assert!(
        denied["error"]["message"].as_str().unwrap_or_default().contains("no-destructive-for-users"),
        "the deciding rule is the users' one: {denied}"
    );

    let admin_token = issuer.access_token("dave", &["engineers", "platform-admins"]);
    assert_eq!(userinfo(&app, &admin_token)["tier"], "admin", "the highest mapped tier wins");
    let mut dave = Session::open(&url, &bearer(&admin_token));
    let deleted = dave.call("customers__delete_customer", json!({"id": 2}));
    assert_eq!(deleted["result"]["isError"], false, "an explicitly mapped admin may delete: {deleted}");

    let rows = app.audit_rows();
    let row = |tool: &str, status: &str| {
        rows.iter()
            .find(|row| row["tool"] == tool && row["status"] == status)
            .unwrap_or_else(|| panic!("an audit row for {tool} {status}: {rows:?}"))
            .clone()
    };
    assert_eq!(row("get_customer", "success")["user_id"], "fake/carol", "the read is audited under the subject");
    assert_eq!(row("delete_customer", "denied")["user_id"], "fake/carol", "so is the denial");
    assert_eq!(row("delete_customer", "success")["user_id"], "fake/dave", "and the admin's delete");

    let unmapped = issuer.access_token("erin", &["sales"]);
    assert_refused(&app, &unmapped, "no tier", "groups that map to nothing, without a default tier");
    assert_eq!(issuer.jwks_fetches(), 1, "only the discovery fetched keys: {:?}", issuer.request_log());
}

#[test]
fn bad_federated_tokens_are_refused_with_invalid_token() {
    let issuer = FakeIssuer::start();
    let app = app_trusting(&issuer, Some("user"), AppOptions::new(Database::Sqlite));
    let good = json!({"sub": "carol", "aud": AUDIENCE, "scope": "mcp:tools"});
    let with = |changes: Value| {
        let mut body = good.clone();
        for (name, value) in changes.as_object().expect("object") {
            body[name] = value.clone();
        }
        issuer.mint(body)
    };
    assert_eq!(initialize(&app, &with(json!({}))).status, 200, "the baseline token is accepted");
    let cases = [
        ("wrong audience", with(json!({"aud": "someone-else"})), "another resource"),
        ("wrong issuer: not configured", with(json!({"iss": "http://127.0.0.1:1"})), "issued by someone else"),
        ("wrong issuer: a trailing slash", with(json!({"iss": format!("{}/", issuer.url)})), "issued by someone else"),
        ("expired beyond the leeway", with(json!({"ttl": -120})), "expired"),
        ("no expiry", with(json!({"exp": null})), "not a well-formed"),
        ("issued in the future", with(json!({"iat": 4_000_000_000_u64, "exp": 4_000_000_600_u64})), "not valid yet"),
        ("a key the issuer never published", with(json!({"unpublished": true})), "key this server does not trust"),
        (
            "ES256 when only RS256 is pinned",
            with(json!({"unpublished": true, "alg": "ES256"})),
            "algorithm its issuer is not trusted",
        ),
        (
            "an ID token (typ JWT, our client id as audience)",
            with(json!({"typ": "JWT", "aud": CLIENT_ID, "nonce": "n-1"})),
            "ID token",
        ),
        ("an ID token without a nonce", with(json!({"typ": "JWT", "aud": CLIENT_ID})), "ID token"),
        ("not an access token type", with(json!({"typ": "logout+jwt"})), "not an access token"),
        ("no subject", with(json!({"sub": null})), "does not name its subject"),
    ];
    for (what, token, reason) in &cases {
        assert_refused(&app, token, reason, what);
    }
    // Replays are refused the same way and cause no traffic: one discovery, at most one refetch for
    // the unknown key id, whatever the number of bad tokens.
    for (what, token, reason) in &cases {
        assert_refused(&app, token, reason, what);
    }
    let fetches = issuer.jwks_fetches();
    assert!(fetches <= 2, "bad tokens cannot drive key fetches: {fetches} in {:?}", issuer.request_log());
}

#[test]
fn keys_rotate_mid_test_with_exactly_one_refetch_per_interval() {
    let issuer = FakeIssuer::start();
    let app = app_trusting(&issuer, None, AppOptions::new(Database::Sqlite));
    assert_eq!(issuer.jwks_fetches(), 1, "discovery fetched the key set once");

    let signed_by_a = issuer.access_token("carol", &["engineers"]);
    assert_eq!(initialize(&app, &signed_by_a).status, 200, "a token signed with key A is accepted");
    // Minted now, presented only after A is withdrawn.
    let also_signed_by_a = issuer.access_token("carol", &["engineers"]);
    assert_eq!(issuer.jwks_fetches(), 1, "a known key fetches nothing");

    let key_b = issuer.rotate();
    let signed_by_b = issuer.access_token("carol", &["engineers"]);
    let rotated_at = Instant::now();
    assert_eq!(initialize(&app, &signed_by_b).status, 200, "a token signed with the new key B is accepted");
    assert_eq!(issuer.jwks_fetches(), 2, "after exactly one refetch for {key_b}: {:?}", issuer.request_log());

    for attempt in 0..5 {
        let unknown = issuer.mint(json!({"sub": "mallory", "aud": AUDIENCE, "unpublished": true}));
        assert_refused(&app, &unknown, "key this server does not trust", &format!("unknown kid, attempt {attempt}"));
    }
    assert!(
        rotated_at.elapsed() < Duration::from_secs(FETCH_INTERVAL_SECONDS),
        "the replays ran within the interval (took {:?}); the count below would not prove anything",
        rotated_at.elapsed()
    );
    assert_eq!(issuer.jwks_fetches(), 2, "unknown kids within the interval fetch nothing more");

    issuer.admin("/admin/drop-retired", json!({}));
    assert_eq!(initialize(&app, &signed_by_a).status, 200, "A's cached token holds until Castellan refetches");
    std::thread::sleep(Duration::from_secs(FETCH_INTERVAL_SECONDS) + Duration::from_millis(500));
    let unknown = issuer.mint(json!({"sub": "mallory", "aud": AUDIENCE, "unpublished": true}));
    assert_refused(&app, &unknown, "key this server does not trust", "an unknown kid after the interval");
    assert_eq!(issuer.jwks_fetches(), 3, "after the interval an unknown kid refetches once more");

    assert_refused(&app, &also_signed_by_a, "key this server does not trust", "a new token signed with withdrawn A");
    assert_refused(&app, &signed_by_a, "key this server does not trust", "a cached token whose key A was withdrawn");
    assert_eq!(initialize(&app, &signed_by_b).status, 200, "B's tokens are unaffected");
    assert_eq!(issuer.jwks_fetches(), 3, "A's tokens do not refetch again within the interval");
}

#[test]
fn an_unreachable_issuer_does_not_stop_the_daemon_and_its_tokens_get_a_503() {
    let minting = FakeIssuer::start();
    // Nothing listens there.
    let dead = format!("http://127.0.0.1:{}", integration_tests::free_port());
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile(&dead, Some("user"))));
    assert!(
        eventually(Duration::from_secs(10), || app.log().contains("federated issuer discovery failed")),
        "the failure is logged; log:\n{}",
        app.log()
    );
    let token = minting.mint(json!({"sub": "carol", "aud": AUDIENCE, "iss": dead}));
    for attempt in 0..2 {
        let reply = initialize(&app, &token);
        assert_eq!(
            reply.status, 503,
            "attempt {attempt}: a token of an issuer not yet discovered: try again: {}",
            reply.raw
        );
    }
    let key = app.user_with_key("alice", "user");
    assert_eq!(initialize(&app, &key).status, 200, "everything else works");
}

/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A query parameter of `url`, percent-decoded.
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Runs integration-tests/clients/federated_browser.py with a JSON job.
fn browser(job: &Value) -> Value {
    integration_tests::run_python_job("federated_browser.py", job)
}

#[test]
fn a_person_signs_in_through_the_issuer_in_chromium_and_uses_castellans_token() {
    let issuer = FakeIssuer::start();
    let app = app_trusting(&issuer, Some("user"), AppOptions::new(Database::Sqlite));
    let redirect_uri = format!("http://127.0.0.1:{}/cb", integration_tests::free_port());
    let (client_id, _) = app.oauth_client(
        "federated-app",
        &["--tier", "user", "--grant", "authorization_code", "--redirect-uri", &redirect_uri, "--public"],
    );
    let challenge = castellan::identity::pkce::s256(VERIFIER);
    let query = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
        ("scope", "mcp:tools"),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}", urlencode(value)))
    .collect::<Vec<_>>()
    .join("&");
    let authorize = format!("{}/oauth/authorize?{query}", app.public_url);

    let outcome = browser(&json!({"authorize": authorize, "callback": redirect_uri, "link": "federated-0"}));
    assert!(outcome["error_page"].is_null(), "the authorization finished: {outcome}");
    let navigations: Vec<&str> =
        outcome["navigations"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    // Redirects do not commit; the pages that did: sign-in, then (after the issuer and Castellan's
    // callback, all redirects) the continued authorization request with its consent page.
    assert!(
        navigations.iter().any(|url| url.starts_with(&format!("{}/login?flow=", app.public_url)))
            && navigations.iter().any(|url| url.starts_with(&format!("{}/oauth/authorize/continue?", app.public_url))),
        "the browser signed in and came back to the authorization request: {navigations:?}"
    );
    let log = issuer.request_log();
    assert!(log.contains(&"GET /authorize".to_string()), "the browser went to the issuer: {log:?}");
    assert!(log.contains(&"POST /token".to_string()), "Castellan redeemed the issuer's code: {log:?}");

    let callback = outcome["url"].as_str().expect("url");
    assert_eq!(query_value(callback, "state").as_deref(), Some("s1"), "the client's state: {callback}");
    assert_eq!(query_value(callback, "iss").as_deref(), Some(app.public_url.as_str()), "RFC 9207 iss: {callback}");
    let code = query_value(callback, "code").expect("a code");
    let token: Value = ureq::post(&format!("{}/oauth/token", app.base_url))
        .send_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ])
        .expect("the code is redeemed")
        .into_json()
        .expect("json");
    let access = token["access_token"].as_str().expect("Castellan's access token");
    assert_eq!(userinfo(&app, access)["sub"], "fake/alice", "Castellan's token is for the federated person");

    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(access));
    let called = session.call("customers__get_customer", json!({"id": 1}));
    assert!(called["result"].is_object(), "the token calls a tool: {called}");
    let rows = app.audit_rows();
    assert_eq!(rows.last().expect("a row")["user_id"], "fake/alice", "audited as the federated person: {rows:?}");
    let users = app.cli(&["users", "list"]);
    let listing = String::from_utf8_lossy(&users.stdout);
    assert!(
        listing.lines().any(|line| line.contains("fake/alice") && line.contains("user")),
        "a local user was created with the mapped tier: {listing}"
    );
}

/// A federated sign-in driven by hand, without a browser: each redirect is followed explicitly and
/// the browser-binding cookie carried (or not) on purpose.
struct HandDriven<'a> {
    app: &'a TestApp,
    agent: ureq::Agent,
}

impl<'a> HandDriven<'a> {
    fn new(app: &'a TestApp) -> Self {
        HandDriven { app, agent: ureq::AgentBuilder::new().redirects(0).build() }
    }

    fn get(&self, url: &str, cookie: Option<&str>) -> (u16, Option<String>, Vec<String>, String) {
        let mut request = self.agent.get(url);
        if let Some(cookie) = cookie {
            request = request.set("cookie", cookie);
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("GET {url}: {error}"),
        };
        let status = response.status();
        let location = response.header("location").map(str::to_string);
        let cookies = response.all("set-cookie").iter().map(|cookie| cookie.to_string()).collect();
        (status, location, cookies, response.into_string().unwrap_or_default())
    }

    /// Starts a sign-in and lets the issuer answer; returns the callback URL and the binding cookie.
    fn answer(&self, login_hint: Option<&str>) -> (String, String) {
        let (status, location, cookies, body) = self.get(&format!("{}/login/federated/0", self.app.base_url), None);
        assert_eq!(status, 302, "the sign-in starts with a redirect to the issuer: {body}");
        let mut to_issuer = location.expect("a Location");
        for parameter in ["code_challenge_method=S256", "nonce=", "state=", "code_challenge="] {
            assert!(to_issuer.contains(parameter), "the authorization request has {parameter}: {to_issuer}");
        }
        if let Some(hint) = login_hint {
            to_issuer.push_str(&format!("&login_hint={hint}"));
        }
        let binding = cookies
            .iter()
            .find(|cookie| cookie.starts_with("castellan_federated="))
            .and_then(|cookie| cookie.split(';').next())
            .expect("a browser-binding cookie")
            .to_string();
        let (status, location, _, body) = self.get(&to_issuer, None);
        assert_eq!(status, 302, "the fake issuer approves at once: {body}");
        (location.expect("the issuer's answer"), binding)
    }

    /// Follows the callback with `cookie`; returns the status, Location and body.
    fn callback(&self, callback: &str, cookie: Option<&str>) -> (u16, Option<String>, Vec<String>, String) {
        // The issuer answers on the public URL (localhost); talk to the same listener on 127.0.0.1.
        let url = callback.replace(&self.app.public_url, &self.app.base_url);
        self.get(&url, cookie)
    }
}

#[test]
fn the_callback_is_single_use_bound_to_its_browser_and_never_takes_over_a_local_account() {
    let issuer = FakeIssuer::start();
    let app = app_trusting(&issuer, Some("user"), AppOptions::new(Database::Sqlite));
    let driver = HandDriven::new(&app);

    let (callback, binding) = driver.answer(None);
    let (status, _, _, body) = driver.callback(&callback, None);
    assert_eq!(status, 400, "an answer in a browser that did not start the sign-in is refused: {body}");
    assert!(body.contains("another browser"), "the page says why: {body}");
    let (status, _, _, body) = driver.callback(&callback, Some(&binding));
    assert_eq!(status, 400, "the state was spent by the first attempt: {body}");
    assert!(body.contains("already used"), "the page says why: {body}");

    let (callback, binding) = driver.answer(None);
    let mixed_up = callback.replace(&format!("iss={}", urlencode(&issuer.url)), "iss=http%3A%2F%2Fevil.example");
    assert_ne!(mixed_up, callback, "the answer names its issuer (RFC 9207): {callback}");
    let (status, _, _, body) = driver.callback(&mixed_up, Some(&binding));
    assert_eq!(status, 400, "an answer naming another issuer is refused: {body}");
    assert!(body.contains("another identity provider"), "the page says why: {body}");

    let (callback, binding) = driver.answer(None);
    let (status, location, cookies, body) = driver.callback(&callback, Some(&binding));
    assert_eq!(status, 302, "a good answer signs the person in: {body}");
    assert_eq!(location.as_deref(), Some("/"), "home, with no authorization request pending");
    let session = cookies
        .iter()
        .find(|cookie| cookie.starts_with("castellan_session="))
        .and_then(|cookie| cookie.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, _, _, home) = driver.get(&format!("{}/", app.base_url), Some(&session));
    assert!(home.contains("fake/alice") && home.contains("(user)"), "signed in as the federated person: {home}");

    // The tier follows the identity provider's mapping on every sign-in.
    app.database.execute("UPDATE users SET tier = 'service' WHERE name = 'fake/alice'");
    let (callback, binding) = driver.answer(None);
    assert_eq!(driver.callback(&callback, Some(&binding)).0, 302, "signed in again");
    let listing = String::from_utf8_lossy(&app.cli(&["users", "list"]).stdout).to_string();
    assert!(
        listing.lines().any(|line| line.contains("fake/alice") && line.contains(" user ")),
        "the tier is set back to the mapped one: {listing}"
    );

    // A local account that happens to bear a federated name is never signed into from outside.
    let added = app.cli(&["users", "add", "fake/bob", "--tier", "admin"]);
    assert!(added.status.success(), "users add: {}", String::from_utf8_lossy(&added.stderr));
    let (callback, binding) = driver.answer(Some("bob"));
    let (status, _, cookies, body) = driver.callback(&callback, Some(&binding));
    assert_eq!(status, 409, "the local admin 'fake/bob' is not taken over: {body}");
    assert!(!cookies.iter().any(|cookie| cookie.starts_with("castellan_session=")), "no session is started");
}
