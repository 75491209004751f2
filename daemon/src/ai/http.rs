//! The AI gateway's HTTP handlers: authenticate before the body is read, parse the request into
//! the chain's terms, admit it through [`crate::governance::ModelChain`], execute it with the
//! route's fallbacks, and answer in the wire format of the endpoint that was called.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use castellan_ai::format::{RequestFacts, WireFormat};
use castellan_schema::ai_requests::AiRequestStatus;

use super::errors::AiError;
use super::policy::{AiPolicy, Candidate};
use super::provider::{self, ClientCall};
use super::relay::Relay;
use crate::governance::{AdmittedCall, Ending, ModelRefusal, ModelRequest, ModelResolution};
use crate::http::AppState;
use crate::identity::{Audience, AuthError, Principal};

/// The scope a Castellan token needs for the AI gateway.
pub const AI_SCOPE: &str = "ai:messages";

/// The largest answer read whole from a provider (non-streaming).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Which request of an endpoint this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Generate,
    CountTokens,
}

/// Mounts the AI routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(
            "/v1/messages",
            web::post().to(|r, p, s| generate(r, p, s, WireFormat::Messages, None, Operation::Generate)),
        )
        .route(
            "/v1/messages/count_tokens",
            web::post().to(|r, p, s| generate(r, p, s, WireFormat::Messages, None, Operation::CountTokens)),
        )
        .route(
            "/v1/chat/completions",
            web::post().to(|r, p, s| generate(r, p, s, WireFormat::ChatCompletions, None, Operation::Generate)),
        )
        .route(
            "/v1/responses",
            web::post().to(|r, p, s| generate(r, p, s, WireFormat::Responses, None, Operation::Generate)),
        )
        .route("/v1beta/models/{call}", web::post().to(gemini))
        .route("/v1/models/{call}", web::post().to(gemini))
        .route("/v1/models", web::get().to(super::models_list::list))
        .route("/v1beta/models", web::get().to(super::models_list::list));
}

/// `POST /v1beta/models/{model}:{method}` (and `/v1/...`, which google-genai 3 uses).
async fn gemini(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    call: web::Path<String>,
) -> HttpResponse {
    let Some((model, method)) = call.rsplit_once(':') else {
        let error = AiError::UnknownModel("expected /v1beta/models/{model}:generateContent".into());
        return crate::http_body::answer_unread(error.response(WireFormat::Gemini), payload);
    };
    let (operation, streamed) = match method {
        "generateContent" => (Operation::Generate, false),
        "streamGenerateContent" => (Operation::Generate, true),
        "countTokens" => (Operation::CountTokens, false),
        _ => {
            let error = AiError::InvalidRequest(format!(
                "unknown method '{method}': use generateContent, streamGenerateContent or countTokens"
            ));
            return crate::http_body::answer_unread(error.response(WireFormat::Gemini), payload);
        }
    };
    let path_model = GeminiPath { model: model.to_string(), streamed };
    generate(request, payload, state, WireFormat::Gemini, Some(path_model), operation).await
}

/// Gemini names the model and streaming in the path.
struct GeminiPath {
    model: String,
    streamed: bool,
}

/// The caller's credential from any of the headers the three SDKs send.
fn credential(request: &HttpRequest) -> Option<String> {
    let headers = request.headers();
    if let Some(value) = headers.get("authorization").and_then(|value| value.to_str().ok()) {
        return Some(value.to_string());
    }
    ["x-api-key", "x-goog-api-key"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|value| value.to_str().ok()))
        .map(|key| format!("Bearer {}", key.trim()))
}

/// Authenticates the caller for the AI gateway (any of our resources, scope `ai:messages`), through
/// the same identification as every surface (`http::identify`).
pub async fn authenticate(state: &AppState, request: &HttpRequest, trace_id: &str) -> Result<Principal, AiError> {
    match crate::http::identify(state, credential(request).as_deref(), Audience::AnyOwn, trace_id).await {
        Ok(principal) if crate::identity::has_scope(&principal, AI_SCOPE) => Ok(principal),
        Ok(principal) => {
            tracing::info!(trace_id, subject = %principal.subject, "credential lacks the ai:messages scope");
            Err(AiError::Forbidden("the credential does not grant the ai:messages scope".into()))
        }
        Err(AuthError::Unavailable) => Err(AiError::Unavailable("the identity store is unavailable; try again".into())),
        Err(error) => Err(AiError::Unauthenticated(format!(
            "{error}: present a Castellan API key or access token in Authorization: Bearer, x-api-key or x-goog-api-key"
        ))),
    }
}

async fn generate(
    request: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
    format: WireFormat,
    path: Option<GeminiPath>,
    operation: Operation,
) -> HttpResponse {
    let trace_id = crate::http::trace_id_for(&request);
    let principal = match authenticate(&state, &request, &trace_id).await {
        Ok(principal) => principal,
        Err(error) => return crate::http_body::answer_unread(error.response(format), payload),
    };
    if crate::http_body::require_json(&request).is_err() {
        let error = AiError::UnsupportedMediaType("Content-Type must be application/json".into());
        return crate::http_body::answer_unread(error.response(format), payload);
    }
    let body = match state.bodies.read(&mut payload).await {
        Ok(body) => body,
        Err(crate::http_body::BodyError::TooLarge { limit }) => {
            let error = AiError::TooLarge(format!("the request body is larger than {limit} bytes"));
            return crate::http_body::answer_unread(error.response(format), payload);
        }
        Err(error) => return AiError::BodyTimeout(error.to_string()).response(format),
    };
    let ai = state.ai.load();
    let parsed = read_facts(format, operation, &body);
    let requested_model = match (&path, &parsed) {
        (Some(path), _) => path.model.clone(),
        (None, Ok(facts)) => facts.model.clone().unwrap_or_default(),
        (None, Err(_)) => String::new(),
    };
    let streamed = match (&path, &parsed) {
        (Some(path), _) => path.streamed,
        (None, Ok(facts)) => facts.stream,
        _ => false,
    };
    let session_id = request
        .headers()
        .get("x-claude-code-session-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= 128 && !value.chars().any(char::is_control))
        .map(str::to_string);
    let facts = parsed.as_ref().ok();
    let candidates = ai.candidates(&requested_model);
    let resolution = match (&parsed, candidates.first()) {
        (Err(error), first) => ModelResolution::Invalid {
            target: first.map(|first| ai.target(first, &principal, &requested_model)),
            message: error.to_string(),
        },
        (Ok(_), None) => {
            ModelResolution::Unknown(format!("no route for the model '{requested_model}': see GET /v1/models"))
        }
        (Ok(_), Some(first)) => match prepare_body(format, first, &body, streamed, &requested_model, operation) {
            Ok(_) => ModelResolution::Found(ai.target(first, &principal, &requested_model)),
            Err(message) => {
                ModelResolution::Invalid { target: Some(ai.target(first, &principal, &requested_model)), message }
            }
        },
    };
    let model_request = ModelRequest {
        principal: &principal,
        client: crate::http::client_address(&state, &request),
        endpoint: format,
        requested_model: &requested_model,
        streamed,
        session_id: session_id.as_deref(),
        trace_id: &trace_id,
        newest_user_text: facts.and_then(|facts| facts.newest_user_text.as_deref()),
        estimated_input_tokens: facts.map_or(0, |facts| facts.estimated_input_tokens),
        max_output_tokens: match operation {
            Operation::CountTokens => 0,
            Operation::Generate => {
                facts.and_then(|facts| facts.max_output_tokens).unwrap_or(super::policy::DEFAULT_MAX_OUTPUT_TOKENS)
            }
        },
    };
    let admitted = match state.ai.admit(&ai, &model_request, resolution, operation).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal_error(refusal).response(format),
    };
    let client = ClientCall {
        endpoint: format,
        count_tokens: operation == Operation::CountTokens,
        streamed,
        headers: request.headers(),
        query: request.query_string(),
    };
    execute(&state, &ai, admitted, &client, &body, &candidates, &requested_model).await
}

/// What the chain needs from the body. A count_tokens body is a Messages body without
/// `max_tokens`, which a Messages body requires: it is read as one that asks for no output.
fn read_facts(
    format: WireFormat,
    operation: Operation,
    body: &[u8],
) -> Result<RequestFacts, castellan_ai::format::FormatError> {
    match (format, operation) {
        (WireFormat::Messages, Operation::CountTokens) => match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(mut object)) => {
                object.entry("max_tokens").or_insert(serde_json::json!(0));
                RequestFacts::read(format, serde_json::Value::Object(object).to_string().as_bytes())
            }
            _ => RequestFacts::read(format, body),
        },
        _ => RequestFacts::read(format, body),
    }
}

/// The body for one candidate: the client's bytes (model renamed where the route says so) for the
/// same format, else the translation.
fn prepare_body(
    format: WireFormat,
    candidate: &Candidate,
    body: &[u8],
    streamed: bool,
    requested_model: &str,
    operation: Operation,
) -> Result<Vec<u8>, String> {
    let upstream = provider::upstream_format(candidate.provider.kind, format);
    if upstream == format {
        let body = if format == WireFormat::Gemini || candidate.upstream_model == requested_model {
            body.to_vec()
        } else {
            castellan_ai::format::rewrite_model(body, &candidate.upstream_model).map_err(|error| error.to_string())?
        };
        if format == WireFormat::ChatCompletions && streamed {
            return Ok(ask_for_stream_usage(body));
        }
        return Ok(body);
    }
    if operation == Operation::CountTokens {
        return Err(format!(
            "counting tokens for '{requested_model}' needs a provider of this endpoint's format; its route goes to '{}'",
            candidate.provider.name
        ));
    }
    let options =
        castellan_ai::translate::RequestOptions { upstream_model: &candidate.upstream_model, stream: streamed };
    castellan_ai::translate::request(format, upstream, body, &options).map_err(|error| error.to_string())
}

/// An OpenAI Chat stream carries usage only when `stream_options.include_usage` asks for it, and a
/// stream without usage could not be metered: a request that names no `stream_options` gets them
/// (one member added after the opening brace, every other byte as sent; the client then sees one
/// more chunk, with empty `choices`, as the SDKs expect). A client that sets `stream_options`
/// itself is left alone; without usage its request is charged what it reserved.
fn ask_for_stream_usage(body: Vec<u8>) -> Vec<u8> {
    let names_options = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|value| value.get("stream_options").is_some());
    let Some(brace) = body.iter().position(|byte| *byte == b'{') else { return body };
    if names_options {
        return body;
    }
    let member: &[u8] = br#""stream_options":{"include_usage":true},"#;
    let rest = &body[brace + 1..];
    let empty_object = rest.iter().all(|byte| byte.is_ascii_whitespace() || *byte == b'}');
    let member = if empty_object { &member[..member.len() - 1] } else { member };
    [&body[..=brace], member, rest].concat()
}

fn refusal_error(refusal: ModelRefusal) -> AiError {
    match refusal {
        ModelRefusal::Unknown(message) => AiError::UnknownModel(message),
        ModelRefusal::Invalid(message) => AiError::InvalidRequest(message),
        ModelRefusal::Forbidden(message) => AiError::Forbidden(message),
        ModelRefusal::RateLimited { message, retry_after } => AiError::RateLimited { message, retry_after },
        ModelRefusal::BudgetExceeded { message, retry_after } => AiError::BudgetExceeded { message, retry_after },
        ModelRefusal::AuditUnavailable(message) => AiError::Unavailable(message),
    }
}

/// Sends the admitted request to its route's provider, then to each fallback while the answer is a
/// connection error, a timeout, 429 or 5xx and nothing has gone to the client yet.
async fn execute(
    state: &AppState,
    ai: &Arc<AiPolicy>,
    admitted: AdmittedCall,
    client: &ClientCall<'_>,
    body: &[u8],
    candidates: &[Candidate],
    requested_model: &str,
) -> HttpResponse {
    let started = Instant::now();
    let redactor = crate::redaction::current();
    let secrets = state.secrets.clone();
    let secret = move |name: &str| secrets.get(name);
    let operation = if client.count_tokens { Operation::CountTokens } else { Operation::Generate };
    let mut last_failure: Option<(AiError, Option<reqwest::Response>)> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        let is_last = index + 1 == candidates.len();
        let Ok(outgoing) = prepare_body(client.endpoint, candidate, body, client.streamed, requested_model, operation)
        else {
            continue;
        };
        // Secret-store values never leave in a prompt.
        let outgoing = redactor.redact_bytes(&outgoing).into_owned();
        let headers = match provider::upstream_headers(&candidate.provider, client, &secret) {
            Ok(headers) => headers,
            Err(message) => {
                last_failure = Some((AiError::UpstreamFailed(message), None));
                continue;
            }
        };
        let url = provider::upstream_url(&candidate.provider, client, &candidate.upstream_model);
        match provider::send(&candidate.provider, &url, headers, outgoing).await {
            Ok(response) if provider::worth_a_fallback(response.status().as_u16()) && !is_last => {
                tracing::info!(trace_id = %admitted.trace_id, provider = %candidate.provider.name, status = response.status().as_u16(), "trying the next fallback");
                last_failure = Some((
                    AiError::UpstreamFailed(format!(
                        "provider '{}' answered {}",
                        candidate.provider.name,
                        response.status().as_u16()
                    )),
                    None,
                ));
            }
            Ok(response) => {
                let answered_by = (index > 0).then(|| {
                    (
                        candidate.provider.name.clone(),
                        candidate.upstream_model.clone(),
                        ai.prices(&candidate.upstream_model),
                    )
                });
                let upstream_format = provider::upstream_format(candidate.provider.kind, client.endpoint);
                let tool_uses = state.ai.tool_uses.clone();
                return answer(
                    admitted,
                    response,
                    (upstream_format, client),
                    answered_by,
                    redactor,
                    started,
                    tool_uses,
                )
                .await;
            }
            Err(error) => {
                tracing::info!(trace_id = %admitted.trace_id, provider = %candidate.provider.name, reason = %error.message(), "upstream attempt failed");
                let failure = match error {
                    provider::AttemptError::Timeout(_) => AiError::UpstreamTimeout(error.message()),
                    provider::AttemptError::Connection(_) => AiError::UpstreamFailed(error.message()),
                };
                last_failure = Some((failure, None));
            }
        }
    }
    let (error, _) =
        last_failure.unwrap_or((AiError::UpstreamFailed("no provider could take the request".into()), None));
    let error = match error {
        AiError::UpstreamFailed(message) if candidates.len() > 1 => {
            AiError::UpstreamFailed(format!("{message} (after every fallback)"))
        }
        other => other,
    };
    let ending = Ending {
        status: AiRequestStatus::Failed,
        usage: None,
        ttft: None,
        error_message: Some(error.message().to_string()),
        answered_by: None,
    };
    if let Err(row_error) = admitted.finish(ending).await {
        tracing::error!(error = %row_error, "the row of a failed AI request could not be completed");
    }
    error.response(client.endpoint)
}

/// The provider answered: relay its stream, or read, meter, translate and answer its body.
async fn answer(
    admitted: AdmittedCall,
    response: reqwest::Response,
    (upstream_format, client): (WireFormat, &ClientCall<'_>),
    answered_by: Option<(String, String, Option<castellan_ai::cost::Prices>)>,
    redactor: Arc<crate::redaction::Redactor>,
    started: Instant,
    tool_uses: Arc<super::lineage::ToolUseTraces>,
) -> HttpResponse {
    let status = response.status();
    let is_stream = status.is_success()
        && response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
    if is_stream {
        let relay = Relay::new(
            response,
            (upstream_format, client.endpoint),
            admitted,
            answered_by,
            redactor,
            started,
            tool_uses,
        );
        return HttpResponse::Ok()
            .insert_header(("Content-Type", "text/event-stream"))
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(relay);
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match read_answer(response).await {
        Ok(body) => body,
        Err(message) => {
            let ending = Ending {
                status: AiRequestStatus::Failed,
                usage: None,
                ttft: None,
                error_message: Some(message.clone()),
                answered_by,
            };
            if let Err(error) = admitted.finish(ending).await {
                tracing::error!(%error, "the row of a failed AI request could not be completed");
            }
            return AiError::UpstreamFailed(message).response(client.endpoint);
        }
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let usage = parsed.as_ref().and_then(|value| castellan_ai::usage::from_response(upstream_format, value));
    let (row_status, error_message) = if !status.is_success() {
        // The provider's message may quote the prompt: redacted like the answer.
        let message = upstream_error_message(parsed.as_ref(), status.as_u16());
        (AiRequestStatus::UpstreamError, Some(redactor.redact(&message).into_owned()))
    } else if parsed.is_none() {
        (AiRequestStatus::Failed, Some("the provider's answer is not JSON".to_string()))
    } else {
        (AiRequestStatus::Success, None)
    };
    let client_body: Result<Vec<u8>, AiError> = match row_status {
        AiRequestStatus::Failed => Err(AiError::UpstreamFailed("the provider's answer could not be read".into())),
        _ if upstream_format == client.endpoint => Ok(redactor.redact_bytes(&body).into_owned()),
        AiRequestStatus::UpstreamError => Err(AiError::UpstreamFailed(error_message.clone().unwrap_or_default())),
        _ => castellan_ai::translate::response(upstream_format, client.endpoint, &body, &admitted.requested_model)
            .map(|translated| redactor.redact_bytes(&translated).into_owned())
            .map_err(|error| {
                AiError::UpstreamFailed(format!("the provider's answer could not be translated: {error}"))
            }),
    };
    let (row_status, error_message) = match &client_body {
        Err(error) if row_status == AiRequestStatus::Success => {
            (AiRequestStatus::Failed, Some(error.message().to_string()))
        }
        _ => (row_status, error_message),
    };
    let ending = Ending { status: row_status, usage, ttft: None, error_message, answered_by };
    let admitted_trace = admitted.trace_id.clone();
    // The started row is durable already; the completion is queued to the writer (which keeps it
    // through a database outage) and the answer leaves without waiting for its commit. A crash in
    // between leaves the row `started`, marked `failed` at the next start.
    admitted.finish_in_background(ending);
    if let (Ok(bytes), WireFormat::Messages) = (&client_body, client.endpoint)
        && let Ok(message) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        tool_uses.remember_message(&message, &admitted_trace, Instant::now());
    }
    match client_body {
        Ok(bytes) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status.as_u16()).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
        )
        .insert_header(("Content-Type", content_type))
        .body(bytes),
        Err(error) if row_status == AiRequestStatus::UpstreamError => {
            // Another format's error: the provider's status, in the client's shape.
            let status = actix_web::http::StatusCode::from_u16(status.as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            HttpResponse::build(status).json(error.body(client.endpoint))
        }
        Err(error) => error.response(client.endpoint),
    }
}

async fn read_answer(response: reqwest::Response) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt as _;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| "the provider's answer broke off".to_string())?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("the provider's answer is larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The message of a provider's error body, whichever of the three shapes it has.
fn upstream_error_message(body: Option<&serde_json::Value>, status: u16) -> String {
    let message = body
        .and_then(|body| body.get("error"))
        .and_then(|error| error.get("message"))
        .and_then(|message| message.as_str());
    match message {
        Some(message) => format!("the provider answered {status}: {}", message.chars().take(500).collect::<String>()),
        None => format!("the provider answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_stream_is_asked_for_its_usage_unless_the_client_chose_its_stream_options() {
        let body = br#"{"model":"gpt-4.1","stream":true, "messages":[]}"#.to_vec();
        let asked = ask_for_stream_usage(body);
        assert_eq!(
            asked,
            br#"{"stream_options":{"include_usage":true},"model":"gpt-4.1","stream":true, "messages":[]}"#.to_vec()
        );
        let chosen = br#"{"model":"gpt-4.1","stream_options":{"include_usage":false}}"#.to_vec();
        assert_eq!(ask_for_stream_usage(chosen.clone()), chosen, "the client's own choice stands");
        assert_eq!(ask_for_stream_usage(b" { }".to_vec()), br#" {"stream_options":{"include_usage":true} }"#.to_vec());
    }
}
