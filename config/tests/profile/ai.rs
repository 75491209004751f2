//! The AI-gateway sections (`providers`, `models`, `pricing`, `budgets`), RBAC `models`,
//! `rate_limits.tokens_per_minute`, and the pure helpers over them.

use std::time::Duration;

use castellan_ai::cost::{Price, Prices};
use castellan_config::{
    BudgetPer, BudgetPeriod, BudgetSpec, ModelRoute, ProviderKind, Template, TemplatePart, Tier, glob_matches,
    next_period_start, period_start,
};
use chrono::{DateTime, Utc};

use crate::{parse_ok, parse_with, problem_lines};

/// The AI sections of the interface.md example, verbatim.
const INTERFACE_AI_SECTIONS: &str = r#"providers:                              # AI providers; kind defaults to the name when it is one of the three
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

fn price(text: &str) -> Price {
    Price::parse_dollars_per_mtok(text).unwrap()
}

fn secret(name: &str) -> Template {
    Template::from_parts([TemplatePart::Secret(name.to_string())])
}

#[test]
fn the_interface_ai_sections_parse_verbatim() {
    let profile = parse_ok(INTERFACE_AI_SECTIONS);
    let kinds: Vec<(&str, ProviderKind, &str)> =
        profile.providers.iter().map(|(name, spec)| (name.as_str(), spec.kind, spec.base_url.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("anthropic", ProviderKind::Anthropic, "https://api.anthropic.com"),
            ("gemini", ProviderKind::Gemini, "https://generativelanguage.googleapis.com"),
            ("openai", ProviderKind::OpenAi, "https://api.openai.com/v1"),
        ],
        "kinds and base URLs, the gemini one by default"
    );
    let anthropic = &profile.providers["anthropic"];
    assert_eq!(anthropic.api_key, secret("anthropic_key"), "the key stays a secret reference");
    assert_eq!(anthropic.connect_timeout, Duration::from_secs(10), "connect_timeout default");
    assert_eq!(anthropic.timeout, Duration::from_secs(600), "timeout default");
    assert!(anthropic.headers.is_empty(), "no headers by default");

    let keys: Vec<&str> = profile.models.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["claude-*", "fast"], "routes in file order");
    let fast = ModelRoute {
        provider: "openai".into(),
        model: Some("gpt-4.1-mini".into()),
        fallbacks: vec!["claude-haiku-4-5".into()],
    };
    assert_eq!(profile.route("fast"), Some(("fast", &fast)), "the exact route");
    let (key, claude) = profile.route("claude-haiku-4-5").expect("the glob route");
    assert_eq!((key, claude.upstream_model("claude-haiku-4-5")), ("claude-*", "claude-haiku-4-5"), "name kept");
    assert_eq!(profile.route("gpt-4o"), None, "no route");

    let sonnet = Prices {
        input: price("3"),
        output: price("15"),
        cache_read: price("0.3"),
        cache_write_5m: price("3.75"),
        cache_write_1h: price("3.75"),
    };
    assert_eq!(profile.pricing.get("claude-sonnet-4-5"), Some(&sonnet), "exact prices; 1h write defaults");

    let engineers = BudgetSpec {
        name: "engineers-monthly".into(),
        usd_microdollars: 50_000_000,
        period: BudgetPeriod::Month,
        per: Some(BudgetPer::User),
        user: None,
        tier: Some(Tier::User),
        api_key: None,
        models: vec![],
    };
    let alice = BudgetSpec {
        name: "alice-daily".into(),
        usd_microdollars: 5_000_000,
        period: BudgetPeriod::Day,
        per: None,
        user: Some("alice".into()),
        tier: None,
        api_key: None,
        models: vec![],
    };
    assert_eq!(profile.budgets, [engineers, alice], "budgets in order");
    assert_eq!(profile.priced_models_to_check(), ["gpt-4.1-mini"], "the explicit upstream model; globs skipped");
    assert_eq!(profile.referenced_secrets(), ["anthropic_key", "gemini_key", "openai_key"], "provider keys");
}

#[test]
fn defaults_and_every_key() {
    let profile = parse_ok(concat!(
        "providers:\n",
        "  anthropic: { api_key: \"${secret:k}\" }\n",
        "  llm-proxy:\n",
        "    kind: openai\n",
        "    base_url: \"https://llm.internal/v1/\"\n",
        "    api_key: \"Bearer-less ${secret:proxy}\"\n",
        "    headers: { OpenAI-Project: \"${secret:project}\", X-Team: platform }\n",
        "    connect_timeout: 2s\n",
        "    timeout: 5m\n",
        "models:\n",
        "  claude-opus-4-1: { provider: anthropic, model: claude-opus-4-1-20250805 }\n",
        "  \"claude-*\": { provider: anthropic }\n",
        "  \"gpt-?\": { provider: llm-proxy, model: gpt-5, fallbacks: [claude-x, claude-opus-4-1] }\n",
        "  plain: { provider: llm-proxy }\n",
        "pricing:\n",
        "  gpt-5: { input: 1.25, output: 10, cache_read: 0.125 }\n",
        "  tiny: { input: 0.000001, output: \"0.075\" }\n",
        "budgets:\n",
        "  - { name: team-weekly, tier: service, per: api_key, usd: 12.5, period: week, models: [\"gpt-*\"] }\n",
        "  - { name: key-cap, api_key: k1a2b3, usd: \"0.000001\", period: day }\n",
        "  - { name: team-pool, tier: user, per: user, usd: 1, period: day }\n",
        "rate_limits: { tokens_per_minute: 2000 }\n",
    ));
    let anthropic = &profile.providers["anthropic"];
    assert_eq!(anthropic.kind, ProviderKind::Anthropic, "kind from the name");
    assert_eq!(anthropic.base_url, "https://api.anthropic.com", "base_url from the kind");
    let proxy = &profile.providers["llm-proxy"];
    assert_eq!(proxy.base_url, "https://llm.internal/v1", "trailing slash dropped");
    assert_eq!((proxy.connect_timeout, proxy.timeout), (Duration::from_secs(2), Duration::from_secs(300)));
    assert_eq!(proxy.headers["OpenAI-Project"], secret("project"), "secret in a header");
    assert_eq!(proxy.headers["X-Team"], Template::literal("platform"), "literal header");

    assert_eq!(profile.route("claude-opus-4-1").map(|(key, _)| key), Some("claude-opus-4-1"), "exact first");
    assert_eq!(profile.route("claude-opus-4-2").map(|(key, _)| key), Some("claude-*"), "then the glob");
    let (key, gpt) = profile.route("gpt-4").expect("`?` matches one character");
    assert_eq!((key, gpt.upstream_model("gpt-4")), ("gpt-?", "gpt-5"), "a glob route with `model`");
    assert_eq!(profile.route("gpt-40"), None, "`?` is exactly one character");
    assert_eq!(gpt.fallbacks, ["claude-x", "claude-opus-4-1"], "fallbacks kept in order");
    assert_eq!(
        profile.priced_models_to_check(),
        ["claude-opus-4-1-20250805", "plain"],
        "explicit models and exact keys without a pricing entry (gpt-5 has one)"
    );

    let gpt5 = &profile.pricing["gpt-5"];
    assert_eq!((gpt5.input, gpt5.cache_read, gpt5.cache_write_5m), (price("1.25"), price("0.125"), price("1.25")));
    assert_eq!(gpt5.cache_write_1h, gpt5.cache_write_5m, "1h write defaults to cache_write");
    let tiny = &profile.pricing["tiny"];
    assert_eq!((tiny.input, tiny.output, tiny.cache_read), (Price(1), Price(75_000), Price(1)), "exact");

    let [weekly, key_cap, pool] = &profile.budgets[..] else { panic!("three budgets") };
    assert_eq!(
        (weekly.usd_microdollars, weekly.per, weekly.period),
        (12_500_000, Some(BudgetPer::ApiKey), BudgetPeriod::Week)
    );
    assert_eq!(weekly.models, ["gpt-*"], "model globs");
    assert_eq!((key_cap.usd_microdollars, key_cap.per, key_cap.api_key.as_deref()), (1, None, Some("k1a2b3")));
    assert_eq!(pool.per, Some(BudgetPer::User), "explicit per");
    assert!(weekly.applies_to("bob", Tier::Service, Some("k9"), "gpt-5"), "every selector matches");
    assert!(!weekly.applies_to("bob", Tier::Admin, Some("k9"), "gpt-5"), "tier is exact");
    assert!(!weekly.applies_to("bob", Tier::Service, None, "gpt-5"), "per api_key counts only key requests");
    assert!(!weekly.applies_to("bob", Tier::Service, Some("k9"), "claude-x"), "model glob");
    assert!(
        key_cap.applies_to("anyone", Tier::User, Some("k1a2b3"), "m")
            && !key_cap.applies_to("a", Tier::User, None, "m")
    );

    assert_eq!(profile.rate_limits.tokens_per_minute, 2000, "tokens_per_minute read");
    assert_eq!(profile.rate_limits.tokens_per_minute_for(Tier::Admin), 20_000, "times the tier multiplier");
    assert_eq!(profile.rate_limits.tokens_per_minute_for(Tier::Anonymous), 1000, "anonymous 0.5");
    assert_eq!(profile.referenced_secrets(), ["k", "project", "proxy"], "keys and headers of providers");
    assert_eq!(parse_ok("{}\n").rate_limits.tokens_per_minute, 1_000_000, "default tokens_per_minute");
}

#[test]
fn a_tier_budget_is_per_user_by_default() {
    let profile =
        parse_ok("budgets:\n  - { name: b, tier: user, usd: 1, period: day }\n  - { name: c, usd: 1, period: day }\n");
    assert_eq!(profile.budgets[0].per, Some(BudgetPer::User), "with tier: per user");
    assert_eq!(profile.budgets[1].per, None, "without: one pool");
}

#[test]
fn prices_from_yaml_floats_and_strings_are_exact() {
    for (written, microdollars) in [
        ("0.075", 75_000),
        ("3.00", 3_000_000),
        ("0.1", 100_000),
        ("0.3", 300_000),
        ("18.75", 18_750_000),
        ("0.000001", 1),
        ("1e-6", 1),
        ("0", 0),
        ("-0.0", 0),
        ("\"0.123456\"", 123_456),
        ("\"${P}\"", 2_500_000),
        ("123456.123456", 123_456_123_456),
    ] {
        let text = format!("pricing:\n  m: {{ input: {written}, output: 1 }}\n");
        let profile = parse_with(&text, &[("P", "2.5")]).unwrap_or_else(|problems| panic!("{written}: {problems:?}"));
        assert_eq!(profile.pricing["m"].input, Price(microdollars), "{written}");
    }
}

/// (what, profile, exact `file:line:col: path: ` prefix, a fragment of the message): one problem each.
const AI_PROBLEM_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "provider name",
        "providers:\n  My_Llm: { kind: openai, api_key: x }\n",
        "p.yaml:2:3: providers.My_Llm: ",
        "a provider name may contain only lowercase",
    ),
    (
        "provider kind needed",
        "providers:\n  proxy: { api_key: x }\n",
        "p.yaml:2:3: providers.proxy: ",
        "needs `kind: anthropic`, `openai` or `gemini`",
    ),
    (
        "provider kind unknown",
        "providers:\n  proxy: { kind: mistral, api_key: x }\n",
        "p.yaml:2:18: providers.proxy.kind: ",
        "`mistral` is not a provider kind",
    ),
    ("provider api_key needed", "providers:\n  openai: {}\n", "p.yaml:2:3: providers.openai: ", "needs `api_key`"),
    (
        "provider api_key empty",
        "providers:\n  openai: { api_key: \"\" }\n",
        "p.yaml:2:22: providers.openai.api_key: ",
        "must not be empty",
    ),
    (
        "provider api_key line break",
        "providers:\n  openai: { api_key: \"a\\nb\" }\n",
        "p.yaml:2:22: providers.openai.api_key: ",
        "line breaks",
    ),
    (
        "provider api_key port",
        "providers:\n  openai: { api_key: \"${PORT}\" }\n",
        "p.yaml:2:22: providers.openai.api_key: ",
        "`${PORT}` may appear only",
    ),
    (
        "provider unknown key",
        "providers:\n  openai: { api_key: x, url: y }\n",
        "p.yaml:2:25: providers.openai.url: ",
        "unknown key `url`",
    ),
    (
        "base_url scheme",
        "providers:\n  openai: { api_key: x, base_url: ftp://x }\n",
        "p.yaml:2:35: providers.openai.base_url: ",
        "must be an http:// or https:// URL",
    ),
    (
        "base_url secret",
        "providers:\n  openai: { api_key: x, base_url: \"https://${secret:s}\" }\n",
        "p.yaml:2:35: providers.openai.base_url: ",
        "is not allowed here",
    ),
    (
        "base_url query",
        "providers:\n  gemini: { api_key: x, base_url: \"https://g/?key=1\" }\n",
        "p.yaml:2:35: providers.gemini.base_url: ",
        "no query or fragment",
    ),
    (
        "base_url user info",
        "providers:\n  openai: { api_key: x, base_url: \"https://u:p@h/v1\" }\n",
        "p.yaml:2:35: providers.openai.base_url: ",
        "no user name or password",
    ),
    (
        "header name",
        "providers:\n  openai: { api_key: x, headers: { \"a b\": c } }\n",
        "p.yaml:2:36: providers.openai.headers.a b: ",
        "not a valid HTTP header name",
    ),
    (
        "timeout zero",
        "providers:\n  openai: { api_key: x, timeout: 0s }\n",
        "p.yaml:2:34: providers.openai.timeout: ",
        "must be greater than zero",
    ),
    (
        "connect above timeout",
        "providers:\n  openai: { api_key: x, timeout: 5s, connect_timeout: 6s }\n",
        "p.yaml:2:55: providers.openai.connect_timeout: ",
        "must not exceed timeout",
    ),
    (
        "route provider missing",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: anthropic }\n",
        "p.yaml:4:18: models.m.provider: ",
        "no provider named `anthropic` in `providers` (declared: openai)",
    ),
    ("route provider needed", "models:\n  m: { model: x }\n", "p.yaml:2:3: models.m: ", "a route needs `provider`"),
    (
        "route key characters",
        "providers:\n  openai: { api_key: x }\nmodels:\n  \"gpt 5\": { provider: openai }\n",
        "p.yaml:4:3: models.gpt 5: ",
        "may contain only letters",
    ),
    (
        "route model glob",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: openai, model: \"gpt-*\" }\n",
        "p.yaml:4:33: models.m.model: ",
        "(no wildcards)",
    ),
    (
        "route unknown key",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: openai, upstream: y }\n",
        "p.yaml:4:26: models.m.upstream: ",
        "unknown key `upstream`",
    ),
    (
        "fallback unrouted",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: openai, fallbacks: [n] }\n",
        "p.yaml:4:38: models.m.fallbacks[0]: ",
        "no key of `models` matches `n`",
    ),
    (
        "fallback glob",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: openai, fallbacks: [\"n*\"] }\n  n: { provider: openai }\n",
        "p.yaml:4:38: models.m.fallbacks[0]: ",
        "not a glob",
    ),
    (
        "fallback itself",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: openai, fallbacks: [m] }\n",
        "p.yaml:4:38: models.m.fallbacks[0]: ",
        "takes this same route (`m`)",
    ),
    (
        "fallback via own glob",
        "providers:\n  openai: { api_key: x }\nmodels:\n  \"gpt-*\": { provider: openai, fallbacks: [gpt-5] }\n",
        "p.yaml:4:44: models.gpt-*.fallbacks[0]: ",
        "takes this same route (`gpt-*`)",
    ),
    (
        "fallback twice",
        "providers:\n  openai: { api_key: x }\nmodels:\n  m: { provider: openai, fallbacks: [n, n] }\n  n: { provider: openai }\n",
        "p.yaml:4:41: models.m.fallbacks[1]: ",
        "listed twice",
    ),
    ("price input needed", "pricing:\n  m: { output: 1 }\n", "p.yaml:2:3: pricing.m: ", "needs `input`"),
    ("price output needed", "pricing:\n  m: { input: 1 }\n", "p.yaml:2:3: pricing.m: ", "needs `output`"),
    (
        "price negative",
        "pricing:\n  m: { input: -1, output: 1 }\n",
        "p.yaml:2:15: pricing.m.input: ",
        "must not be negative",
    ),
    (
        "price negative float",
        "pricing:\n  m: { input: 1, output: -0.5 }\n",
        "p.yaml:2:26: pricing.m.output: ",
        "must not be negative",
    ),
    (
        "price NaN",
        "pricing:\n  m: { input: .nan, output: 1 }\n",
        "p.yaml:2:15: pricing.m.input: ",
        "is not an amount of dollars",
    ),
    (
        "price infinite",
        "pricing:\n  m: { input: .inf, output: 1 }\n",
        "p.yaml:2:15: pricing.m.input: ",
        "is not an amount of dollars",
    ),
    (
        "price seven decimals",
        "pricing:\n  m: { input: 0.0000001, output: 1 }\n",
        "p.yaml:2:15: pricing.m.input: ",
        "more than 6 decimals",
    ),
    (
        "price string not a number",
        "pricing:\n  m: { input: 1, output: 1, cache_read: cheap }\n",
        "p.yaml:2:41: pricing.m.cache_read: ",
        "is not a price",
    ),
    (
        "price list",
        "pricing:\n  m: { input: [1], output: 1 }\n",
        "p.yaml:2:15: pricing.m.input: ",
        "expected a number of dollars, found a list",
    ),
    (
        "price unknown key",
        "pricing:\n  m: { input: 1, output: 1, cache_write_5m: 2 }\n",
        "p.yaml:2:29: pricing.m.cache_write_5m: ",
        "unknown key",
    ),
    (
        "pricing glob key",
        "pricing:\n  \"claude-*\": { input: 1, output: 1 }\n",
        "p.yaml:2:3: pricing.claude-*: ",
        "exact upstream model name",
    ),
    (
        "budget name needed",
        "budgets:\n  - { usd: 1, period: day }\n",
        "p.yaml:2:5: budgets[0]: ",
        "a budget needs `name`",
    ),
    (
        "budget name alphabet",
        "budgets:\n  - { name: Team_A, usd: 1, period: day }\n",
        "p.yaml:2:13: budgets[0].name: ",
        "a budget name may contain only lowercase",
    ),
    (
        "budget name length",
        "budgets:\n  - { name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, usd: 1, period: day }\n",
        "p.yaml:2:13: budgets[0].name: ",
        "at most 64 characters",
    ),
    (
        "budget name twice",
        "budgets:\n  - { name: a, usd: 1, period: day }\n  - { name: a, usd: 2, period: day }\n",
        "p.yaml:3:13: budgets[1].name: ",
        "another budget is already named `a`",
    ),
    (
        "budget usd needed",
        "budgets:\n  - { name: a, period: day }\n",
        "p.yaml:2:5: budgets[0]: ",
        "a budget needs `usd`",
    ),
    (
        "budget usd zero",
        "budgets:\n  - { name: a, usd: 0, period: day }\n",
        "p.yaml:2:21: budgets[0].usd: ",
        "must be greater than zero",
    ),
    (
        "budget usd negative",
        "budgets:\n  - { name: a, usd: -5, period: day }\n",
        "p.yaml:2:21: budgets[0].usd: ",
        "must not be negative",
    ),
    (
        "budget usd decimals",
        "budgets:\n  - { name: a, usd: 0.0000001, period: day }\n",
        "p.yaml:2:21: budgets[0].usd: ",
        "at most 6 decimals",
    ),
    (
        "budget period needed",
        "budgets:\n  - { name: a, usd: 1 }\n",
        "p.yaml:2:5: budgets[0]: ",
        "a budget needs `period`",
    ),
    (
        "budget period unknown",
        "budgets:\n  - { name: a, usd: 1, period: year }\n",
        "p.yaml:2:32: budgets[0].period: ",
        "`year` is not a period",
    ),
    (
        "budget per unknown",
        "budgets:\n  - { name: a, usd: 1, period: day, per: team }\n",
        "p.yaml:2:42: budgets[0].per: ",
        "`team` is not a pool",
    ),
    (
        "budget tier unknown",
        "budgets:\n  - { name: a, usd: 1, period: day, tier: staff }\n",
        "p.yaml:2:43: budgets[0].tier: ",
        "unknown tier `staff`",
    ),
    (
        "budget models empty",
        "budgets:\n  - { name: a, usd: 1, period: day, models: [] }\n",
        "p.yaml:2:45: budgets[0].models: ",
        "an empty list matches nothing",
    ),
    (
        "budget models bad glob",
        "budgets:\n  - { name: a, usd: 1, period: day, models: [\"a b\"] }\n",
        "p.yaml:2:46: budgets[0].models[0]: ",
        "may contain only",
    ),
    (
        "budget user empty",
        "budgets:\n  - { name: a, usd: 1, period: day, user: \"\" }\n",
        "p.yaml:2:43: budgets[0].user: ",
        "must not be empty",
    ),
    (
        "budget unknown key",
        "budgets:\n  - { name: a, usd: 1, period: day, team: x }\n",
        "p.yaml:2:37: budgets[0].team: ",
        "unknown key `team`",
    ),
    ("budgets not a list", "budgets: { a: 1 }\n", "p.yaml:1:10: budgets: ", "expected a list"),
    (
        "rbac models with tools",
        "rbac:\n  rules:\n    - { effect: allow, tools: [x], models: [y] }\n",
        "p.yaml:3:36: rbac.rules[0].models: ",
        "cannot also have `tools`",
    ),
    (
        "rbac models with servers",
        "rbac:\n  rules:\n    - { effect: allow, models: [y], servers: [x] }\n",
        "p.yaml:3:24: rbac.rules[0].models: ",
        "cannot also have `servers`",
    ),
    (
        "rbac models empty",
        "rbac:\n  rules:\n    - { effect: allow, models: [] }\n",
        "p.yaml:3:32: rbac.rules[0].models: ",
        "an empty list matches nothing",
    ),
    (
        "rbac models bad glob",
        "rbac:\n  rules:\n    - { effect: allow, models: [\"\"] }\n",
        "p.yaml:3:33: rbac.rules[0].models[0]: ",
        "must not be empty",
    ),
    (
        "tokens_per_minute zero",
        "rate_limits:\n  tokens_per_minute: 0\n",
        "p.yaml:2:22: rate_limits.tokens_per_minute: ",
        "must be greater than zero",
    ),
    (
        "tokens_per_minute fraction",
        "rate_limits:\n  tokens_per_minute: 1.5\n",
        "p.yaml:2:22: rate_limits.tokens_per_minute: ",
        "is not a whole number",
    ),
];

#[test]
fn every_ai_rule_has_a_failing_case_at_the_right_place() {
    let mut failures = Vec::new();
    for (what, text, prefix, fragment) in AI_PROBLEM_CASES {
        let lines = problem_lines(text);
        let right = lines.len() == 1 && lines[0].starts_with(prefix) && lines[0].contains(fragment);
        if !right {
            failures.push(format!("{what}: expected one problem `{prefix}…{fragment}…`, got {lines:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rbac_rules_read_models() {
    let profile = parse_ok("rbac:\n  rules:\n    - { effect: allow, min_tier: user, models: [\"claude-*\", fast] }\n");
    let rule = &profile.rbac.rules[0];
    assert_eq!(rule.models, ["claude-*", "fast"], "model globs kept");
    assert!(rule.servers.is_empty() && rule.tools.is_empty(), "a model rule has no tool patterns: {rule:?}");
    let profile = parse_ok("rbac:\n  rules:\n    - { effect: allow }\n");
    assert!(profile.rbac.rules[0].models.is_empty(), "a rule without models is for tools only");
}

#[test]
fn the_glob_matcher() {
    let cases = [
        ("*", "", true),
        ("*", "claude-sonnet-4-5", true),
        ("claude-*", "claude-", true),
        ("claude-*", "claude", false),
        ("claude-*", "Claude-x", false),
        ("*-mini", "gpt-4.1-mini", true),
        ("*-mini", "gpt-4.1-mini-2", false),
        ("gpt-?", "gpt-5", true),
        ("gpt-?", "gpt-", false),
        ("gpt-?", "gpt-55", false),
        ("?", "", false),
        ("?", "ü", true),
        ("??", "ü", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "axbxcxc", true),
        ("a*b*c", "acb", false),
        ("a*?c", "abc", true),
        ("a*?c", "ac", false),
        ("*a?", "xxaab", true),
        ("**", "x", true),
        ("exact", "exact", true),
        ("exact", "exac", false),
        ("exact", "exactly", false),
        ("", "", true),
        ("", "x", false),
        ("models/gemini-*", "models/gemini-2.5-pro", true),
    ];
    for (pattern, name, expected) in cases {
        assert_eq!(glob_matches(pattern, name), expected, "{pattern:?} against {name:?}");
    }
    // A hostile pattern stays linear-ish: many stars against a long non-matching name.
    let pattern = "*a".repeat(50);
    assert!(!glob_matches(&pattern, &"b".repeat(10_000)), "no match, quickly");
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[test]
fn budget_periods_are_utc_calendar_periods() {
    use BudgetPeriod::{Day, Month, Week};
    let cases = [
        (Day, "2025-03-14T15:09:26Z", "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z"),
        (Day, "2025-03-14T00:00:00Z", "2025-03-14T00:00:00Z", "2025-03-15T00:00:00Z"),
        (Day, "2025-12-31T23:59:59.999Z", "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"),
        (Day, "2024-02-28T12:00:00Z", "2024-02-28T00:00:00Z", "2024-02-29T00:00:00Z"),
        (Day, "2024-02-29T12:00:00Z", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"),
        // 2025-03-14 is a Friday; its week began on Monday the 10th.
        (Week, "2025-03-14T15:09:26Z", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z"),
        (Week, "2025-03-10T00:00:00Z", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z"),
        (Week, "2025-03-16T23:59:59Z", "2025-03-10T00:00:00Z", "2025-03-17T00:00:00Z"),
        (Week, "2025-01-01T08:00:00Z", "2024-12-30T00:00:00Z", "2025-01-06T00:00:00Z"),
        (Week, "2024-03-01T00:00:00Z", "2024-02-26T00:00:00Z", "2024-03-04T00:00:00Z"),
        (Month, "2025-03-14T15:09:26Z", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"),
        (Month, "2025-01-31T23:59:59Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"),
        (Month, "2024-02-29T23:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        (Month, "2025-12-15T00:00:00Z", "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        (Month, "2025-03-01T00:00:00Z", "2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"),
    ];
    for (period, now, start, next) in cases {
        assert_eq!(period_start(period, at(now)), at(start), "{period:?} start at {now}");
        assert_eq!(next_period_start(period, at(now)), at(next), "{period:?} next at {now}");
    }
}
