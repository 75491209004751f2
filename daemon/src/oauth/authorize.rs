//! The authorization endpoint (RFC 6749 §4.1 with OAuth 2.1's rules): validate the request, send the
//! person to sign in, ask for consent the first time, and answer with a code, `state` and `iss`
//! (RFC 9207).
//!
//! Until the client and its redirect URI are validated, errors are shown as a page and never
//! redirected (an open redirector otherwise). After that, errors go back to the client.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Form, is_own_resource};
use crate::http::AppState;
use crate::identity::grants::{self, Client, GrantError};
use crate::identity::{credentials, pkce, redirect_uri};
use crate::web::pages::{error_page, escape, page};
use crate::web::session;

const FLOW_KIND: &str = "authorize";
/// How long a person has to sign in and consent.
const FLOW_TTL_SECONDS: i64 = 600;
/// Authorization codes live one minute: they are redeemed by software right away.
const CODE_TTL_SECONDS: i64 = 60;

/// The validated request, kept server-side while the person signs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    pub prompt_consent: bool,
}

/// Looks a client up: a registered one, or a Client ID Metadata Document fetched from its URL.
pub async fn resolve_client(state: &AppState, client_id: &str) -> Result<Option<Client>, String> {
    if crate::identity::client_metadata::looks_like_client_id_url(client_id) {
        let Some(resolver) = &state.client_metadata else {
            return Err("this server does not accept client metadata document URLs as client ids".into());
        };
        let metadata =
            resolver.resolve(client_id, std::time::Instant::now()).await.map_err(|error| error.to_string())?;
        return Ok(Some(Client {
            client_id: metadata.client_id,
            name: metadata.client_name,
            tier: castellan_config::Tier::User,
            confidential: false,
            grant_types: metadata.grant_types,
            redirect_uris: metadata.redirect_uris,
            scopes: Vec::new(),
        }));
    }
    match state.authority.find_client(client_id).await {
        Ok(row) => Ok(row.map(|row| Client::from_row(&row))),
        Err(error) => {
            tracing::error!(%error, "client lookup failed");
            Err("the server cannot look up clients right now; try again".into())
        }
    }
}

/// Redirects an error back to the client (RFC 6749 §4.1.2.1 with RFC 9207's `iss`).
fn error_redirect(state: &AppState, redirect: &str, client_state: Option<&str>, error: &GrantError) -> HttpResponse {
    let mut parameters = vec![("error", error.code()), ("iss", state.authority.issuer.as_str())];
    if let Some(description) = error.description() {
        parameters.push(("error_description", description));
    }
    if let Some(client_state) = client_state {
        parameters.push(("state", client_state));
    }
    found(&redirect_uri::with_parameters(redirect, &parameters))
}

fn found(location: &str) -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", location)).insert_header(("Cache-Control", "no-store")).finish()
}

/// `GET /oauth/authorize`.
#[tracing::instrument(skip_all)]
pub async fn authorize(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let form = match Form::parse(request.query_string().as_bytes()) {
        Ok(form) => form,
        Err(reason) => return error_page(400, &reason),
    };
    let Some(client_id) = form.get("client_id") else { return error_page(400, "the request names no client_id") };
    // A metadata-document client id makes Castellan fetch a URL: bound how often one address can ask.
    if crate::identity::client_metadata::looks_like_client_id_url(client_id) {
        let address = crate::http::client_address(&state, &request);
        if !state.metadata_fetch_limiter.allow(address, std::time::Instant::now()) {
            return error_page(429, "too many sign-in requests from this address; wait a minute");
        }
    }
    let client = match resolve_client(&state, client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return error_page(400, "the client is not registered with this server"),
        Err(reason) => return error_page(400, &reason),
    };
    let redirect = match form.get("redirect_uri") {
        Some(requested)
            if client.redirect_uris.iter().any(|registered| redirect_uri::matches(registered, requested)) =>
        {
            requested.to_string()
        }
        Some(_) => return error_page(400, "the redirect_uri is not registered for this client"),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return error_page(400, "the request must name its redirect_uri"),
    };
    let client_state = form.get("state");
    let pending = match validate(&state, &form, &client, &redirect) {
        Ok(pending) => pending,
        Err(error) => return error_redirect(&state, &redirect, client_state, &error),
    };
    if !session::may_start_flow(&state, &request) {
        return error_page(429, "too many sign-in requests from this address; wait a moment");
    }
    let now = Utc::now();
    let flow_id = credentials::generate(credentials::FLOW_PREFIX);
    if let Err(error) = session::put_flow(&state, &flow_id, FLOW_KIND, None, &pending, FLOW_TTL_SECONDS, now).await {
        tracing::error!(%error, "storing an authorization request failed");
        return error_redirect(&state, &redirect, client_state, &GrantError::ServerError);
    }
    continue_flow(&request, &state, &flow_id, now).await
}

fn validate(
    state: &AppState,
    form: &Form,
    client: &Client,
    redirect: &str,
) -> Result<PendingAuthorization, GrantError> {
    match form.get("response_type") {
        Some("code") => {}
        _ => return Err(GrantError::UnsupportedResponseType),
    }
    if !client.allows_grant("authorization_code") {
        return Err(GrantError::UnauthorizedClient("this client may not use the authorization code flow".into()));
    }
    let challenge = form
        .get("code_challenge")
        .ok_or_else(|| GrantError::InvalidRequest("code_challenge is required (PKCE)".into()))?;
    if form.get("code_challenge_method") != Some("S256") {
        return Err(GrantError::InvalidRequest("code_challenge_method must be S256".into()));
    }
    if !pkce::is_valid_challenge(challenge) {
        return Err(GrantError::InvalidRequest("code_challenge is not a base64url SHA-256".into()));
    }
    let scopes = grants::parse_scope(form.get("scope"))?;
    if !client.scopes.is_empty()
        && let Some(outside) = scopes.iter().find(|scope| !client.scopes.contains(scope) && *scope != "offline_access")
    {
        return Err(GrantError::InvalidScope(format!("this client may not request {outside:?}")));
    }
    let resources = match form.get("resource") {
        Some(resource) if is_own_resource(state, resource) => vec![resource.to_string()],
        Some(_) => return Err(GrantError::InvalidTarget("the resource is not served by this server".into())),
        None => vec![state.authority.mcp_resource(None)],
    };
    Ok(PendingAuthorization {
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri: redirect.to_string(),
        state: form.get("state").map(str::to_string),
        code_challenge: challenge.to_string(),
        scopes,
        resources,
        prompt_consent: form.get("prompt").is_some_and(|prompt| prompt.split(' ').any(|value| value == "consent")),
    })
}

#[derive(Deserialize)]
pub struct ContinueQuery {
    flow: String,
}

/// `GET /oauth/authorize/continue?flow=...`: where sign-in returns to.
pub async fn resume(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ContinueQuery>,
) -> HttpResponse {
    continue_flow(&request, &state, &query.flow, Utc::now()).await
}

async fn load_flow(state: &AppState, flow_id: &str, now: DateTime<Utc>) -> Option<PendingAuthorization> {
    let row = castellan_schema::sessions::peek_flow_state(&state.db, &credentials::hash(flow_id), FLOW_KIND, now)
        .await
        .ok()??;
    serde_json::from_str(&row.state).ok()
}

/// Sign-in, then consent (first time or `prompt=consent`), then the code.
async fn continue_flow(request: &HttpRequest, state: &AppState, flow_id: &str, now: DateTime<Utc>) -> HttpResponse {
    let Some(pending) = load_flow(state, flow_id, now).await else {
        return error_page(
            400,
            "this sign-in request has expired or was already used; start again from the application",
        );
    };
    let Some((user, _session, session_token)) = session::current_user(state, request, now).await else {
        let next = url::form_urlencoded::Serializer::new(String::new()).append_pair("flow", flow_id).finish();
        return found(&format!("/login?{next}"));
    };
    let consented = castellan_schema::oauth::find_consent(&state.db, user.id, &pending.client_id).await.ok().flatten();
    let covered = consented.is_some_and(|granted| pending.scopes.iter().all(|scope| granted.contains(scope)));
    if covered && !pending.prompt_consent {
        return issue_code(state, flow_id, user.id, now).await;
    }
    let redirect_host = url::Url::parse(&pending.redirect_uri)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_default();
    let client_host = url::Url::parse(&pending.client_id).ok().and_then(|url| url.host_str().map(str::to_string));
    let loopback_note = if matches!(redirect_host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
        "<p class=\"muted\">The application runs on this computer (it receives the answer on a local address). Only continue if you just started it.</p>"
    } else {
        ""
    };
    let publisher =
        client_host.map(|host| format!("<p>Published at <b>{}</b>.</p>", escape(&host))).unwrap_or_default();
    let csrf = session::csrf_token(&session_token, flow_id);
    let body = format!(
        "<h1>Allow <b>{name}</b> to act as {user}?</h1>{publisher}\
<p>It will receive access to <code>{scopes}</code> and send you back to <b>{host}</b>.</p>{loopback_note}\
<form method=\"post\" action=\"/oauth/consent\">\
<input type=\"hidden\" name=\"flow\" value=\"{flow}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button id=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\
<button id=\"deny\" name=\"decision\" value=\"deny\">Deny</button></form>",
        name = escape(&pending.client_name),
        user = escape(&user.name),
        scopes = escape(&pending.scopes.join(" ")),
        host = escape(&redirect_host),
        flow = escape(flow_id),
    );
    page(StatusCode::OK, "Allow access", &body)
}

/// `POST /oauth/consent`: the person's decision.
pub async fn consent(request: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    if !crate::http::origin_allowed(&state, request.headers()) {
        return crate::http_body::answer_unread(error_page(403, "this form was submitted from another site"), payload);
    }
    let body = match state.bodies.unauthenticated().read(&mut payload).await {
        Ok(body) => body,
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&error).as_u16();
            return crate::http_body::answer_unread(error_page(status, &error.to_string()), payload);
        }
    };
    let Ok(form) = Form::parse(&body) else { return error_page(400, "malformed form") };
    let (Some(flow_id), Some(csrf)) = (form.get("flow"), form.get("csrf")) else {
        return error_page(400, "malformed form");
    };
    let now = Utc::now();
    let Some((user, _session, session_token)) = session::current_user(&state, &request, now).await else {
        return error_page(403, "you are not signed in");
    };
    let expected = session::csrf_token(&session_token, flow_id);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), csrf.as_bytes())) {
        return error_page(403, "this form is not from your session; start again from the application");
    }
    let Some(pending) = load_flow(&state, flow_id, now).await else {
        return error_page(400, "this sign-in request has expired or was already used");
    };
    if form.get("decision") != Some("allow") {
        let _ =
            castellan_schema::sessions::take_flow_state(&state.db, &credentials::hash(flow_id), FLOW_KIND, now).await;
        let denied = GrantError::AccessDenied;
        return error_redirect(&state, &pending.redirect_uri, pending.state.as_deref(), &denied);
    }
    if let Err(error) =
        castellan_schema::oauth::record_consent(&state.db, user.id, &pending.client_id, &pending.scopes, now).await
    {
        tracing::error!(%error, "recording consent failed");
    }
    issue_code(&state, flow_id, user.id, now).await
}

/// Spends the flow and redirects with a fresh code.
async fn issue_code(state: &AppState, flow_id: &str, user_id: i64, now: DateTime<Utc>) -> HttpResponse {
    let taken =
        castellan_schema::sessions::take_flow_state(&state.db, &credentials::hash(flow_id), FLOW_KIND, now).await;
    let Some(pending) =
        taken.ok().flatten().and_then(|row| serde_json::from_str::<PendingAuthorization>(&row.state).ok())
    else {
        return error_page(400, "this sign-in request has expired or was already used");
    };
    let outcome = async {
        let grant_id = state
            .authority
            .create_user_grant(&pending.client_id, user_id, &pending.scopes, &pending.resources, now)
            .await?;
        let code = credentials::generate(credentials::CODE_PREFIX);
        castellan_schema::oauth::insert_code(
            &state.db,
            &castellan_schema::oauth::NewCode {
                code_hash: &credentials::hash(&code),
                grant_id: &grant_id,
                client_id: &pending.client_id,
                user_id,
                redirect_uri: &pending.redirect_uri,
                code_challenge: &pending.code_challenge,
                resources: &pending.resources,
                scopes: &pending.scopes,
                auth_time: now,
                expires_at: now + chrono::Duration::seconds(CODE_TTL_SECONDS),
            },
            now,
        )
        .await?;
        Ok::<String, GrantError>(code)
    }
    .await;
    match outcome {
        Ok(code) => {
            let mut parameters = vec![("code", code.as_str()), ("iss", state.authority.issuer.as_str())];
            if let Some(client_state) = pending.state.as_deref() {
                parameters.push(("state", client_state));
            }
            found(&redirect_uri::with_parameters(&pending.redirect_uri, &parameters))
        }
        Err(error) => error_redirect(state, &pending.redirect_uri, pending.state.as_deref(), &error),
    }
}
