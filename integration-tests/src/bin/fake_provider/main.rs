//! `fake-provider`: a loopback stand-in for the Anthropic, OpenAI and Gemini APIs that speaks their
//! real wire formats (JSON bodies, SSE streams, error bodies), records what it is sent, and is fast
//! enough to be the baseline of a gateway benchmark.
//!
//! Usage: `fake-provider --listen 127.0.0.1:0 [--port-file PATH] [--no-record] [--workers N]`.
//! Prints the bound address (`127.0.0.1:PORT`) as its first stdout line and writes it to PATH.
//!
//! Endpoints (one process serves all three providers):
//! - Anthropic: `POST /v1/messages` (`stream: true` for SSE), `POST /v1/messages/count_tokens`
//! - OpenAI: `POST /v1/chat/completions`, `POST /v1/responses` (both stream with `stream: true`)
//! - Gemini: `POST /{v1,v1beta}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//!   `:countTokens`
//! - `GET /v1/models` (and `/v1beta/models`): the Anthropic list when the request has
//!   `anthropic-version`, the Gemini list with `x-goog-api-key` or under `/v1beta`, else OpenAI's
//! - `GET /_fake/requests` (every request recorded: method, path with query, headers, body text),
//!   `DELETE /_fake/requests` (clear), `GET /_fake/stats` (counters)
//!
//! The answer text is `fake answer to: <first 40 characters of the newest user text>` (the newest
//! user turn's text parts; for Anthropic that includes a `tool_result`'s text, for OpenAI Chat and
//! Gemini only user text). Text parts that start with `<system-reminder>` (context Claude Code adds
//! to the user's turn) are left out.
//!
//! Behaviour switches, by a substring of the requested model (body `model`, or the Gemini URL path):
//! - `fail-NNN` (e.g. `fail-429`, `fail-500`, `fail-529`, `fail-401`): status NNN with that
//!   provider's error body (Anthropic `{"type":"error",...}`, OpenAI `{"error":{...}}`, Gemini
//!   `{"error":{"code","message","status"}}`); `Retry-After: 1` on 429
//! - `garbage`: 200 with a body that is not JSON
//! - `stall`: accept and never answer (the handler waits 120 s, then answers 504; a client that
//!   hangs up before is counted in `stalls_abandoned`)
//! - `stall-mid`: stream the first event, then nothing for 120 s (then the stream ends cut off; a
//!   client that hangs up during the stall is noticed within 100 ms and counted in
//!   `streams_cancelled`)
//! - `slow`: stream 40 text deltas, 50 ms before each event
//! - `drop`: close the connection without a response
//! - `stream-error`: a stream's first two events, then the provider's mid-stream error (Anthropic
//!   `event: error` with `overloaded_error`; OpenAI Chat a `data:` chunk with a top-level `error`;
//!   Responses `event: error`; Gemini a `data:` chunk with `error` 503 `UNAVAILABLE`), then the end
//! - `tool`: when the request carries tools and its newest message is not a tool result, answer with
//!   a call of the first tool with input `{"query":"x"}` (streamed as argument fragments too)
//! - `call-NAME` (Anthropic Messages only; NAME is the rest of the model name): when the request
//!   carries a tool whose name ends with NAME and its newest message is not a tool result, answer
//!   with a call of that tool with input `{"id":1}` (e.g. `claude-call-customers__get_customer`
//!   calls Claude Code's `mcp__castellan__customers__get_customer`); without such a tool, the usual text
//! - `cached`: report cache tokens (below)
//!
//! Usage numbers (deterministic):
//! - Anthropic: `input_tokens` 11; `cache_read_input_tokens` 0 / `cache_creation_input_tokens` 0, or
//!   1000 / 200 with `cached`; `output_tokens` = words in the answer (3 for a tool call; 40 with `slow`).
//!   Streams: `message_start` carries input and cache counts with `output_tokens` 1, the one
//!   `message_delta` the final `output_tokens`. count_tokens: `input_tokens` 11.
//! - OpenAI Chat: `prompt_tokens` 11 (1011 with `cached`, `prompt_tokens_details.cached_tokens` 1000:
//!   cached tokens are inside `prompt_tokens`), `completion_tokens` as Anthropic's `output_tokens`,
//!   `total_tokens` the sum. Streams carry usage only with `stream_options.include_usage`.
//! - OpenAI Responses: `input_tokens` 11 (1011 with `cached`, `input_tokens_details.cached_tokens`
//!   1000), `output_tokens` as above, on `response.completed`.
//! - Gemini: `promptTokenCount` 11 (1011 with `cached`, `cachedContentTokenCount` 1000),
//!   `candidatesTokenCount` as above, `totalTokenCount` the sum; stream chunks before the last carry
//!   only `promptTokenCount`/`totalTokenCount`. countTokens: `totalTokens` 11.

mod anthropic;
mod gemini;
mod openai;
mod peer;
mod plan;
mod sse;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};

use crate::peer::Peer;
use crate::plan::{Behaviour, Plan};

/// What every handler shares: the request log and the counters.
pub struct State {
    record: bool,
    requests: Mutex<Vec<Value>>,
    pub requests_total: AtomicU64,
    pub streams_started: AtomicU64,
    pub streams_completed: AtomicU64,
    pub streams_cancelled: AtomicU64,
    /// `stall` answers whose client hung up before the stall ended.
    pub stalls_abandoned: AtomicU64,
    next_id: AtomicU64,
}

impl State {
    fn record(&self, request: &HttpRequest, body: &Bytes) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if !self.record {
            return;
        }
        let mut headers = serde_json::Map::new();
        for (name, value) in request.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_string(), Value::String(value));
                }
            }
        }
        let path = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let entry = json!({
            "method": request.method().as_str(),
            "path": path,
            "headers": headers,
            "body": String::from_utf8_lossy(body),
        });
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(entry);
        }
    }

    /// A fresh number for ids (`msg_fake_7`, ...).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The provider a request is for, which decides the error body's shape.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    OpenAi,
    Gemini,
}

/// The error body of `provider` for `status`, in that provider's real shape.
pub fn error_response(provider: Provider, status: u16, message: &str) -> HttpResponse {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match provider {
        Provider::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake_error"})
        }
        Provider::OpenAi => {
            let (kind, code) = match status {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                403 => ("invalid_request_error", json!("unsupported_country_region_territory")),
                404 => ("invalid_request_error", json!("model_not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Provider::Gemini => {
            let kind = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 | 529 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                500..=599 => "INTERNAL",
                _ => "FAILED_PRECONDITION",
            };
            json!({"error": {"code": status, "message": message, "status": kind}})
        }
    };
    let mut response = HttpResponse::build(status_code);
    if status == 429 {
        response.insert_header(("retry-after", "1"));
    }
    if provider == Provider::Anthropic {
        response.insert_header(("request-id", "req_fake_error"));
    }
    response.content_type("application/json").body(body.to_string())
}

/// Answers for the switches that do not depend on the provider's success shapes; `None` means the
/// provider module answers (normally, or streaming with the plan's pacing).
pub async fn misbehave(state: &State, peer: Option<&Peer>, provider: Provider, plan: &Plan) -> Option<HttpResponse> {
    match plan.behaviour {
        Behaviour::Fail(status) => Some(error_response(provider, status, &format!("fake failure {status}"))),
        Behaviour::Garbage => {
            Some(HttpResponse::Ok().content_type("application/json").body("<html>this is not json</html>"))
        }
        Behaviour::Stall => {
            let deadline = actix_web::rt::time::Instant::now() + plan::STALL;
            if peer::wait_or_hang_up(peer, deadline).await {
                state.stalls_abandoned.fetch_add(1, Ordering::Relaxed);
            }
            Some(error_response(provider, 504, "fake stall ended"))
        }
        Behaviour::Drop => Some(sse::dropped_connection()),
        Behaviour::Normal | Behaviour::StallMid | Behaviour::Slow | Behaviour::StreamError => None,
    }
}

/// The body as JSON, or the provider's 400.
pub fn parse_body(provider: Provider, body: &Bytes) -> Result<Value, Box<HttpResponse>> {
    serde_json::from_slice(body)
        .map_err(|error| Box::new(error_response(provider, 400, &format!("body is not JSON: {error}"))))
}

async fn anthropic_messages(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    state.record(&request, &body);
    anthropic::messages(state.into_inner(), Peer::of(&request), &body).await
}

async fn anthropic_count_tokens(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    state.record(&request, &body);
    anthropic::count_tokens(&state, Peer::of(&request), &body).await
}

async fn openai_chat(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    state.record(&request, &body);
    openai::chat_completions(state.into_inner(), Peer::of(&request), &body).await
}

async fn openai_responses(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    state.record(&request, &body);
    openai::responses(state.into_inner(), Peer::of(&request), &body).await
}

async fn gemini_model_call(
    state: web::Data<State>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: Bytes,
) -> HttpResponse {
    state.record(&request, &body);
    let (_version, model_and_method) = path.into_inner();
    gemini::model_call(state.into_inner(), Peer::of(&request), &model_and_method, &body).await
}

async fn list_models(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    state.record(&request, &body);
    let headers = request.headers();
    let body = if request.path().starts_with("/v1beta") || headers.contains_key("x-goog-api-key") {
        gemini::model_list()
    } else if headers.contains_key("anthropic-version") {
        anthropic::model_list()
    } else {
        openai::model_list()
    };
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

async fn recorded_requests(state: web::Data<State>) -> HttpResponse {
    let requests = state.requests.lock().map(|requests| Value::Array(requests.clone())).unwrap_or(Value::Null);
    HttpResponse::Ok().content_type("application/json").body(requests.to_string())
}

async fn clear_requests(state: web::Data<State>) -> HttpResponse {
    if let Ok(mut requests) = state.requests.lock() {
        requests.clear();
    }
    HttpResponse::NoContent().finish()
}

async fn stats(state: web::Data<State>) -> HttpResponse {
    let recorded = state.requests.lock().map(|requests| requests.len()).unwrap_or(0);
    let body = json!({
        "requests_total": state.requests_total.load(Ordering::Relaxed),
        "requests_recorded": recorded,
        "streams_started": state.streams_started.load(Ordering::Relaxed),
        "streams_completed": state.streams_completed.load(Ordering::Relaxed),
        "streams_cancelled": state.streams_cancelled.load(Ordering::Relaxed),
        "stalls_abandoned": state.stalls_abandoned.load(Ordering::Relaxed),
    });
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().content_type("application/json").body(
        json!({"error": {"message": format!("fake-provider serves no {} {}", request.method(), request.path())}})
            .to_string(),
    )
}

struct Options {
    listen: String,
    port_file: Option<String>,
    record: bool,
    workers: Option<usize>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options { listen: "127.0.0.1:0".to_string(), port_file: None, record: true, workers: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => options.listen = args.next().ok_or("--listen needs an address")?,
            "--port-file" => options.port_file = Some(args.next().ok_or("--port-file needs a path")?),
            "--no-record" => options.record = false,
            "--workers" => {
                let count = args.next().ok_or("--workers needs a number")?;
                options.workers = Some(count.parse().map_err(|_| format!("--workers: not a number: {count}"))?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let options = parse_options().map_err(|message| {
        eprintln!("fake-provider: {message}");
        eprintln!("usage: fake-provider --listen 127.0.0.1:0 [--port-file PATH] [--no-record] [--workers N]");
        std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
    })?;
    let state = web::Data::new(State {
        record: options.record,
        requests: Mutex::new(Vec::new()),
        requests_total: AtomicU64::new(0),
        streams_started: AtomicU64::new(0),
        streams_completed: AtomicU64::new(0),
        streams_cancelled: AtomicU64::new(0),
        stalls_abandoned: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
    });
    let shared = state.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v1/messages", web::post().to(anthropic_messages))
            .route("/v1/messages/count_tokens", web::post().to(anthropic_count_tokens))
            .route("/v1/chat/completions", web::post().to(openai_chat))
            .route("/v1/responses", web::post().to(openai_responses))
            .route("/v1/models", web::get().to(list_models))
            .route("/v1beta/models", web::get().to(list_models))
            .route("/{version}/models/{model_and_method}", web::post().to(gemini_model_call))
            .route("/_fake/requests", web::get().to(recorded_requests))
            .route("/_fake/requests", web::delete().to(clear_requests))
            .route("/_fake/stats", web::get().to(stats))
            .default_service(web::to(not_found))
    })
    .on_connect(peer::remember)
    .shutdown_timeout(1)
    .backlog(4096)
    .max_connection_rate(4096);
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    let server = server.bind(&options.listen)?;
    let address = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("no address bound"))?;
    if let Some(path) = &options.port_file {
        // Written whole under another name and renamed, so a reader never sees half an address.
        let partial = format!("{path}.partial");
        std::fs::write(&partial, address.to_string())?;
        std::fs::rename(&partial, path)?;
    }
    println!("{address}");
    let _keep: Arc<State> = state.into_inner();
    server.run().await
}
