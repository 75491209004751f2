//! What Castellan serves to browsers: the sign-in, enrolment and consent pages and their sessions.

pub mod federated;
pub mod pages;
pub mod passkeys;
pub mod session;

use actix_web::web;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(passkeys::home))
        .route("/login", web::get().to(passkeys::login_page))
        .route("/logout", web::post().to(passkeys::logout))
        // The callback first: `{index}` would match it too.
        .route("/login/federated/callback", web::get().to(federated::callback))
        .route("/login/federated/{index}", web::get().to(federated::start))
        .route("/enrol", web::get().to(passkeys::enrol_page))
        .route("/static/passkeys.js", web::get().to(passkeys::script))
        .route("/webauthn/register/start", web::post().to(passkeys::register_start))
        .route("/webauthn/register/finish", web::post().to(passkeys::register_finish))
        .route("/webauthn/login/start", web::post().to(passkeys::login_start))
        .route("/webauthn/login/finish", web::post().to(passkeys::login_finish));
}
