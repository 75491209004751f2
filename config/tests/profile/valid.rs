//! Valid profiles parse to the expected model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use castellan_config::{
    ChildProcess, DEFAULT_PROFILE_YAML, DatabaseSettings, Effect, IdentitySettings, McpServerSpec, NamePattern,
    PortSetting, Profile, RateClass, RateLimitSettings, RbacRule, RbacSettings, RestartPolicy, SecretValidation,
    SecretsSettings, ServerName, ServerSettings, Template, TemplatePart, Tier, Transport, default_profile,
    parse_profile,
};

use crate::{parse_ok, parse_with, problem_lines};

fn name(text: &str) -> ServerName {
    ServerName::parse(text).unwrap()
}

fn patterns(texts: &[&str]) -> Vec<NamePattern> {
    texts.iter().map(|text| NamePattern::parse(text).unwrap()).collect()
}

fn literal_args(texts: &[&str]) -> Vec<Template> {
    texts.iter().map(|text| Template::literal(*text)).collect()
}

fn default_server_settings() -> ServerSettings {
    ServerSettings {
        listen: "127.0.0.1:8080".into(),
        public_url: "http://localhost:8080".into(),
        max_body_bytes: 4 * 1024 * 1024,
        call_timeout: Duration::from_secs(60),
        drain_timeout: Duration::from_secs(10),
        allowed_origins: vec![],
        allow_anonymous: false,
        health_interval: Duration::from_secs(15),
        trusted_proxies: vec![],
        tool_changes: castellan_config::ToolChanges::Warn,
        body_read_timeout: Duration::from_secs(25),
        max_sessions_per_principal: 100,
    }
}

fn stdio(command: &str, args: &[&str]) -> McpServerSpec {
    McpServerSpec {
        transport: Transport::Stdio {
            command: command.into(),
            args: literal_args(args),
            env: BTreeMap::new(),
            cwd: None,
        },
        restart: RestartPolicy::default(),
        call_timeout: None,
        enabled: true,
    }
}

fn expected_default_profile(data_dir: &str) -> Profile {
    Profile {
        server: default_server_settings(),
        database: DatabaseSettings { url: format!("sqlite://{data_dir}/castellan.db") },
        mcp_servers: BTreeMap::from([(name("customers"), stdio("castellan", &["demo-server"]))]),
        rbac: RbacSettings {
            default: Effect::Deny,
            rules: vec![
                RbacRule {
                    name: "users-may-use-tools".into(),
                    effect: Effect::Allow,
                    min_tier: Some(Tier::User),
                    max_tier: None,
                    servers: patterns(&["*"]),
                    tools: patterns(&["*"]),
                    models: vec![],
                    skills: vec![],
                },
                RbacRule {
                    name: "services-may-use-tools".into(),
                    effect: Effect::Allow,
                    min_tier: Some(Tier::Service),
                    max_tier: None,
                    servers: patterns(&["*"]),
                    tools: patterns(&["*"]),
                    models: vec![],
                    skills: vec![],
                },
                RbacRule {
                    name: "no-destructive-for-users".into(),
                    effect: Effect::Deny,
                    min_tier: None,
                    max_tier: Some(Tier::User),
                    servers: patterns(&["customers"]),
                    tools: patterns(&["delete_*"]),
                    models: vec![],
                    skills: vec![],
                },
            ],
        },
        identity: IdentitySettings::default(),
        secrets: SecretsSettings::default(),
        rate_limits: RateLimitSettings::default(),
        hooks: castellan_config::HooksSettings::default(),
        metrics: castellan_config::MetricsSettings::default(),
        audit: castellan_config::AuditSettings::default(),
        providers: BTreeMap::new(),
        models: vec![],
        pricing: BTreeMap::new(),
        budgets: vec![],
        jobs: Default::default(),
        skills: Default::default(),
        extensions: BTreeMap::new(),
    }
}

#[test]
fn the_embedded_default_parses_to_the_documented_model() {
    let parsed = parse_with(DEFAULT_PROFILE_YAML, &[]).unwrap();
    assert_eq!(parsed, expected_default_profile("castellan-data"), "default profile with CASTELLAN_DATA_DIR unset");

    let parsed = parse_with(DEFAULT_PROFILE_YAML, &[("CASTELLAN_DATA_DIR", "/var/lib/castellan")]).unwrap();
    assert_eq!(parsed, expected_default_profile("/var/lib/castellan"), "CASTELLAN_DATA_DIR moves the database");

    let parsed = parse_with(DEFAULT_PROFILE_YAML, &[("CASTELLAN_DATA_DIR", "")]).unwrap();
    assert_eq!(parsed, expected_default_profile("castellan-data"), "an empty CASTELLAN_DATA_DIR takes the default");
}

#[test]
fn default_profile_uses_the_process_environment_and_parses() {
    let profile = default_profile().unwrap();
    assert_eq!(profile.server, default_server_settings(), "default_profile server settings");
    assert_eq!(profile.rbac.rules.len(), 3, "default_profile rules");
    assert!(profile.database.url.starts_with("sqlite://"), "default_profile database: {}", profile.database.url);
}

/// The example from docs/interface.md up to `identity`; the hooks and AI sections follow below.
const INTERFACE_EXAMPLE_IN_SCOPE: &str = r#"server:
  listen: 127.0.0.1:8080
  public_url: http://127.0.0.1:8080     # issuer, resource identifier, passkey origin
database:
  url: sqlite://castellan-data/castellan.db   # or postgres://user@host:5432/db
mcp_servers:
  customers:                            # name: [a-z0-9-]
    command: castellan                  # stdio server: command, args, env, cwd
    args: [demo-server]
    env: { API_TOKEN: "${secret:customers_token}" }   # only what is named here reaches the child
    restart: { backoff_max: 30s }
  remote:
    url: http://127.0.0.1:9000/mcp      # HTTP server; `port: auto` lets the port allocator assign $PORT
    headers: { Authorization: "Bearer ${secret:remote_token}" }
rbac:
  default: deny                         # when no rule matches
  rules:                                # any matching deny wins; else any matching allow; else default
    - { effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }
    - { effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }
secrets:
  validation: strict                    # strict | warn | skip: a referenced secret that is not set
rate_limits:
  burst_multiplier: 3
  tier_multipliers: { admin: 10, user: 1, service: 5, a2a: 5, mcp: 5, anonymous: 0.5 }
  per_second: { mcp_tool_call: 20, oauth: 5, ai_request: 5, hooks: 50 }   # base rate per principal
identity:
  issuers:                              # federation: tokens from these issuers are accepted
    - { issuer: "https://example.okta.com/oauth2/default", audience: "castellan", tier_claim: groups,
        tier_map: { platform-admins: admin, engineers: user } }
"#;

const INTERFACE_EXAMPLE_HOOKS_AND_AI: &str = r#"hooks:
  PreToolUse:
    - { builtin: deny_arguments, pattern: "(?i)drop\\s+table" }
    - { command: ./policy/check.sh, timeout: 2s }
    - { http: "https://siem.example/hook", timeout: 1s, on_failure: deny }
providers:                              # AI providers; kind defaults to the name when it is one of the three
  anthropic: { kind: anthropic, api_key: "${secret:anthropic_key}", base_url: "https://api.anthropic.com" }
  openai: { kind: openai, api_key: "${secret:openai_key}", base_url: "https://api.openai.com/v1" }
  gemini: { kind: gemini, api_key: "${secret:gemini_key}" }   # base_url default https://generativelanguage.googleapis.com
models:                                 # the names clients ask for; globs allowed; first match wins
  "claude-*": { provider: anthropic }   # upstream model = the requested name
  fast: { provider: openai, model: gpt-4.1-mini, fallbacks: [claude-haiku-4-5] }   # fallbacks name routes
pricing:                                # USD per million tokens, keyed by upstream model; overrides the catalog
  claude-sonnet-4-5: { input: 3.00, output: 15.00, cache_read: 0.30, cache_write: 3.75 }
budgets:                                # over budget: 429 with the budget named, until the period turns
  - { name: engineers-monthly, per: user, tier: user, usd: 50, period: month }
  - { name: alice-daily, user: alice, usd: 5, period: day }
"#;

#[test]
fn the_interface_example_parses_where_in_scope() {
    let profile = parse_ok(INTERFACE_EXAMPLE_IN_SCOPE);
    let server = ServerSettings { public_url: "http://127.0.0.1:8080".into(), ..default_server_settings() };
    assert_eq!(profile.server, server, "server section");
    let issuers = &profile.identity.issuers;
    assert_eq!(issuers.len(), 1, "one federated issuer");
    assert_eq!(issuers[0].issuer, "https://example.okta.com/oauth2/default", "issuer identifier kept byte for byte");
    assert_eq!(issuers[0].audience, "castellan", "audience");
    assert_eq!(issuers[0].tier_claim.as_deref(), Some("groups"), "tier claim");
    assert_eq!(issuers[0].tier_map.get("platform-admins"), Some(&Tier::Admin), "tier map entry");
    assert_eq!(issuers[0].algorithms, vec!["RS256".to_string()], "algorithms default to RS256");
    assert_eq!(issuers[0].display_name, "example.okta.com", "display name defaults to the issuer host");
    assert_eq!(profile.rate_limits, castellan_config::RateLimitSettings::default(), "the example states the defaults");
    assert_eq!(profile.database.url, "sqlite://castellan-data/castellan.db", "database url");

    let customers = &profile.mcp_servers[&name("customers")];
    let expected_env = BTreeMap::from([(
        "API_TOKEN".to_string(),
        Template::from_parts([TemplatePart::Secret("customers_token".into())]),
    )]);
    assert_eq!(
        customers.transport,
        Transport::Stdio {
            command: "castellan".into(),
            args: literal_args(&["demo-server"]),
            env: expected_env,
            cwd: None
        },
        "customers transport"
    );
    assert_eq!(customers.restart.backoff_max, Duration::from_secs(30), "customers restart.backoff_max");
    assert_eq!(customers.restart.backoff_initial, Duration::from_millis(500), "backoff_initial keeps its default");

    let remote = &profile.mcp_servers[&name("remote")];
    let expected_headers = BTreeMap::from([(
        "Authorization".to_string(),
        Template::from_parts([TemplatePart::Literal("Bearer ".into()), TemplatePart::Secret("remote_token".into())]),
    )]);
    assert_eq!(
        remote.transport,
        Transport::Http {
            url: Template::literal("http://127.0.0.1:9000/mcp"),
            headers: expected_headers,
            process: None,
            port: PortSetting::Fixed,
        },
        "remote transport"
    );

    let rule_names: Vec<&str> = profile.rbac.rules.iter().map(|rule| rule.name.as_str()).collect();
    assert_eq!(rule_names, ["rbac.rules[0]", "rbac.rules[1]"], "unnamed rules are named by position");
    assert_eq!(profile.rbac.rules[1].max_tier, Some(Tier::User), "second rule max_tier");
    assert_eq!(profile.rbac.rules[1].tools, patterns(&["delete_*"]), "second rule tools");
}

#[test]
fn the_full_interface_example_parses_with_its_hooks_and_ai_sections() {
    let text = format!("{INTERFACE_EXAMPLE_IN_SCOPE}{INTERFACE_EXAMPLE_HOOKS_AND_AI}");
    let profile = parse_ok(&text);
    assert_eq!(profile.providers.len(), 3, "three providers");
    assert_eq!(profile.models.len(), 2, "two routes");
    assert_eq!(profile.pricing.len(), 1, "one price override");
    assert_eq!(profile.budgets.len(), 2, "two budgets");
    assert_eq!(profile.hooks.events.values().map(Vec::len).sum::<usize>(), 3, "three PreToolUse hooks");
}

#[test]
fn an_empty_mapping_is_a_profile_of_defaults() {
    let profile = parse_ok("{}\n");
    assert_eq!(profile.server, default_server_settings(), "server defaults");
    assert_eq!(profile.database.url, "sqlite://castellan-data/castellan.db", "database default");
    assert!(profile.mcp_servers.is_empty(), "no servers by default");
    assert_eq!(profile.rbac, RbacSettings { default: Effect::Deny, rules: vec![] }, "rbac default is deny");

    let profile = parse_ok("server:\nmcp_servers:\nrbac:\n  rules: []\n");
    assert!(profile.mcp_servers.is_empty(), "empty sections are allowed");
    assert!(profile.rbac.rules.is_empty(), "an empty rules list is allowed");
}

#[test]
fn server_settings_are_read_and_defaults_derive_from_listen() {
    let profile = parse_ok(
        "server:\n  listen: 0.0.0.0:9443\n  max_body_bytes: 1024\n  call_timeout: 2m\n  drain_timeout: 0s\n  allowed_origins: [\"https://App.Example.com\", \"http://localhost:3000\"]\n  allow_anonymous: true\n  trusted_proxies: [10.0.0.0/8, \"::1\"]\n  tool_changes: block\n  body_read_timeout: 5s\n  max_sessions_per_principal: 7\n",
    );
    let expected = ServerSettings {
        listen: "0.0.0.0:9443".into(),
        public_url: "http://0.0.0.0:9443".into(),
        max_body_bytes: 1024,
        call_timeout: Duration::from_secs(120),
        drain_timeout: Duration::ZERO,
        allowed_origins: vec!["https://app.example.com".into(), "http://localhost:3000".into()],
        allow_anonymous: true,
        health_interval: Duration::from_secs(15),
        trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()],
        tool_changes: castellan_config::ToolChanges::Block,
        body_read_timeout: Duration::from_secs(5),
        max_sessions_per_principal: 7,
    };
    assert_eq!(profile.server, expected, "server settings with public_url derived from listen");

    let profile = parse_ok("server:\n  listen: \"[::1]:8080\"\n  public_url: https://castellan.example.com/\n");
    assert_eq!(profile.server.listen, "[::1]:8080", "IPv6 listen address");
    assert_eq!(profile.server.public_url, "https://castellan.example.com", "a trailing slash is dropped");
}

#[test]
fn durations_accept_every_documented_form() {
    let cases = [
        ("500ms", Duration::from_millis(500)),
        ("2s", Duration::from_secs(2)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("7", Duration::from_secs(7)),
        ("\"30\"", Duration::from_secs(30)),
        ("8760h", Duration::from_secs(8760 * 3600)),
    ];
    for (written, expected) in cases {
        let profile = parse_ok(&format!("server:\n  call_timeout: {written}\n"));
        assert_eq!(profile.server.call_timeout, expected, "call_timeout: {written}");
    }
}

#[test]
fn a_stdio_server_takes_every_key() {
    let profile = parse_ok(
        r#"mcp_servers:
  files:
    command: /usr/local/bin/files-mcp
    args: ["--root", "/srv"]
    env: { HOME: /srv, TOKEN: "${secret:files_token}" }
    cwd: /srv
    call_timeout: 5s
    enabled: false
    restart:
      backoff_initial: 1s
      backoff_max: 1m
      crash_loop_threshold: 3
      crash_loop_window: 2m
"#,
    );
    let expected = McpServerSpec {
        transport: Transport::Stdio {
            command: "/usr/local/bin/files-mcp".into(),
            args: vec![Template::literal("--root"), Template::literal("/srv")],
            env: BTreeMap::from([
                ("HOME".to_string(), Template::literal("/srv")),
                ("TOKEN".to_string(), Template::from_parts([TemplatePart::Secret("files_token".into())])),
            ]),
            cwd: Some(PathBuf::from("/srv")),
        },
        restart: RestartPolicy {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            crash_loop_threshold: 3,
            crash_loop_window: Duration::from_secs(120),
        },
        call_timeout: Some(Duration::from_secs(5)),
        enabled: false,
    };
    assert_eq!(profile.mcp_servers[&name("files")], expected, "stdio server with every key");
}

#[test]
fn an_http_child_with_an_allocated_port() {
    let profile = parse_ok(
        r#"mcp_servers:
  search:
    command: search-mcp
    args: [--port, "${PORT}"]
    env: { LISTEN: "127.0.0.1:${PORT}" }
    url: http://127.0.0.1:${PORT}/mcp
    port: auto
    headers: { X-Api-Key: "${secret:search_key}" }
"#,
    );
    let port_url = Template::from_parts([
        TemplatePart::Literal("http://127.0.0.1:".into()),
        TemplatePart::Port,
        TemplatePart::Literal("/mcp".into()),
    ]);
    let expected = Transport::Http {
        url: port_url,
        headers: BTreeMap::from([(
            "X-Api-Key".to_string(),
            Template::from_parts([TemplatePart::Secret("search_key".into())]),
        )]),
        process: Some(ChildProcess {
            command: "search-mcp".into(),
            args: vec![Template::literal("--port"), Template::from_parts([TemplatePart::Port])],
            env: BTreeMap::from([(
                "LISTEN".to_string(),
                Template::from_parts([TemplatePart::Literal("127.0.0.1:".into()), TemplatePart::Port]),
            )]),
            cwd: None,
        }),
        port: PortSetting::Auto,
    };
    assert_eq!(profile.mcp_servers[&name("search")].transport, expected, "HTTP child with port: auto");
}

#[test]
fn an_http_child_with_a_fixed_port_and_explicit_fixed() {
    for port_line in ["", "    port: fixed\n"] {
        let profile = parse_ok(&format!(
            "mcp_servers:\n  web:\n    command: web-mcp\n    url: https://localhost:9100/mcp\n{port_line}"
        ));
        let Transport::Http { process, port, .. } = &profile.mcp_servers[&name("web")].transport else {
            panic!("expected an HTTP transport for {port_line:?}");
        };
        assert_eq!(*port, PortSetting::Fixed, "port with {port_line:?}");
        assert_eq!(process.as_ref().map(|process| process.command.as_str()), Some("web-mcp"), "child command");
    }
}

#[test]
fn rules_read_every_key() {
    let profile = parse_ok(
        "rbac:\n  default: allow\n  rules:\n    - name: ops\n      effect: deny\n      min_tier: a2a\n      max_tier: service\n      servers: [\"db-*\", \"*-prod\"]\n      tools: [\"drop_*\", \"*\"]\n",
    );
    let expected = RbacSettings {
        default: Effect::Allow,
        rules: vec![RbacRule {
            name: "ops".into(),
            effect: Effect::Deny,
            min_tier: Some(Tier::A2a),
            max_tier: Some(Tier::Service),
            servers: patterns(&["db-*", "*-prod"]),
            tools: patterns(&["drop_*", "*"]),
            models: vec![],
            skills: vec![],
        }],
    };
    assert_eq!(profile.rbac, expected, "rbac with every key");

    let profile = parse_ok("rbac:\n  rules:\n    - { effect: allow, min_tier: user, max_tier: user }\n");
    assert_eq!(profile.rbac.rules[0].servers, patterns(&["*"]), "servers default to *");
    assert_eq!(profile.rbac.rules[0].tools, patterns(&["*"]), "tools default to *");
}

#[test]
fn merge_keys_share_settings_between_servers() {
    let profile = parse_ok(
        "mcp_servers:\n  one: &base\n    command: tool\n    restart: { backoff_max: 5s }\n  two:\n    <<: *base\n    args: [two]\n",
    );
    let two = &profile.mcp_servers[&name("two")];
    assert_eq!(two.restart.backoff_max, Duration::from_secs(5), "merged restart");
    assert_eq!(
        two.transport,
        Transport::Stdio { command: "tool".into(), args: literal_args(&["two"]), env: BTreeMap::new(), cwd: None },
        "merged command with own args"
    );
}

#[test]
fn a_file_is_loaded_from_disk_and_problems_name_it() {
    let dir = std::env::temp_dir().join(format!("castellan-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, "server:\n  listen: 127.0.0.1:9000\n").unwrap();
    let profile = castellan_config::load_profile_file(&good).unwrap();
    assert_eq!(profile.server.listen, "127.0.0.1:9000", "loaded from disk");

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "bogus: 1\n").unwrap();
    let problems = castellan_config::load_profile_file(&bad).unwrap_err();
    let label = bad.display().to_string();
    assert_eq!(problems[0].file, label, "the problem names the file as given");
    assert!(problems[0].to_string().starts_with(&format!("{label}:1:1: bogus: ")), "display: {}", problems[0]);

    let missing = castellan_config::load_profile_file(&dir.join("missing.yaml")).unwrap_err();
    assert_eq!(missing.len(), 1, "one problem for a missing file");
    assert_eq!(missing[0].path, "(document)", "a missing file is a document problem");
    assert!(missing[0].message.starts_with("cannot read the profile"), "message: {}", missing[0].message);

    let binary = dir.join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let problems = castellan_config::load_profile_file(&binary).unwrap_err();
    assert_eq!(problems[0].message, "the profile is not valid UTF-8", "non-UTF-8 file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parse_profile_takes_the_environment_as_a_function() {
    let env = |name: &str| (name == "LISTEN").then(|| "127.0.0.1:7000".to_string());
    let profile = parse_profile("server:\n  listen: ${LISTEN}\n", "x.yaml", &env).unwrap();
    assert_eq!(profile.server.listen, "127.0.0.1:7000", "listen from the environment");
    assert_eq!(
        profile.server.public_url, "http://localhost:7000",
        "public_url follows the expanded listen, loopback as localhost"
    );
}

#[test]
fn identity_settings_parse_and_bad_values_are_reported_at_their_keys() {
    let profile = parse_ok(
        "identity:\n  access_token_ttl: 5m\n  signing_key_rotation: 7d\n  dynamic_registration: false\n  allow_private_addresses: true\n  issuers:\n    - { issuer: \"http://127.0.0.1:9999\", audience: castellan, algorithms: [ES256, RS256], default_tier: user, client_id: castellan-web }\n",
    );
    assert_eq!(profile.identity.access_token_ttl, Duration::from_secs(300), "access token ttl");
    assert_eq!(profile.identity.signing_key_rotation, Duration::from_secs(7 * 86_400), "days are a unit");
    assert!(!profile.identity.dynamic_registration, "registration switched off");
    assert!(profile.identity.allow_private_addresses, "private addresses allowed");
    assert_eq!(profile.identity.refresh_token_ttl, Duration::from_secs(14 * 86_400), "refresh ttl default");
    let issuer = &profile.identity.issuers[0];
    assert_eq!(issuer.algorithms, vec!["ES256".to_string(), "RS256".to_string()], "pinned algorithms");
    assert_eq!(issuer.default_tier, Some(Tier::User), "default tier");
    assert_eq!(issuer.client_id.as_deref(), Some("castellan-web"), "client id for browser sign-in");

    let cases = [
        ("identity:\n  issuers:\n    - { audience: x }\n", "p.yaml:3:7: identity.issuers[0]: an issuer needs `issuer`"),
        (
            "identity:\n  issuers:\n    - { issuer: \"https://a\", audience: x, algorithms: [HS256] }\n",
            "p.yaml:3:56: identity.issuers[0].algorithms[0]: unsupported algorithm",
        ),
        ("identity:\n  access_token_ttl: 0s\n", "p.yaml:2:21: identity.access_token_ttl:"),
        ("identity:\n  bogus: 1\n", "p.yaml:2:3: identity.bogus: unknown key"),
    ];
    for (text, expected_prefix) in cases {
        let lines = problem_lines(text);
        assert!(
            lines.iter().any(|line| line.starts_with(expected_prefix)),
            "{text:?} should report {expected_prefix:?}, got {lines:?}"
        );
    }
}

#[test]
fn the_secrets_section_chooses_validation_and_the_key_file() {
    let profile = parse_ok("secrets:\n  validation: warn\n  master_key_file: /etc/castellan/master.key\n");
    assert_eq!(profile.secrets.validation, SecretValidation::Warn, "validation");
    assert_eq!(
        profile.secrets.master_key_file.as_deref(),
        Some(std::path::Path::new("/etc/castellan/master.key")),
        "key file"
    );
    assert_eq!(parse_ok("{}\n").secrets.validation, SecretValidation::Strict, "strict by default");
    let lines = problem_lines("secrets:\n  validation: maybe\n");
    assert!(
        lines.iter().any(|line| line.starts_with("p.yaml:2:15: secrets.validation: expected strict, warn or skip")),
        "{lines:?}"
    );
}

#[test]
fn rate_limits_have_the_contract_defaults_and_read_every_key() {
    let defaults = parse_ok("{}\n").rate_limits;
    assert_eq!(defaults.quota(RateClass::McpToolCall, Tier::User), (20.0, 60), "user: 20/s, burst 60");
    assert_eq!(defaults.quota(RateClass::McpToolCall, Tier::Admin), (200.0, 600), "admin: ×10");
    assert_eq!(defaults.quota(RateClass::Oauth, Tier::Anonymous), (2.5, 7), "anonymous: ×0.5");
    let profile = parse_ok(
        "rate_limits:\n  burst_multiplier: 2\n  tier_multipliers: { user: 2 }\n  per_second: { mcp_tool_call: 7.5 }\n",
    );
    assert_eq!(profile.rate_limits.quota(RateClass::McpToolCall, Tier::User), (15.0, 30), "read back");
    assert_eq!(profile.rate_limits.quota(RateClass::McpToolCall, Tier::Service), (37.5, 75), "other tiers keep theirs");
    assert_eq!(defaults.per_second[&RateClass::McpSession], 5.0, "initialize: 5/s by default");
    let sessions = parse_ok("rate_limits:\n  per_second: { mcp_session: 40 }\n");
    assert_eq!(sessions.rate_limits.per_second[&RateClass::McpSession], 40.0, "mcp_session read back");
    // initialize's burst is 20 s of its rate, whatever burst_multiplier says.
    assert_eq!(defaults.quota(RateClass::McpSession, Tier::User), (5.0, 100), "5/s, burst 100");
    assert_eq!(defaults.quota(RateClass::McpSession, Tier::Anonymous), (2.5, 50), "anonymous × 0.5");
    let raised = parse_ok("rate_limits:\n  burst_multiplier: 3\n  per_second: { mcp_session: 50 }\n");
    assert_eq!(raised.rate_limits.quota(RateClass::McpSession, Tier::User), (50.0, 1000), "the profile's rate");
    let cases = [
        (
            "rate_limits:\n  per_second: { mcp_tool_call: 0 }\n",
            "rate_limits.per_second.mcp_tool_call: expected a number greater than 0",
        ),
        ("rate_limits:\n  per_second: { tools: 5 }\n", "rate_limits.per_second.tools: unknown class"),
        ("rate_limits:\n  tier_multipliers: { root: 5 }\n", "rate_limits.tier_multipliers.root: unknown tier"),
        ("rate_limits:\n  burst_multiplier: 0.5\n", "rate_limits.burst_multiplier: the burst multiplier is at least 1"),
        (
            "server:\n  trusted_proxies: [10.0.0.0/33]\n",
            "server.trusted_proxies[0]: expected an address or a CIDR block",
        ),
    ];
    for (text, expected) in cases {
        let lines = problem_lines(text);
        assert!(lines.iter().any(|line| line.contains(expected)), "{text:?} should report {expected:?}: {lines:?}");
    }
}

#[test]
fn builtin_hooks_parse_for_pre_tool_use() {
    let profile = parse_ok(
        "hooks:\n  PreToolUse:\n    - { builtin: deny_arguments, pattern: \"(?i)drop\\\\s+table\" }\n    - { builtin: deny_tools, tools: [\"delete_*\"] }\n    - { builtin: require_tier, tier: admin, tools: [\"export_*\"] }\n    - { builtin: block_credentials }\n",
    );
    let handlers = &profile.hooks.events[&castellan_config::HookEvent::PreToolUse];
    assert_eq!(handlers.len(), 4, "four handlers in order: {handlers:?}");
    assert_eq!(
        handlers[0],
        castellan_config::HookHandler::DenyArguments { pattern: "(?i)drop\\s+table".into() },
        "the regex as written"
    );
    assert_eq!(handlers[3], castellan_config::HookHandler::BlockCredentials, "order kept");
}

#[test]
fn metrics_token_and_audit_cap_parse_with_their_defaults() {
    let defaults = parse_ok("server:\n  listen: 127.0.0.1:1\n");
    assert_eq!(defaults.metrics.token, None, "/metrics is open by default");
    assert_eq!(defaults.audit.max_field_bytes, 64 * 1024, "fields are capped at 64 KiB by default");
    let profile = parse_with(
        "metrics:\n  token: ${METRICS_TOKEN}\naudit:\n  max_field_bytes: 4096\n",
        &[("METRICS_TOKEN", "0123456789abcdef0123")],
    )
    .expect("valid");
    assert_eq!(profile.metrics.token.as_ref().map(|token| token.expose()), Some("0123456789abcdef0123"));
    assert!(!format!("{:?}", profile.metrics).contains("0123456789abcdef"), "Debug hides the token");
    assert_eq!(profile.audit.max_field_bytes, 4096);
}

#[test]
fn command_hooks_and_handlers_of_every_event_parse() {
    let profile = parse_ok(concat!(
        "hooks:\n",
        "  PreToolUse:\n",
        "    - { command: ./policy/check.sh, args: [\"--strict\"], env: { TOKEN: \"${secret:siem}\" }, timeout: 2s, on_failure: allow }\n",
        "  UserPromptSubmit:\n",
        "    - { builtin: block_credentials }\n",
        "  Stop:\n",
        "    - { http: \"http://127.0.0.1:9/stop\" }\n",
        "  SessionEnd:\n",
        "    - { command: /usr/local/bin/record }\n",
    ));
    let events = &profile.hooks.events;
    let castellan_config::HookHandler::Command { process, timeout, deny_on_failure } =
        &events[&castellan_config::HookEvent::PreToolUse][0]
    else {
        panic!("a command hook: {events:?}")
    };
    assert_eq!(process.command, "./policy/check.sh", "the program");
    assert_eq!(process.args, [Template::literal("--strict")], "its arguments");
    assert_eq!(
        process.env.get("TOKEN"),
        Some(&Template::from_parts([TemplatePart::Secret("siem".into())])),
        "env may name a secret"
    );
    assert_eq!((*timeout, *deny_on_failure), (std::time::Duration::from_secs(2), false), "timeout, on_failure");
    let castellan_config::HookHandler::Command { timeout, deny_on_failure, .. } =
        &events[&castellan_config::HookEvent::SessionEnd][0]
    else {
        panic!("a command hook: {events:?}")
    };
    assert_eq!((*timeout, *deny_on_failure), (std::time::Duration::from_secs(5), true), "defaults: 5 s, deny");
    assert_eq!(
        events[&castellan_config::HookEvent::UserPromptSubmit],
        [castellan_config::HookHandler::BlockCredentials],
        "credential shapes in prompts"
    );
    assert_eq!(events.len(), 4, "four events configured");
}

/// docs/profile.md shows the embedded default as it is: the YAML block of its last section parses
/// to exactly the profile `castellan serve` runs without one (a copied `public_url` of 127.0.0.1
/// instead of localhost once broke OAuth for whoever copied it).
#[test]
fn the_documented_embedded_default_is_the_real_one() {
    let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/profile.md"));
    let section = docs.split("## The embedded default").nth(1).expect("the section");
    let block = section.split("```yaml").nth(1).and_then(|rest| rest.split("```").next()).expect("its YAML block");
    let env = |_: &str| None;
    let documented = parse_profile(block, "docs/profile.md", &env).expect("the documented default parses");
    assert_eq!(documented, default_profile().expect("the embedded default"), "docs/profile.md matches default.yaml");
}
