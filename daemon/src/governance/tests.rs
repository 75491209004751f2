//! The chain, table-driven, without sockets or processes: every collaborator is in memory.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castellan_actors::{EventBus, Metrics, PolicySnapshot};
use castellan_config::{HookEvent, Profile, Tier};
use castellan_schema::audit::{ExecutionKind, ExecutionStatus, NewExecution};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::*;
use crate::governance::rate_limit::Limits;
use crate::hooks::{HookCall, HookDecision, HookOutcome};
use crate::identity::{Credential, Principal};
use crate::redaction::Redactor;

const SECRET: &str = "s3cr3t-canary-value";

fn profile(extra: &str) -> Profile {
    let text = format!(
        r#"
database:
  url: "sqlite::memory:"
rbac:
  default: deny
  rules:
    - {{ name: users-may-use-tools, effect: allow, min_tier: user, servers: ["*"], tools: ["*"] }}
    - {{ name: no-destructive-for-users, effect: deny, max_tier: user, servers: ["customers"], tools: ["delete_*"] }}
    - {{ name: services-read-only, effect: allow, min_tier: service, servers: ["customers"], tools: ["get_*"] }}
{extra}
"#
    );
    let env = |_: &str| None;
    match castellan_config::parse_profile(&text, "test.yaml", &env) {
        Ok(profile) => profile,
        Err(problems) => panic!("test profile: {problems:?}"),
    }
}

fn principal(tier: Tier) -> Principal {
    Principal {
        subject: format!("{}-user", tier.as_str()),
        tier,
        scopes: Vec::new(),
        credential: Credential::ApiKey { public_id: "k".into() },
    }
}

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).single().unwrap_or_default()
    }
}

/// What a fake hook handler of one event answers.
#[derive(Clone)]
enum Script {
    Allow,
    Deny(&'static str),
    Rewrite(Value),
    /// The handler did not answer in time; the runner applies `on_failure` (deny or allow).
    TimedOut {
        deny: bool,
    },
}

#[derive(Default)]
struct FakeHooks {
    scripts: Vec<(HookEvent, Script)>,
    seen: Mutex<Vec<(HookEvent, Value)>>,
}

impl HookRunner for FakeHooks {
    fn has(&self, event: HookEvent) -> bool {
        self.scripts.iter().any(|(scripted, _)| *scripted == event)
    }
    fn run<'a>(&'a self, call: &'a HookCall<'a>) -> BoxFuture<'a, HookOutcome> {
        Box::pin(async move {
            self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((call.event, call.input.clone()));
            let mut outcome = HookOutcome::default();
            for (event, script) in &self.scripts {
                if *event != call.event {
                    continue;
                }
                let (allowed, reason, rewritten) = match script {
                    Script::Allow => (true, None, None),
                    Script::Deny(reason) => (false, Some(reason.to_string()), None),
                    Script::Rewrite(input) => (true, None, Some(input.clone())),
                    Script::TimedOut { deny } => (!deny, Some("the hook did not answer within 1s".into()), None),
                };
                if let Some(input) = &rewritten {
                    outcome.tool_input = Some(input.clone());
                }
                outcome.decisions.push(HookDecision { handler: "fake".into(), allowed, reason, rewritten });
            }
            outcome
        })
    }
}

struct FakePins(bool);
impl PinCheck for FakePins {
    fn is_blocked(&self, _: &str, _: &str, _: &str) -> bool {
        self.0
    }
}

#[derive(Default)]
struct FakeAudit {
    down: bool,
    commit_fails: bool,
    rows: Mutex<Vec<NewExecution>>,
}
impl AuditSink for FakeAudit {
    fn is_available(&self) -> bool {
        !self.down
    }
    fn record(&self, row: NewExecution) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.commit_fails {
                return Err("disk full".into());
            }
            self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(row);
            Ok(())
        })
    }
}

struct FakeUpstream {
    answer: Executed,
    called_with: Mutex<Option<Value>>,
}
impl FakeUpstream {
    fn answering(answer: Executed) -> Self {
        FakeUpstream { answer, called_with: Mutex::new(None) }
    }
    fn ran(&self) -> Option<Value> {
        self.called_with.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
impl Upstream for FakeUpstream {
    fn execute<'a>(&'a self, _: &'a Target, arguments: Value) -> BoxFuture<'a, Executed> {
        *self.called_with.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(arguments);
        Box::pin(async move { self.answer.clone() })
    }
}

/// One case: who calls which tool, in which world, and how it must end.
struct Case {
    what: &'static str,
    tier: Tier,
    tool: &'static str,
    profile: &'static str,
    pinned_blocked: bool,
    hooks: Vec<(HookEvent, Script)>,
    audit_down: bool,
    commit_fails: bool,
    upstream: Executed,
    /// How many calls are made before the one judged (to exhaust a limit).
    calls_before: usize,
    expect_status: ExecutionStatus,
    expect_ran: bool,
    /// A fragment the outcome's message (or result) must hold.
    expect_text: &'static str,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            what: "",
            tier: Tier::User,
            tool: "get_customer",
            profile: "",
            pinned_blocked: false,
            hooks: Vec::new(),
            audit_down: false,
            commit_fails: false,
            upstream: Executed::Answered(Ok(json!({"content": [{"type": "text", "text": "Ada"}]}))),
            calls_before: 0,
            expect_status: ExecutionStatus::Success,
            expect_ran: true,
            expect_text: "",
        }
    }
}

fn found(tool: &str) -> Resolution {
    Resolution::Found(Target {
        server: "customers".into(),
        name: tool.into(),
        rbac: RbacTarget::Tool,
        definition_hash: Some("hash".into()),
    })
}

fn request<'a>(principal: &'a Principal, requested: &'a str, arguments: Value) -> Request<'a> {
    Request {
        principal,
        client: IpAddr::from([127, 0, 0, 1]),
        kind: ExecutionKind::Tool,
        requested,
        arguments,
        session_id: Some("session-1"),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        hook: HookIdentity { tool_use_id: "jsonrpc:1".into() },
    }
}

struct World {
    policy: PolicySnapshot,
    limits: Arc<Limits>,
    pins: FakePins,
    hooks: FakeHooks,
    audit: FakeAudit,
    metrics: Metrics,
    bus: EventBus,
}

impl World {
    fn new(case: &Case) -> Self {
        let profile = profile(case.profile);
        let metrics = Metrics::new();
        World {
            policy: PolicySnapshot { rbac: profile.rbac.clone(), generation: 1 },
            limits: Limits::compile(&profile.rate_limits, None),
            pins: FakePins(case.pinned_blocked),
            hooks: FakeHooks { scripts: case.hooks.clone(), ..FakeHooks::default() },
            audit: FakeAudit { down: case.audit_down, commit_fails: case.commit_fails, ..FakeAudit::default() },
            bus: EventBus::new(metrics.clone()),
            metrics,
        }
    }

    fn chain(&self) -> Chain<'_> {
        Chain {
            policy: &self.policy,
            limits: &self.limits,
            pins: &self.pins,
            hooks: &self.hooks,
            audit: &self.audit,
            redactor: Arc::new(Redactor::new([("canary", SECRET)])),
            clock: &FixedClock,
            metrics: &self.metrics,
            bus: &self.bus,
        }
    }

    fn rows(&self) -> Vec<NewExecution> {
        self.audit.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn text_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered(value) | Outcome::UpstreamError(value) | Outcome::Suspended(value) => value.to_string(),
        Outcome::RateLimited { policy, .. } => policy.limit.to_string(),
        other => other.error_message().unwrap_or_default(),
    }
}

const LIMITED: &str = "rate_limits:\n  per_second: { mcp_tool_call: 1000 }\n  burst_multiplier: 1\n  tools: { customers__get_customer: 0.001 }";

fn cases() -> Vec<Case> {
    use ExecutionStatus::*;
    let mut cases = vec![
        Case { what: "a user may read", ..Case::default() },
        Case {
            what: "a user may not delete (deny wins)",
            tool: "delete_customer",
            expect_status: Denied,
            expect_ran: false,
            expect_text: "forbidden: denied by rule 'no-destructive-for-users'",
            ..Case::default()
        },
        Case { what: "an admin may delete", tier: Tier::Admin, tool: "delete_customer", ..Case::default() },
        Case { what: "a service may read", tier: Tier::Service, ..Case::default() },
        Case {
            what: "a service may not delete (max_tier: user covers the tiers below it)",
            tier: Tier::Service,
            tool: "delete_customer",
            expect_status: Denied,
            expect_ran: false,
            expect_text: "no-destructive-for-users",
            ..Case::default()
        },
        Case {
            what: "a service may not list (no allow: the default)",
            tier: Tier::Service,
            tool: "list_customers",
            expect_status: Denied,
            expect_ran: false,
            expect_text: "rbac.default",
            ..Case::default()
        },
        Case {
            what: "anonymous is denied by default",
            tier: Tier::Anonymous,
            expect_status: Denied,
            expect_ran: false,
            expect_text: "rbac.default",
            ..Case::default()
        },
        Case {
            what: "a changed pin refuses the tool",
            pinned_blocked: true,
            expect_status: Denied,
            expect_ran: false,
            expect_text: "definition changed",
            ..Case::default()
        },
        Case {
            what: "rbac is judged before the pin",
            tool: "delete_customer",
            pinned_blocked: true,
            expect_status: Denied,
            expect_ran: false,
            expect_text: "no-destructive-for-users",
            ..Case::default()
        },
        Case {
            what: "the tool's own limit, once spent",
            profile: LIMITED,
            calls_before: 1,
            expect_status: RateLimited,
            expect_ran: false,
            expect_text: "tool customers__get_customer",
            ..Case::default()
        },
        Case {
            what: "the rate limit is judged before rbac",
            profile: "rate_limits:\n  per_second: { mcp_tool_call: 0.001 }\n  burst_multiplier: 1",
            tool: "delete_customer",
            calls_before: 1,
            expect_status: RateLimited,
            expect_ran: false,
            expect_text: "mcp_tool_call",
            ..Case::default()
        },
        Case {
            what: "a PreToolUse denial stops the call",
            hooks: vec![(HookEvent::PreToolUse, Script::Deny("no drop table"))],
            expect_status: Denied,
            expect_ran: false,
            expect_text: "forbidden: denied by hook fake: no drop table",
            ..Case::default()
        },
        Case {
            what: "rbac is judged before the hooks",
            tool: "delete_customer",
            hooks: vec![(HookEvent::PreToolUse, Script::Deny("hook"))],
            expect_status: Denied,
            expect_ran: false,
            expect_text: "no-destructive-for-users",
            ..Case::default()
        },
        Case {
            what: "a hook that times out with on_failure: deny",
            hooks: vec![(HookEvent::PreToolUse, Script::TimedOut { deny: true })],
            expect_status: Denied,
            expect_ran: false,
            expect_text: "did not answer within",
            ..Case::default()
        },
        Case {
            what: "a hook that times out with on_failure: allow",
            hooks: vec![(HookEvent::PreToolUse, Script::TimedOut { deny: false })],
            ..Case::default()
        },
        Case {
            what: "a hook that allows lets it run",
            hooks: vec![(HookEvent::PreToolUse, Script::Allow)],
            ..Case::default()
        },
        Case {
            what: "the audit down refuses before the tool runs",
            audit_down: true,
            expect_status: Failed,
            expect_ran: false,
            expect_text: "audit unavailable: the call was refused and the tool did not run",
            ..Case::default()
        },
        Case {
            what: "a hook's denial is judged before the audit's health",
            audit_down: true,
            hooks: vec![(HookEvent::PreToolUse, Script::Deny("hook"))],
            expect_status: Denied,
            expect_ran: false,
            expect_text: "denied by hook",
            ..Case::default()
        },
        Case {
            what: "a commit that fails withholds the result",
            commit_fails: true,
            expect_status: Success,
            expect_text: "audit unavailable: the result is withheld",
            ..Case::default()
        },
        Case {
            what: "a tool error is a result",
            upstream: Executed::Answered(Ok(
                json!({"isError": true, "content": [{"type": "text", "text": "no such id"}]}),
            )),
            expect_status: ToolError,
            expect_text: "no such id",
            ..Case::default()
        },
        Case {
            what: "an upstream JSON-RPC error passes through",
            upstream: Executed::Answered(Err(json!({"code": -32602, "message": "bad id"}))),
            expect_status: RpcError,
            expect_text: "bad id",
            ..Case::default()
        },
        Case {
            what: "an upstream timeout",
            upstream: Executed::Timeout(Duration::from_millis(1500)),
            expect_status: Timeout,
            expect_text: "within 1500 ms",
            ..Case::default()
        },
        Case {
            what: "an upstream failure",
            upstream: Executed::Failed("the server 'customers' failed during the call".into()),
            expect_status: Failed,
            expect_text: "failed during the call",
            ..Case::default()
        },
        Case {
            what: "a PostToolUse denial withholds the result",
            hooks: vec![(HookEvent::PostToolUse, Script::Deny("pii"))],
            expect_status: Denied,
            expect_text: "the tool ran, but its result was withheld by hook fake: pii",
            ..Case::default()
        },
        Case {
            what: "a secret in the answer is redacted",
            upstream: Executed::Answered(Ok(json!({"content": [{"type": "text", "text": SECRET}]}))),
            expect_text: "[REDACTED:canary]",
            ..Case::default()
        },
    ];
    // Every tier against the rule table: allowed exactly where the rules say.
    for tier in Tier::ALL {
        let cells = [
            ("get_customer", tier >= Tier::Service),
            ("list_customers", tier >= Tier::User),
            ("delete_customer", tier == Tier::Admin),
        ];
        for (tool, allowed) in cells {
            cases.push(Case {
                what: "tier matrix",
                tier,
                tool,
                expect_status: if allowed { Success } else { Denied },
                expect_ran: allowed,
                ..Case::default()
            });
        }
    }
    cases
}

#[actix_web::test]
async fn every_case_ends_as_the_table_says_and_is_audited_once() {
    for case in cases() {
        let what = format!("{} ({} calls {})", case.what, case.tier.as_str(), case.tool);
        let world = World::new(&case);
        let chain = world.chain();
        let principal = principal(case.tier);
        for _ in 0..case.calls_before {
            let upstream = FakeUpstream::answering(case.upstream.clone());
            chain.govern(request(&principal, case.tool, json!({"id": 1})), found(case.tool), &upstream).await;
        }
        let upstream = FakeUpstream::answering(case.upstream.clone());
        let governed =
            chain.govern(request(&principal, case.tool, json!({"id": 1})), found(case.tool), &upstream).await;
        assert_eq!(governed.status, Some(case.expect_status), "{what}: status");
        assert_eq!(upstream.ran().is_some(), case.expect_ran, "{what}: whether the tool ran");
        assert!(text_of(&governed.outcome).contains(case.expect_text), "{what}: {:?}", governed.outcome);
        assert!(!text_of(&governed.outcome).contains(SECRET), "{what}: no secret reaches the caller");
        let rows = world.rows();
        let expected_rows = if case.commit_fails { 0 } else { case.calls_before + 1 };
        assert_eq!(rows.len(), expected_rows, "{what}: one row per call");
        if let Some(row) = rows.last() {
            assert_eq!(row.status, case.expect_status, "{what}: the row's status");
            assert_eq!((row.server.as_str(), row.tool.as_str()), ("customers", case.tool), "{what}: the row's target");
            assert_eq!(row.session_id.as_deref(), Some("session-1"), "{what}: session");
            assert!(!format!("{row:?}").contains(SECRET), "{what}: no secret in the row");
        }
    }
}

#[actix_web::test]
async fn a_rewrite_reaches_the_tool_and_the_row_shows_what_ran() {
    let case = Case { hooks: vec![(HookEvent::PreToolUse, Script::Rewrite(json!({"id": 2})))], ..Case::default() };
    let world = World::new(&case);
    let principal = principal(Tier::User);
    let upstream = FakeUpstream::answering(case.upstream.clone());
    let governed = world
        .chain()
        .govern(request(&principal, "get_customer", json!({"id": 1})), found("get_customer"), &upstream)
        .await;
    assert_eq!(governed.status, Some(ExecutionStatus::Success));
    assert_eq!(upstream.ran(), Some(json!({"id": 2})), "the tool got the rewritten input");
    assert_eq!(world.rows()[0].input, r#"{"id":2}"#, "the row shows the input the tool ran with");
}

#[actix_web::test]
async fn a_withheld_result_stays_in_the_row() {
    let case = Case { hooks: vec![(HookEvent::PostToolUse, Script::Deny("pii"))], ..Case::default() };
    let world = World::new(&case);
    let principal = principal(Tier::User);
    let upstream = FakeUpstream::answering(case.upstream.clone());
    world.chain().govern(request(&principal, "get_customer", json!({"id": 1})), found("get_customer"), &upstream).await;
    let row = &world.rows()[0];
    assert_eq!(row.status, ExecutionStatus::Denied);
    assert!(row.output.as_deref().unwrap_or_default().contains("Ada"), "the row keeps what the tool answered");
}

#[actix_web::test]
async fn post_tool_use_failure_sees_the_error_and_secrets_are_out_of_the_payloads() {
    let case = Case {
        hooks: vec![(HookEvent::PreToolUse, Script::Allow), (HookEvent::PostToolUseFailure, Script::Allow)],
        upstream: Executed::Answered(Ok(json!({"isError": true, "content": [{"type": "text", "text": "no such id"}]}))),
        ..Case::default()
    };
    let world = World::new(&case);
    let principal = principal(Tier::User);
    let upstream = FakeUpstream::answering(case.upstream.clone());
    world
        .chain()
        .govern(request(&principal, "customers__get_customer", json!({"id": 1})), found("get_customer"), &upstream)
        .await;
    let seen = world.hooks.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let events: Vec<HookEvent> = seen.iter().map(|(event, _)| *event).collect();
    assert_eq!(events, [HookEvent::PreToolUse, HookEvent::PostToolUseFailure], "the events, in order");
    let failure = &seen[1].1;
    assert_eq!(failure["error"], "no such id", "{failure}");
    assert_eq!(failure["tool_name"], "customers__get_customer", "hooks see the name the client wrote");
    assert_eq!(failure["session_id"], "session-1");
    assert_eq!(failure["tool_use_id"], "jsonrpc:1");
}

#[actix_web::test]
async fn unknown_names_and_bad_arguments_are_refused_after_the_limit_is_charged() {
    let case = Case {
        profile: "rate_limits:\n  per_second: { mcp_tool_call: 0.001 }\n  burst_multiplier: 1",
        ..Case::default()
    };
    let world = World::new(&case);
    let principal = principal(Tier::User);
    let upstream = FakeUpstream::answering(case.upstream.clone());
    let unknown = Resolution::Unknown { server: "customers".into(), message: "unknown tool: customers__nope".into() };
    let first = world.chain().govern(request(&principal, "customers__nope", json!({})), unknown, &upstream).await;
    assert_eq!(first.outcome, Outcome::Unknown("unknown tool: customers__nope".into()));
    let invalid = Resolution::Invalid { server: "customers".into(), message: "arguments must be an object".into() };
    let second = world.chain().govern(request(&principal, "customers__nope", json!([])), invalid, &upstream).await;
    assert_eq!(second.status, Some(ExecutionStatus::RateLimited), "guessing names spends the budget too");
    assert!(upstream.ran().is_none());
    let down = Resolution::ServerDown { server: "customers".into() };
    let world = World::new(&Case::default());
    let third = world.chain().govern(request(&principal, "customers__get_customer", json!({})), down, &upstream).await;
    assert_eq!(third.status, Some(ExecutionStatus::Failed));
    assert!(text_of(&third.outcome).contains("not running"), "{:?}", third.outcome);
}

#[actix_web::test]
async fn a_tool_limit_holds_for_the_resolved_name_whatever_the_client_wrote() {
    // The client wrote a shortened (or prefixed) name; the limit is keyed by the upstream name.
    let world = World::new(&Case { profile: LIMITED, ..Case::default() });
    let principal = principal(Tier::User);
    let upstream = FakeUpstream::answering(Case::default().upstream);
    let first = world
        .chain()
        .govern(request(&principal, "customers__get_customer", json!({})), found("get_customer"), &upstream)
        .await;
    assert_eq!(first.status, Some(ExecutionStatus::Success));
    let second = world
        .chain()
        .govern(request(&principal, "get_customer_ab12cd", json!({})), found("get_customer"), &upstream)
        .await;
    assert_eq!(second.status, Some(ExecutionStatus::RateLimited), "{:?}", second.outcome);
}

#[actix_web::test]
async fn resources_and_prompts_are_judged_by_server_and_audited_with_their_kind() {
    let principal = principal(Tier::Service);
    let world = World::new(&Case::default());
    let upstream = FakeUpstream::answering(Executed::Answered(Ok(json!({"contents": []}))));
    let target = |server: &str| Target {
        server: server.into(),
        name: "file:///a".into(),
        rbac: RbacTarget::Server { tools: vec!["get_customer".into(), "delete_customer".into()] },
        definition_hash: None,
    };
    let mut read = request(&principal, "file:///a", json!({"uri": "file:///a"}));
    read.kind = ExecutionKind::Resource;
    let allowed = world.chain().govern(read, Resolution::Found(target("customers")), &upstream).await;
    assert_eq!(allowed.status, Some(ExecutionStatus::Success), "a service may use one tool of customers: it may read");
    let mut other = request(&principal, "file:///a", json!({"uri": "file:///a"}));
    other.kind = ExecutionKind::Prompt;
    let denied = world.chain().govern(other, Resolution::Found(target("billing")), &upstream).await;
    assert_eq!(denied.status, Some(ExecutionStatus::Denied), "nothing of billing is allowed to a service");
    let rows = world.rows();
    assert_eq!(rows.iter().map(|row| row.kind).collect::<Vec<_>>(), [ExecutionKind::Resource, ExecutionKind::Prompt]);
}

#[test]
fn architecture_lists_the_steps_in_the_order_the_code_runs_them() {
    let architecture = include_str!("../../../ARCHITECTURE.md");
    let section = architecture.split("## The governed chain").nth(1).unwrap_or_default();
    let listed: Vec<&str> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.chars().next().is_some_and(|first| first.is_ascii_digit()))
        .filter_map(|line| line.split('`').nth(1))
        .collect();
    assert_eq!(listed, STEPS, "ARCHITECTURE.md's numbered steps name governance::STEPS, in order");
    let code = include_str!("chain.rs");
    let mut last = 0;
    for step in &STEPS[1..] {
        let at = [format!("// {step}\n"), format!("// {step}:")]
            .iter()
            .filter_map(|marker| code.find(marker.as_str()))
            .min()
            .unwrap_or_else(|| panic!("chain.rs marks the step {step}"));
        assert!(at > last, "chain.rs runs {step} after the step before it");
        last = at;
    }
}

#[test]
fn architecture_lists_the_model_steps_in_the_order_the_code_runs_them() {
    let architecture = include_str!("../../../ARCHITECTURE.md");
    let section = architecture.split("## The governed chain for model requests").nth(1).unwrap_or_default();
    let listed: Vec<&str> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.chars().next().is_some_and(|first| first.is_ascii_digit()))
        .filter_map(|line| line.split('`').nth(1))
        .collect();
    assert_eq!(
        listed,
        super::MODEL_STEPS,
        "ARCHITECTURE.md's numbered model steps name governance::MODEL_STEPS, in order"
    );
    // Admission runs in model_call.rs up to the started row; execute and redact are the surface's.
    let code = include_str!("model_call.rs");
    let admit = code.split("pub async fn admit(").nth(1).unwrap_or_default();
    let mut last = 0;
    for step in ["resolve", "rate_limit", "rbac", "budget", "pre_hooks", "audit_health", "audit_start"] {
        let at = admit.find(&format!("// {step}")).unwrap_or_else(|| panic!("model_call.rs marks the step {step}"));
        assert!(at > last, "ModelChain::admit runs {step} after the step before it");
        last = at;
    }
}
