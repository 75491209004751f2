//! Every rule has a failing case whose problem names the right path, line and column.

use castellan_config::{Problem, parse_profile};

use crate::{FILE, parse, problem_lines, problem_lines_with};

/// (what is wrong, profile, exact `file:line:col: path: ` prefix, a fragment of the message).
/// Each profile has exactly one problem.
const SINGLE_PROBLEM_CASES: &[(&str, &str, &str, &str)] = &[
    // Sections and keys.
    (
        "unknown top-level key",
        "bogus: 1\n",
        "p.yaml:1:1: bogus: ",
        "unknown key `bogus`; expected one of: server, database, mcp_servers, rbac",
    ),
    ("unknown server key", "server:\n  listne: 127.0.0.1:1\n", "p.yaml:2:3: server.listne: ", "unknown key `listne`"),
    ("section not a mapping", "server: [1]\n", "p.yaml:1:9: server: ", "expected a mapping, found a list"),
    ("empty document", "", "p.yaml:1:1: (document): ", "the profile is empty"),
    ("comments only", "# nothing here\n", "p.yaml:1:1: (document): ", "the profile is empty"),
    ("root is a list", "- a\n", "p.yaml:1:1: (document): ", "expected a mapping, found a list"),
    ("non-string key", "1: x\n", "p.yaml:1:1: (document): ", "keys must be strings, found a number"),
    // server
    (
        "listen not an address",
        "server:\n  listen: localhost:8080\n",
        "p.yaml:2:11: server.listen: ",
        "`localhost:8080` is not a socket address",
    ),
    ("listen empty", "server:\n  listen: \"\"\n", "p.yaml:2:11: server.listen: ", "must not be empty"),
    (
        "public_url scheme",
        "server:\n  public_url: ftp://x\n",
        "p.yaml:2:15: server.public_url: ",
        "must be an http:// or https:// URL",
    ),
    (
        "public_url query",
        "server:\n  public_url: http://x/?a=1\n",
        "p.yaml:2:15: server.public_url: ",
        "must not have a query or fragment",
    ),
    (
        "public_url no host",
        "server:\n  public_url: http://:80\n",
        "p.yaml:2:15: server.public_url: ",
        "the URL has no host",
    ),
    (
        "public_url bad port",
        "server:\n  public_url: http://h:99999\n",
        "p.yaml:2:15: server.public_url: ",
        "the port must be a number",
    ),
    (
        "max_body_bytes zero",
        "server:\n  max_body_bytes: 0\n",
        "p.yaml:2:19: server.max_body_bytes: ",
        "must be greater than zero",
    ),
    (
        "max_body_bytes negative",
        "server:\n  max_body_bytes: -5\n",
        "p.yaml:2:19: server.max_body_bytes: ",
        "`-5` is not a whole number",
    ),
    (
        "body_read_timeout zero",
        "server:\n  body_read_timeout: 0s\n",
        "p.yaml:2:22: server.body_read_timeout: ",
        "must be greater than zero",
    ),
    (
        "max_sessions_per_principal zero",
        "server:\n  max_sessions_per_principal: 0\n",
        "p.yaml:2:31: server.max_sessions_per_principal: ",
        "must be greater than zero",
    ),
    (
        "duration unit",
        "server:\n  call_timeout: 5x\n",
        "p.yaml:2:17: server.call_timeout: ",
        "`5x` is not a duration; write a whole number",
    ),
    (
        "duration zero",
        "server:\n  call_timeout: 0s\n",
        "p.yaml:2:17: server.call_timeout: ",
        "must be greater than zero",
    ),
    (
        "duration fraction",
        "server:\n  drain_timeout: 1.5s\n",
        "p.yaml:2:18: server.drain_timeout: ",
        "`1.5s` is not a duration",
    ),
    (
        "duration float",
        "server:\n  drain_timeout: 1.5\n",
        "p.yaml:2:18: server.drain_timeout: ",
        "`1.5` is not a duration",
    ),
    (
        "duration too long",
        "server:\n  call_timeout: 9000h\n",
        "p.yaml:2:17: server.call_timeout: ",
        "is longer than one year",
    ),
    (
        "duration overflow",
        "server:\n  call_timeout: 99999999999999999999999h\n",
        "p.yaml:2:17: server.call_timeout: ",
        "is longer than one year",
    ),
    (
        "duration type",
        "server:\n  call_timeout: [1]\n",
        "p.yaml:2:17: server.call_timeout: ",
        "is a list, not a duration",
    ),
    (
        "wildcard origin",
        "server:\n  allowed_origins: [\"*\"]\n",
        "p.yaml:2:21: server.allowed_origins[0]: ",
        "a wildcard origin would let any web page call Castellan",
    ),
    (
        "origin with path",
        "server:\n  allowed_origins: [\"https://a.example/x\"]\n",
        "p.yaml:2:21: server.allowed_origins[0]: ",
        "an origin is `scheme://host[:port]`",
    ),
    (
        "origins not a list",
        "server:\n  allowed_origins: https://a.example\n",
        "p.yaml:2:20: server.allowed_origins: ",
        "expected a list, found a string",
    ),
    // database
    (
        "database scheme",
        "database:\n  url: mysql://db\n",
        "p.yaml:2:8: database.url: ",
        "expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`",
    ),
    (
        "database unknown key",
        "database:\n  uri: sqlite://x\n",
        "p.yaml:2:3: database.uri: ",
        "unknown key `uri`; expected one of: url",
    ),
    (
        "secret outside mcp_servers",
        "database:\n  url: \"postgres://u:${secret:pw}@db/x\"\n",
        "p.yaml:2:8: database.url: ",
        "`${secret:pw}` is not allowed here",
    ),
    (
        "secret in rbac",
        "rbac:\n  rules:\n    - { name: \"${secret:n}\", effect: allow }\n",
        "p.yaml:3:15: rbac.rules[0].name: ",
        "`${secret:n}` is not allowed here",
    ),
    // expansion
    (
        "port outside mcp_servers",
        "server:\n  listen: \"127.0.0.1:${PORT}\"\n",
        "p.yaml:2:11: server.listen: ",
        "`${PORT}` may appear only in the args, env, headers and url of an mcp_servers entry with `port: auto`",
    ),
    (
        "unset variable",
        "server:\n  listen: ${NOPE}\n",
        "p.yaml:2:11: server.listen: ",
        "environment variable `NOPE` is not set; set it, or write `${NOPE:-default}`",
    ),
    (
        "port with a default",
        "server:\n  listen: \"${PORT:-8080}\"\n",
        "p.yaml:2:11: server.listen: ",
        "takes no default",
    ),
    (
        "bad variable name",
        "server:\n  listen: \"${1X}\"\n",
        "p.yaml:2:11: server.listen: ",
        "`${1X}` is not a valid reference",
    ),
    ("unterminated reference", "server:\n  listen: \"${OOPS\"\n", "p.yaml:2:11: server.listen: ", "`${` is not closed"),
    (
        "bad secret name",
        "mcp_servers:\n  s:\n    command: x\n    args: [\"${secret:bad name}\"]\n",
        "p.yaml:4:12: mcp_servers.s.args[0]: ",
        "a secret name uses only letters",
    ),
    (
        "empty secret name",
        "mcp_servers:\n  s:\n    command: x\n    args: [\"${secret:}\"]\n",
        "p.yaml:4:12: mcp_servers.s.args[0]: ",
        "a secret name uses only letters",
    ),
    // Command lines are readable by every local user: secrets go in env or headers.
    (
        "secret in stdio args",
        "mcp_servers:\n  s:\n    command: x\n    args: [\"--token=${secret:tok}\"]\n",
        "p.yaml:4:12: mcp_servers.s.args[0]: ",
        "`${secret:tok}` is not allowed in `args`: command lines are visible to every local user; pass the secret in `env`",
    ),
    (
        "secret in the args of an HTTP child",
        "mcp_servers:\n  s:\n    command: x\n    args: [a, \"${secret:tok}\"]\n    url: http://127.0.0.1:${PORT}/mcp\n    port: auto\n",
        "p.yaml:4:15: mcp_servers.s.args[1]: ",
        "(or, for an HTTP server, in `headers`)",
    ),
    (
        "secret in a command hook's args",
        "hooks:\n  PreToolUse:\n    - { command: ./check, args: [\"${secret:tok}\"] }\n",
        "p.yaml:3:34: hooks.PreToolUse[0].args[0]: ",
        "is not allowed in `args`: command lines are visible to every local user",
    ),
    // mcp_servers: names and forms
    (
        "bad server name",
        "mcp_servers:\n  Bad_Name:\n    command: x\n",
        "p.yaml:2:3: mcp_servers.Bad_Name: ",
        "a server name may contain only lowercase letters a-z, digits and `-`",
    ),
    (
        "server name too long",
        "mcp_servers:\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:\n    command: x\n",
        "p.yaml:2:3: mcp_servers.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: ",
        "at most 48 characters",
    ),
    ("neither command nor url", "mcp_servers:\n  empty: {}\n", "p.yaml:2:3: mcp_servers.empty: ", "needs `command`"),
    ("entry is null", "mcp_servers:\n  empty:\n", "p.yaml:2:3: mcp_servers.empty: ", "needs `command`"),
    (
        "unknown entry key",
        "mcp_servers:\n  s:\n    command: x\n    colour: red\n",
        "p.yaml:4:5: mcp_servers.s.colour: ",
        "unknown key `colour`; expected one of: command, args, env, cwd, url, headers, port, restart, call_timeout, enabled",
    ),
    (
        "port without url",
        "mcp_servers:\n  s:\n    command: x\n    port: auto\n",
        "p.yaml:4:5: mcp_servers.s.port: ",
        "`port` applies only to HTTP servers, which have `url`",
    ),
    (
        "port auto without command",
        "mcp_servers:\n  s:\n    url: http://h:1/\n    port: auto\n",
        "p.yaml:4:5: mcp_servers.s.port: ",
        "`port: auto` needs `command`",
    ),
    (
        "port auto without ${PORT}",
        "mcp_servers:\n  s:\n    command: x\n    url: http://h:1/mcp\n    port: auto\n",
        "p.yaml:4:10: mcp_servers.s.url: ",
        "with `port: auto` the url must contain `${PORT}`",
    ),
    (
        "port a number",
        "mcp_servers:\n  s:\n    url: http://h/\n    port: 9000\n",
        "p.yaml:4:11: mcp_servers.s.port: ",
        "`port` is `auto` or `fixed` (the default); a fixed port belongs in `url`",
    ),
    (
        "${PORT} in stdio args",
        "mcp_servers:\n  s:\n    command: x\n    args: [\"${PORT}\"]\n",
        "p.yaml:4:12: mcp_servers.s.args[0]: ",
        "`${PORT}` may appear only",
    ),
    (
        "${PORT} with a fixed port",
        "mcp_servers:\n  s:\n    command: x\n    url: \"http://h:${PORT}/\"\n",
        "p.yaml:4:10: mcp_servers.s.url: ",
        "`${PORT}` may appear only",
    ),
    (
        "${PORT} in command",
        "mcp_servers:\n  s:\n    command: \"x${PORT}\"\n    url: \"http://h:${PORT}/\"\n    port: auto\n",
        "p.yaml:3:14: mcp_servers.s.command: ",
        "`${PORT}` may appear only",
    ),
    (
        "secret in command",
        "mcp_servers:\n  s:\n    command: \"${secret:x}\"\n",
        "p.yaml:3:14: mcp_servers.s.command: ",
        "`${secret:x}` is not allowed here",
    ),
    (
        "secret in cwd",
        "mcp_servers:\n  s:\n    command: x\n    cwd: \"${secret:x}\"\n",
        "p.yaml:4:10: mcp_servers.s.cwd: ",
        "`${secret:x}` is not allowed here",
    ),
    (
        "headers without url",
        "mcp_servers:\n  s:\n    command: x\n    headers: { A: b }\n",
        "p.yaml:4:5: mcp_servers.s.headers: ",
        "`headers` apply only to HTTP servers",
    ),
    (
        "env without command",
        "mcp_servers:\n  s:\n    url: http://h/\n    env: { A: b }\n",
        "p.yaml:4:5: mcp_servers.s.env: ",
        "`env` applies only with `command`",
    ),
    (
        "args without command",
        "mcp_servers:\n  s:\n    url: http://h/\n    args: [a]\n",
        "p.yaml:4:5: mcp_servers.s.args: ",
        "`args` applies only with `command`",
    ),
    (
        "cwd without command",
        "mcp_servers:\n  s:\n    url: http://h/\n    cwd: /tmp\n",
        "p.yaml:4:5: mcp_servers.s.cwd: ",
        "`cwd` applies only with `command`",
    ),
    // mcp_servers: values
    (
        "bad env name",
        "mcp_servers:\n  s:\n    command: x\n    env: { 1BAD: x }\n",
        "p.yaml:4:12: mcp_servers.s.env.1BAD: ",
        "an environment variable name is letters, digits and `_`",
    ),
    (
        "env value not a string",
        "mcp_servers:\n  s:\n    command: x\n    env: { DEBUG: true }\n",
        "p.yaml:4:19: mcp_servers.s.env.DEBUG: ",
        "expected a string, found a boolean; put it in quotes",
    ),
    (
        "url scheme",
        "mcp_servers:\n  s:\n    url: ftp://h/\n",
        "p.yaml:3:10: mcp_servers.s.url: ",
        "must be an http:// or https:// URL",
    ),
    (
        "url without host",
        "mcp_servers:\n  s:\n    url: http:///mcp\n",
        "p.yaml:3:10: mcp_servers.s.url: ",
        "the URL has no host",
    ),
    (
        "url with a space",
        "mcp_servers:\n  s:\n    url: \"http://h/a b\"\n",
        "p.yaml:3:10: mcp_servers.s.url: ",
        "must not contain spaces",
    ),
    (
        "bad header name",
        "mcp_servers:\n  s:\n    url: http://h/\n    headers: { \"Bad Header\": x }\n",
        "p.yaml:4:16: mcp_servers.s.headers.Bad Header: ",
        "not a valid HTTP header name",
    ),
    (
        "header value line break",
        "mcp_servers:\n  s:\n    url: http://h/\n    headers: { X: \"a\\nb\" }\n",
        "p.yaml:4:19: mcp_servers.s.headers.X: ",
        "must not contain line breaks",
    ),
    (
        "NUL in command",
        "mcp_servers:\n  s:\n    command: \"a\\0b\"\n",
        "p.yaml:3:14: mcp_servers.s.command: ",
        "must not contain a NUL character",
    ),
    (
        "command a number",
        "mcp_servers:\n  s:\n    command: 123\n",
        "p.yaml:3:14: mcp_servers.s.command: ",
        "expected a string, found a number; put it in quotes",
    ),
    (
        "command empty",
        "mcp_servers:\n  s:\n    command: \"\"\n",
        "p.yaml:3:14: mcp_servers.s.command: ",
        "must not be empty",
    ),
    (
        "args not a list",
        "mcp_servers:\n  s:\n    command: x\n    args: x\n",
        "p.yaml:4:11: mcp_servers.s.args: ",
        "expected a list, found a string",
    ),
    (
        "arg a number",
        "mcp_servers:\n  s:\n    command: x\n    args: [--port, 8080]\n",
        "p.yaml:4:20: mcp_servers.s.args[1]: ",
        "expected a string, found a number; put it in quotes",
    ),
    (
        "backoff order",
        "mcp_servers:\n  s:\n    command: x\n    restart: { backoff_initial: 2s, backoff_max: 1s }\n",
        "p.yaml:4:50: mcp_servers.s.restart.backoff_max: ",
        "backoff_initial (2s) must not exceed backoff_max (1s)",
    ),
    (
        "backoff_max below the default initial",
        "mcp_servers:\n  s:\n    command: x\n    restart: { backoff_max: 100ms }\n",
        "p.yaml:4:29: mcp_servers.s.restart.backoff_max: ",
        "backoff_initial (500ms) must not exceed backoff_max (100ms)",
    ),
    (
        "crash loop threshold zero",
        "mcp_servers:\n  s:\n    command: x\n    restart: { crash_loop_threshold: 0 }\n",
        "p.yaml:4:38: mcp_servers.s.restart.crash_loop_threshold: ",
        "must be greater than zero",
    ),
    (
        "unknown restart key",
        "mcp_servers:\n  s:\n    command: x\n    restart: { backoff: 1s }\n",
        "p.yaml:4:16: mcp_servers.s.restart.backoff: ",
        "unknown key `backoff`",
    ),
    (
        "enabled not a boolean",
        "mcp_servers:\n  s:\n    command: x\n    enabled: maybe\n",
        "p.yaml:4:14: mcp_servers.s.enabled: ",
        "`maybe` is not `true` or `false`",
    ),
    (
        "server call_timeout zero",
        "mcp_servers:\n  s:\n    command: x\n    call_timeout: 0ms\n",
        "p.yaml:4:19: mcp_servers.s.call_timeout: ",
        "must be greater than zero",
    ),
    // rbac
    (
        "default not an effect",
        "rbac:\n  default: maybe\n",
        "p.yaml:2:12: rbac.default: ",
        "`maybe` is not an effect; expected `allow` or `deny`",
    ),
    (
        "unknown rbac key",
        "rbac:\n  rule: []\n",
        "p.yaml:2:3: rbac.rule: ",
        "unknown key `rule`; expected one of: default, rules",
    ),
    ("rules not a list", "rbac:\n  rules: {}\n", "p.yaml:2:10: rbac.rules: ", "expected a list, found a mapping"),
    (
        "effect missing",
        "rbac:\n  rules:\n    - { min_tier: user }\n",
        "p.yaml:3:7: rbac.rules[0]: ",
        "a rule needs `effect: allow` or `effect: deny`",
    ),
    (
        "effect missing in a block rule",
        "rbac:\n  rules:\n    - name: r\n      min_tier: user\n",
        "p.yaml:3:7: rbac.rules[0]: ",
        "a rule needs `effect",
    ),
    (
        "effect unknown",
        "rbac:\n  rules:\n    - { effect: permit }\n",
        "p.yaml:3:17: rbac.rules[0].effect: ",
        "`permit` is not an effect",
    ),
    (
        "unknown tier",
        "rbac:\n  rules:\n    - { effect: allow, min_tier: boss }\n",
        "p.yaml:3:34: rbac.rules[0].min_tier: ",
        "unknown tier `boss`; expected one of anonymous, mcp, a2a, service, user, admin",
    ),
    (
        "tier in capitals",
        "rbac:\n  rules:\n    - { effect: allow, max_tier: Admin }\n",
        "p.yaml:3:34: rbac.rules[0].max_tier: ",
        "unknown tier `Admin`",
    ),
    (
        "min above max",
        "rbac:\n  rules:\n    - { effect: allow, min_tier: admin, max_tier: user }\n",
        "p.yaml:3:51: rbac.rules[0].max_tier: ",
        "max_tier `user` is below min_tier `admin`, so the rule matches no one",
    ),
    (
        "empty tools list",
        "rbac:\n  rules:\n    - { effect: deny, tools: [] }\n",
        "p.yaml:3:30: rbac.rules[0].tools: ",
        "an empty list matches nothing",
    ),
    (
        "empty pattern",
        "rbac:\n  rules:\n    - { effect: deny, tools: [\"\"] }\n",
        "p.yaml:3:31: rbac.rules[0].tools[0]: ",
        "a pattern must not be empty",
    ),
    (
        "server pattern that can never match",
        "rbac:\n  rules:\n    - { effect: deny, servers: [\"Customers\"] }\n",
        "p.yaml:3:33: rbac.rules[0].servers[0]: ",
        "could never match",
    ),
    (
        "duplicate rule names",
        "rbac:\n  rules:\n    - { name: a, effect: allow }\n    - { name: a, effect: deny }\n",
        "p.yaml:4:15: rbac.rules[1].name: ",
        "another rule is already named `a`",
    ),
    (
        "unknown rule key",
        "rbac:\n  rules:\n    - { effect: allow, tool: [x] }\n",
        "p.yaml:3:24: rbac.rules[0].tool: ",
        "unknown key `tool`",
    ),
    // metrics and audit
    (
        "unknown metrics key",
        "metrics:\n  tokn: x\n",
        "p.yaml:2:3: metrics.tokn: ",
        "unknown key `tokn`; expected one of: token",
    ),
    ("metrics token too short", "metrics:\n  token: short\n", "p.yaml:2:10: metrics.token: ", "at least 16 characters"),
    (
        "metrics token with a space",
        "metrics:\n  token: \"0123456789 abcdef\"\n",
        "p.yaml:2:10: metrics.token: ",
        "only visible ASCII",
    ),
    ("metrics token empty", "metrics:\n  token: \"\"\n", "p.yaml:2:10: metrics.token: ", "must not be empty"),
    (
        "unknown audit key",
        "audit:\n  max_bytes: 1\n",
        "p.yaml:2:3: audit.max_bytes: ",
        "expected one of: max_field_bytes",
    ),
    (
        "audit cap too small",
        "audit:\n  max_field_bytes: 100\n",
        "p.yaml:2:20: audit.max_field_bytes: ",
        "at least 1024",
    ),
    ("audit cap zero", "audit:\n  max_field_bytes: 0\n", "p.yaml:2:20: audit.max_field_bytes: ", "greater than zero"),
    (
        "tagged value",
        "server:\n  listen: !ip 127.0.0.1:1\n",
        "p.yaml:2:11: server.listen: ",
        "expected a string, found a tagged value",
    ),
];

#[test]
fn every_rule_has_a_failing_case_at_the_right_place() {
    for (what, text, prefix, fragment) in SINGLE_PROBLEM_CASES {
        let lines = problem_lines(text);
        assert_eq!(lines.len(), 1, "{what}: expected exactly one problem, got {lines:#?}");
        assert!(lines[0].starts_with(prefix), "{what}: expected prefix {prefix:?}, got {:?}", lines[0]);
        assert!(lines[0].contains(fragment), "{what}: expected {fragment:?} in {:?}", lines[0]);
    }
}

#[test]
fn some_problems_read_exactly() {
    let cases = [
        (
            "models:\n  fast: { provider: openai }\n",
            "p.yaml:2:21: models.fast.provider: no provider named `openai` in `providers` (the profile has no `providers`)",
        ),
        (
            "hooks:\n  Stop:\n    - { builtin: block_credentials }\n",
            "p.yaml:3:18: hooks.Stop[0].builtin: built-in rules apply to PreToolUse, PostToolUse, PostToolUseFailure and UserPromptSubmit; on Stop use a command or http hook",
        ),
        (
            "hooks:\n  UserPromptSubmit:\n    - { builtin: deny_tools, tools: [x] }\n",
            "p.yaml:3:18: hooks.UserPromptSubmit[0].builtin: deny_tools looks at a tool; UserPromptSubmit has no tool",
        ),
        (
            "hooks:\n  PreToolUse:\n    - { http: \"http://127.0.0.1:1/h\", pattern: x }\n",
            "p.yaml:3:39: hooks.PreToolUse[0].pattern: `pattern` does not apply to this kind of handler",
        ),
        (
            "hooks:\n  PreToolUse:\n    - { builtin: block_credentials, args: [x] }\n",
            "p.yaml:3:37: hooks.PreToolUse[0].args: `args` applies only to a command hook",
        ),
        (
            "hooks:\n  PreToolUse:\n    - { builtin: deny_arguments, pattern: \"(unclosed\" }\n",
            "p.yaml:3:43: hooks.PreToolUse[0].pattern: not a valid regular expression: unclosed group",
        ),
        (
            "hooks:\n  BeforeEverything: []\n",
            "p.yaml:2:3: hooks.BeforeEverything: unknown event; use one of PreToolUse, PostToolUse, PostToolUseFailure, UserPromptSubmit, Notification, Stop, SubagentStart, SubagentStop, SessionStart, SessionEnd",
        ),
        (
            "server:\n  listne: x\n",
            "p.yaml:2:3: server.listne: unknown key `listne`; expected one of: listen, public_url, max_body_bytes, call_timeout, drain_timeout, allowed_origins, allow_anonymous, health_interval, trusted_proxies, tool_changes, body_read_timeout, max_sessions_per_principal",
        ),
        (
            "mcp_servers:\n  s:\n    command: x\n    port: auto\n",
            "p.yaml:4:5: mcp_servers.s.port: `port` applies only to HTTP servers, which have `url`",
        ),
        (
            "rbac:\n  rules:\n    - { effect: allow }\n    - { min_tier: user }\n",
            "p.yaml:4:7: rbac.rules[1]: a rule needs `effect: allow` or `effect: deny`",
        ),
        (
            "server:\n  call_timeout: \"${T}\"\n",
            "p.yaml:2:17: server.call_timeout: environment variable `T` is not set; set it, or write `${T:-default}`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(problem_lines(text), [expected], "profile:\n{text}");
    }
}

#[test]
fn all_problems_are_collected_in_document_order() {
    let text = "server:\n  listen: nope\n  bogus: 1\nmcp_servers:\n  BAD:\n    url: ftp://x\nrbac:\n  default: perhaps\nproviders: { x: {} }\n";
    let lines = problem_lines(text);
    let prefixes: Vec<&str> = lines.iter().map(|line| line.split(": ").take(2).last().unwrap_or_default()).collect();
    assert_eq!(
        prefixes,
        [
            "server.listen",
            "server.bogus",
            "mcp_servers.BAD",
            "mcp_servers.BAD.url",
            "rbac.default",
            "providers.x",
            "providers.x"
        ],
        "every problem, sorted by position: {lines:#?}"
    );
    let positions: Vec<&str> = lines.iter().map(|line| line.split(": ").next().unwrap_or_default()).collect();
    assert_eq!(
        positions,
        ["p.yaml:2:11", "p.yaml:3:3", "p.yaml:5:3", "p.yaml:6:10", "p.yaml:8:12", "p.yaml:9:14", "p.yaml:9:14"],
        "positions of every problem"
    );
}

#[test]
fn several_unset_variables_in_one_value_are_each_reported() {
    let lines = problem_lines("server:\n  public_url: \"http://${HOST}:${PORTNUM}\"\n");
    assert_eq!(lines.len(), 2, "both unset variables: {lines:#?}");
    assert!(lines[0].contains("`HOST`") && lines[1].contains("`PORTNUM`"), "named in order: {lines:#?}");
}

#[test]
fn yaml_syntax_errors_are_one_document_problem_at_the_parser_position() {
    let cases = [
        ("unclosed flow list", "server:\n  listen: [\n", 3),
        ("bad indentation", "server:\n  listen: x\n public_url: y\n", 3),
        ("tab indentation", "server:\n\tlisten: x\n", 2),
        ("duplicate key", "server: {}\nserver: {}\n", 2),
        ("two documents", "server: {}\n---\nrbac: {}\n", 0),
        ("unknown alias", "server: *nope\n", 1),
    ];
    for (what, text, line) in cases {
        let problems = parse(text).unwrap_err();
        assert_eq!(problems.len(), 1, "{what}: one problem, got {problems:#?}");
        assert_eq!(problems[0].path, "(document)", "{what}: a syntax problem belongs to the document");
        if line > 0 {
            assert_eq!(problems[0].line, line, "{what}: line of {}", problems[0]);
        }
        assert!(problems[0].col >= 1, "{what}: columns are 1-based: {}", problems[0]);
        assert!(!problems[0].message.contains(" at line "), "{what}: position only once: {}", problems[0]);
    }
}

#[test]
fn problem_display_is_file_line_col_path_message() {
    let problem =
        Problem { file: "f.yaml".into(), line: 3, col: 7, path: "rbac.rules[0]".into(), message: "bad".into() };
    assert_eq!(problem.to_string(), "f.yaml:3:7: rbac.rules[0]: bad", "Display format");

    let problems = parse_profile("bogus: 1\n", "other.yaml", &|_| None).unwrap_err();
    assert_eq!(problems[0].file, "other.yaml", "the label is the file name reported");
    assert_eq!((problems[0].line, problems[0].col), (1, 1), "line and column fields");
    assert_eq!(problems[0].path, "bogus", "path field");
}

#[test]
fn messages_never_echo_environment_values() {
    let secret_looking = "hunter2-very-secret";
    let lines = problem_lines_with("server:\n  listen: ${LISTEN}\n", &[("LISTEN", secret_looking)]);
    assert_eq!(lines.len(), 1, "one problem: {lines:#?}");
    assert!(!lines[0].contains(secret_looking), "the expanded value must not appear: {}", lines[0]);
    assert!(lines[0].contains("`${LISTEN}` (after expansion)"), "the value is shown as written: {}", lines[0]);
}

#[test]
fn a_bad_metrics_token_is_never_echoed() {
    let token = "short-secret";
    let lines = problem_lines_with("metrics:\n  token: ${TOKEN}\n", &[("TOKEN", token)]);
    assert_eq!(lines.len(), 1, "one problem: {lines:#?}");
    assert!(!lines[0].contains(token), "the token must not appear: {}", lines[0]);
}

#[test]
fn long_keys_are_shortened_in_paths() {
    let key = "k".repeat(500);
    let lines = problem_lines(&format!("{key}: 1\n"));
    assert_eq!(lines.len(), 1, "one problem");
    assert!(lines[0].len() < 400, "the line stays readable: {} characters", lines[0].len());
    assert!(lines[0].starts_with(&format!("{FILE}:1:1: {}…: ", "k".repeat(64))), "shortened path: {}", lines[0]);
}

#[test]
fn a_flood_of_problems_is_capped() {
    let text: String = (0..500).map(|index| format!("key{index}: 1\n")).collect();
    let lines = problem_lines(&text);
    assert_eq!(lines.len(), 101, "100 problems and a final note");
    assert!(lines[100].contains("more than 100 problems"), "last line: {}", lines[100]);
}

/// Found by the `profile` fuzz target's checks (docs/fuzzing.md): sections are decoded in a fixed order,
/// so when a section late in the file reported its problems first, the final note sorted into the middle
/// by its position and problems after it were listed below it.
#[test]
fn the_note_about_more_problems_stays_last_whatever_the_order_of_sections() {
    let rules: String = (0..101).map(|_| "    - 1\n").collect();
    let lines = problem_lines(&format!("rbac:\n  rules:\n{rules}server:\n  bogus: 1\n"));
    assert_eq!(lines.len(), 101, "100 problems and a final note");
    assert!(lines[100].contains("more than 100 problems"), "last line: {}", lines[100]);
    assert!(lines[99].contains("server.bogus"), "the rest stays sorted by position: {}", lines[99]);
}

#[test]
fn unicode_columns_count_characters() {
    let lines = problem_lines("server:\n  listen: ä\n  bogus: 1\n");
    assert!(lines[0].starts_with("p.yaml:2:11: server.listen: "), "value after ASCII: {}", lines[0]);
    let lines = problem_lines("mcp_servers:\n  s:\n    env: { ÄÖ: x }\n    command: x\n");
    assert_eq!(lines.len(), 1, "one problem: {lines:#?}");
    assert!(lines[0].starts_with("p.yaml:3:12: mcp_servers.s.env.ÄÖ: "), "non-ASCII key: {}", lines[0]);
    let lines = problem_lines("mcp_servers:\n  s:\n    env: { ÄÖ: x, 1: y }\n    command: x\n");
    assert!(
        lines.iter().any(|line| line.starts_with("p.yaml:3:10: mcp_servers.s.env: keys must be strings")),
        "{lines:#?}"
    );
}
