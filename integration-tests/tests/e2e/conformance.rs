//! The MCP conformance suite (`@modelcontextprotocol/conformance`, npm, pinned) against our backend
//! fixture directly, and through Castellan's `/mcp/{server}` with the fixture supervised as a stdio
//! child and as an HTTP child on an allocated port: every scenario that passes directly must pass
//! through the gateway.

use std::collections::BTreeMap;
use std::process::Command;

use integration_tests::{AppOptions, Database, repo_root, spawn_app_with, tools_dir};

/// Scenario name → (checks passed, checks failed), from the suite's summary.
fn run_suite(url: Option<&str>) -> BTreeMap<String, (u32, u32)> {
    let mut command = Command::new(repo_root().join("scripts/conformance.sh"));
    if let Some(url) = url {
        command.arg(url);
    }
    let output = command.args(["--suite", "all"]).output().expect("conformance.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.split("=== SUMMARY ===").nth(1).unwrap_or_default();
    let mut scenarios = BTreeMap::new();
    for line in summary.lines() {
        let Some((name, counts)) = line.trim_start_matches(['✓', '✗', ' ']).split_once(": ") else { continue };
        let numbers: Vec<u32> =
            counts.split(|c: char| !c.is_ascii_digit()).filter_map(|part| part.parse().ok()).collect();
        if let [passed, failed, ..] = numbers[..] {
            scenarios.insert(name.to_string(), (passed, failed));
        }
    }
    assert!(
        !scenarios.is_empty(),
        "no summary from the suite for {url:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    scenarios
}

fn profile() -> String {
    let python = tools_dir().join("py2/bin/python");
    let fixture = repo_root().join("integration-tests/fixtures/conformance_fixture.py");
    format!(
        r#"
server:
  allow_anonymous: true
database:
  url: "${{CASTELLAN_DATABASE_URL}}"
mcp_servers:
  fixture:
    command: {python}
    args: [{fixture}]
  fixture-http:
    command: {python}
    args: [{fixture}, --http, "${{PORT}}"]
    url: http://127.0.0.1:${{PORT}}/mcp
    port: auto
rbac:
  default: deny
  rules:
    - {{ name: anyone-may-use-fixtures, effect: allow, min_tier: anonymous, servers: ["fixture*"], tools: ["*"] }}
rate_limits:
  per_second: {{ mcp_tool_call: 100000, mcp_session: 1000 }}
"#,
        python = python.display(),
        fixture = fixture.display()
    )
}

#[test]
fn every_scenario_that_passes_against_the_fixture_passes_through_castellan() {
    let direct = run_suite(None);
    let passing: Vec<&String> = direct.iter().filter(|(_, (_, failed))| *failed == 0).map(|(name, _)| name).collect();
    assert!(passing.len() >= 30, "the fixture passes the suite's scenarios directly: {direct:?}");

    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile()));
    for server in ["fixture", "fixture-http"] {
        let through = run_suite(Some(&format!("{}/mcp/{server}", app.base_url)));
        for name in &passing {
            let outcome = through.get(*name);
            assert!(
                outcome.is_some_and(|(_, failed)| *failed == 0),
                "{server}: scenario {name} passes directly ({:?}) but not through Castellan ({outcome:?})",
                direct[*name]
            );
        }
    }
    let rows = app.audit_rows();
    let calls = rows.iter().filter(|row| row["tool"] == "test_simple_text").count();
    assert_eq!(calls, 2, "one audited call per endpoint, by the anonymous principal: {rows:?}");
    assert!(rows.iter().all(|row| row["user_id"] == "anonymous"), "{rows:?}");
}
