//! `POST /hooks/{Event}`: Claude Code's own hooks, forwarded by `castellan hook EVENT`. Each event
//! runs the profile's handlers for it; tool events are checked under the server `claude-code`
//! (`claude-code__Bash`). Every event is recorded in `hook_events` with the trace id, and the answer
//! is what Claude Code expects on a hook's stdout: nothing to allow, or the event's decision.

use actix_web::{HttpRequest, HttpResponse, web};
use castellan_config::{HookEvent, RateClass};
use chrono::Utc;
use serde_json::{Value, json};

use crate::http::{ApiError, AppState, trace_id_for};
use crate::http_body::answer_unread;
use crate::identity::Audience;

/// The server name Claude Code's built-in tools are checked under (`claude-code__Bash`).
pub const CLAUDE_CODE_SERVER: &str = "claude-code";

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/hooks/{event}", web::post().to(hook));
}

async fn hook(
    request: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
    event: web::Path<String>,
) -> HttpResponse {
    let Some(event) = HookEvent::ALL.into_iter().find(|known| known.as_str() == event.as_str()) else {
        return answer_unread(ApiError::NotFound("unknown hook event".into()).into_response(), payload);
    };
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    let principal = match state.authenticator.authenticate(authorization, Audience::AnyOwn, Utc::now()).await {
        Ok(principal) => principal,
        Err(_) => {
            let refusal = HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(json!({"error": "a credential is required"}));
            return answer_unread(refusal, payload);
        }
    };
    let client = crate::http::client_address(&state, &request);
    if let crate::governance::rate_limit::Admission::Limited { policy, retry_after } =
        state.gateway.policies.load().limits.check(RateClass::Hooks, &principal, client)
    {
        let refusal = crate::http::too_many_requests(&policy, retry_after, json!({"error": "rate limited"}));
        return answer_unread(refusal, payload);
    }
    // Authenticated and within its rate: only now is the body read.
    let body = match state.bodies.read(&mut payload).await {
        Ok(body) => body,
        Err(error) => return answer_unread(actix_web::ResponseError::error_response(&error), payload),
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return ApiError::BadRequest("the hook input must be a JSON object".into()).into_response();
    };
    if !payload.is_object() {
        return ApiError::BadRequest("the hook input must be a JSON object".into()).into_response();
    }
    // A tool use's hook events join its prompt's trace as its MCP call does (`ai::lineage`).
    let trace_id = payload
        .get("tool_use_id")
        .and_then(Value::as_str)
        .and_then(|tool_use_id| state.ai.tool_uses.prompt_trace(tool_use_id, std::time::Instant::now()))
        .unwrap_or_else(|| trace_id_for(&request));
    let tool = payload.get("tool_name").and_then(Value::as_str).unwrap_or_default().to_string();
    let tool = (!tool.is_empty()).then_some(tool.as_str());
    let server = tool.map(|_| CLAUDE_CODE_SERVER);
    let call = crate::hooks::HookCall {
        event,
        server,
        tool,
        tier: principal.tier,
        subject: &principal.subject,
        trace_id: &trace_id,
        input: payload,
    };
    let snapshot = state.gateway.policies.load();
    let outcome = state.gateway.hooks.run(&snapshot.hooks, &call).await;
    let mut rows = outcome.rows(&call);
    if rows.is_empty() {
        // No handler for this event: the event itself is still on record.
        let seen =
            crate::hooks::HookDecision { handler: "record".into(), allowed: true, reason: None, rewritten: None };
        rows.push(seen.row(event, (server, tool), &principal.subject, &trace_id));
    }
    if !state.gateway.hook_writer.record(rows).await {
        tracing::error!(trace_id, "recording a hook event failed");
        return ApiError::Unavailable("hook events cannot be recorded; try again".into()).into_response();
    }
    let answer = claude_code_answer(event, &outcome);
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(answer)
}

/// What Claude Code reads on the hook's stdout for this outcome: nothing to leave the decision to
/// Claude Code's own permission flow, or the event's form of a denial or a rewrite.
fn claude_code_answer(event: HookEvent, outcome: &crate::hooks::HookOutcome) -> Value {
    if let Some(reason) = outcome.denial() {
        return match event {
            HookEvent::PreToolUse => json!({"hookSpecificOutput": {
                "hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": reason,
            }}),
            // The prompt is erased, Claude keeps going (Stop), or Claude reads the reason beside the
            // tool's result.
            blocking if blocking.can_block() => json!({"decision": "block", "reason": reason}),
            // Nothing to stop: the denial is on record, and the user is told.
            _ => json!({"systemMessage": format!("Castellan: {reason}")}),
        };
    }
    match (&outcome.tool_input, event) {
        // A rewrite is shown to the person, who confirms it: "allow" would skip their prompt.
        (Some(input), HookEvent::PreToolUse) => json!({"hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "ask", "updatedInput": input,
            "permissionDecisionReason": "Castellan rewrote the input",
        }}),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::hooks::{HookDecision, HookOutcome};

    fn denied() -> HookOutcome {
        let decision = HookDecision { handler: "h".into(), allowed: false, reason: Some("no".into()), rewritten: None };
        HookOutcome { decisions: vec![decision], tool_input: None }
    }

    #[test]
    fn each_event_gets_the_form_claude_code_reads() {
        let pre = claude_code_answer(HookEvent::PreToolUse, &denied());
        assert_eq!(pre["hookSpecificOutput"]["permissionDecision"], "deny");
        assert_eq!(pre["hookSpecificOutput"]["permissionDecisionReason"], "h: no");
        for event in [HookEvent::UserPromptSubmit, HookEvent::Stop, HookEvent::SubagentStop, HookEvent::PostToolUse] {
            let answer = claude_code_answer(event, &denied());
            assert_eq!((answer["decision"].as_str(), answer["reason"].as_str()), (Some("block"), Some("h: no")));
        }
        let told = claude_code_answer(HookEvent::Notification, &denied());
        assert!(told.get("decision").is_none() && told["systemMessage"].is_string(), "{told}");
        assert_eq!(claude_code_answer(HookEvent::Stop, &HookOutcome::default()), Value::Null, "allow prints nothing");
        let rewritten = HookOutcome { decisions: vec![], tool_input: Some(json!({"command": "ls"})) };
        let answer = claude_code_answer(HookEvent::PreToolUse, &rewritten);
        assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], "ask");
        assert_eq!(answer["hookSpecificOutput"]["updatedInput"], json!({"command": "ls"}));
    }
}
