//! Passkeys (WebAuthn, webauthn-rs): enrolment through a one-time link, sign-in with a discoverable
//! credential, and the browser session that follows. Ceremony state lives in `auth_flow_states`,
//! single use and short-lived, so any replica can finish a ceremony another one started.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::pages::{error_page, escape, page};
use super::session;
use crate::http::ApiError;
use crate::http::AppState;
use crate::identity::credentials;

const REGISTER_KIND: &str = "webauthn-register";
const LOGIN_KIND: &str = "webauthn-login";
const CEREMONY_TTL_SECONDS: i64 = 300;
pub const SCRIPT: &str = include_str!("passkeys.js");

/// The relying party: Castellan at its public URL.
pub struct Passkeys {
    webauthn: Webauthn,
}

impl Passkeys {
    /// None when the public URL cannot be a WebAuthn origin (an IP address, for one): browsers refuse
    /// passkeys there, so the pages say so instead of failing obscurely.
    pub fn for_public_url(public_url: &str) -> Option<Self> {
        let origin = Url::parse(public_url).ok()?;
        let rp_id = origin.domain()?.to_string();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin).ok()?.rp_name("Castellan").build().ok()?;
        Some(Passkeys { webauthn })
    }
}

/// The WebAuthn user handle of a user: derived from the id, opaque, never the name.
fn user_handle(user_id: i64) -> Uuid {
    let digest = Sha256::digest(format!("castellan-webauthn-user:{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

async fn put_ceremony(
    state: &AppState,
    kind: &str,
    user_id: Option<i64>,
    value: &Value,
    now: DateTime<Utc>,
) -> Result<String, HttpResponse> {
    let ceremony = credentials::generate(credentials::FLOW_PREFIX);
    session::put_flow(state, &ceremony, kind, user_id, value, CEREMONY_TTL_SECONDS, now).await.map_err(|error| {
        tracing::error!(%error, "storing a passkey ceremony failed");
        ApiError::Unavailable("try again".into()).into_response()
    })?;
    Ok(ceremony)
}

async fn take_ceremony(
    state: &AppState,
    ceremony: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Option<(Option<i64>, String)> {
    let row = castellan_schema::sessions::take_flow_state(&state.db, &credentials::hash(ceremony), kind, now)
        .await
        .ok()??;
    Some((row.user_id, row.state))
}

fn passkeys_unavailable_page() -> HttpResponse {
    error_page(
        503,
        "passkeys need server.public_url to be a host name (for example http://localhost:8080), not an IP address",
    )
}

#[derive(Deserialize)]
pub struct EnrolQuery {
    token: Option<String>,
}

/// `GET /enrol?token=...`: the page an enrolment link opens.
pub async fn enrol_page(state: web::Data<AppState>, query: web::Query<EnrolQuery>) -> HttpResponse {
    if state.passkeys.is_none() {
        return passkeys_unavailable_page();
    }
    let Some(token) = query.token.as_deref().filter(|token| token.starts_with(credentials::ENROLMENT_PREFIX)) else {
        return error_page(400, "this enrolment link is malformed");
    };
    let user_id = castellan_schema::sessions::find_enrolment_link(&state.db, &credentials::hash(token), Utc::now())
        .await
        .ok()
        .flatten();
    let Some(user_id) = user_id else { return error_page(400, "this enrolment link has expired or was already used") };
    let name = castellan_schema::users::find_by_id(&state.db, user_id)
        .await
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Create a passkey",
        &format!(
            "<h1>Create a passkey for <b>{name}</b></h1><p>Castellan signs you in with passkeys only: no password.</p>\
<button id=\"passkey-enrol\" data-token=\"{token}\">Create a passkey</button><p id=\"status\" class=\"muted\"></p>\
<script src=\"/static/passkeys.js\"></script>",
            name = escape(&name),
            token = escape(token)
        ),
    )
}

#[derive(Deserialize)]
pub struct LoginQuery {
    flow: Option<String>,
}

/// `GET /login`: passkey sign-in, and the federated issuers configured for browser sign-in.
pub async fn login_page(state: web::Data<AppState>, query: web::Query<LoginQuery>) -> HttpResponse {
    let flow = query.flow.as_deref().unwrap_or_default();
    let federated: String = state
        .authority
        .settings
        .issuers
        .iter()
        .enumerate()
        .filter(|(_, issuer)| issuer.client_id.is_some())
        .map(|(index, issuer)| {
            let target = url::form_urlencoded::Serializer::new(String::new()).append_pair("flow", flow).finish();
            format!(
                "<p><a id=\"federated-{index}\" href=\"/login/federated/{index}?{target}\">Sign in with {}</a></p>",
                escape(&issuer.display_name)
            )
        })
        .collect();
    let passkey = if state.passkeys.is_some() {
        format!("<button id=\"passkey-signin\" data-flow=\"{}\">Sign in with a passkey</button>", escape(flow))
    } else {
        "<p class=\"muted\">Passkeys are unavailable: server.public_url is not a host name.</p>".to_string()
    };
    page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "<h1>Sign in to Castellan</h1>{passkey}<p id=\"status\" class=\"muted\"></p>{federated}<script src=\"/static/passkeys.js\"></script>"
        ),
    )
}

pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(SCRIPT)
}

#[derive(Deserialize)]
pub struct RegisterStart {
    token: String,
}

/// `POST /webauthn/register/start`: options for `navigator.credentials.create`.
pub async fn register_start(
    request: HttpRequest,
    state: web::Data<AppState>,
    body: crate::http_body::BoundedJson<RegisterStart>,
) -> HttpResponse {
    let Some(passkeys) = state.passkeys.as_ref() else {
        return ApiError::Unavailable("passkeys are unavailable".into()).into_response();
    };
    if !session::may_start_flow(&state, &request) {
        return ApiError::TooManyRequests("too many passkey ceremonies from this address; wait a moment".into())
            .into_response();
    }
    let now = Utc::now();
    let user_id = castellan_schema::sessions::find_enrolment_link(&state.db, &credentials::hash(&body.token), now)
        .await
        .ok()
        .flatten();
    let Some(user_id) = user_id else {
        return ApiError::BadRequest("this enrolment link has expired or was already used".into()).into_response();
    };
    let Some(user) = castellan_schema::users::find_by_id(&state.db, user_id).await.ok().flatten() else {
        return ApiError::BadRequest("the user no longer exists".into()).into_response();
    };
    let existing: Vec<_> = castellan_schema::webauthn::credentials_for_user(&state.db, user_id)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|row| serde_json::from_str::<Passkey>(&row.passkey).ok().map(|passkey| passkey.cred_id().clone()))
        .collect();
    let started =
        passkeys.webauthn.start_passkey_registration(user_handle(user_id), &user.name, &user.name, Some(existing));
    let Ok((options, registration)) = started else {
        return ApiError::Internal("cannot start the passkey ceremony".into()).into_response();
    };
    let Ok(stored) = serde_json::to_value(&registration) else {
        return ApiError::Internal("cannot start the passkey ceremony".into()).into_response();
    };
    match put_ceremony(&state, REGISTER_KIND, Some(user_id), &stored, now).await {
        Ok(ceremony) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"ceremony": ceremony, "options": options})),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct RegisterFinish {
    ceremony: String,
    token: String,
    credential: RegisterPublicKeyCredential,
}

/// `POST /webauthn/register/finish`: verifies the new credential, spends the link, signs the user in.
pub async fn register_finish(
    state: web::Data<AppState>,
    body: crate::http_body::BoundedJson<RegisterFinish>,
) -> HttpResponse {
    let Some(passkeys) = state.passkeys.as_ref() else {
        return ApiError::Unavailable("passkeys are unavailable".into()).into_response();
    };
    let now = Utc::now();
    let Some((Some(user_id), stored)) = take_ceremony(&state, &body.ceremony, REGISTER_KIND, now).await else {
        return ApiError::BadRequest("this passkey ceremony has expired or was already finished; start again".into())
            .into_response();
    };
    let Ok(registration) = serde_json::from_str::<PasskeyRegistration>(&stored) else {
        return ApiError::BadRequest("this passkey ceremony is not valid".into()).into_response();
    };
    let passkey = match passkeys.webauthn.finish_passkey_registration(&body.credential, &registration) {
        Ok(passkey) => passkey,
        Err(error) => {
            tracing::info!(%error, "passkey registration refused");
            return ApiError::BadRequest("the passkey could not be verified".into()).into_response();
        }
    };
    // The link is spent only by a verified credential, and only once even if raced.
    let consumed =
        castellan_schema::sessions::consume_enrolment_link(&state.db, &credentials::hash(&body.token), now).await;
    if consumed.ok().flatten() != Some(user_id) {
        return ApiError::BadRequest("this enrolment link has expired or was already used".into()).into_response();
    }
    let credential_id = URL_SAFE_NO_PAD.encode::<&[u8]>(passkey.cred_id().as_ref());
    let Ok(serialized) = serde_json::to_string(&passkey) else {
        return ApiError::Internal("cannot store the passkey".into()).into_response();
    };
    if let Err(error) =
        castellan_schema::webauthn::insert_credential(&state.db, user_id, &credential_id, &serialized, now).await
    {
        tracing::error!(%error, "storing a passkey failed");
        return ApiError::Internal("cannot store the passkey".into()).into_response();
    }
    tracing::info!(user.id = user_id, "passkey enrolled");
    signed_in(&state, user_id, "/".to_string(), now).await
}

async fn signed_in(state: &AppState, user_id: i64, next: String, now: DateTime<Utc>) -> HttpResponse {
    match session::start(state, user_id, now).await {
        Ok(cookie) => {
            HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).cookie(cookie).json(json!({"next": next}))
        }
        Err(error) => {
            tracing::error!(%error, "starting a session failed");
            ApiError::Unavailable("try again".into()).into_response()
        }
    }
}

/// `POST /webauthn/login/start`: a discoverable-credential challenge (no user name asked).
pub async fn login_start(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(passkeys) = state.passkeys.as_ref() else {
        return ApiError::Unavailable("passkeys are unavailable".into()).into_response();
    };
    if !session::may_start_flow(&state, &request) {
        return ApiError::TooManyRequests("too many passkey ceremonies from this address; wait a moment".into())
            .into_response();
    }
    let Ok((options, authentication)) = passkeys.webauthn.start_discoverable_authentication() else {
        return ApiError::Internal("cannot start the passkey ceremony".into()).into_response();
    };
    let Ok(stored) = serde_json::to_value(&authentication) else {
        return ApiError::Internal("cannot start the passkey ceremony".into()).into_response();
    };
    match put_ceremony(&state, LOGIN_KIND, None, &stored, Utc::now()).await {
        Ok(ceremony) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"ceremony": ceremony, "options": options})),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct LoginFinish {
    ceremony: String,
    flow: Option<String>,
    credential: PublicKeyCredential,
}

/// `POST /webauthn/login/finish`: verifies the assertion and starts the session.
pub async fn login_finish(
    state: web::Data<AppState>,
    body: crate::http_body::BoundedJson<LoginFinish>,
) -> HttpResponse {
    let Some(passkeys) = state.passkeys.as_ref() else {
        return ApiError::Unavailable("passkeys are unavailable".into()).into_response();
    };
    let now = Utc::now();
    let refused = || ApiError::Unauthorized("the passkey was not accepted".into()).into_response();
    let Some((_, stored)) = take_ceremony(&state, &body.ceremony, LOGIN_KIND, now).await else {
        return ApiError::BadRequest("this passkey ceremony has expired or was already finished; start again".into())
            .into_response();
    };
    let Ok(authentication) = serde_json::from_str::<DiscoverableAuthentication>(&stored) else { return refused() };
    let Ok((handle, credential_id)) = passkeys.webauthn.identify_discoverable_authentication(&body.credential) else {
        return refused();
    };
    let credential_id = URL_SAFE_NO_PAD.encode(credential_id);
    let Some(row) = castellan_schema::webauthn::find_credential(&state.db, &credential_id).await.ok().flatten() else {
        return refused();
    };
    if user_handle(row.user_id) != handle {
        return refused();
    }
    let Ok(mut passkey) = serde_json::from_str::<Passkey>(&row.passkey) else { return refused() };
    // The v2 call wants the `Credential` type, which webauthn-rs only exposes behind its
    // danger-credential-internals feature; v1 does the same verification for one key.
    #[allow(deprecated)]
    let verified = passkeys.webauthn.finish_discoverable_authentication(
        &body.credential,
        authentication,
        &[DiscoverableKey::from(&passkey)],
    );
    let result = match verified {
        Ok(result) => result,
        Err(error) => {
            tracing::info!(%error, user.id = row.user_id, "passkey assertion refused");
            return refused();
        }
    };
    passkey.update_credential(&result);
    if let Ok(serialized) = serde_json::to_string(&passkey) {
        let _ = castellan_schema::webauthn::update_credential(&state.db, &credential_id, &serialized, now).await;
    }
    let Some(user) = castellan_schema::users::find_by_id(&state.db, row.user_id).await.ok().flatten() else {
        return refused();
    };
    if user.disabled {
        return refused();
    }
    let next = match body.flow.as_deref().filter(|flow| !flow.is_empty()) {
        Some(flow) => format!(
            "/oauth/authorize/continue?{}",
            url::form_urlencoded::Serializer::new(String::new()).append_pair("flow", flow).finish()
        ),
        None => "/".to_string(),
    };
    tracing::info!(user.name = %user.name, "signed in with a passkey");
    signed_in(&state, user.id, next, now).await
}

/// `GET /`: who is signed in.
pub async fn home(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match session::current_user(&state, &request, Utc::now()).await {
        Some((user, _, _)) => page(
            StatusCode::OK,
            "Castellan",
            &format!(
                "<h1>Castellan</h1><p id=\"signed-in\">Signed in as <b>{}</b> ({}).</p>\
<form method=\"post\" action=\"/logout\"><button id=\"sign-out\">Sign out</button></form>",
                escape(&user.name),
                escape(&user.tier)
            ),
        ),
        None => page(StatusCode::OK, "Castellan", "<h1>Castellan</h1><p><a href=\"/login\">Sign in</a></p>"),
    }
}

/// `POST /logout`: ends this browser's session everywhere (the row is deleted, so no replica accepts
/// the cookie any more) and clears the cookie.
pub async fn logout(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !crate::http::origin_allowed(&state, request.headers()) {
        return error_page(403, "this form was submitted from another site");
    }
    if let Some((_, session_row, _)) = session::current_user(&state, &request, Utc::now()).await
        && let Err(error) = castellan_schema::sessions::delete_session(&state.db, &session_row.session_hash).await
    {
        tracing::error!(%error, "ending a session failed");
        return error_page(503, "signing out failed; try again");
    }
    let mut removal = actix_web::cookie::Cookie::new(session::COOKIE_NAME, "");
    removal.set_path("/");
    removal.make_removal();
    HttpResponse::SeeOther().insert_header(("Location", "/")).cookie(removal).finish()
}
