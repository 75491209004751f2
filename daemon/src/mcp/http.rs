//! The Streamable HTTP transport for `/mcp` and `/mcp/{server}`: status codes, headers, sessions.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use castellan_config::HookEvent;
use castellan_config::ServerName;
use futures_util::{StreamExt as _, stream};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::answer::Answer;
use super::gateway::{CallContext, ClientRelay, SESSION_PROTOCOL_VERSIONS};
use super::jsonrpc::{self, Incoming};
use super::session::Scope;
use super::session::Session;
use super::stateless;
use crate::http::{ApiError, AppState, authenticate, origin_allowed, trace_id_for};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// `MCP-Protocol-Version` values accepted within a session: the ones negotiated, and older
/// handshake revisions that some clients still put on individual requests.
const SESSION_HEADER_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The endpoint's scope, or None when `/mcp/{server}` names no configured server (answered 404).
fn scope_for(state: &AppState, server: Option<&str>) -> Option<Scope> {
    match server {
        None => Some(Scope::Aggregated),
        Some(name) => {
            let known = ServerName::parse(name).is_ok() && state.gateway.configured_servers.load().contains(name);
            known.then(|| Scope::Server(name.to_string()))
        }
    }
}

/// What every method of the endpoint checks first, in this order: Origin (DNS rebinding), the
/// credential, then whether `/mcp/{server}` names a configured server.
async fn admit(
    request: &HttpRequest,
    state: &AppState,
    server: Option<&String>,
) -> Result<(String, crate::identity::Principal, Scope), HttpResponse> {
    let trace_id = trace_id_for(request);
    if !origin_allowed(state, request.headers()) {
        return Err(ApiError::Forbidden("forbidden: the Origin of this request is not allowed".into()).into_response());
    }
    let principal = authenticate(state, request, &trace_id, server.map(String::as_str)).await?;
    let scope = scope_for(state, server.map(String::as_str))
        .ok_or_else(|| ApiError::NotFound("unknown server".into()).into_response())?;
    Ok((trace_id, principal, scope))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// POST: one JSON-RPC message from the client.
pub async fn post(
    request: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
    server: Option<web::Path<String>>,
) -> HttpResponse {
    use crate::http_body::answer_unread;
    let (trace_id, principal, scope) = match admit(&request, &state, server.as_deref()).await {
        Ok(admitted) => admitted,
        Err(response) => return answer_unread(response, payload),
    };
    // Only now, authenticated, is the body read (bounded in size and time).
    let body = match state.bodies.read(&mut payload).await {
        Ok(body) => body,
        Err(error) => return answer_unread(actix_web::ResponseError::error_response(&error), payload),
    };
    if let Err(refusal) = check_media_types(&request) {
        return refusal.into_response();
    }
    let message = match jsonrpc::parse_message(&body) {
        Ok(message) => message,
        Err(error) => return HttpResponse::BadRequest().json(error.to_message()),
    };
    let client = crate::http::client_address(&state, &request);
    // A Claude Code tools/call names its tool use: it joins the trace of the model request whose
    // answer asked for it when that went through this daemon, else its trace id is derived from
    // the tool use id, as the `castellan hook` shim derives the trace id of its hook events.
    let trace_id = match &message {
        Incoming::Request { method, params: Some(params), .. } if method == "tools/call" => {
            crate::trace_ids::tool_use_id_in_params(params)
                .and_then(|tool_use_id| state.ai.trace_of_tool_use(tool_use_id))
                .unwrap_or(trace_id)
        }
        _ => trace_id,
    };
    if stateless::is_stateless_version(header_str(request.headers(), VERSION_HEADER), SESSION_HEADER_VERSIONS) {
        return stateless_post(state, &request, (principal, client), scope, message, trace_id).await;
    }
    if let Incoming::Request { id, method, params } = &message
        && method == "initialize"
    {
        let response = initialize(&state, &request, &principal, scope.clone(), id, params.as_ref()).await;
        if let Some(session_id) = header_str(response.headers(), SESSION_HEADER) {
            let subject = (principal.subject.as_str(), principal.tier);
            let input = json!({"source": "startup"});
            state.gateway.session_event(HookEvent::SessionStart, subject, &scope, session_id, &trace_id, input).await;
        }
        return response;
    }
    let Some(session_id) = header_str(request.headers(), SESSION_HEADER) else {
        return ApiError::BadRequest("missing Mcp-Session-Id: send initialize first".into()).into_response();
    };
    let Some(session) = state.gateway.sessions.find(session_id, &principal.subject, &scope) else {
        return ApiError::NotFound("unknown or expired session: initialize again".into()).into_response();
    };
    session.touch();
    let accepts_stream =
        header_str(request.headers(), "accept").is_some_and(|accept| accept.contains("text/event-stream"));
    match message {
        Incoming::Request { id, method, params } if accepts_stream && RELAYING_METHODS.contains(&method.as_str()) => {
            let parts = CallParts { principal, client, scope, trace_id, id, method, params };
            relaying_answer(state.into_inner(), parts, AnswerMode::Session(session)).await
        }
        Incoming::Request { id, method, params } => {
            let call = CallContext::in_session(&principal, client, &scope, &session.id, &trace_id);
            let answer = state.gateway.handle_request(&call, &id, &method, params).await;
            answer_response(200, answer)
        }
        Incoming::Notification { method, params } => {
            let call = CallContext::in_session(&principal, client, &scope, &session.id, &trace_id);
            state.gateway.handle_notification(&call, &method, params).await;
            HttpResponse::Accepted().finish()
        }
        Incoming::Response { id, outcome } => match session.take_client_request(&id) {
            Some(pending) => {
                pending.connection.respond(pending.upstream_id, outcome).await;
                HttpResponse::Accepted().finish()
            }
            None => ApiError::BadRequest("no request of this session is waiting for an answer with this id".into())
                .into_response(),
        },
    }
}

/// The request's `Content-Type` must be JSON and its `Accept`, if any, must take JSON.
fn check_media_types(request: &HttpRequest) -> Result<(), ApiError> {
    crate::http_body::require_json(request)?;
    if let Some(accept) = header_str(request.headers(), "accept") {
        let accept = accept.to_ascii_lowercase();
        if !(accept.contains("application/json") || accept.contains("*/*")) {
            return Err(ApiError::NotAcceptable("Accept must include application/json and text/event-stream".into()));
        }
    }
    Ok(())
}

/// Methods whose servers may send progress, log lines or requests to the client while they run.
const RELAYING_METHODS: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// What the call task hands to the HTTP answer: messages before the answer, then the answer.
enum Outgoing {
    Interim(Value),
    Final(Answer),
}

/// One request's owned parts, moved into the task that runs it.
struct CallParts {
    principal: crate::identity::Principal,
    client: std::net::IpAddr,
    scope: Scope,
    trace_id: String,
    id: Value,
    method: String,
    params: Option<Value>,
}

/// How the client hears back: within a session, or statelessly (2026-07-28).
enum AnswerMode {
    Session(Arc<Session>),
    Stateless { wants_log_messages: bool, client_capabilities: Value },
}

/// Answers with plain JSON when the call produced nothing before its answer, and otherwise
/// switches to an SSE stream that carries the interim messages and ends with the answer.
async fn relaying_answer(state: Arc<AppState>, parts: CallParts, mode: AnswerMode) -> HttpResponse {
    let stateless_method = matches!(mode, AnswerMode::Stateless { .. }).then(|| parts.method.clone());
    let (outgoing, mut receiver) = mpsc::unbounded_channel::<Outgoing>();
    // The call runs in its own task: a client that drops the stream does not cancel it (only
    // notifications/cancelled does), and its audit row is written either way.
    actix_web::rt::spawn(async move {
        let (interim, mut interim_receiver) = mpsc::unbounded_channel::<Value>();
        let forward = outgoing.clone();
        let pump = async move {
            while let Some(message) = interim_receiver.recv().await {
                let _ = forward.send(Outgoing::Interim(message));
            }
        };
        let answer = async move {
            let (session, log_messages, client_capabilities) = match mode {
                AnswerMode::Session(session) => {
                    let capabilities = session.client_capabilities.clone();
                    (Some(session), true, capabilities)
                }
                AnswerMode::Stateless { wants_log_messages, client_capabilities } => {
                    (None, wants_log_messages, client_capabilities)
                }
            };
            let relay = ClientRelay { interim, session, log_messages, client_capabilities };
            let call = CallContext {
                principal: &parts.principal,
                client: parts.client,
                scope: &parts.scope,
                session_id: relay.session.as_ref().map(|session| session.id.as_str()),
                trace_id: &parts.trace_id,
                relay: Some(&relay),
            };
            state.gateway.handle_request(&call, &parts.id, &parts.method, parts.params).await
        };
        let (answer, ()) = tokio::join!(answer, pump);
        let _ = outgoing.send(Outgoing::Final(answer));
    });
    let first = match receiver.recv().await {
        Some(Outgoing::Final(mut answer)) => {
            let mut status = 200;
            if let Some(method) = &stateless_method {
                stateless::decorate_answer(method, &mut answer.message);
                status = stateless::status_for(&answer.message);
            }
            return answer_response(status, answer);
        }
        Some(Outgoing::Interim(message)) => message,
        None => return ApiError::Internal("the call ended without an answer".into()).into_response(),
    };
    let keepalive = Duration::from_secs(15);
    let head = stream::once(async move { Ok::<_, actix_web::Error>(sse_event(&first)) });
    let rest = stream::unfold(Some(receiver), move |receiver| {
        let stateless_method = stateless_method.clone();
        async move {
            let mut receiver = receiver?;
            let chunk = match tokio::time::timeout(keepalive, receiver.recv()).await {
                Ok(Some(Outgoing::Interim(message))) => sse_event(&message),
                Ok(Some(Outgoing::Final(mut answer))) => {
                    if let Some(method) = &stateless_method {
                        stateless::decorate_answer(method, &mut answer.message);
                    }
                    return Some((Ok(sse_body(&answer.body())), None));
                }
                Ok(None) => return None,
                Err(_) => web::Bytes::from_static(b": keepalive\n\n"),
            };
            Some((Ok(chunk), Some(receiver)))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(head.chain(rest))
}

/// The HTTP answer of a gateway answer: the JSON-RPC message with `status`, or the 429 of a
/// rate-limited request (`Retry-After` and the RateLimit headers naming the limit).
fn answer_response(status: u16, answer: Answer) -> HttpResponse {
    match answer.rate_limited {
        Some((policy, retry_after)) => crate::http::too_many_requests(&policy, retry_after, answer.message),
        None => json_body(status, answer.body()),
    }
}

fn json_answer(status: u16, answer: &Value) -> HttpResponse {
    json_body(status, serde_json::to_vec(answer).unwrap_or_default())
}

fn json_body(status: u16, body: Vec<u8>) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status).content_type("application/json").body(body)
}

/// POST in revision 2026-07-28: no session; every request stands alone.
async fn stateless_post(
    state: web::Data<AppState>,
    request: &HttpRequest,
    (principal, client): (crate::identity::Principal, std::net::IpAddr),
    scope: Scope,
    message: Incoming,
    trace_id: String,
) -> HttpResponse {
    let (id, method, mut params) = match message {
        Incoming::Request { id, method, params } => (id, method, params),
        Incoming::Notification { .. } => return HttpResponse::Accepted().finish(),
        Incoming::Response { id, .. } => {
            let refusal = jsonrpc::RpcError::new(
                Some(id),
                jsonrpc::INVALID_REQUEST,
                "there is nothing to answer in revision 2026-07-28",
            );
            return json_answer(400, &refusal.to_message());
        }
    };
    let headers = request.headers();
    let lookup = |name: &str| -> Result<Option<String>, ()> {
        let mut values = headers.get_all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(());
        }
        Ok(first.and_then(|value| value.to_str().ok()).map(str::to_string))
    };
    let envelope = match stateless::check_request(&id, &method, params.as_ref(), &lookup) {
        Ok(envelope) => envelope,
        Err(refusal) => return json_answer(refusal.status, &refusal.body),
    };
    if method == "server/discover" {
        let mut answer = jsonrpc::result_message(&id, stateless::discover_result(&scope));
        stateless::decorate_answer(&method, &mut answer);
        return json_answer(200, &answer);
    }
    stateless::strip_envelope(&mut params);
    let accepts_stream = header_str(headers, "accept").is_some_and(|accept| accept.contains("text/event-stream"));
    let parts = CallParts { principal, client, scope, trace_id, id, method, params };
    if accepts_stream && RELAYING_METHODS.contains(&parts.method.as_str()) {
        let mode = AnswerMode::Stateless {
            wants_log_messages: envelope.wants_log_messages,
            client_capabilities: envelope.client_capabilities,
        };
        return relaying_answer(state.into_inner(), parts, mode).await;
    }
    let call = CallContext {
        principal: &parts.principal,
        client: parts.client,
        scope: &parts.scope,
        session_id: None,
        trace_id: &parts.trace_id,
        relay: None,
    };
    let mut answer = state.gateway.handle_request(&call, &parts.id, &parts.method, parts.params.clone()).await;
    stateless::decorate_answer(&parts.method, &mut answer.message);
    let status = stateless::status_for(&answer.message);
    answer_response(status, answer)
}

/// A GET or DELETE in the stateless revision: there is no stream and no session to end.
fn stateless_refusal(request: &HttpRequest) -> Option<HttpResponse> {
    stateless::is_stateless_version(header_str(request.headers(), VERSION_HEADER), SESSION_HEADER_VERSIONS).then(|| {
        HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "POST")).content_type("application/json").body(
            jsonrpc::error_message(
                &Value::Null,
                jsonrpc::INVALID_REQUEST,
                "revision 2026-07-28 has no GET stream and no session",
            )
            .to_string(),
        )
    })
}

fn sse_event(message: &Value) -> web::Bytes {
    web::Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn sse_body(body: &[u8]) -> web::Bytes {
    let mut event = Vec::with_capacity(body.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(body);
    event.extend_from_slice(b"\n\n");
    web::Bytes::from(event)
}

/// The largest `initialize` params accepted (capabilities, clientInfo and the rest, as JSON): the
/// session keeps the capabilities for its life.
const MAX_INITIALIZE_PARAMS_BYTES: usize = 64 * 1024;

/// Opens a session: the principal's `initialize` rate (a bucket of its own), the size of the
/// params, then the store, whose limits may end older sessions of the principal (SessionEnd).
async fn initialize(
    state: &AppState,
    request: &HttpRequest,
    principal: &crate::identity::Principal,
    scope: Scope,
    id: &Value,
    params: Option<&Value>,
) -> HttpResponse {
    let client = crate::http::client_address(state, request);
    if let crate::governance::rate_limit::Admission::Limited { retry_after, .. } =
        state.gateway.policies.load().limits.check(castellan_config::RateClass::McpSession, principal, client)
    {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        tracing::info!(subject = %principal.subject, retry_after_s = seconds, "initialize rate limited");
        let refusal = jsonrpc::RpcError::new(
            Some(id.clone()),
            jsonrpc::INVALID_REQUEST,
            format!("too many sessions opened; retry in {seconds} s"),
        );
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", seconds.to_string()))
            .content_type("application/json")
            .body(refusal.to_message().to_string());
    }
    if params.is_some_and(|params| !json_fits(params, MAX_INITIALIZE_PARAMS_BYTES)) {
        let refusal = jsonrpc::RpcError::new(
            Some(id.clone()),
            jsonrpc::INVALID_PARAMS,
            format!("initialize params are larger than {MAX_INITIALIZE_PARAMS_BYTES} bytes"),
        );
        return json_answer(413, &refusal.to_message());
    }
    let requested = params.and_then(|params| params.get("protocolVersion")).and_then(Value::as_str).unwrap_or_default();
    let version = if SESSION_PROTOCOL_VERSIONS.contains(&requested) { requested } else { SESSION_PROTOCOL_VERSIONS[0] };
    let capabilities = params.and_then(|params| params.get("capabilities")).cloned().unwrap_or_else(|| json!({}));
    let created =
        state.gateway.sessions.create(&principal.subject, principal.tier, scope.clone(), version, capabilities);
    state.gateway.raise_session_ends(created.evicted).await;
    let session = created.session;
    let instructions = match &scope {
        Scope::Aggregated => {
            "Tools of every server you may use, named {server}__{tool}. Every call is checked and audited.".to_string()
        }
        Scope::Server(name) => format!("Tools of the '{name}' server. Every call is checked and audited."),
    };
    let mut capabilities = json!({
        "tools": {"listChanged": true},
        "prompts": {"listChanged": true},
        "resources": {"listChanged": true, "subscribe": true},
        "completions": {},
        "logging": {},
    });
    if scope == Scope::Aggregated {
        capabilities["extensions"] = crate::mcp::gateway::extension_capability();
    }
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": "castellan", "version": env!("CARGO_PKG_VERSION")},
        "instructions": instructions,
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((SESSION_HEADER, session.id.clone()))
        .body(jsonrpc::result_message(id, result).to_string())
}

/// Whether `value` serialized as JSON takes at most `limit` bytes; stops counting past it.
fn json_fits(value: &Value, limit: usize) -> bool {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.written += bytes.len();
            if self.written > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { written: 0, limit }, value).is_ok()
}

/// GET: the session's stream of unsolicited notifications (list changes, log messages).
pub async fn get(request: HttpRequest, state: web::Data<AppState>, server: Option<web::Path<String>>) -> HttpResponse {
    let (_, principal, scope) = match admit(&request, &state, server.as_deref()).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if let Some(refusal) = stateless_refusal(&request) {
        return refusal;
    }
    let accepts_stream =
        header_str(request.headers(), "accept").is_some_and(|accept| accept.contains("text/event-stream"));
    if !accepts_stream {
        return ApiError::NotAcceptable("Accept must include text/event-stream".into()).into_response();
    }
    let Some(session_id) = header_str(request.headers(), SESSION_HEADER) else {
        return ApiError::BadRequest("missing Mcp-Session-Id".into()).into_response();
    };
    let Some(session) = state.gateway.sessions.find(session_id, &principal.subject, &scope) else {
        return ApiError::NotFound("unknown or expired session".into()).into_response();
    };
    let (sender, receiver) = mpsc::channel::<Value>(64);
    session.attach_stream(sender);
    let keepalive = Duration::from_secs(15);
    let events = stream::unfold(receiver, move |mut receiver| async move {
        let chunk = match tokio::time::timeout(keepalive, receiver.recv()).await {
            Ok(Some(message)) => format!("event: message\ndata: {message}\n\n"),
            Ok(None) => return None,
            Err(_) => ": keepalive\n\n".to_string(),
        };
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), receiver))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(events)
}

/// DELETE: the client ends its session.
pub async fn delete(
    request: HttpRequest,
    state: web::Data<AppState>,
    server: Option<web::Path<String>>,
) -> HttpResponse {
    let (_, principal, scope) = match admit(&request, &state, server.as_deref()).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if let Some(refusal) = stateless_refusal(&request) {
        return refusal;
    }
    let Some(session_id) = header_str(request.headers(), SESSION_HEADER) else {
        return ApiError::BadRequest("missing Mcp-Session-Id".into()).into_response();
    };
    match state.gateway.sessions.find(session_id, &principal.subject, &scope) {
        Some(session) => {
            state.gateway.sessions.remove(&session.id);
            let trace_id = crate::http::trace_id_for(&request);
            let input = json!({"reason": "other"});
            state
                .gateway
                .session_event(
                    HookEvent::SessionEnd,
                    (&principal.subject, principal.tier),
                    &scope,
                    &session.id,
                    &trace_id,
                    input,
                )
                .await;
            HttpResponse::NoContent().finish()
        }
        None => ApiError::NotFound("unknown or expired session".into()).into_response(),
    }
}

/// Keeps the type checker honest about the Arc we hand to routes.
pub type SharedState = Arc<AppState>;
