//! OpenAI: Chat Completions (bodies, `data:`-only chunk streams ending in `[DONE]`), Responses
//! (bodies, named events with sequence numbers) and the model list.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use serde_json::{Value, json};

use crate::peer::Peer;
use crate::plan::{Plan, TOOL_INPUT_FRAGMENTS, TOOL_INPUT_JSON, text_of};
use crate::{Provider, State, misbehave, parse_body, sse};

const CREATED: u64 = 1_700_000_000;

fn json_ok(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("x-request-id", "req_fake"))
        .body(body.to_string())
}

// ---------------------------------------------------------------------------------------------------
// Chat Completions

fn chat_plan(body: &Value) -> Plan {
    let model = body["model"].as_str().unwrap_or_default();
    let messages = body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let newest_text = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")
        .map(|message| text_of(&message["content"]))
        .unwrap_or_default();
    let answers_tool_result = messages.last().is_some_and(|message| message["role"] == "tool");
    let first_tool = body["tools"]
        .as_array()
        .and_then(|tools| tools.first())
        .and_then(|tool| tool["function"]["name"].as_str())
        .filter(|_| !answers_tool_result)
        .map(str::to_string);
    Plan::new(model, &newest_text, first_tool)
}

fn chat_usage(plan: &Plan) -> Value {
    let prompt = plan.prompt_tokens_with_cache();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": plan.output_tokens(),
        "total_tokens": prompt + plan.output_tokens(),
        "prompt_tokens_details": {"cached_tokens": plan.cache_read_tokens(), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    })
}

pub async fn chat_completions(state: Arc<State>, peer: Option<Peer>, body: &Bytes) -> HttpResponse {
    let body = match parse_body(Provider::OpenAi, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let plan = chat_plan(&body);
    if let Some(response) = misbehave(&state, peer.as_ref(), Provider::OpenAi, &plan).await {
        return response;
    }
    let id = format!("chatcmpl-fake{}", state.next_id());
    if body["stream"] == true {
        let include_usage = body["stream_options"]["include_usage"] == true;
        let error = sse::event(
            None,
            &json!({"error": {"message": "fake mid-stream failure", "type": "server_error", "param": null, "code": null}}),
        );
        let events = plan.with_stream_error(chat_chunks(&plan, &id, include_usage), error);
        return sse::response(state, peer, &plan, events);
    }
    let (message, finish_reason) = match &plan.tool {
        Some(name) => (
            json!({
                "role": "assistant", "content": null, "refusal": null, "annotations": [],
                "tool_calls": [{"id": format!("call_{id}"), "type": "function",
                                "function": {"name": name, "arguments": TOOL_INPUT_JSON}}],
            }),
            "tool_calls",
        ),
        None => (json!({"role": "assistant", "content": plan.text(), "refusal": null, "annotations": []}), "stop"),
    };
    json_ok(&json!({
        "id": id,
        "object": "chat.completion",
        "created": CREATED,
        "model": plan.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": chat_usage(&plan),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }))
}

fn chat_chunks(plan: &Plan, id: &str, include_usage: bool) -> Vec<Bytes> {
    let chunk = |delta: Value, finish_reason: Value| {
        let mut chunk = json!({
            "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": plan.model,
            "service_tier": "default", "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse::event(None, &chunk)
    };
    let mut events = Vec::new();
    let finish_reason = match &plan.tool {
        Some(name) => {
            events.push(chunk(
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{
                    "index": 0, "id": format!("call_{id}"), "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]}),
                Value::Null,
            ));
            for fragment in TOOL_INPUT_FRAGMENTS {
                events.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
        None => {
            events.push(chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null));
            for word in &plan.words {
                events.push(chunk(json!({"content": word}), Value::Null));
            }
            "stop"
        }
    };
    events.push(chunk(json!({}), json!(finish_reason)));
    if include_usage {
        events.push(sse::event(
            None,
            &json!({
                "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": plan.model,
                "service_tier": "default", "system_fingerprint": "fp_fake",
                "choices": [], "usage": chat_usage(plan),
            }),
        ));
    }
    events.push(sse::raw_data("[DONE]"));
    events
}

// ---------------------------------------------------------------------------------------------------
// Responses

fn responses_plan(body: &Value) -> Plan {
    let model = body["model"].as_str().unwrap_or_default();
    let (newest_text, answers_tool_result) = match &body["input"] {
        Value::String(text) => (text.clone(), false),
        Value::Array(items) => {
            let text = items
                .iter()
                .rev()
                .find(|item| item["role"] == "user")
                .map(|item| text_of(&item["content"]))
                .unwrap_or_default();
            (text, items.last().is_some_and(|item| item["type"] == "function_call_output"))
        }
        _ => (String::new(), false),
    };
    let first_tool = body["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|tool| tool["type"] == "function"))
        .and_then(|tool| tool["name"].as_str())
        .filter(|_| !answers_tool_result)
        .map(str::to_string);
    Plan::new(model, &newest_text, first_tool)
}

fn responses_usage(plan: &Plan) -> Value {
    let input = plan.prompt_tokens_with_cache();
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": plan.cache_read_tokens()},
        "output_tokens": plan.output_tokens(),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + plan.output_tokens(),
    })
}

/// The output item, `done` (complete) or as first announced (in progress, empty).
fn output_item(plan: &Plan, id: &str, done: bool) -> Value {
    let status = if done { "completed" } else { "in_progress" };
    match &plan.tool {
        Some(name) => json!({
            "type": "function_call", "id": format!("fc_{id}"), "call_id": format!("call_{id}"), "name": name,
            "arguments": if done { TOOL_INPUT_JSON } else { "" }, "status": status,
        }),
        None => json!({
            "type": "message", "id": format!("msg_{id}"), "status": status, "role": "assistant",
            "content": if done { json!([output_text_part(&plan.text())]) } else { json!([]) },
        }),
    }
}

fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

fn response_object(plan: &Plan, id: &str, body: &Value, done: bool) -> Value {
    json!({
        "id": format!("resp_{id}"),
        "object": "response",
        "created_at": CREATED,
        "status": if done { "completed" } else { "in_progress" },
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": body.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens": body.get("max_output_tokens").cloned().unwrap_or(Value::Null),
        "model": plan.model,
        "output": if done { json!([output_item(plan, id, true)]) } else { json!([]) },
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools").cloned().unwrap_or(json!([])),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": if done { responses_usage(plan) } else { Value::Null },
        "user": null,
        "metadata": {},
    })
}

pub async fn responses(state: Arc<State>, peer: Option<Peer>, body: &Bytes) -> HttpResponse {
    let body = match parse_body(Provider::OpenAi, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let plan = responses_plan(&body);
    if let Some(response) = misbehave(&state, peer.as_ref(), Provider::OpenAi, &plan).await {
        return response;
    }
    let id = format!("fake{}", state.next_id());
    if body["stream"] == true {
        let error = sse::event(
            Some("error"),
            &json!({"type": "error", "code": "server_error", "message": "fake mid-stream failure", "param": null,
                    "sequence_number": 2}),
        );
        let events = plan.with_stream_error(responses_events(&plan, &id, &body), error);
        return sse::response(state, peer, &plan, events);
    }
    json_ok(&response_object(&plan, &id, &body, true))
}

fn responses_events(plan: &Plan, id: &str, body: &Value) -> Vec<Bytes> {
    let mut sequence = 0u64;
    let mut events = Vec::new();
    let mut push = |mut data: Value| {
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        let name = data["type"].as_str().unwrap_or_default().to_string();
        events.push(sse::event(Some(&name), &data));
    };
    push(json!({"type": "response.created", "response": response_object(plan, id, body, false)}));
    push(json!({"type": "response.in_progress", "response": response_object(plan, id, body, false)}));
    push(json!({"type": "response.output_item.added", "output_index": 0, "item": output_item(plan, id, false)}));
    match &plan.tool {
        Some(_) => {
            let item_id = format!("fc_{id}");
            for fragment in TOOL_INPUT_FRAGMENTS {
                push(json!({
                    "type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": 0,
                    "delta": fragment,
                }));
            }
            push(json!({
                "type": "response.function_call_arguments.done", "item_id": item_id, "output_index": 0,
                "arguments": TOOL_INPUT_JSON,
            }));
        }
        None => {
            let item_id = format!("msg_{id}");
            push(json!({
                "type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0,
                "part": output_text_part(""),
            }));
            for word in &plan.words {
                push(json!({
                    "type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                    "content_index": 0, "delta": word, "logprobs": [],
                }));
            }
            push(json!({
                "type": "response.output_text.done", "item_id": item_id, "output_index": 0, "content_index": 0,
                "text": plan.text(), "logprobs": [],
            }));
            push(json!({
                "type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0,
                "part": output_text_part(&plan.text()),
            }));
        }
    }
    push(json!({"type": "response.output_item.done", "output_index": 0, "item": output_item(plan, id, true)}));
    push(json!({"type": "response.completed", "response": response_object(plan, id, body, true)}));
    events
}

pub fn model_list() -> Value {
    let models: Vec<Value> = ["gpt-4.1", "gpt-4.1-mini"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "openai"}))
        .collect();
    json!({"object": "list", "data": models})
}
