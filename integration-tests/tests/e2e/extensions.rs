//! The reference extension (`examples/extension-tickets`) compiled into its own binary: its route,
//! table, job, tools and profile section, each behind the same governed chain as the built-in ones.

use integration_tests::mcp::{Session, bearer};
use integration_tests::{AppOptions, Database, TempDir, TestApp, spawn_app_with, tickets_binary};
use serde_json::{Value, json};

const TICKETS_PROFILE: &str = r#"
server:
  listen: 127.0.0.1:0
database:
  url: "${CASTELLAN_DATABASE_URL}"
mcp_servers: {}
rbac:
  default: deny
  rules:
    - { name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { name: listing-is-for-admins, effect: deny, max_tier: user, servers: ["tickets"], tools: ["list_open"] }
rate_limits:
  burst_multiplier: 1
  per_second: { mcp_tool_call: 5, oauth: 100000 }
tickets:
  queues:
    - { name: support, sla_hours: 4 }
    - { name: billing, sla_hours: 24 }
"#;

fn spawn(database: Database) -> TestApp {
    spawn_app_with(AppOptions::new(database).binary(tickets_binary()).profile(TICKETS_PROFILE))
}

/// GET or POST on the extension's route with an optional bearer key; status and JSON body.
fn route(app: &TestApp, method: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/ext/tickets/tickets", app.base_url);
    let mut request = ureq::request(method, &url);
    if let Some(key) = key {
        request = request.set("Authorization", &bearer(key));
    }
    let result = match body {
        Some(body) => request.set("Content-Type", "application/json").send_string(&body.to_string()),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("transport error: {error}"),
    };
    let status = response.status();
    (status, serde_json::from_str(&response.into_string().unwrap_or_default()).unwrap_or(Value::Null))
}

fn route_rows(app: &TestApp) -> Vec<Value> {
    app.audit_rows().into_iter().filter(|row| row["server"] == "ext:tickets").collect()
}

fn the_route_is_governed(database: Database) {
    let app = spawn(database);
    let user = app.user_with_key("alice", "user");
    let mcp_tier = app.user_with_key("robot", "mcp");

    let (status, body) = route(&app, "GET", None, None);
    assert_eq!(status, 401, "no credential: {body}");
    let (status, body) = route(&app, "GET", Some(&mcp_tier), None);
    assert_eq!(status, 403, "the mcp tier is below the route's user tier: {body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("requires tier user"), "{body}");

    let (status, ticket) =
        route(&app, "POST", Some(&user), Some(json!({"queue": "support", "title": "printer on fire"})));
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(ticket["opened_by"], "alice", "the handler sees the caller the chain established");
    let (status, listed) = route(&app, "GET", Some(&user), None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["tickets"][0]["title"], "printer on fire", "the row is in the extension's own table");
    let (status, refused) = route(&app, "POST", Some(&user), Some(json!({"queue": "nowhere", "title": "x"})));
    assert_eq!(status, 400, "{refused}");

    let rows = route_rows(&app);
    let seen: Vec<(String, String, String)> = rows
        .iter()
        .map(|row| {
            let text = |field: &str| row[field].as_str().unwrap_or_default().to_string();
            (text("tool"), text("status"), text("user_id"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET /ext/tickets/tickets".to_string(), "denied".to_string(), "robot".to_string()),
            ("POST /ext/tickets/tickets".to_string(), "success".to_string(), "alice".to_string()),
            ("GET /ext/tickets/tickets".to_string(), "success".to_string(), "alice".to_string()),
            ("POST /ext/tickets/tickets".to_string(), "rpc_error".to_string(), "alice".to_string()),
        ],
        "one row per call that got past authentication, in order"
    );
    assert!(rows.iter().all(|row| row["kind"] == "route"), "{rows:?}");
    let verify = app.cli(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn the_reference_route_refuses_anonymous_and_low_tiers_and_audits_each_call_on_sqlite() {
    the_route_is_governed(Database::Sqlite);
}

#[test]
fn the_reference_route_and_its_table_work_on_postgres() {
    the_route_is_governed(Database::Postgres);
}

#[test]
fn the_reference_route_is_rate_limited_like_any_governed_request() {
    let app = spawn(Database::Sqlite);
    let user = app.user_with_key("alice", "user");
    let statuses: Vec<u16> = (0..12).map(|_| route(&app, "GET", Some(&user), None).0).collect();
    let limited = statuses.iter().filter(|status| **status == 429).count();
    assert!(statuses[0] == 200 && limited >= 4, "5 per second with no burst beyond it: {statuses:?}");
    let rows = route_rows(&app);
    let rate_limited = rows.iter().filter(|row| row["status"] == "rate_limited").count();
    assert_eq!(rate_limited, limited, "every refusal is a row");
}

#[test]
fn the_reference_tools_are_listed_and_governed_like_a_servers() {
    let app = spawn(Database::Sqlite);
    let user = app.user_with_key("alice", "user");
    let url = format!("{}/mcp", app.base_url);
    let mut session = Session::open(&url, &bearer(&user));
    let tools = session.tool_names();
    assert!(tools.contains(&"tickets__open_ticket".to_string()), "{tools:?}");
    assert!(!tools.contains(&"tickets__list_open".to_string()), "RBAC hides what the caller may not call: {tools:?}");
    let opened = session.call("tickets__open_ticket", json!({"queue": "billing", "title": "double charge"}));
    assert_eq!(opened["result"]["structuredContent"]["opened_by"], "alice", "{opened}");
    let denied = session.call("tickets__list_open", json!({}));
    assert!(denied.to_string().contains("listing-is-for-admins"), "{denied}");
    let mut admin = Session::open(&url, &bearer(&app.admin_key));
    let listed = admin.call("tickets__list_open", json!({}));
    assert_eq!(listed["result"]["structuredContent"]["tickets"][0]["title"], "double charge", "{listed}");
    let rows: Vec<Value> = app.audit_rows().into_iter().filter(|row| row["server"] == "tickets").collect();
    let statuses: Vec<&str> = rows.iter().map(|row| row["status"].as_str().unwrap_or_default()).collect();
    assert_eq!(statuses, ["success", "denied", "success"], "{rows:?}");
}

#[test]
fn the_reference_job_runs_on_demand_and_is_recorded() {
    let app = spawn(Database::Sqlite);
    let user = app.user_with_key("alice", "user");
    for (queue, title) in [("support", "old"), ("support", "new"), ("billing", "old too")] {
        let (status, _) = route(&app, "POST", Some(&user), Some(json!({"queue": queue, "title": title})));
        assert_eq!(status, 201);
    }
    // Two tickets opened two days ago: past the support SLA (4 h) and the billing SLA (24 h).
    let two_days_ago = chrono::Utc::now().timestamp_millis() - 2 * 86_400_000;
    app.database.execute(&format!("UPDATE tickets SET opened_at_ms = {two_days_ago} WHERE title LIKE 'old%'"));
    let run = app.cli(&["jobs", "run", "tickets.escalate"]);
    let printed = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(run.status.success(), "{printed}{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(printed.trim(), "tickets.escalate: success: 2 tickets overdue");
    assert_eq!(app.database.query_scalar("SELECT COUNT(*) FROM tickets WHERE status = 'overdue'"), "2");
    let list = app.cli(&["jobs", "list", "--json"]);
    let jobs: Vec<Value> =
        String::from_utf8_lossy(&list.stdout).lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let escalate = jobs.iter().find(|job| job["job"] == "tickets.escalate").expect("listed");
    assert_eq!((escalate["schedule"].as_str(), escalate["last_status"].as_str()), (Some("every 1m"), Some("success")));
    assert!(jobs.iter().any(|job| job["job"] == "identity-purge"), "built-in jobs are listed beside it: {jobs:?}");
    assert_eq!(
        app.database
            .query_scalar("SELECT COUNT(*) FROM job_runs WHERE job = 'tickets.escalate' AND status = 'success'"),
        "1"
    );
}

#[test]
fn a_bad_extension_section_fails_profile_check_with_its_line_and_the_stock_binary_refuses_the_section() {
    let dir = TempDir::new();
    let file = dir.0.join("bad.yaml");
    std::fs::write(&file, "tickets:\n  queues:\n    - { name: support, sla_hours: 0 }\n  colour: red\n")
        .expect("write");
    let checked = std::process::Command::new(tickets_binary())
        .args(["profile", "check"])
        .arg(&file)
        .output()
        .expect("profile check runs");
    let printed = String::from_utf8_lossy(&checked.stdout).to_string();
    assert_eq!(checked.status.code(), Some(1), "{printed}");
    let label = file.display().to_string();
    assert!(
        printed.contains(&format!("{label}:3:35: tickets.queues[0].sla_hours: must be a whole number")),
        "{printed}"
    );
    assert!(printed.contains(&format!("{label}:4:11: tickets.colour: unknown key `colour`")), "{printed}");
    let stock = std::process::Command::new(integration_tests::castellan_binary())
        .args(["profile", "check"])
        .arg(&file)
        .output()
        .expect("profile check runs");
    let printed = String::from_utf8_lossy(&stock.stdout).to_string();
    assert!(stock.status.code() == Some(1) && printed.contains("unknown key `tickets`"), "{printed}");
}

#[test]
fn the_reference_page_is_rendered_at_start_and_served_behind_the_chain() {
    let app = spawn(Database::Sqlite);
    let user = app.user_with_key("alice", "user");
    let url = format!("{}/ext/tickets/pages/queues", app.base_url);
    let anonymous = ureq::get(&url).call();
    assert!(matches!(anonymous, Err(ureq::Error::Status(401, _))), "a page is not public");
    let page = ureq::get(&url).set("Authorization", &bearer(&user)).call().expect("the page");
    assert_eq!(page.content_type(), "text/html");
    let html = page.into_string().expect("html");
    assert!(html.contains("<td>support</td><td>4 h</td>") && html.contains("<td>billing</td><td>24 h</td>"), "{html}");
    let rows: Vec<Value> =
        route_rows(&app).into_iter().filter(|row| row["tool"] == "GET /ext/tickets/pages/queues").collect();
    assert_eq!(rows.len(), 1, "the page view is a row like any route call");
}

#[test]
fn the_reference_provider_kind_takes_model_requests_through_the_chain_with_its_own_key_header() {
    let fake = integration_tests::ai::FakeProvider::start();
    let profile = format!(
        "{TICKETS_PROFILE}providers:\n  acme: {{ kind: acme-openai, base_url: \"{}/v1\", api_key: acme-provider-key-0123456789 }}\nmodels:\n  \"gpt-*\": {{ provider: acme }}\n",
        fake.url()
    );
    let profile = profile.replace("mcp_tool_call: 5,", "mcp_tool_call: 1000, ai_request: 1000,").replace(
        "  rules:\n",
        "  rules:\n    - { name: users-may-use-models, effect: allow, min_tier: user, models: [\"*\"] }\n",
    );
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).binary(tickets_binary()).profile(&profile));
    let user = app.user_with_key("alice", "user");
    let body = json!({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hello"}]});
    let answer = ureq::post(&format!("{}/v1/chat/completions", app.base_url))
        .set("Authorization", &bearer(&user))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .expect("the chat completion");
    assert_eq!(answer.status(), 200);
    let received = fake.requests_to("/v1/chat/completions");
    assert_eq!(received.len(), 1, "{received:?}");
    let headers = &received[0]["headers"];
    assert_eq!(headers["x-acme-key"], "acme-provider-key-0123456789", "the kind's own key header: {headers}");
    assert!(headers.get("authorization").is_none(), "not OpenAI's header, and never the caller's: {headers}");
    let rows = app.database.query_scalar("SELECT provider || ':' || status FROM ai_requests");
    assert_eq!(rows, "acme:success", "the request is a row like any provider's");
}
