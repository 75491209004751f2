//! Gemini: generateContent, the data-only streamGenerateContent SSE stream, countTokens and the
//! model list.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use serde_json::{Value, json};

use crate::peer::Peer;
use crate::plan::{INPUT_TOKENS, Plan, text_of};
use crate::{Provider, State, error_response, misbehave, parse_body, sse};

fn plan_for(model: &str, body: &Value) -> Plan {
    let contents = body["contents"].as_array().map(Vec::as_slice).unwrap_or_default();
    let newest_user = contents.iter().rev().find(|content| content["role"] == "user" || content["role"].is_null());
    let parts = newest_user.and_then(|content| content["parts"].as_array()).map(Vec::as_slice).unwrap_or_default();
    let newest_text = text_of(&Value::Array(parts.to_vec()));
    let answers_tool_result =
        parts.iter().any(|part| part.get("functionResponse").is_some() || part.get("function_response").is_some());
    let first_tool = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool.get("functionDeclarations").or_else(|| tool.get("function_declarations")))
        .filter_map(Value::as_array)
        .flatten()
        .find_map(|declaration| declaration["name"].as_str())
        .filter(|_| !answers_tool_result)
        .map(str::to_string);
    Plan::new(model, &newest_text, first_tool)
}

fn usage(plan: &Plan, complete: bool) -> Value {
    let prompt = plan.prompt_tokens_with_cache();
    let mut usage = json!({
        "promptTokenCount": prompt,
        "totalTokenCount": prompt,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    });
    if complete {
        usage["candidatesTokenCount"] = json!(plan.output_tokens());
        usage["totalTokenCount"] = json!(prompt + plan.output_tokens());
    }
    if plan.cached {
        usage["cachedContentTokenCount"] = json!(plan.cache_read_tokens());
    }
    usage
}

fn response_with(plan: &Plan, id: &str, parts: Value, last: bool) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if last {
        candidate["finishReason"] = json!("STOP");
    }
    json!({"candidates": [candidate], "usageMetadata": usage(plan, last), "modelVersion": plan.model, "responseId": id})
}

fn tool_parts(plan: &Plan) -> Option<Value> {
    plan.tool.as_ref().map(|name| json!([{"functionCall": {"name": name, "args": {"query": "x"}}}]))
}

/// `model_and_method` is the last path segment, `gemini-x:generateContent`.
pub async fn model_call(state: Arc<State>, peer: Option<Peer>, model_and_method: &str, body: &Bytes) -> HttpResponse {
    let Some((model, method)) = model_and_method.rsplit_once(':') else {
        return error_response(Provider::Gemini, 404, &format!("no method in {model_and_method}"));
    };
    let body = match parse_body(Provider::Gemini, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let plan = plan_for(model, &body);
    if let Some(response) = misbehave(&state, peer.as_ref(), Provider::Gemini, &plan).await {
        return response;
    }
    let id = format!("fake_{}", state.next_id());
    match method {
        "generateContent" => {
            let parts = tool_parts(&plan).unwrap_or_else(|| json!([{"text": plan.text()}]));
            let answer = response_with(&plan, &id, parts, true);
            HttpResponse::Ok().content_type("application/json").body(answer.to_string())
        }
        "streamGenerateContent" => {
            let events = match tool_parts(&plan) {
                Some(parts) => vec![sse::event(None, &response_with(&plan, &id, parts, true))],
                None => {
                    let last = plan.words.len().saturating_sub(1);
                    plan.words
                        .iter()
                        .enumerate()
                        .map(|(index, word)| {
                            sse::event(None, &response_with(&plan, &id, json!([{"text": word}]), index == last))
                        })
                        .collect()
                }
            };
            let error = sse::event(
                None,
                &json!({"error": {"code": 503, "message": "fake mid-stream failure", "status": "UNAVAILABLE"}}),
            );
            sse::response(state, peer, &plan, plan.with_stream_error(events, error))
        }
        "countTokens" => HttpResponse::Ok().content_type("application/json").body(
            json!({"totalTokens": INPUT_TOKENS, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": INPUT_TOKENS}]})
                .to_string(),
        ),
        other => error_response(Provider::Gemini, 404, &format!("fake-provider has no method {other}")),
    }
}

pub fn model_list() -> Value {
    let models: Vec<Value> = [("gemini-2.5-flash", "Gemini 2.5 Flash"), ("gemini-2.5-pro", "Gemini 2.5 Pro")]
        .iter()
        .map(|(id, name)| {
            json!({
                "name": format!("models/{id}"), "version": "001", "displayName": name,
                "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            })
        })
        .collect();
    json!({"models": models})
}
