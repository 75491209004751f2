//! Anthropic Messages: `Message` bodies, the named-event SSE stream, count_tokens and the model list.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use serde_json::{Value, json};

use crate::peer::Peer;
use crate::plan::{INPUT_TOKENS, Plan, called_tool_suffix, text_of};
use crate::{Provider, State, misbehave, parse_body, sse};

fn plan_for(body: &Value) -> Plan {
    let model = body["model"].as_str().unwrap_or_default();
    let messages = body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let newest_user = messages.iter().rev().find(|message| message["role"] == "user");
    let newest_text = newest_user.map(|message| text_of(&message["content"])).unwrap_or_default();
    let answers_tool_result = newest_user
        .and_then(|message| message["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|block| block["type"] == "tool_result"));
    let tool_names: Vec<&str> = match body["tools"].as_array() {
        Some(tools) if !answers_tool_result => tools.iter().filter_map(|tool| tool["name"].as_str()).collect(),
        _ => Vec::new(),
    };
    let first_tool = tool_names.first().map(|name| name.to_string());
    let plan = Plan::new(model, &newest_text, first_tool);
    let called = called_tool_suffix(model).and_then(|suffix| tool_names.iter().find(|name| name.ends_with(suffix)));
    match called {
        Some(name) => plan.calling(name.to_string()),
        None => plan,
    }
}

fn usage(plan: &Plan, output_tokens: u64) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": plan.cache_write_tokens(),
        "cache_read_input_tokens": plan.cache_read_tokens(),
        "cache_creation": {"ephemeral_5m_input_tokens": plan.cache_write_tokens(), "ephemeral_1h_input_tokens": 0},
        "server_tool_use": null,
        "service_tier": "standard",
    })
}

pub async fn messages(state: Arc<State>, peer: Option<Peer>, body: &Bytes) -> HttpResponse {
    let body = match parse_body(Provider::Anthropic, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let plan = plan_for(&body);
    if let Some(response) = misbehave(&state, peer.as_ref(), Provider::Anthropic, &plan).await {
        return response;
    }
    let id = format!("msg_fake_{}", state.next_id());
    if body["stream"] == true {
        let error = sse::event(
            Some("error"),
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        let events = plan.with_stream_error(stream_events(&plan, &id), error);
        return sse::response(state, peer, &plan, events);
    }
    let (content, stop_reason) = match &plan.tool {
        Some(name) => (
            json!([{"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": plan.tool_input_json()}]),
            "tool_use",
        ),
        None => (json!([{"type": "text", "text": plan.text()}]), "end_turn"),
    };
    let message = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage(&plan, plan.output_tokens()),
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("request-id", format!("req_{id}")))
        .body(message.to_string())
}

fn stream_events(plan: &Plan, id: &str) -> Vec<Bytes> {
    let named = |data: Value| {
        let name = data["type"].as_str().unwrap_or_default().to_string();
        sse::event(Some(&name), &data)
    };
    let mut events = vec![named(json!({
        "type": "message_start",
        "message": {
            "id": id, "type": "message", "role": "assistant", "model": plan.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(plan, 1),
        },
    }))];
    let stop_reason = match &plan.tool {
        Some(name) => {
            events.push(named(json!({
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}},
            })));
            events.push(named(json!({"type": "ping"})));
            for fragment in plan.tool_input {
                events.push(named(json!({
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                })));
            }
            "tool_use"
        }
        None => {
            events.push(named(json!({
                "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""},
            })));
            events.push(named(json!({"type": "ping"})));
            for word in &plan.words {
                events.push(named(json!({
                    "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word},
                })));
            }
            "end_turn"
        }
    };
    events.push(named(json!({"type": "content_block_stop", "index": 0})));
    events.push(named(json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": plan.output_tokens()},
    })));
    events.push(named(json!({"type": "message_stop"})));
    events
}

pub async fn count_tokens(state: &State, peer: Option<Peer>, body: &Bytes) -> HttpResponse {
    let body = match parse_body(Provider::Anthropic, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let plan = plan_for(&body);
    if let Some(response) = misbehave(state, peer.as_ref(), Provider::Anthropic, &plan).await {
        return response;
    }
    HttpResponse::Ok().content_type("application/json").body(json!({"input_tokens": INPUT_TOKENS}).to_string())
}

pub fn model_list() -> Value {
    let models: Vec<Value> = [("claude-sonnet-4-5", "Claude Sonnet 4.5"), ("claude-haiku-4-5", "Claude Haiku 4.5")]
        .iter()
        .map(
            |(id, name)| json!({"type": "model", "id": id, "display_name": name, "created_at": "2025-09-29T00:00:00Z"}),
        )
        .collect();
    json!({"data": models, "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-haiku-4-5"})
}
