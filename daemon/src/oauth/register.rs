//! RFC 7591 dynamic client registration at `POST /oauth/register`. Registered clients are public
//! (PKCE, no secret) unless they ask for a secret method. Flooding is bounded three times: a rate per
//! address and one for all addresses together (`AddressLimiter::for_registrations`), and a cap on the
//! number of dynamic clients (`identity.max_dynamic_clients`). A client that never redeemed a code
//! within `identity.unused_dynamic_client_ttl` of its registration no longer counts toward the cap
//! and is deleted by the hourly purge; and when the cap is reached, the oldest never-used
//! registration makes room, so registrations that are never used cannot lock real clients out.
//! Only clients that were used fill the cap for good.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::identity::address_limiter::Refusal;
use crate::identity::grants::{self, GrantError};
use crate::identity::{credentials, redirect_uri};

/// The largest registration request read.
const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_REDIRECT_URIS: usize = 10;
const MAX_TEXT_LEN: usize = 2_000;
fn registration_error(status: u16, error: &str, description: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

fn strings(value: Option<&Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    let Some(value) = value else { return Ok(None) };
    let items = value.as_array().ok_or_else(|| format!("{name} must be an array of strings"))?;
    items
        .iter()
        .map(|item| item.as_str().filter(|text| text.len() <= MAX_TEXT_LEN).map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .map(Some)
        .ok_or_else(|| format!("{name} must be an array of strings of at most {MAX_TEXT_LEN} characters"))
}

#[tracing::instrument(skip_all)]
pub async fn register(request: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    if !state.authority.settings.dynamic_registration {
        return registration_error(404, "not_found", "dynamic client registration is disabled");
    }
    let address = crate::http::client_address(&state, &request);
    if let Err(refusal) = state.registration_limiter.check(address, Instant::now()) {
        let description = match refusal {
            Refusal::Address => "too many registrations from this address; wait a minute",
            Refusal::Global => "too many registrations at the moment; wait a minute",
        };
        tracing::warn!(?refusal, "registration rate limited");
        let mut response = registration_error(429, "too_many_requests", description);
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static("60"));
        return response;
    }
    let bounds = crate::http_body::BodyBounds { max_bytes: MAX_BODY_BYTES, ..state.bodies.unauthenticated() };
    let body = match bounds.read(&mut payload).await {
        Ok(body) => body,
        Err(crate::http_body::BodyError::TooLarge { .. }) => {
            let refusal = registration_error(413, "invalid_client_metadata", "the registration request is too large");
            return crate::http_body::answer_unread(refusal, payload);
        }
        Err(error) => return crate::http_body::answer_unread(error.oauth_error_response(), payload),
    };
    let metadata: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return registration_error(400, "invalid_client_metadata", "the body must be a JSON object"),
    };
    let parsed = match parse_metadata(&metadata) {
        Ok(parsed) => parsed,
        Err((error, description)) => return registration_error(400, error, &description),
    };
    let now = Utc::now();
    if let Err(response) = make_room(&state, now).await {
        return response;
    }
    let client_id = credentials::generate_id("dyn_");
    let secret = parsed.confidential.then(|| credentials::generate(credentials::CLIENT_SECRET_PREFIX));
    let secret_hash = secret.as_deref().map(credentials::hash);
    let new_client = castellan_schema::oauth::NewOAuthClient {
        client_id: &client_id,
        name: &parsed.name,
        tier: "user",
        secret_hash: secret_hash.as_deref(),
        grant_types: &parsed.grant_types,
        redirect_uris: &parsed.redirect_uris,
        scopes: &parsed.scopes,
        dynamic: true,
    };
    if let Err(error) = castellan_schema::oauth::create_client(&state.db, &new_client, now).await {
        tracing::error!(%error, "storing a registered client failed");
        return registration_error(503, "temporarily_unavailable", "try again");
    }
    tracing::info!(client_id = %client_id, client_name = %parsed.name, "client registered");
    let mut answer = json!({
        "client_id": client_id,
        "client_id_issued_at": now.timestamp(),
        "client_name": parsed.name,
        "redirect_uris": parsed.redirect_uris,
        "grant_types": parsed.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": parsed.auth_method,
    });
    if let Some(object) = answer.as_object_mut() {
        if !parsed.scopes.is_empty() {
            object.insert("scope".into(), json!(parsed.scopes.join(" ")));
        }
        if let Some(secret) = secret {
            object.insert("client_secret".into(), json!(secret));
            object.insert("client_secret_expires_at".into(), json!(0));
        }
    }
    HttpResponse::Created().insert_header(("Cache-Control", "no-store")).json(answer)
}

/// Whether a new dynamic client may be registered at `now`: below the cap it may; at the cap the
/// oldest never-used registration is deleted to make room, and only a cap filled by clients that
/// were used refuses (403).
async fn make_room(state: &AppState, now: chrono::DateTime<Utc>) -> Result<(), HttpResponse> {
    let settings = &state.authority.settings;
    let unavailable = |error: castellan_schema::DbError| {
        tracing::error!(%error, "checking the dynamic client cap failed");
        registration_error(503, "temporarily_unavailable", "try again")
    };
    let unused_since = unused_registered_since(now, settings.unused_dynamic_client_ttl);
    let holding = castellan_schema::oauth::count_dynamic_clients_holding_places(&state.db, unused_since)
        .await
        .map_err(unavailable)?;
    if holding < settings.max_dynamic_clients {
        return Ok(());
    }
    if castellan_schema::oauth::evict_oldest_unused_dynamic_client(&state.db).await.map_err(unavailable)? {
        tracing::warn!(
            max_dynamic_clients = settings.max_dynamic_clients,
            "the dynamic client cap is reached: the oldest never-used registration was deleted to make room"
        );
        return Ok(());
    }
    Err(registration_error(403, "access_denied", "this server accepts no more dynamic registrations"))
}

/// Never-used clients registered before this instant no longer count toward the cap.
pub fn unused_registered_since(now: chrono::DateTime<Utc>, ttl: std::time::Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_sub_signed(ttl))
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}

/// A registration request that passed every check.
#[derive(Debug)]
pub struct ParsedMetadata {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub auth_method: String,
    pub confidential: bool,
}

/// Checks RFC 7591 client metadata; the error is (RFC 7591 error code, description).
pub fn parse_metadata(metadata: &Value) -> Result<ParsedMetadata, (&'static str, String)> {
    let bad = |text: String| ("invalid_client_metadata", text);
    let redirect_uris = strings(metadata.get("redirect_uris"), "redirect_uris").map_err(bad)?.unwrap_or_default();
    if redirect_uris.is_empty() || redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(("invalid_redirect_uri", format!("give between 1 and {MAX_REDIRECT_URIS} redirect_uris")));
    }
    for uri in &redirect_uris {
        redirect_uri::check_registrable(uri).map_err(|error| ("invalid_redirect_uri", error.to_string()))?;
    }
    let grant_types = strings(metadata.get("grant_types"), "grant_types")
        .map_err(bad)?
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(other) =
        grant_types.iter().find(|grant| !matches!(grant.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(bad(format!("grant type {other:?} cannot be registered dynamically")));
    }
    if !grant_types.iter().any(|grant| grant == "authorization_code") {
        return Err(bad("grant_types must include authorization_code".into()));
    }
    let response_types =
        strings(metadata.get("response_types"), "response_types").map_err(bad)?.unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|kind| kind != "code") {
        return Err(bad("only the code response type is supported".into()));
    }
    let auth_method = match metadata.get("token_endpoint_auth_method") {
        None => "none".to_string(),
        Some(Value::String(method))
            if matches!(method.as_str(), "none" | "client_secret_basic" | "client_secret_post") =>
        {
            method.clone()
        }
        Some(_) => {
            return Err(bad(
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post".into()
            ));
        }
    };
    let scopes = match metadata.get("scope") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(scope)) => {
            grants::parse_scope(Some(scope)).map_err(|error: GrantError| bad(error.to_string()))?
        }
        Some(_) => return Err(bad("scope must be a space-separated string".into())),
    };
    let name = match metadata.get("client_name") {
        None | Some(Value::Null) => "unnamed client".to_string(),
        Some(Value::String(name)) if !name.trim().is_empty() && name.len() <= 200 => name.trim().to_string(),
        Some(_) => return Err(bad("client_name must be a non-empty string of at most 200 characters".into())),
    };
    Ok(ParsedMetadata { name, redirect_uris, grant_types, scopes, confidential: auth_method != "none", auth_method })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn registration_metadata_is_checked() {
        let good = json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x", "grant_types": ["authorization_code", "refresh_token"]});
        let parsed = parse_metadata(&good).unwrap();
        assert!(!parsed.confidential, "public by default");
        let cases = [
            (json!({}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["http://evil.example/cb"]}), "invalid_redirect_uri"),
            (
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["client_credentials"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "invalid_client_metadata",
            ),
            (json!({"redirect_uris": ["http://127.0.0.1/cb"], "response_types": ["token"]}), "invalid_client_metadata"),
            (json!({"redirect_uris": "http://127.0.0.1/cb"}), "invalid_client_metadata"),
        ];
        for (metadata, expected) in cases {
            assert_eq!(parse_metadata(&metadata).err().map(|(error, _)| error), Some(expected), "{metadata}");
        }
    }
}
