//! The `jobs` section and extensions' sections.

use std::time::Duration;

use castellan_config::{
    ExtensionSection, Schedule, SectionProblem, SinkKind, VaultAuthSpec, install_extension_sections,
};
use serde_json::json;

use super::{parse_ok, problem_lines, problem_lines_with};

#[test]
fn the_contract_example_parses_with_its_defaults() {
    let profile = parse_ok(
        r#"
jobs:
  retention: { every: 1h, audit_days: 365, ai_requests_days: 90, hook_events_days: 30, anonymous_days: 7 }
  forward: { every: 5s, to: [{ kind: splunk_hec, url: "https://siem.example:8088/", token: "${secret:hec}" }] }
  secrets_pull: { cron: "*/10 * * * *", timeout: 30s, vault: { url: "https://vault.example", mount: kv, path: castellan/prod, token: "${secret:vault}" } }
"#,
    );
    let secrets = profile.referenced_secrets().join(",");
    let retention = profile.jobs.retention.unwrap();
    assert_eq!(retention.timing.schedule, Schedule::Every(Duration::from_secs(3600)));
    assert_eq!(retention.timing.timeout, Duration::from_secs(300));
    assert_eq!((retention.audit_days, retention.anonymous_days), (Some(365), Some(7)));
    let forward = profile.jobs.forward.unwrap();
    let sink = &forward.to[0];
    assert_eq!(
        (sink.name.as_str(), sink.kind, sink.url.as_str()),
        ("splunk-hec", SinkKind::SplunkHec, "https://siem.example:8088")
    );
    assert_eq!(sink.tables, ["mcp_tool_executions", "ai_requests", "hook_events"]);
    assert_eq!(sink.batch, 500);
    let pull = profile.jobs.secrets_pull.unwrap();
    assert!(matches!(pull.timing.schedule, Schedule::Cron(ref cron) if cron.to_string() == "*/10 * * * *"));
    assert_eq!(pull.timing.timeout, Duration::from_secs(30));
    assert_eq!((pull.vault.mount.as_str(), pull.vault.path.as_str()), ("kv", "castellan/prod"));
    assert!(matches!(pull.vault.auth, VaultAuthSpec::Token(_)));
    assert_eq!(secrets, "hec,vault");
}

#[test]
fn schedules_sinks_and_vault_settings_are_checked_where_they_are_written() {
    let lines = problem_lines(
        r#"
jobs:
  retention: { audit_days: 0 }
  forward:
    every: 500ms
    to:
      - { kind: syslog, url: "https://a.example", token: t }
      - { kind: datadog, url: "ftp://b.example", token: t, tables: [users], batch: 20000 }
      - { kind: otlp, url: "http://c.example", cron: "0 3 * *" }
  secrets_pull: { every: 10m, cron: "* * * * *", vault: { url: "https://v.example", path: "../etc", token: t, approle: {} } }
"#,
    );
    let expected = [
        "p.yaml:3:3: jobs.retention: needs a schedule",
        "p.yaml:3:28: jobs.retention.audit_days: must be greater than zero",
        "p.yaml:5:12: jobs.forward.every: must be at least 1s",
        "p.yaml:7:17: jobs.forward.to[0].kind: expected splunk_hec, datadog or otlp",
        "p.yaml:8:31: jobs.forward.to[1].url: must be an http:// or https:// URL",
        "p.yaml:8:69: jobs.forward.to[1].tables[0]: expected one of: mcp_tool_executions, ai_requests, hook_events",
        "p.yaml:9:48: jobs.forward.to[2].cron: unknown key `cron`",
        "p.yaml:10:31: jobs.secrets_pull.cron: give either `every` or `cron`, not both",
        "p.yaml:10:91: jobs.secrets_pull.vault.path: must be path segments",
        "p.yaml:10:111: jobs.secrets_pull.vault.approle: give either `token` or `approle`, not both",
    ];
    for want in expected {
        assert!(lines.iter().any(|line| line.starts_with(want)), "missing {want:?} in:\n{}", lines.join("\n"));
    }
}

#[test]
fn a_malformed_cron_names_its_field_and_secrets_are_refused_outside_credentials() {
    let lines = problem_lines(
        "jobs:\n  retention: { cron: \"61 * * * *\" }\n  forward: { every: 5s, to: [{ kind: datadog, url: \"https://${secret:x}.example\", token: k }] }\n",
    );
    assert!(
        lines.iter().any(|line| line
            .starts_with("p.yaml:2:22: jobs.retention.cron: `61 * * * *` minute field `61`: 61 is outside 0-59")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|line| line.contains("jobs.forward.to[0].url: `${secret:x}` is not allowed here")),
        "{lines:?}"
    );
}

#[test]
fn an_environment_token_is_expanded_and_never_echoed() {
    let lines = problem_lines_with(
        "jobs:\n  secrets_pull: { every: 1h, vault: { url: \"${VAULT_ADDR}\", path: p, token: \"${VAULT_TOKEN}\" } }\n",
        &[("VAULT_ADDR", "not a url"), ("VAULT_TOKEN", "hvs.very-secret")],
    );
    assert!(lines.iter().all(|line| !line.contains("hvs.very-secret")), "{lines:?}");
    assert!(lines.iter().any(|line| line.contains("jobs.secrets_pull.vault.url")), "{lines:?}");
}

/// The one test that installs sections: they are process-wide, set once.
#[test]
fn an_extension_section_is_validated_by_its_extension_and_its_problems_carry_the_line() {
    install_extension_sections(vec![ExtensionSection {
        prefix: "tickets".to_string(),
        validate: Box::new(|value| {
            let mut problems = Vec::new();
            if let Some(queues) = value["queues"].as_array() {
                for (index, queue) in queues.iter().enumerate() {
                    if queue["name"].as_str().is_none_or(str::is_empty) {
                        problems.push(SectionProblem {
                            path: format!("queues[{index}].name"),
                            message: "must be a non-empty string".into(),
                        });
                    }
                }
            }
            if value.get("typo").is_some() {
                problems.push(SectionProblem { path: "typo".into(), message: "unknown key".into() });
            }
            problems
        }),
    }]);
    let profile = parse_ok("tickets:\n  queues:\n    - { name: support, sla: 4h }\n");
    assert_eq!(profile.extensions["tickets"], json!({"queues": [{"name": "support", "sla": "4h"}]}));
    let lines = problem_lines("tickets:\n  queues:\n    - { name: ok }\n    - { name: \"\" }\n  typo: 1\n");
    assert_eq!(
        lines,
        ["p.yaml:4:15: tickets.queues[1].name: must be a non-empty string", "p.yaml:5:9: tickets.typo: unknown key"]
    );
    // A prefix no extension registered is an unknown section like any other.
    let lines = problem_lines("billing: {}\n");
    assert!(
        lines[0].starts_with("p.yaml:1:1: billing: unknown key `billing`") && lines[0].contains("tickets"),
        "{lines:?}"
    );
}
