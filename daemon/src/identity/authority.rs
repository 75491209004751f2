//! The authorization server's state and its bearer-token path: who the issuer is, the signing keys,
//! the revoked set, the clients, and the verification of access tokens (ours and, through
//! [`super::federation`], external issuers') into a [`Principal`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castellan_config::{IdentitySettings, Tier};
use castellan_schema::oauth::OAuthClientRow;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use super::federation::FederatedIssuers;
use super::revocations::Revocations;
use super::signing::SigningKeys;
use super::tokens::{self, AccessClaims, TokenError};
use super::{Audience, AuthError, Credential, Principal};

const TOKEN_CACHE_MAX: usize = 20_000;
/// The least time between two key-ring reloads caused by an unknown `kid`.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// How long a looked-up client row is reused: the bound on how late `clients rm` takes effect.
pub const CLIENT_CACHE_TTL: Duration = Duration::from_secs(30);

/// A verified bearer token: one of ours, or a federated issuer's (refused once its key is withdrawn).
#[derive(Clone)]
enum CachedToken {
    Own { claims: AccessClaims, principal: Principal },
    Federated { issuer_index: usize, kid: String, expires_at: i64, principal: Principal },
}

impl CachedToken {
    fn expires_at(&self) -> i64 {
        match self {
            CachedToken::Own { claims, .. } => claims.exp,
            CachedToken::Federated { expires_at, .. } => *expires_at,
        }
    }
}

/// The one claim read before a token is verified: which issuer to verify it against.
#[derive(serde::Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

/// Everything the authorization server and the token check share. One per process.
pub struct Authority {
    pub db: DatabaseConnection,
    /// `server.public_url`: the issuer identifier, byte for byte everywhere it appears.
    pub issuer: String,
    pub settings: IdentitySettings,
    pub keys: Arc<SigningKeys>,
    pub revocations: Arc<Revocations>,
    /// The external issuers of `identity.issuers`, when there are any.
    pub federation: Option<Arc<FederatedIssuers>>,
    tokens: Mutex<HashMap<[u8; 32], Arc<CachedToken>>>,
    /// `{issuer}/mcp`, built once.
    gateway_resource: String,
    clients: Mutex<HashMap<String, (Instant, OAuthClientRow)>>,
    last_key_reload: Mutex<Option<Instant>>,
}

impl Authority {
    pub fn new(
        db: DatabaseConnection,
        issuer: String,
        settings: IdentitySettings,
        keys: Arc<SigningKeys>,
        revocations: Arc<Revocations>,
        federation: Option<Arc<FederatedIssuers>>,
    ) -> Self {
        Authority {
            db,
            gateway_resource: format!("{issuer}/mcp"),
            issuer,
            settings,
            keys,
            revocations,
            federation,
            tokens: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            last_key_reload: Mutex::new(None),
        }
    }

    /// The MCP resource identifier: `{issuer}/mcp`, or `{issuer}/mcp/{server}`.
    pub fn mcp_resource(&self, server: Option<&str>) -> String {
        match server {
            Some(server) => format!("{}/mcp/{server}", self.issuer),
            None => format!("{}/mcp", self.issuer),
        }
    }

    /// Whether `aud` is acceptable for a request to `audience`. A token for `/mcp` (the whole gateway)
    /// also opens `/mcp/{server}`, which is a subset of it; a token for one server opens only that one.
    fn audience_accepts(&self, audience: Audience<'_>, aud: &str) -> bool {
        // On every request: compare without building strings.
        let gateway = self.gateway_resource.as_str();
        let server_part = aud.strip_prefix(gateway).and_then(|rest| rest.strip_prefix('/'));
        match audience {
            Audience::Mcp(None) => aud == gateway,
            Audience::Mcp(Some(server)) => aud == gateway || server_part == Some(server),
            Audience::AnyOwn => aud == gateway || server_part.is_some_and(|rest| !rest.is_empty()),
        }
    }

    /// Verifies a JWT bearer token for `audience`. The unverified `iss` only picks the verifier: ours,
    /// a configured federated issuer's, or none (`WrongIssuer`).
    pub async fn authenticate_jwt(
        &self,
        token: &str,
        audience: Audience<'_>,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(cached) = self.cached(&digest) {
            return self.recheck(&cached, audience, now);
        }
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<UnverifiedIssuer>(token)
            .map_err(|_| AuthError::Token(TokenError::Malformed))?
            .iss
            .unwrap_or_default();
        if iss != self.issuer {
            return self.authenticate_federated(&iss, token, digest, now).await;
        }
        let claims = self.verify_own(token, now).await.map_err(AuthError::Token)?;
        if !self.audience_accepts(audience, &claims.aud) {
            return Err(AuthError::Token(TokenError::WrongAudience));
        }
        if self.revocations.is_revoked(claims.gid.as_deref(), &claims.jti) {
            return Err(AuthError::Token(TokenError::Revoked));
        }
        let tier = Tier::parse(&claims.tier).ok_or(AuthError::Token(TokenError::Malformed))?;
        let principal = Principal {
            subject: claims.sub.clone(),
            tier,
            scopes: claims.scopes(),
            credential: Credential::OAuth { client_id: claims.client_id.clone(), token_id: claims.jti.clone() },
        };
        self.remember(digest, CachedToken::Own { claims, principal: principal.clone() });
        Ok(principal)
    }

    /// A cached token: the signature was verified when the entry was made; time, audience,
    /// revocation and (for federated tokens) the key's publication change and are checked each time.
    fn recheck(
        &self,
        cached: &CachedToken,
        audience: Audience<'_>,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        if cached.expires_at() + tokens::LEEWAY_SECONDS <= now.timestamp() {
            return Err(AuthError::Token(TokenError::Expired));
        }
        match cached {
            CachedToken::Own { claims, principal } => {
                if !self.audience_accepts(audience, &claims.aud) {
                    return Err(AuthError::Token(TokenError::WrongAudience));
                }
                if self.revocations.is_revoked(claims.gid.as_deref(), &claims.jti) {
                    return Err(AuthError::Token(TokenError::Revoked));
                }
                Ok(principal.clone())
            }
            CachedToken::Federated { issuer_index, kid, principal, .. } => {
                let published =
                    self.federation.as_ref().is_some_and(|federation| federation.still_publishes(*issuer_index, kid));
                if published { Ok(principal.clone()) } else { Err(AuthError::Token(TokenError::UnknownKey)) }
            }
        }
    }

    /// A token from a configured federated issuer. Its audience is the issuer's configured one,
    /// whatever endpoint of ours it is presented to; there is nothing of ours to revoke.
    async fn authenticate_federated(
        &self,
        iss: &str,
        token: &str,
        digest: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let federation = self.federation.as_ref().ok_or(AuthError::Token(TokenError::WrongIssuer))?;
        let issuer_index = federation.index_of(iss).ok_or(AuthError::Token(TokenError::WrongIssuer))?;
        let verified = federation.verify_access_token(issuer_index, token, now).await?;
        let principal = verified.identity.into_principal(iss);
        self.remember(
            digest,
            CachedToken::Federated {
                issuer_index,
                kid: verified.kid,
                expires_at: verified.expires_at,
                principal: principal.clone(),
            },
        );
        Ok(principal)
    }

    /// Signature, type, issuer and expiry of one of our tokens, for any of our resources. An unknown
    /// `kid` reloads the key ring (another replica may have rotated), at most once per
    /// [`KEY_RELOAD_INTERVAL`] so that tokens with made-up key ids cannot drive database reads.
    pub async fn verify_own(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        let claims = match tokens::verify_any_audience(&self.keys, token, &self.issuer, now) {
            Err(TokenError::UnknownKey) if self.may_reload_keys() && self.keys.reload(now).await.is_ok() => {
                tokens::verify_any_audience(&self.keys, token, &self.issuer, now)
            }
            other => other,
        }?;
        if self.audience_accepts(Audience::AnyOwn, &claims.aud) { Ok(claims) } else { Err(TokenError::WrongAudience) }
    }

    fn may_reload_keys(&self) -> bool {
        let mut last = self.last_key_reload.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < KEY_RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Arc<CachedToken>> {
        let cache = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(digest).cloned()
    }

    fn remember(&self, digest: [u8; 32], entry: CachedToken) {
        let mut cache = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= TOKEN_CACHE_MAX {
            let now = Utc::now().timestamp();
            cache.retain(|_, entry| entry.expires_at() > now);
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, Arc::new(entry));
    }

    /// The client row for `client_id`, from a short-lived cache.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<OAuthClientRow>, castellan_schema::DbError> {
        {
            let cache = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, row)) = cache.get(client_id)
                && at.elapsed() < CLIENT_CACHE_TTL
            {
                return Ok(Some(row.clone()));
            }
        }
        let found = castellan_schema::oauth::find_client(&self.db, client_id).await?;
        if let Some(row) = &found {
            let mut cache = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.len() >= 10_000 {
                cache.clear();
            }
            cache.insert(client_id.to_string(), (Instant::now(), row.clone()));
        }
        Ok(found)
    }

    /// Drops a client from the cache (after this process removed or changed it).
    pub fn forget_client(&self, client_id: &str) {
        self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(client_id);
    }

    /// When a revocation of something issued now may be forgotten: after the longest access-token
    /// lifetime plus leeway, no token it could affect is valid any more.
    pub fn forget_revocation_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.settings.access_token_ttl).unwrap_or(chrono::Duration::hours(1))
            + chrono::Duration::seconds(2 * tokens::LEEWAY_SECONDS)
    }
}
