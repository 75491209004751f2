//! Rate limits on the call path, measured from this (second) process against the real daemon: the
//! burst is honoured, admitted calls per second match the configured rate per tier within 5%, a
//! refused call is a 429 with Retry-After and RateLimit headers and an audit row, a spoofed
//! X-Forwarded-For from an untrusted peer buys no extra bucket, and the limits of single tools and
//! servers meter what they name and nothing else.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::mcp::{bearer, initialize_body, standard_headers};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, TestApp, spawn_app_with};
use serde_json::{Value, json};

/// The default test profile with `rate_limits` replaced.
fn profile_with_limits(limits: &str, extra_server: &str) -> String {
    let base = DEFAULT_TEST_PROFILE.split("# Tests call as fast").next().expect("the default profile");
    format!("{base}rate_limits:\n{limits}").replace("server:\n", &format!("server:\n{extra_server}"))
}

struct Caller {
    url: String,
    authorization: String,
    session: String,
    forwarded_for: Option<String>,
    /// The tools called, in turn.
    tools: Vec<String>,
    turn: Cell<usize>,
    /// Admitted calls per tool.
    admitted: RefCell<BTreeMap<String, usize>>,
}

/// The answer to one tools/call: status, headers and the body of a refusal.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    policy: Option<String>,
    limit: Option<String>,
    body: Value,
}

impl Caller {
    fn open(app: &TestApp, authorization: &str, forwarded_for: Option<&str>) -> Caller {
        Caller::open_at(app, "/mcp", authorization, forwarded_for, &["customers__get_customer"])
    }

    /// A session on `path` (`/mcp` or `/mcp/{server}`) that calls `tools` in turn.
    fn open_at(app: &TestApp, path: &str, authorization: &str, forwarded_for: Option<&str>, tools: &[&str]) -> Caller {
        let url = format!("{}{path}", app.base_url);
        let mut request = ureq::post(&url);
        for (name, value) in standard_headers(authorization, None) {
            request = request.set(name, value);
        }
        if let Some(forwarded) = forwarded_for {
            request = request.set("X-Forwarded-For", forwarded);
        }
        let response = request.send_string(&initialize_body("2025-11-25")).expect("initialize");
        let session = response.header("mcp-session-id").expect("a session").to_string();
        Caller {
            url,
            authorization: authorization.to_string(),
            session,
            forwarded_for: forwarded_for.map(str::to_string),
            tools: tools.iter().map(|tool| tool.to_string()).collect(),
            turn: Cell::new(0),
            admitted: RefCell::new(BTreeMap::new()),
        }
    }

    fn call(&self) -> Answer {
        let tool = &self.tools[self.turn.get() % self.tools.len()];
        self.turn.set(self.turn.get() + 1);
        let mut request = ureq::post(&self.url);
        for (name, value) in standard_headers(&self.authorization, Some(&self.session)) {
            request = request.set(name, value);
        }
        request = request.set("MCP-Protocol-Version", "2025-11-25");
        if let Some(forwarded) = &self.forwarded_for {
            request = request.set("X-Forwarded-For", forwarded);
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": {"id": 1}}});
        let response = match request.send_string(&body.to_string()) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("transport: {error}"),
        };
        let header = |name: &str| response.header(name).map(str::to_string);
        let (status, retry_after, policy, limit) =
            (response.status(), header("retry-after"), header("ratelimit-policy"), header("ratelimit"));
        let body = response.into_string().ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(Value::Null);
        if status == 200 {
            *self.admitted.borrow_mut().entry(tool.clone()).or_default() += 1;
        }
        Answer { status, retry_after, policy, limit, body }
    }
}

/// Sends the burst back to back, then paces calls at twice `rate` for `seconds`; returns the burst
/// admitted and the measured rate (the slope of admissions once the bucket is empty).
fn measure(caller: &Caller, burst: usize, rate: f64, seconds: f64) -> (usize, f64, Answer) {
    // Back to back until the first refusal: the burst, plus what refilled while it was being sent.
    let sending = Instant::now();
    let mut admitted_burst = 0;
    let refused = loop {
        let answer = caller.call();
        if answer.status != 200 || admitted_burst > 2 * burst {
            break answer;
        }
        admitted_burst += 1;
    };
    let refilled = (rate * sending.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (burst..=burst + refilled + 1).contains(&admitted_burst),
        "back to back, {admitted_burst} calls were admitted: the burst of {burst} plus at most {refilled} refilled"
    );
    let gap = Duration::from_secs_f64(1.0 / (2.0 * rate));
    let start = Instant::now();
    let mut admitted = Vec::new();
    let mut next = start;
    // What refilled while the burst was being sent is spent first; the rate is measured only after
    // the first refusal of the paced phase, when the bucket is empty and admits at its rate.
    let mut drained = false;
    while start.elapsed().as_secs_f64() < seconds {
        match caller.call().status {
            200 if drained => admitted.push(start.elapsed().as_secs_f64()),
            200 => {}
            _ => drained = true,
        }
        next += gap;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let measured = match (admitted.first(), admitted.last()) {
        (Some(first), Some(last)) if admitted.len() > 1 && last > first => (admitted.len() - 1) as f64 / (last - first),
        _ => 0.0,
    };
    (admitted_burst, measured, refused)
}

#[test]
fn each_tier_gets_its_burst_then_its_rate_within_five_percent() {
    let profile = profile_with_limits("  burst_multiplier: 3\n  per_second: { mcp_tool_call: 10 }\n", "");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let user_key = app.user_with_key("ursula", "user");
    let service_key = app.user_with_key("sam", "service");
    let user = Caller::open(&app, &bearer(&user_key), None);
    let service = Caller::open(&app, &bearer(&service_key), None);
    let service_run = std::thread::spawn(move || measure(&service, 150, 50.0, 4.0));
    let (user_burst, user_rate, refused) = measure(&user, 30, 10.0, 5.0);
    let (service_burst, service_rate, _) = service_run.join().expect("the service caller");
    eprintln!(
        "measured: user {user_rate:.2}/s (burst {user_burst}), service {service_rate:.2}/s (burst {service_burst})"
    );
    assert!(user_burst >= 30, "the user tier's burst: 10/s × 3 ({user_burst} admitted back to back)");
    assert!(service_burst >= 150, "the service tier's burst: 10/s × 5 × 3 ({service_burst} admitted back to back)");
    assert!((user_rate - 10.0).abs() / 10.0 <= 0.05, "user tier: {user_rate:.2}/s for a configured 10/s");
    assert!((service_rate - 50.0).abs() / 50.0 <= 0.05, "service tier: {service_rate:.2}/s for a configured 50/s");

    assert_eq!(refused.status, 429, "the call after the burst is refused");
    let retry_after: u64 = refused.retry_after.as_deref().and_then(|value| value.parse().ok()).expect("Retry-After");
    assert!(retry_after >= 1, "Retry-After is whole seconds, at least 1");
    assert_eq!(refused.policy.as_deref(), Some(r#""mcp_tool_call";q=30;w=3"#), "RateLimit-Policy");
    assert_eq!(refused.limit.as_deref(), Some(r#""mcp_tool_call";r=0;t=1"#), "RateLimit");
    let rows = app.audit_rows();
    let limited: Vec<&Value> = rows.iter().filter(|row| row["status"] == "rate_limited").collect();
    assert!(!limited.is_empty(), "refused calls are audited as rate_limited");
    assert!(
        limited.iter().all(|row| row["server"] == "customers" && row["tool"] == "get_customer"),
        "with the tool asked for, resolved"
    );
}

#[test]
fn a_spoofed_forwarded_for_from_an_untrusted_peer_shares_the_peers_bucket() {
    let limits = "  burst_multiplier: 1\n  per_second: { mcp_tool_call: 10 }\n";
    // Anonymous: 10/s × 0.5 = 5/s, burst 5.
    let untrusted = spawn_app_with(
        AppOptions::new(Database::Sqlite).profile(&profile_with_limits(limits, "  allow_anonymous: true\n")),
    );
    let statuses: Vec<u16> =
        (0..8).map(|index| Caller::open(&untrusted, "", Some(&format!("198.51.100.{index}"))).call().status).collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 429).count(),
        3,
        "one bucket for every spoofed address: {statuses:?}"
    );

    let trusting = spawn_app_with(
        AppOptions::new(Database::Sqlite)
            .profile(&profile_with_limits(limits, "  allow_anonymous: true\n  trusted_proxies: [127.0.0.1]\n")),
    );
    let statuses: Vec<u16> =
        (0..8).map(|index| Caller::open(&trusting, "", Some(&format!("198.51.100.{index}"))).call().status).collect();
    assert!(
        statuses.iter().all(|status| *status == 200),
        "behind a trusted proxy each client has its own bucket: {statuses:?}"
    );
}

fn grant(app: &TestApp, client_id: &str, secret: &str) -> (u16, Option<String>) {
    let body = format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
    let response = match ureq::post(&format!("{}/oauth/token", app.base_url))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&body)
    {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("transport: {error}"),
    };
    (response.status(), response.header("retry-after").map(str::to_string))
}

#[test]
fn the_token_endpoint_has_its_own_class_per_client_and_failed_authentication_per_address() {
    // oauth 1/s: a service client (×5) gets 5/s with a burst of 15; failed authentication is
    // anonymous (×0.5): 0.5/s, burst 1.
    let profile = profile_with_limits("  burst_multiplier: 3\n  per_second: { mcp_tool_call: 100, oauth: 1 }\n", "");
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let (id, secret) = app.oauth_client("metered", &["--tier", "service"]);
    let secret = secret.expect("a confidential client");
    let statuses: Vec<u16> = (0..16).map(|_| grant(&app, &id, &secret).0).collect();
    assert!(statuses[..15].iter().all(|status| *status == 200), "the client's burst of 15: {statuses:?}");
    assert_eq!(statuses[15], 429, "then the client waits: {statuses:?}");
    let guesses: Vec<(u16, Option<String>)> = (0..3).map(|_| grant(&app, &id, "cas_cs_wrong")).collect();
    assert_eq!(guesses[0].0, 401, "a wrong secret is refused: {guesses:?}");
    assert_eq!(guesses[1].0, 429, "and guessing from one address is throttled: {guesses:?}");
    assert!(guesses[1].1.is_some(), "with Retry-After: {guesses:?}");
}

#[test]
fn a_tool_limit_meters_that_tool_within_five_percent_and_no_other() {
    // customers__get_customer: 4/s × 5 (service) = 20/s, burst 60; the class is far above.
    let profile = profile_with_limits(
        "  burst_multiplier: 3\n  per_second: { mcp_tool_call: 1000 }\n  tools: { customers__get_customer: 4 }\n",
        "",
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let key = bearer(&app.user_with_key("sam", "service"));
    let limited = Caller::open(&app, &key, None);
    let other = Caller::open_at(&app, "/mcp", &key, None, &["customers__list_customers"]);
    // The same principal calls another tool of the server at 50/s all the while.
    let other_run = std::thread::spawn(move || {
        let started = Instant::now();
        let mut statuses = BTreeMap::<u16, usize>::new();
        while started.elapsed() < Duration::from_secs(4) {
            *statuses.entry(other.call().status).or_default() += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        statuses
    });
    let (burst, rate, refused) = measure(&limited, 60, 20.0, 4.0);
    let other_statuses = other_run.join().expect("the other tool's caller");
    eprintln!("measured: get_customer {rate:.2}/s (burst {burst}); list_customers meanwhile {other_statuses:?}");
    assert!(burst >= 60, "the tool's burst: 4/s × 5 × 3 ({burst} admitted back to back)");
    assert!((rate - 20.0).abs() / 20.0 <= 0.05, "get_customer: {rate:.2}/s for a configured 4/s × 5");
    assert_eq!(other_statuses.keys().copied().collect::<Vec<_>>(), [200], "list_customers is not limited by it");

    assert_eq!(refused.status, 429, "the call after the burst is refused");
    assert_eq!(refused.policy.as_deref(), Some(r#""tool customers__get_customer";q=60;w=3"#), "RateLimit-Policy");
    assert_eq!(refused.limit.as_deref(), Some(r#""tool customers__get_customer";r=0;t=1"#), "RateLimit");
    assert_eq!(refused.body["limit"], "tool customers__get_customer", "the JSON error names the limit");

    // The tool's own endpoint names it without the prefix and shares the (now empty) bucket.
    // Forty calls: the bucket refills at 20/s, so even on a loaded machine (calls of tens of
    // milliseconds) the empty bucket shows before it could refill forty times.
    let direct = Caller::open_at(&app, "/mcp/customers", &key, None, &["get_customer"]);
    let statuses: Vec<u16> = (0..40).map(|_| direct.call().status).collect();
    assert!(statuses.contains(&429), "/mcp/customers meets the same tool bucket: {statuses:?}");
    let rows = app.audit_rows();
    assert!(
        rows.iter().any(|row| row["status"] == "rate_limited"
            && row["server"] == "customers"
            && row["tool"] == "get_customer"),
        "refused calls are audited as rate_limited, under the resolved server and tool"
    );
    assert!(
        rows.iter().any(|row| row["status"] == "rate_limited"
            && row["error_message"]
                .as_str()
                .is_some_and(|message| message.starts_with("rate limited by tool customers__get_customer: retry in "))),
        "the audit row names the limit"
    );
    assert!(
        rows.iter().all(|row| row["tool"] != "customers__list_customers" || row["status"] == "success"),
        "no list_customers call was refused"
    );
}

#[test]
fn a_server_limit_meters_every_tool_of_that_server_within_five_percent() {
    // customers: 10/s × 1 (user), burst 10, shared by the server's tools.
    let profile = profile_with_limits(
        "  burst_multiplier: 1\n  per_second: { mcp_tool_call: 1000 }\n  servers: { customers: 10 }\n",
        "",
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let key = bearer(&app.user_with_key("ursula", "user"));
    // Paced at twice the rate, every other call is admitted: a turn of three tools makes the
    // admitted ones take turns too, instead of always landing on the same tool.
    let tools = ["get_customer", "list_customers", "list_customers"];
    let caller = Caller::open_at(&app, "/mcp/customers", &key, None, &tools);
    let (burst, rate, refused) = measure(&caller, 10, 10.0, 4.0);
    let admitted = caller.admitted.borrow().clone();
    eprintln!("measured: customers {rate:.2}/s (burst {burst}), admitted per tool {admitted:?}");
    assert!(burst >= 10, "the server's burst: 10/s × 1 ({burst} admitted back to back)");
    assert!(
        (rate - 10.0).abs() / 10.0 <= 0.05,
        "both tools together: {rate:.2}/s for a configured 10/s (one tool alone would leave the other at 10/s more)"
    );
    assert!(
        admitted.len() == 2 && admitted.values().all(|count| *count >= 10),
        "both tools drew from the one bucket: {admitted:?}"
    );
    assert_eq!(refused.status, 429, "the call after the burst is refused");
    assert_eq!(refused.policy.as_deref(), Some(r#""server customers";q=10;w=1"#), "RateLimit-Policy");
    assert_eq!(refused.body["limit"], "server customers", "the JSON error names the limit");
}
