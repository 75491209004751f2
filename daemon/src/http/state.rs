//! What every handler shares: the application state.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use castellan_actors::Metrics;
use sea_orm::DatabaseConnection;

use crate::identity::Authenticator;
use crate::identity::authority::Authority;
use crate::identity::client_metadata::ClientMetadataResolver;
use crate::mcp::gateway::Gateway;

/// What every handler shares.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// The AI provider gateway: its compiled configuration and the chain's services.
    pub ai: Arc<crate::ai::AiGateway>,
    pub authenticator: Authenticator,
    pub metrics: Metrics,
    /// `metrics.token`: who may read `/metrics`.
    pub metrics_access: crate::metrics_access::MetricsAccess,
    pub db: DatabaseConnection,
    pub public_url: String,
    pub allowed_origins: ArcSwap<Vec<String>>,
    /// `http://` + the bound socket address: clients that reach Castellan by its address rather than
    /// its public URL send this origin.
    pub listen_origin: String,
    /// `server.allow_anonymous`: serve requests without a credential as the anonymous tier.
    pub allow_anonymous: AtomicBool,
    pub converged_once: Arc<AtomicBool>,
    pub migrations_applied: AtomicBool,
    /// The authorization server: issuer, keys, revocations, clients.
    pub authority: Arc<Authority>,
    /// Client ID Metadata Documents, when `identity.client_metadata_documents` is on.
    pub client_metadata: Option<ClientMetadataResolver>,
    /// WebAuthn, when `server.public_url` can be a passkey origin.
    pub passkeys: Option<crate::web::passkeys::Passkeys>,
    /// The secret store behind `${secret:NAME}`.
    pub secrets: Arc<crate::secrets::SecretStore>,
    pub registration_limiter: crate::identity::address_limiter::AddressLimiter,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client (the rate-limit buckets
    /// themselves are in the governance snapshot, `gateway.policies`).
    pub trusted_proxies: crate::governance::rate_limit::TrustedProxies,
    /// The size and time bounds of request bodies.
    pub bodies: crate::http_body::BodyBounds,
    /// Per-address bound on authorization requests that name a metadata-document client id.
    pub metadata_fetch_limiter: crate::identity::address_limiter::AddressLimiter,
    /// Per-address bound on new passkey ceremonies and authorization flows (each is a stored row).
    pub flow_limiter: crate::identity::address_limiter::AddressLimiter,
    /// What `skills.dirs` watches and which keys it requires; a reload swaps it.
    pub skills_watch: Option<Arc<arc_swap::ArcSwap<crate::skills::watch::Watched>>>,
}
