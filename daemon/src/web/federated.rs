//! Browser sign-in through a federated issuer, Castellan being its OIDC client: `GET
//! /login/federated/{index}` sends the person to the issuer (authorization code, PKCE S256, `state`
//! and `nonce` kept server-side, single use), `GET /login/federated/callback` checks the answer,
//! finds or creates the local user of that federated identity, and continues the pending
//! authorization request like a passkey sign-in does. The person then gets Castellan's own tokens.
//!
//! The `state` is also bound to the browser that started the sign-in (a short-lived cookie holding a
//! secret whose hash the flow state keeps), so a callback URL planted in someone else's browser
//! cannot sign them in as the planter (login CSRF).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::pages::error_page;
use super::session;
use crate::http::AppState;
use crate::identity::credentials;
use crate::identity::federation::{FederatedIdentity, SignInError};

const FLOW_KIND: &str = "federated-login";
/// How long a person has to sign in at the issuer.
const FLOW_TTL_SECONDS: i64 = 600;
const BINDING_COOKIE: &str = "castellan_federated";
const BINDING_PATH: &str = "/login/federated";
/// The `castellan_meta` key that marks a `users` row as created by a federated sign-in (value: the
/// issuer). Only such rows are ever signed into through an issuer.
fn federated_user_marker(user_id: i64) -> String {
    format!("federated-user:{user_id}")
}

/// What is kept between the redirect to the issuer and its answer.
#[derive(Debug, Serialize, Deserialize)]
struct PendingFederatedLogin {
    issuer_index: usize,
    /// The issuer identifier, so that an answer is never checked against another issuer's rules.
    issuer: String,
    nonce: String,
    pkce_verifier: String,
    /// The pending authorization request to continue afterwards, if any.
    flow: Option<String>,
    /// SHA-256 of the browser-binding cookie.
    binding_hash: String,
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/login/federated/callback", state.public_url.trim_end_matches('/'))
}

fn found(location: &str) -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", location)).insert_header(("Cache-Control", "no-store")).finish()
}

fn binding_cookie(state: &AppState, value: String, max_age_seconds: i64) -> Cookie<'static> {
    Cookie::build(BINDING_COOKIE, value)
        .path(BINDING_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.public_url.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_seconds))
        .finish()
}

fn sign_in_failure(error: &SignInError) -> HttpResponse {
    let status = match error {
        SignInError::NotOffered => 404,
        SignInError::Unreachable => 503,
        SignInError::Misconfigured | SignInError::Refused => 502,
        SignInError::InvalidIdToken | SignInError::Token(_) => 400,
    };
    error_page(status, &error.to_string())
}

#[derive(Deserialize)]
pub struct StartQuery {
    flow: Option<String>,
}

/// `GET /login/federated/{index}?flow=...`: redirects to the issuer's authorization endpoint.
#[tracing::instrument(skip_all, fields(issuer.index = *index))]
pub async fn start(
    request: HttpRequest,
    state: web::Data<AppState>,
    index: web::Path<usize>,
    query: web::Query<StartQuery>,
) -> HttpResponse {
    let index = index.into_inner();
    if !session::may_start_flow(&state, &request) {
        return error_page(429, "too many sign-in requests from this address; wait a moment");
    }
    let Some(federation) = state.authority.federation.as_ref() else {
        return sign_in_failure(&SignInError::NotOffered);
    };
    let (Some(_), Some(issuer)) = (federation.sign_in_label(index), federation.issuer_at(index)) else {
        return sign_in_failure(&SignInError::NotOffered);
    };
    let flow = query.flow.clone().filter(|flow| !flow.is_empty());
    if flow.as_deref().is_some_and(|flow| !flow.starts_with(credentials::FLOW_PREFIX) || flow.len() > 128) {
        return error_page(400, "this sign-in request is malformed; start again from the application");
    }
    let oidc_state = credentials::generate(credentials::FLOW_PREFIX);
    let started = match federation.start_sign_in(index, &redirect_uri(&state), &oidc_state).await {
        Ok(started) => started,
        Err(error) => return sign_in_failure(&error),
    };
    let binding = credentials::generate(credentials::FLOW_PREFIX);
    let pending = PendingFederatedLogin {
        issuer_index: index,
        issuer: issuer.to_string(),
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        flow,
        binding_hash: credentials::hash(&binding),
    };
    let now = Utc::now();
    if let Err(error) = session::put_flow(&state, &oidc_state, FLOW_KIND, None, &pending, FLOW_TTL_SECONDS, now).await {
        tracing::error!(%error, "storing a federated sign-in failed");
        return error_page(503, "the sign-in could not be started; try again");
    }
    tracing::info!(issuer = %issuer, "federated sign-in started");
    HttpResponse::Found()
        .insert_header(("Location", started.authorization_url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .cookie(binding_cookie(&state, binding, FLOW_TTL_SECONDS))
        .finish()
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /login/federated/callback?code&state&iss`: the issuer's answer.
#[tracing::instrument(skip_all)]
pub async fn callback(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let now = Utc::now();
    let Some(federation) = state.authority.federation.as_ref() else {
        return sign_in_failure(&SignInError::NotOffered);
    };
    let Some(oidc_state) = query.state.as_deref() else {
        return error_page(400, "the identity provider's answer has no state; start again");
    };
    // Taken (deleted) whatever happens next: a state is good for one answer only.
    let taken =
        castellan_schema::sessions::take_flow_state(&state.db, &credentials::hash(oidc_state), FLOW_KIND, now).await;
    let Some(pending) =
        taken.ok().flatten().and_then(|row| serde_json::from_str::<PendingFederatedLogin>(&row.state).ok())
    else {
        return error_page(400, "this sign-in has expired or was already used; start again");
    };
    let binding = request.cookie(BINDING_COOKIE).map(|cookie| credentials::hash(cookie.value())).unwrap_or_default();
    if !bool::from(binding.as_bytes().ct_eq(pending.binding_hash.as_bytes())) {
        tracing::warn!("a federated sign-in answer arrived in a browser that did not start it");
        return error_page(400, "this sign-in was started in another browser; start again");
    }
    if federation.issuer_at(pending.issuer_index) != Some(pending.issuer.as_str()) {
        return error_page(400, "the identity provider configuration changed; start again");
    }
    // RFC 9207: an answer that names another issuer is a mix-up attempt.
    if query.iss.as_deref().is_some_and(|iss| iss != pending.issuer) {
        tracing::warn!(expected = %pending.issuer, "a federated sign-in answer names another issuer");
        return error_page(400, "the answer came from another identity provider; start again");
    }
    if let Some(error) = query.error.as_deref() {
        tracing::info!(issuer = %pending.issuer, error, "the identity provider refused the sign-in");
        return error_page(400, "the identity provider did not sign you in; start again");
    }
    let Some(code) = query.code.as_deref() else {
        return error_page(400, "the identity provider's answer has no code; start again");
    };
    let identity = match federation
        .finish_sign_in(pending.issuer_index, &redirect_uri(&state), code, &pending.pkce_verifier, &pending.nonce, now)
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            tracing::info!(issuer = %pending.issuer, %error, "federated sign-in refused");
            return sign_in_failure(&error);
        }
    };
    let user_id = match local_user(&state, &pending.issuer, &identity, now).await {
        Ok(user_id) => user_id,
        Err(response) => return response,
    };
    let cookie = match session::start(&state, user_id, now).await {
        Ok(cookie) => cookie,
        Err(error) => {
            tracing::error!(%error, "starting a session failed");
            return error_page(503, "the sign-in could not be finished; try again");
        }
    };
    tracing::info!(user.name = %identity.subject, tier = identity.tier.as_str(), "signed in through a federated issuer");
    let next = match pending.flow.as_deref() {
        Some(flow) => format!(
            "/oauth/authorize/continue?{}",
            url::form_urlencoded::Serializer::new(String::new()).append_pair("flow", flow).finish()
        ),
        None => "/".to_string(),
    };
    let mut response = found(&next);
    let _ = response.add_cookie(&cookie);
    let _ = response.add_removal_cookie(&binding_cookie(&state, String::new(), 0));
    response
}

/// The `users` row of a federated identity: created on first sign-in, its tier set to the mapped one
/// on every sign-in. A row of that name that a federated sign-in did not create (a local user) is
/// never taken over.
async fn local_user(
    state: &AppState,
    issuer: &str,
    identity: &FederatedIdentity,
    now: DateTime<Utc>,
) -> Result<i64, HttpResponse> {
    let unavailable = |error: castellan_schema::DbError| {
        tracing::error!(%error, "looking up a federated user failed");
        error_page(503, "the sign-in could not be finished; try again")
    };
    let tier = identity.tier.as_str();
    let existing = castellan_schema::users::find_by_name(&state.db, &identity.subject).await.map_err(unavailable)?;
    let user = match existing {
        Some(user) => user,
        None => match castellan_schema::users::create(&state.db, &identity.subject, tier, &[], now).await {
            Ok(user) => {
                castellan_schema::meta::set(&state.db, &federated_user_marker(user.id), issuer)
                    .await
                    .map_err(unavailable)?;
                tracing::info!(user.name = %user.name, tier, "created the local user of a federated identity");
                return Ok(user.id);
            }
            // Another replica (or tab) created it a moment ago.
            Err(castellan_schema::DbError::AlreadyExists(_)) => {
                castellan_schema::users::find_by_name(&state.db, &identity.subject)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| error_page(503, "the sign-in could not be finished; try again"))?
            }
            Err(error) => return Err(unavailable(error)),
        },
    };
    let marker = castellan_schema::meta::get(&state.db, &federated_user_marker(user.id)).await.map_err(unavailable)?;
    if marker.as_deref() != Some(issuer) {
        tracing::warn!(
            user.name = %user.name,
            "a federated identity has the name of a local user; refusing to sign into the local account"
        );
        return Err(error_page(
            409,
            "an account of this name exists at Castellan but was not created by this identity provider; ask an operator",
        ));
    }
    if user.disabled {
        return Err(error_page(403, "this account is disabled"));
    }
    if user.tier != tier {
        castellan_schema::users::update_tier(&state.db, user.id, tier).await.map_err(unavailable)?;
        tracing::info!(user.name = %user.name, from = %user.tier, to = tier, "federated user's tier updated");
    }
    Ok(user.id)
}
