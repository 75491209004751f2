//! `POST /oauth/token`, `/oauth/revoke`, `/oauth/introspect` and `/oauth/userinfo`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::json;

use super::{Form, attempted_basic, client_credentials, grant_error, is_own_resource, no_store_json, read_form};
use crate::http::ApiError;
use crate::http::AppState;
use crate::identity::grants::{Client, GrantError};
use crate::identity::{Audience, AuthError};

/// Authenticates the calling client from the form and headers.
async fn calling_client(
    state: &AppState,
    request: &HttpRequest,
    form: &Form,
) -> Result<(Client, bool), (GrantError, bool)> {
    let presented = client_credentials(request, form).map_err(|error| (error, attempted_basic(request)))?;
    let used_basic = presented.used_basic;
    // A Client ID Metadata Document client is public: it identifies itself by its URL, never a secret.
    if crate::identity::client_metadata::looks_like_client_id_url(&presented.client_id) {
        if presented.secret.is_some() {
            return Err((GrantError::InvalidClient, used_basic));
        }
        let address = crate::http::client_address(state, request);
        if !state.metadata_fetch_limiter.allow(address, std::time::Instant::now()) {
            return Err((GrantError::TooManyRequests, used_basic));
        }
        return match super::authorize::resolve_client(state, &presented.client_id).await {
            Ok(Some(client)) => Ok((client, used_basic)),
            Ok(None) | Err(_) => Err((GrantError::InvalidClient, used_basic)),
        };
    }
    let client = state
        .authority
        .authenticate_client(&presented.client_id, presented.secret.as_deref())
        .await
        .map_err(|error| (error, used_basic))?;
    Ok((client, used_basic))
}

/// The `oauth` rate limit (`rate_limits.per_second.oauth` × the client's tier): a 429 answer, if over.
fn oauth_rate_limited(
    state: &AppState,
    principal: &crate::identity::Principal,
    address: std::net::IpAddr,
) -> Option<HttpResponse> {
    let crate::governance::rate_limit::Admission::Limited { policy, retry_after } =
        state.gateway.policies.load().limits.check(castellan_config::RateClass::Oauth, principal, address)
    else {
        return None;
    };
    let body =
        serde_json::json!({"error": "temporarily_unavailable", "error_description": "rate limited; retry later"});
    Some(crate::http::too_many_requests(&policy, retry_after, body))
}

/// Reads the form and authenticates the client, or the error response to send.
async fn form_and_client(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
) -> Result<(Form, Client, bool), HttpResponse> {
    let form = read_form(request, body).map_err(|error| grant_error(&error, false))?;
    let address = crate::http::client_address(state, request);
    let (client, used_basic) = match calling_client(state, request, &form).await {
        Ok(found) => found,
        Err((error, used_basic)) => {
            // Failed client authentication draws from the address's bucket: guessing is throttled.
            if let Some(limited) = oauth_rate_limited(state, &crate::identity::Principal::anonymous(), address) {
                return Err(limited);
            }
            return Err(grant_error(&error, used_basic));
        }
    };
    let principal = crate::identity::Principal {
        subject: format!("client:{}", client.client_id),
        tier: client.tier,
        scopes: Vec::new(),
        credential: crate::identity::Credential::OAuth { client_id: client.client_id.clone(), token_id: String::new() },
    };
    if let Some(limited) = oauth_rate_limited(state, &principal, address) {
        return Err(limited);
    }
    Ok((form, client, used_basic))
}

/// The single `resource` parameter (RFC 8707), if any, checked to be one of ours.
fn requested_resource<'f>(state: &AppState, form: &'f Form) -> Result<Option<&'f str>, GrantError> {
    match form.get("resource") {
        None => Ok(None),
        Some(resource) if resource.contains('#') => Err(GrantError::InvalidTarget("a resource has no fragment".into())),
        Some(resource) if is_own_resource(state, resource) => Ok(Some(resource)),
        Some(_) => Err(GrantError::InvalidTarget("the resource is not served by this server".into())),
    }
}

#[tracing::instrument(skip_all, fields(grant_type))]
pub async fn token(request: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let body = match state.bodies.unauthenticated().read(&mut payload).await {
        Ok(body) => body,
        Err(error) => return crate::http_body::answer_unread(error.oauth_error_response(), payload),
    };
    let (form, client, used_basic) = match form_and_client(&state, &request, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let grant_type = form.get("grant_type").unwrap_or_default();
    tracing::Span::current().record("grant_type", grant_type);
    let now = Utc::now();
    let outcome = async {
        let resource = requested_resource(&state, &form)?;
        match grant_type {
            "client_credentials" => {
                let audience = resource.map_or_else(|| state.authority.mcp_resource(None), str::to_string);
                state.authority.client_credentials(&client, form.get("scope"), &audience, now)
            }
            "authorization_code" => {
                if !client.allows_grant("authorization_code") {
                    return Err(GrantError::UnauthorizedClient("this client may not use authorization_code".into()));
                }
                let code = form.get("code").ok_or_else(|| GrantError::InvalidRequest("code is required".into()))?;
                state
                    .authority
                    .exchange_code(&client, code, form.get("redirect_uri"), form.get("code_verifier"), resource, now)
                    .await
            }
            "refresh_token" => {
                let refresh = form
                    .get("refresh_token")
                    .ok_or_else(|| GrantError::InvalidRequest("refresh_token is required".into()))?;
                state.authority.refresh(&client, refresh, form.get("scope"), resource, now).await
            }
            "" => Err(GrantError::InvalidRequest("grant_type is required".into())),
            _ => Err(GrantError::UnsupportedGrantType),
        }
    }
    .await;
    match outcome {
        Ok(issued) => {
            let outcome = format!("token_{grant_type}");
            if let Some(decision) = castellan_actors::metrics::AuthOutcome::token_issued(grant_type) {
                state.metrics.auth_decision(decision);
            }
            state.gateway.bus.publish(castellan_actors::Event::AuthDecision {
                outcome,
                subject: Some(client.client_id.clone()),
                reason: "token issued".into(),
                trace_id: crate::http::trace_id_for(&request),
            });
            no_store_json(issued.to_json())
        }
        Err(error) => {
            tracing::info!(client_id = %client.client_id, error = error.code(), "token request refused");
            state.gateway.bus.publish(castellan_actors::Event::AuthDecision {
                outcome: "token_refused".into(),
                subject: Some(client.client_id.clone()),
                reason: error.code().into(),
                trace_id: crate::http::trace_id_for(&request),
            });
            grant_error(&error, used_basic)
        }
    }
}

/// RFC 7009: 200 whether or not the token was known.
pub async fn revoke(request: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let body = match state.bodies.unauthenticated().read(&mut payload).await {
        Ok(body) => body,
        Err(error) => return crate::http_body::answer_unread(error.oauth_error_response(), payload),
    };
    let (form, client, used_basic) = match form_and_client(&state, &request, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(token) = form.get("token") else {
        return grant_error(&GrantError::InvalidRequest("token is required".into()), used_basic);
    };
    match state.authority.revoke(&client, token, Utc::now()).await {
        Ok(()) => HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish(),
        Err(error) => grant_error(&error, used_basic),
    }
}

/// RFC 7662: confidential clients only, and only about their own tokens.
pub async fn introspect(request: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let body = match state.bodies.unauthenticated().read(&mut payload).await {
        Ok(body) => body,
        Err(error) => return crate::http_body::answer_unread(error.oauth_error_response(), payload),
    };
    let (form, client, used_basic) = match form_and_client(&state, &request, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !client.confidential {
        return grant_error(&GrantError::InvalidClient, used_basic);
    }
    let Some(token) = form.get("token") else {
        return grant_error(&GrantError::InvalidRequest("token is required".into()), used_basic);
    };
    match state.authority.introspect(&client, token, Utc::now()).await {
        Ok(answer) => no_store_json(answer),
        Err(error) => grant_error(&error, used_basic),
    }
}

/// OIDC-style userinfo for the bearer of one of our access tokens (or any accepted credential).
pub async fn userinfo(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    match state.authenticator.authenticate(authorization, Audience::AnyOwn, Utc::now()).await {
        Ok(principal) => no_store_json(json!({
            "sub": principal.subject,
            "preferred_username": principal.subject,
            "tier": principal.tier.as_str(),
            "scope": principal.scopes.join(" "),
        })),
        Err(AuthError::Unavailable) => {
            ApiError::Unavailable("the identity store is unavailable; try again".into()).into_response()
        }
        Err(error) => {
            let challenge = match error {
                AuthError::Missing => "Bearer".to_string(),
                other => format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    other.to_string().replace('"', "'")
                ),
            };
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", challenge))
                .json(json!({"error": "invalid_token"}))
        }
    }
}
