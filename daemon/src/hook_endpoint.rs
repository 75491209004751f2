//! `POST /hooks/{Event}`: Claude Code's own hooks, forwarded by `castellan hook EVENT`. PreToolUse
//! (for Claude Code's built-in tools: Bash, Edit, ...) runs the profile's PreToolUse handlers with
//! the server `claude-code`; every event is recorded in `hook_events` with the trace id. The answer
//! is what Claude Code expects on a hook's stdout: nothing to allow, or a decision.

use actix_web::{HttpRequest, HttpResponse, web};
use castellan_config::{HookEvent, RateClass};
use chrono::Utc;
use serde_json::{Value, json};

use crate::http::{AppState, json_error, trace_id_for};
use crate::identity::Audience;

/// The server name Claude Code's built-in tools are checked under (`claude-code__Bash`).
pub const CLAUDE_CODE_SERVER: &str = "claude-code";

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/hooks/{event}", web::post().to(hook));
}

async fn hook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    event: web::Path<String>,
) -> HttpResponse {
    let Some(event) = HookEvent::ALL.into_iter().find(|known| known.as_str() == event.as_str()) else {
        return json_error(404, "unknown hook event");
    };
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    let principal = match state.authenticator.authenticate(authorization, Audience::AnyOwn, Utc::now()).await {
        Ok(principal) => principal,
        Err(_) => {
            return HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(json!({"error": "a credential is required"}));
        }
    };
    let client = crate::http::client_address(&state, &request);
    if let crate::rate_limit::Admission::Limited { policy, retry_after } =
        state.rate_limits.check(RateClass::Hooks, &principal, client)
    {
        return crate::http::too_many_requests(&policy, retry_after, json!({"error": "rate limited"}));
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return json_error(400, "the hook input must be a JSON object");
    };
    if !payload.is_object() {
        return json_error(400, "the hook input must be a JSON object");
    }
    let trace_id = trace_id_for(&request);
    let tool = payload.get("tool_name").and_then(Value::as_str).unwrap_or_default().to_string();
    let arguments = payload.get("tool_input").cloned().unwrap_or_else(|| json!({}));
    let decisions = if event == HookEvent::PreToolUse && !tool.is_empty() {
        let call = crate::hooks::ToolUse {
            server: CLAUDE_CODE_SERVER,
            tool: &tool,
            tier: principal.tier,
            arguments: &arguments,
        };
        let context = crate::hooks::HookContext { subject: &principal.subject, trace_id: &trace_id };
        state.gateway.hooks.pre_tool_use(&call, &context).await
    } else {
        Vec::new()
    };
    let recorded = if decisions.is_empty() {
        vec![crate::hooks::HookDecision { handler: "record".into(), allowed: true, reason: None, rewritten: None }]
    } else {
        decisions
    };
    let mut denial = None;
    let mut rewritten = None;
    let mut rows = Vec::with_capacity(recorded.len());
    for decision in &recorded {
        let target = (!tool.is_empty()).then_some((CLAUDE_CODE_SERVER, tool.as_str()));
        rows.push(decision.row(event, target, &principal.subject, &trace_id));
        if !decision.allowed {
            denial = Some(format!("{}: {}", decision.handler, decision.reason.clone().unwrap_or_default()));
        }
        if let Some(arguments) = &decision.rewritten {
            rewritten = Some(arguments.clone());
        }
    }
    if !state.gateway.hook_writer.record(rows).await {
        tracing::error!(trace_id, "recording a hook event failed");
        return json_error(503, "hook events cannot be recorded; try again");
    }
    let answer = match (denial, rewritten) {
        (Some(reason), _) => json!({"hookSpecificOutput": {
            "hookEventName": event.as_str(), "permissionDecision": "deny", "permissionDecisionReason": reason,
        }}),
        // A rewrite is shown to the person, who confirms it: "allow" would skip their prompt.
        (None, Some(arguments)) => json!({"hookSpecificOutput": {
            "hookEventName": event.as_str(), "permissionDecision": "ask", "updatedInput": arguments,
            "permissionDecisionReason": "Castellan rewrote the input",
        }}),
        (None, None) => Value::Null,
    };
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(answer)
}
