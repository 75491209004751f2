//! `${VAR}` expansion at load time: defaults, escapes, and what is left as a placeholder.

use castellan_config::{Template, TemplatePart, Transport};

use crate::{parse_with, problem_lines_with};

/// Parses `value` as the only environment variable of a stdio server and returns its template (the
/// environment, unlike `args`, may hold secret references).
fn expand_arg(value: &str, vars: &[(&str, &str)]) -> Template {
    let yaml_value = serde_yaml_ng::to_string(value).unwrap();
    let text = format!("mcp_servers:\n  s:\n    command: x\n    env:\n      V: {}\n", yaml_value.trim_end());
    let profile = match parse_with(&text, vars) {
        Ok(profile) => profile,
        Err(problems) => panic!("{value:?} should expand, got {problems:#?}"),
    };
    let spec = profile.mcp_servers.into_values().next().unwrap();
    let Transport::Stdio { mut env, .. } = spec.transport else { panic!("expected stdio for {value:?}") };
    env.remove("V").unwrap()
}

fn lit(text: &str) -> TemplatePart {
    TemplatePart::Literal(text.to_string())
}

#[test]
fn variables_defaults_and_escapes_expand() {
    let vars = [("HOST", "db.internal"), ("EMPTY", ""), ("TRICKY", "${secret:stolen}")];
    let cases: Vec<(&str, Vec<TemplatePart>)> = vec![
        ("plain text", vec![lit("plain text")]),
        ("${HOST}", vec![lit("db.internal")]),
        ("https://${HOST}/x", vec![lit("https://db.internal/x")]),
        ("${HOST:-fallback}", vec![lit("db.internal")]),
        ("${UNSET:-fallback}", vec![lit("fallback")]),
        ("${UNSET:-}", vec![]),
        ("${EMPTY:-fallback}", vec![lit("fallback")]),
        ("${EMPTY}", vec![]),
        ("${UNSET:-a:-b}", vec![lit("a:-b")]),
        ("$${HOST}", vec![lit("${HOST}")]),
        ("$${secret:x}", vec![lit("${secret:x}")]),
        ("$$${HOST}", vec![lit("$${HOST}")]),
        ("cost: $5 and $", vec![lit("cost: $5 and $")]),
        ("$HOST", vec![lit("$HOST")]),
        ("${TRICKY}", vec![lit("${secret:stolen}")]),
        ("${secret:db.password-1}", vec![TemplatePart::Secret("db.password-1".into())]),
        (
            "a${secret:x}b${secret:y}",
            vec![lit("a"), TemplatePart::Secret("x".into()), lit("b"), TemplatePart::Secret("y".into())],
        ),
        ("${HOST}${secret:x}", vec![lit("db.internal"), TemplatePart::Secret("x".into())]),
        ("}{$}", vec![lit("}{$}")]),
        ("ünï ${HOST} ☃", vec![lit("ünï db.internal ☃")]),
    ];
    for (written, parts) in cases {
        let template = expand_arg(written, &vars);
        assert_eq!(template.parts(), parts.as_slice(), "expanding {written:?}");
    }
}

#[test]
fn an_expanded_value_is_never_scanned_again() {
    let template = expand_arg("${TRICKY}", &[("TRICKY", "${secret:stolen}")]);
    assert!(template.is_literal(), "an environment value cannot introduce a secret reference");
    assert!(template.secret_names().is_empty(), "no secrets: {template:?}");
}

#[test]
fn expansion_applies_to_every_string_setting() {
    let text = "server:\n  listen: ${ADDR}\n  call_timeout: ${TIMEOUT}\n  max_body_bytes: \"${BYTES}\"\ndatabase:\n  url: postgres://${DB_USER}@db/castellan\nmcp_servers:\n  s:\n    command: ${TOOL}\n    enabled: \"${ENABLED:-true}\"\nrbac:\n  rules:\n    - { name: \"${RULE}\", effect: \"${EFFECT}\" }\n";
    let vars = [
        ("ADDR", "127.0.0.1:9999"),
        ("TIMEOUT", "3s"),
        ("BYTES", "2048"),
        ("DB_USER", "castellan"),
        ("TOOL", "/bin/tool"),
        ("RULE", "from-env"),
        ("EFFECT", "allow"),
    ];
    let profile = parse_with(text, &vars).unwrap();
    assert_eq!(profile.server.listen, "127.0.0.1:9999", "listen");
    assert_eq!(profile.server.call_timeout, std::time::Duration::from_secs(3), "call_timeout");
    assert_eq!(profile.server.max_body_bytes, 2048, "max_body_bytes");
    assert_eq!(profile.database.url, "postgres://castellan@db/castellan", "database url");
    assert!(profile.mcp_servers.values().all(|spec| spec.enabled), "enabled from a default");
    assert_eq!(profile.rbac.rules[0].name, "from-env", "rule name");
}

#[test]
fn an_unset_variable_is_a_problem_at_its_scalar() {
    let lines = problem_lines_with("mcp_servers:\n  s:\n    command: x\n    args: [ok, \"${MISSING}\"]\n", &[]);
    assert_eq!(
        lines,
        [
            "p.yaml:4:16: mcp_servers.s.args[1]: environment variable `MISSING` is not set; set it, or write `${MISSING:-default}`"
        ],
        "unset variable"
    );
}

#[test]
fn keys_are_not_expanded() {
    let lines = problem_lines_with("server:\n  ${KEY}: x\n", &[("KEY", "listen")]);
    assert_eq!(lines.len(), 1, "one problem: {lines:#?}");
    assert!(lines[0].starts_with("p.yaml:2:3: server.${KEY}: unknown key"), "keys are taken literally: {}", lines[0]);
}
