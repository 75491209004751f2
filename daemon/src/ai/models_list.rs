//! `GET /v1/models` (and `/v1beta/models`): the models the caller may use, in one body that the
//! Anthropic, OpenAI and google-genai SDKs' `models.list()` all accept (`data` + `has_more:false`
//! for the first two, `models` for Gemini; docs/ai-gateway-notes/wire-formats.md §6).

use actix_web::{HttpRequest, HttpResponse, web};
use castellan_ai::format::WireFormat;
use serde_json::{Value, json};

use crate::http::AppState;

/// A fixed creation time: the list is of routes, not of models' release dates.
const CREATED_UNIX: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

pub async fn list(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let trace_id = crate::http::trace_id_for(&request);
    // Gemini's SDK sends x-goog-api-key: answer its errors in its shape.
    let format =
        if request.headers().contains_key("x-goog-api-key") { WireFormat::Gemini } else { WireFormat::Messages };
    let principal = match super::http::authenticate(&state, &request, &trace_id).await {
        Ok(principal) => principal,
        Err(error) => return error.response(format),
    };
    let ai = state.ai.load();
    let policy = state.gateway.policies.load();
    let models: Vec<String> = ai
        .listed_models()
        .into_iter()
        .filter(|model| policy.policy.decide_model(principal.tier, model).is_allowed())
        .collect();
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body(&models))
}

fn body(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "object": "model",
                "type": "model",
                "created": CREATED_UNIX,
                "created_at": "2026-01-01T00:00:00Z",
                "owned_by": "castellan",
                "display_name": id,
            })
        })
        .collect();
    let gemini: Vec<Value> = models
        .iter()
        .map(|id| json!({"name": format!("models/{id}"), "displayName": id, "supportedGenerationMethods": ["generateContent", "countTokens"]}))
        .collect();
    json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": models.first(),
        "last_id": models.last(),
        "models": gemini,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_body_carries_every_sdks_fields_and_ends_the_pagination() {
        let listed = body(&["claude-sonnet-4-5".to_string(), "fast".to_string()]);
        assert_eq!(listed["has_more"], false, "an iterating SDK must not ask again");
        assert_eq!(listed["data"][0]["id"], "claude-sonnet-4-5");
        assert_eq!(listed["data"][1]["object"], "model", "OpenAI's Model");
        assert_eq!(listed["data"][1]["type"], "model", "Anthropic's ModelInfo");
        assert_eq!(listed["models"][1]["name"], "models/fast", "Gemini's Model");
        assert_eq!(
            (listed["first_id"].as_str(), listed["last_id"].as_str()),
            (Some("claude-sonnet-4-5"), Some("fast"))
        );
        assert_eq!(body(&[])["first_id"], Value::Null, "an empty list has no first id");
    }
}
