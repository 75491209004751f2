//! Who is calling: principals, API keys, and the authenticator that turns a bearer credential into a
//! `Principal`. Knows nothing of HTTP; the HTTP layer maps `AuthError` to 401 in one place.

pub mod address_limiter;
pub mod api_keys;
pub mod authority;
pub mod client_metadata;
pub mod credentials;
pub mod federation;
pub mod grants;
pub mod master_key;
pub mod outbound;
pub mod pkce;
pub mod redirect_uri;
pub mod revocations;
pub mod signing;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castellan_config::Tier;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use subtle::ConstantTimeEq;

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey {
        public_id: String,
    },
    /// An access token from Castellan's own authorization server.
    OAuth {
        client_id: String,
        token_id: String,
    },
    /// An access token from a federated issuer (`identity.issuers`).
    Federated {
        issuer: String,
    },
    /// No credential, on a profile with `server.allow_anonymous`.
    Anonymous,
}

impl Principal {
    /// The caller without a credential: the `anonymous` tier, no scopes.
    pub fn anonymous() -> Self {
        Principal {
            subject: "anonymous".into(),
            tier: Tier::Anonymous,
            scopes: Vec::new(),
            credential: Credential::Anonymous,
        }
    }
}

/// The authenticated caller. Later identity sources (our OAuth tokens, federated JWTs) produce the
/// same type, so everything downstream is indifferent to how the caller signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Stable subject: the user name for local users.
    pub subject: String,
    pub tier: Tier,
    pub scopes: Vec<String>,
    pub credential: Credential,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credential was presented")]
    Missing,
    #[error("the credential is not valid")]
    Invalid,
    #[error("the credential has expired or been revoked")]
    Expired,
    #[error("the identity store is unavailable")]
    Unavailable,
    /// A bearer token that failed a specific check; the reason is safe to show.
    #[error("{0}")]
    Token(tokens::TokenError),
}

/// The scopes that name a surface of Castellan; each governed endpoint needs one of them.
pub const SURFACE_SCOPES: [&str; 2] = ["mcp:tools", "ai:messages"];

/// Whether a principal's scopes grant the surface scope an endpoint needs.
///
/// Access tokens from Castellan's own authorization server carry OAuth scopes in the strict sense:
/// the token reaches an endpoint only if its `scope` names what the endpoint needs (a client that
/// asked for `service` alone was never granted `mcp:tools`). API keys and federated tokens carry
/// scopes of their own vocabulary (tier names that narrow the tier, an external issuer's `openid
/// profile`, ...): they are restricted only when they name surface scopes, and then to those.
pub fn has_scope(principal: &Principal, needed: &str) -> bool {
    if matches!(principal.credential, Credential::OAuth { .. }) {
        return principal.scopes.iter().any(|scope| scope == needed);
    }
    let mut surfaces = principal.scopes.iter().filter(|scope| SURFACE_SCOPES.contains(&scope.as_str())).peekable();
    surfaces.peek().is_none() || surfaces.any(|scope| scope == needed)
}

/// The scope an access token of Castellan's own authorization server needs for the admin API.
pub const ADMIN_SCOPE: &str = "admin";

/// Why a principal may not use the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    /// Below the admin tier.
    Tier,
    /// One of our access tokens whose `scope` does not name `admin`: the user is an admin, but
    /// the client was granted less (a token an MCP client got for `mcp:tools` must not open
    /// the admin API).
    Scope,
}

/// Whether `principal` may use the admin API. Every credential needs the admin tier. Our own access
/// tokens must also carry the `admin` scope: an OAuth scope is what the user consented to give that
/// client. API keys and federated tokens are judged by tier alone, as before: an API key's scopes
/// narrow its tier (a key of an admin scoped `user` is refused by the tier check), and a federated
/// issuer's scopes are its own vocabulary, mapped to a tier by `tier_map`.
pub fn may_use_admin_api(principal: &Principal) -> Result<(), AdminRefusal> {
    if principal.tier < Tier::Admin {
        return Err(AdminRefusal::Tier);
    }
    let scoped = !matches!(principal.credential, Credential::OAuth { .. })
        || principal.scopes.iter().any(|scope| scope == ADMIN_SCOPE);
    if scoped { Ok(()) } else { Err(AdminRefusal::Scope) }
}

/// The resources a request may present a token for: its `aud` must be one of these.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// The MCP endpoint `/mcp` or `/mcp/{server}`.
    Mcp(Option<&'a str>),
    /// Any resource of this Castellan (userinfo).
    AnyOwn,
}

/// How long a verified key stays cached: the bound on how late a revocation takes effect.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
const KEY_CACHE_MAX: usize = 10_000;

struct CachedKey {
    key_hash: String,
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    cached_at: Instant,
}

/// Verifies bearer credentials against the database, with a short-lived cache of good keys.
pub struct Authenticator {
    db: DatabaseConnection,
    cache: Mutex<HashMap<String, CachedKey>>,
    authority: Arc<authority::Authority>,
}

impl Authenticator {
    pub fn new(db: DatabaseConnection, authority: Arc<authority::Authority>) -> Self {
        Self { db, cache: Mutex::new(HashMap::new()), authority }
    }

    /// Authenticates the value of an `Authorization` header (or its absence) for a resource.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        audience: Audience<'_>,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Invalid);
        }
        let token = token.trim();
        if token.split('.').count() == 3 {
            return self.authority.authenticate_jwt(token, audience, now).await;
        }
        if !api_keys::looks_like_key(token) {
            return Err(AuthError::Invalid);
        }
        let key_hash = api_keys::hash_key(token);
        if let Some(principal) = self.cached(&key_hash, now) {
            return Ok(principal);
        }
        let found =
            castellan_schema::api_keys::find_by_hash(&self.db, &key_hash).await.map_err(|error| match error {
                castellan_schema::DbError::Unavailable(_) => AuthError::Unavailable,
                _ => AuthError::Unavailable,
            })?;
        let (key, user) = found.ok_or(AuthError::Invalid)?;
        // The database matched on the hash already; compare again in constant time so that no
        // index or collation quirk can ever let a different value through.
        if !bool::from(key.key_hash.as_bytes().ct_eq(key_hash.as_bytes())) {
            return Err(AuthError::Invalid);
        }
        if key.revoked_at.is_some() || user.disabled || key.expires_at.is_some_and(|expires| expires <= now) {
            return Err(AuthError::Expired);
        }
        let user_tier = Tier::parse(&user.tier).ok_or(AuthError::Invalid)?;
        let key_scopes = key.scopes.clone();
        let user_scopes = user.scopes.clone();
        let principal = Principal {
            subject: user.name.clone(),
            tier: effective_tier(user_tier, &key_scopes),
            scopes: if key_scopes.is_empty() { user_scopes } else { key_scopes },
            credential: Credential::ApiKey { public_id: key.public_id.clone() },
        };
        let _ = castellan_schema::api_keys::touch_last_used(&self.db, key.id, now).await;
        self.remember(key_hash, principal.clone(), key.expires_at);
        Ok(principal)
    }

    fn cached(&self, key_hash: &str, now: DateTime<Utc>) -> Option<Principal> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = cache.get(key_hash)?;
        let fresh = entry.cached_at.elapsed() < KEY_CACHE_TTL && entry.expires_at.is_none_or(|expires| expires > now);
        (fresh && bool::from(entry.key_hash.as_bytes().ct_eq(key_hash.as_bytes()))).then(|| entry.principal.clone())
    }

    fn remember(&self, key_hash: String, principal: Principal, expires_at: Option<DateTime<Utc>>) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= KEY_CACHE_MAX {
            cache.retain(|_, entry| entry.cached_at.elapsed() < KEY_CACHE_TTL);
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key_hash.clone(), CachedKey { key_hash, principal, expires_at, cached_at: Instant::now() });
    }
}

/// A key whose scopes name tiers acts at the highest tier it names, never above its user's.
pub fn effective_tier(user_tier: Tier, key_scopes: &[String]) -> Tier {
    key_scopes.iter().filter_map(|scope| Tier::parse(scope)).max().map_or(user_tier, |scoped| scoped.min(user_tier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_api_needs_the_admin_tier_and_our_tokens_also_the_admin_scope() {
        let principal = |tier: Tier, scopes: &[&str], credential: Credential| Principal {
            subject: "s".into(),
            tier,
            scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
            credential,
        };
        let oauth = || Credential::OAuth { client_id: "c".into(), token_id: "t".into() };
        let key = || Credential::ApiKey { public_id: "k".into() };
        let federated = || Credential::Federated { issuer: "https://idp.example".into() };
        let cases = [
            (
                "our token, admin user, mcp:tools only",
                principal(Tier::Admin, &["mcp:tools"], oauth()),
                Err(AdminRefusal::Scope),
            ),
            ("our token, admin user, no scope", principal(Tier::Admin, &[], oauth()), Err(AdminRefusal::Scope)),
            ("our token, admin user, admin scope", principal(Tier::Admin, &["admin", "mcp:tools"], oauth()), Ok(())),
            ("our token, user tier, admin scope", principal(Tier::User, &["admin"], oauth()), Err(AdminRefusal::Tier)),
            ("API key of an admin, no scopes", principal(Tier::Admin, &[], key()), Ok(())),
            ("API key of an admin, mcp:tools", principal(Tier::Admin, &["mcp:tools"], key()), Ok(())),
            ("API key of a user", principal(Tier::User, &[], key()), Err(AdminRefusal::Tier)),
            ("federated admin", principal(Tier::Admin, &["openid"], federated()), Ok(())),
            ("anonymous", Principal::anonymous(), Err(AdminRefusal::Tier)),
        ];
        for (what, principal, expected) in cases {
            assert_eq!(may_use_admin_api(&principal), expected, "{what}");
        }
    }

    #[test]
    fn our_tokens_need_the_scope_itself_other_credentials_are_restricted_only_by_surface_scopes() {
        let principal = |scopes: &[&str], credential: Credential| Principal {
            subject: "s".into(),
            tier: Tier::User,
            scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
            credential,
        };
        let oauth = || Credential::OAuth { client_id: "c".into(), token_id: "t".into() };
        let key = || Credential::ApiKey { public_id: "k".into() };
        let cases = [
            (principal(&["mcp:tools"], oauth()), true, "our token with the scope"),
            (principal(&["user", "mcp:tools"], oauth()), true, "our token with a tier and the scope"),
            (principal(&["service"], oauth()), false, "our token with a tier alone"),
            (principal(&["offline_access"], oauth()), false, "our token with offline_access alone"),
            (principal(&[], oauth()), false, "our token without scopes"),
            (principal(&[], key()), true, "an API key without scopes"),
            (principal(&["user"], key()), true, "an API key narrowed to a tier"),
            (principal(&["ai:messages"], key()), false, "an API key for another surface"),
            (principal(&["ai:messages", "mcp:tools"], key()), true, "an API key for both"),
            (principal(&["unknown"], key()), true, "an API key with a scope that names no surface"),
            (
                principal(&["openid", "profile"], Credential::Federated { issuer: "i".into() }),
                true,
                "a federated token with the issuer's own scopes",
            ),
            (
                principal(&["ai:messages"], Credential::Federated { issuer: "i".into() }),
                false,
                "a federated token for another surface",
            ),
            (principal(&[], Credential::Federated { issuer: "i".into() }), true, "a federated token without scopes"),
        ];
        for (principal, expected, what) in cases {
            assert_eq!(has_scope(&principal, "mcp:tools"), expected, "{what}");
        }
    }

    #[test]
    fn key_scopes_narrow_the_tier_but_never_raise_it() {
        let cases = [
            (Tier::Admin, vec![], Tier::Admin),
            (Tier::Admin, vec!["user".to_string()], Tier::User),
            (Tier::User, vec!["admin".to_string()], Tier::User),
            (Tier::Admin, vec!["mcp:tools".to_string()], Tier::Admin),
            (Tier::Admin, vec!["service".to_string(), "user".to_string()], Tier::User),
        ];
        for (user, scopes, expected) in cases {
            assert_eq!(effective_tier(user, &scopes), expected, "user {user:?} with key scopes {scopes:?}");
        }
    }
}
