//! Authentication of the MCP endpoints: the credential to a `Principal`, or the 401 with the
//! RFC 9728 challenge, or the 403 `insufficient_scope`.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse};
use castellan_actors::metrics::AuthOutcome;
use chrono::Utc;
use serde_json::json;

use super::{ApiError, AppState};
use crate::identity::{Audience, AuthError, Principal};

/// The challenge parameters shared by 401 and 403 answers (RFC 6750 §3, RFC 9728 §5.1). Every value
/// is quoted and none contains a quote, so clients that scan for `name="..."` read them right.
fn bearer_challenge(state: &AppState, request: &HttpRequest, error: Option<(&str, &str)>) -> String {
    let metadata =
        format!("{}/.well-known/oauth-protected-resource{}", state.public_url.trim_end_matches('/'), request.path());
    let scope = crate::oauth::metadata::MCP_SCOPE;
    match error {
        None => format!("Bearer resource_metadata=\"{metadata}\", scope=\"{scope}\""),
        Some((code, description)) => format!(
            "Bearer error=\"{code}\", error_description=\"{}\", resource_metadata=\"{metadata}\", scope=\"{scope}\"",
            description.replace(['"', '\\'], "'")
        ),
    }
}

/// Turns a request's credential into a `Principal` for `audience`, the same way for every surface:
/// the decision counted in the metrics, a refusal logged and published on the bus, a missing
/// credential served as the anonymous tier where the profile allows it. Each surface then checks
/// its own scope and renders the refusal in its own wire format.
pub async fn identify(
    state: &AppState,
    authorization: Option<&str>,
    audience: Audience<'_>,
    trace_id: &str,
) -> Result<Principal, AuthError> {
    let outcome = state.authenticator.authenticate(authorization, audience, Utc::now()).await;
    let decision = match &outcome {
        Ok(_) => AuthOutcome::Ok,
        Err(AuthError::Missing) => AuthOutcome::Missing,
        Err(AuthError::Invalid) => AuthOutcome::Invalid,
        Err(AuthError::Expired) => AuthOutcome::Expired,
        Err(AuthError::Unavailable) => AuthOutcome::Unavailable,
        Err(AuthError::Token(_)) => AuthOutcome::InvalidToken,
    };
    state.metrics.auth_decision(decision);
    match outcome {
        Err(AuthError::Missing) if state.allow_anonymous.load(Ordering::Relaxed) => Ok(Principal::anonymous()),
        Err(AuthError::Unavailable) => {
            tracing::error!(trace_id, "identity store unavailable");
            Err(AuthError::Unavailable)
        }
        Err(error) => {
            let label = decision.as_str();
            tracing::info!(trace_id, outcome = label, reason = %error, "authentication refused");
            state.gateway.bus.publish(castellan_actors::Event::AuthDecision {
                outcome: label.to_string(),
                subject: None,
                reason: error.to_string(),
                trace_id: trace_id.to_string(),
            });
            Err(error)
        }
        Ok(principal) => Ok(principal),
    }
}

/// Authenticates the request for an MCP endpoint, or builds the 401 with the RFC 9728 challenge,
/// or the 403 `insufficient_scope` when the credential's scopes do not reach the MCP surface.
pub async fn authenticate(
    state: &AppState,
    request: &HttpRequest,
    trace_id: &str,
    server: Option<&str>,
) -> Result<Principal, HttpResponse> {
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    match identify(state, authorization, Audience::Mcp(server), trace_id).await {
        // The anonymous principal has no scopes, so no surface scope narrows it.
        Ok(principal) if crate::identity::has_scope(&principal, crate::oauth::metadata::MCP_SCOPE) => Ok(principal),
        Ok(principal) => {
            tracing::info!(trace_id, subject = %principal.subject, "token lacks the mcp:tools scope");
            let challenge =
                bearer_challenge(state, request, Some(("insufficient_scope", "the token does not grant mcp:tools")));
            Err(HttpResponse::Forbidden()
                .insert_header(("WWW-Authenticate", challenge))
                .json(json!({"error": "insufficient_scope"})))
        }
        Err(AuthError::Unavailable) => {
            Err(ApiError::Unavailable("the identity store is unavailable; try again".into()).into_response())
        }
        Err(error) => {
            let description = error.to_string();
            let challenge = match error {
                AuthError::Missing => bearer_challenge(state, request, None),
                _ => bearer_challenge(state, request, Some(("invalid_token", &description))),
            };
            Err(HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", challenge))
                .json(json!({"error": description})))
        }
    }
}
