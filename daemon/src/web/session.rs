//! Browser sessions: a random cookie whose SHA-256 names a `browser_sessions` row, so any replica can
//! recognise it. `HttpOnly`, `SameSite=Lax`, `Secure` whenever the public URL is https.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use castellan_schema::sessions::SessionRow;
use castellan_schema::users::UserRow;
use chrono::{DateTime, Utc};

use crate::http::AppState;
use crate::identity::credentials;

pub const COOKIE_NAME: &str = "castellan_session";

/// The signed-in user of this request, if the session is valid and the user enabled.
pub async fn current_user(
    state: &AppState,
    request: &HttpRequest,
    now: DateTime<Utc>,
) -> Option<(UserRow, SessionRow, String)> {
    let cookie = request.cookie(COOKIE_NAME)?;
    let token = cookie.value().to_string();
    if !token.starts_with(credentials::SESSION_PREFIX) {
        return None;
    }
    let session = castellan_schema::sessions::find_session(&state.db, &credentials::hash(&token), now).await.ok()??;
    let user = castellan_schema::users::find_by_id(&state.db, session.user_id).await.ok()??;
    (!user.disabled).then_some((user, session, token))
}

/// Starts a session for `user_id` and returns the cookie to set.
pub async fn start(
    state: &AppState,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<Cookie<'static>, castellan_schema::DbError> {
    let token = credentials::generate(credentials::SESSION_PREFIX);
    let ttl = chrono::Duration::from_std(state.authority.settings.session_ttl).unwrap_or(chrono::Duration::hours(12));
    castellan_schema::sessions::create_session(&state.db, &credentials::hash(&token), user_id, now, now + ttl, now)
        .await?;
    Ok(Cookie::build(COOKIE_NAME, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.authority.issuer.starts_with("https://"))
        .max_age(actix_web::cookie::time::Duration::seconds(ttl.num_seconds()))
        .finish())
}

/// The anti-forgery token of a form: bound to both the session and the flow, so neither another
/// user's session nor another flow can replay it.
pub fn csrf_token(session_token: &str, flow_id: &str) -> String {
    credentials::hash(&format!("csrf:{session_token}:{flow_id}"))
}

/// Stores short-lived, single-use server-side state (a ceremony, a pending authorization, a
/// federated sign-in) under the hash of `id`, for `ttl_seconds`. Any replica can take it back.
pub async fn put_flow(
    state: &AppState,
    id: &str,
    kind: &str,
    user_id: Option<i64>,
    value: &impl serde::Serialize,
    ttl_seconds: i64,
    now: DateTime<Utc>,
) -> Result<(), castellan_schema::DbError> {
    let stored = serde_json::to_string(value).map_err(|error| castellan_schema::DbError::Other(error.to_string()))?;
    let expires = now + chrono::Duration::seconds(ttl_seconds);
    castellan_schema::sessions::put_flow_state(&state.db, &credentials::hash(id), kind, user_id, &stored, expires, now)
        .await
}

/// Whether this request's address may start another stored flow (ceremony, authorization request,
/// federated sign-in) now; see `identity::address_limiter`.
pub fn may_start_flow(state: &AppState, request: &HttpRequest) -> bool {
    let address = crate::http::client_address(state, request);
    state.flow_limiter.allow(address, std::time::Instant::now())
}
