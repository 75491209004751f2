//! The token endpoint's decisions (RFC 6749 §4–§6, OAuth 2.1): client authentication, the
//! authorization-code, refresh-token and client-credentials grants, revocation (RFC 7009) and
//! introspection (RFC 7662). Plain functions over parsed input; `crate::oauth` maps them to HTTP.

use castellan_config::Tier;
use castellan_schema::oauth::{CodeRedemption, NewGrant, OAuthClientRow, RefreshUse};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::authority::Authority;
use super::tokens::{self, AccessClaims};
use super::{credentials, effective_tier, pkce};

/// Scopes this server knows besides tier names.
pub const FINE_SCOPES: [&str; 2] = ["mcp:tools", "offline_access"];
/// What a grant gets when the request names no scope.
pub const DEFAULT_SCOPE: &str = "mcp:tools";

/// RFC 6749 §5.2 errors (plus RFC 8707's `invalid_target`). Descriptions are safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("invalid_client: client authentication failed")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    #[error("unsupported_response_type")]
    UnsupportedResponseType,
    #[error("access_denied")]
    AccessDenied,
    /// Too many requests from one address for something that costs an outbound fetch.
    #[error("temporarily_unavailable: too many requests; wait a minute")]
    TooManyRequests,
    #[error("server_error")]
    ServerError,
}

impl GrantError {
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::InvalidRequest(_) => "invalid_request",
            GrantError::InvalidClient => "invalid_client",
            GrantError::InvalidGrant(_) => "invalid_grant",
            GrantError::UnauthorizedClient(_) => "unauthorized_client",
            GrantError::UnsupportedGrantType => "unsupported_grant_type",
            GrantError::InvalidScope(_) => "invalid_scope",
            GrantError::InvalidTarget(_) => "invalid_target",
            GrantError::UnsupportedResponseType => "unsupported_response_type",
            GrantError::AccessDenied => "access_denied",
            GrantError::TooManyRequests => "temporarily_unavailable",
            GrantError::ServerError => "server_error",
        }
    }

    pub fn description(&self) -> Option<&str> {
        match self {
            GrantError::InvalidRequest(text)
            | GrantError::InvalidGrant(text)
            | GrantError::UnauthorizedClient(text)
            | GrantError::InvalidScope(text)
            | GrantError::InvalidTarget(text) => Some(text),
            _ => None,
        }
    }
}

impl From<castellan_schema::DbError> for GrantError {
    fn from(error: castellan_schema::DbError) -> Self {
        tracing::error!(%error, "authorization server database error");
        GrantError::ServerError
    }
}

/// A client that has authenticated (confidential) or identified itself (public).
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub tier: Tier,
    pub confidential: bool,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
}

impl Client {
    pub fn from_row(row: &OAuthClientRow) -> Self {
        Client {
            client_id: row.client_id.clone(),
            name: row.name.clone(),
            tier: Tier::parse(&row.tier).unwrap_or(Tier::Anonymous),
            confidential: row.secret_hash.is_some(),
            grant_types: row.grant_types.clone(),
            redirect_uris: row.redirect_uris.clone(),
            scopes: row.scopes.clone(),
        }
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|granted| granted == grant_type)
    }
}

/// Who and what an access token is for.
#[derive(Clone, Copy)]
struct TokenGrant<'a> {
    subject: &'a str,
    audience: &'a str,
    scopes: &'a [String],
    tier: Tier,
    grant_id: Option<&'a str>,
}

/// What a successful grant returns (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: String,
}

impl IssuedTokens {
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        });
        if let (Some(refresh), Some(object)) = (&self.refresh_token, body.as_object_mut()) {
            object.insert("refresh_token".into(), Value::String(refresh.clone()));
        }
        body
    }
}

/// Parses a space-separated scope parameter, refusing unknown scopes.
pub fn parse_scope(scope: Option<&str>) -> Result<Vec<String>, GrantError> {
    let Some(scope) = scope.map(str::trim).filter(|scope| !scope.is_empty()) else {
        return Ok(vec![DEFAULT_SCOPE.to_string()]);
    };
    let mut scopes: Vec<String> = Vec::new();
    for item in scope.split(' ').filter(|item| !item.is_empty()) {
        if !FINE_SCOPES.contains(&item) && Tier::parse(item).is_none() {
            return Err(GrantError::InvalidScope(format!("unknown scope {item:?}")));
        }
        if !scopes.iter().any(|known| known == item) {
            scopes.push(item.to_string());
        }
    }
    Ok(scopes)
}

/// Narrows requested scopes to what the subject may hold: tier names above `tier` are dropped, and a
/// client registered with scopes may not ask beyond them.
pub fn grantable_scopes(requested: &[String], tier: Tier, client: &Client) -> Result<Vec<String>, GrantError> {
    if !client.scopes.is_empty()
        && let Some(outside) =
            requested.iter().find(|scope| !client.scopes.contains(scope) && *scope != "offline_access")
    {
        return Err(GrantError::InvalidScope(format!("this client may not request {outside:?}")));
    }
    Ok(requested.iter().filter(|scope| Tier::parse(scope).is_none_or(|named| named <= tier)).cloned().collect())
}

impl Authority {
    /// Authenticates a client at the token, revocation and introspection endpoints. A public client
    /// (registered without a secret) identifies itself by id; a confidential one must prove its secret.
    pub async fn authenticate_client(&self, client_id: &str, secret: Option<&str>) -> Result<Client, GrantError> {
        let row = self.find_client(client_id).await?.ok_or(GrantError::InvalidClient)?;
        match (&row.secret_hash, secret) {
            (Some(stored), Some(secret)) => {
                let presented = credentials::hash(secret);
                if !bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
                    return Err(GrantError::InvalidClient);
                }
            }
            // A confidential client must authenticate; a secret for a public client is an error too.
            (Some(_), None) | (None, Some(_)) => return Err(GrantError::InvalidClient),
            (None, None) => {}
        }
        Ok(Client::from_row(&row))
    }

    fn access_claims(&self, client: &Client, grant: TokenGrant<'_>, now: DateTime<Utc>) -> AccessClaims {
        let ttl = i64::try_from(self.settings.access_token_ttl.as_secs()).unwrap_or(600);
        AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.subject.to_string(),
            aud: grant.audience.to_string(),
            exp: now.timestamp() + ttl,
            iat: now.timestamp(),
            jti: credentials::generate_id("at_"),
            client_id: client.client_id.clone(),
            scope: grant.scopes.join(" "),
            tier: grant.tier.as_str().to_string(),
            gid: grant.grant_id.map(str::to_string),
            auth_time: None,
        }
    }

    fn sign(&self, claims: &AccessClaims) -> Result<String, GrantError> {
        let key = self.keys.active().ok_or(GrantError::ServerError)?;
        tokens::mint(&key, claims).map_err(|error| {
            tracing::error!(%error, "signing an access token failed");
            GrantError::ServerError
        })
    }

    /// `grant_type=client_credentials`: a confidential client acting for itself. No refresh token.
    pub fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, GrantError> {
        if !client.confidential || !client.allows_grant("client_credentials") {
            return Err(GrantError::UnauthorizedClient("this client may not use client_credentials".into()));
        }
        let requested = parse_scope(scope)?;
        let scopes: Vec<String> = grantable_scopes(&requested, client.tier, client)?
            .into_iter()
            .filter(|scope| scope != "offline_access")
            .collect();
        let tier = effective_tier(client.tier, &scopes);
        let grant = TokenGrant { subject: &client.client_id, audience, scopes: &scopes, tier, grant_id: None };
        let claims = self.access_claims(client, grant, now);
        Ok(IssuedTokens {
            access_token: self.sign(&claims)?,
            expires_in: self.settings.access_token_ttl.as_secs(),
            refresh_token: None,
            scope: claims.scope,
        })
    }

    /// `grant_type=authorization_code`. The code is spent by the first attempt whatever its outcome;
    /// a second redemption revokes everything the first one issued.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        resource: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, GrantError> {
        let invalid = || GrantError::InvalidGrant("the authorization code is invalid, expired or already used".into());
        let row = match castellan_schema::oauth::redeem_code(&self.db, &credentials::hash(code), now).await? {
            CodeRedemption::Redeemed(row) => row,
            CodeRedemption::AlreadyUsed(row) => {
                tracing::warn!(client_id = %row.client_id, grant_id = %row.grant_id, "authorization code replayed; revoking its grant");
                self.revoke_grant(&row.grant_id, now).await?;
                return Err(invalid());
            }
            CodeRedemption::Expired(_) | CodeRedemption::Unknown => return Err(invalid()),
        };
        if row.client_id != client.client_id {
            self.revoke_grant(&row.grant_id, now).await?;
            return Err(invalid());
        }
        if redirect_uri != Some(row.redirect_uri.as_str()) {
            return Err(GrantError::InvalidGrant("redirect_uri does not match the authorization request".into()));
        }
        match code_verifier {
            Some(verifier) if pkce::verifier_matches(verifier, &row.code_challenge) => {}
            Some(_) => return Err(GrantError::InvalidGrant("code_verifier does not match the code challenge".into())),
            // RFC 7636 §4.6 and docs/identity-notes.md §4.2: a missing verifier is a failed PKCE check.
            None => return Err(GrantError::InvalidGrant("code_verifier is required".into())),
        }
        let audience = match resource {
            Some(resource) if row.resources.iter().any(|granted| granted == resource) => resource.to_string(),
            Some(_) => return Err(GrantError::InvalidTarget("resource was not part of the authorization".into())),
            None => row.resources.first().cloned().unwrap_or_else(|| self.mcp_resource(None)),
        };
        let user = castellan_schema::users::find_by_id(&self.db, row.user_id).await?.ok_or_else(invalid)?;
        if user.disabled {
            return Err(invalid());
        }
        let _ = castellan_schema::oauth::touch_client(&self.db, &client.client_id, now).await;
        let user_tier = Tier::parse(&user.tier).unwrap_or(Tier::Anonymous);
        self.issue_for_user(client, &user.name, user_tier, &row.scopes, &audience, &row.grant_id, None, now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_for_user(
        &self,
        client: &Client,
        subject: &str,
        user_tier: Tier,
        scopes: &[String],
        audience: &str,
        grant_id: &str,
        grant_expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, GrantError> {
        let tier = effective_tier(user_tier, scopes);
        let grant = TokenGrant { subject, audience, scopes, tier, grant_id: Some(grant_id) };
        let claims = self.access_claims(client, grant, now);
        let access_token = self.sign(&claims)?;
        let refresh_token = credentials::generate(credentials::REFRESH_TOKEN_PREFIX);
        let mut expires_at =
            now + chrono::Duration::from_std(self.settings.refresh_token_ttl).unwrap_or(chrono::Duration::days(14));
        if let Some(cap) = grant_expires_at {
            expires_at = expires_at.min(cap);
        }
        castellan_schema::oauth::insert_refresh_token(
            &self.db,
            &credentials::hash(&refresh_token),
            grant_id,
            &client.client_id,
            expires_at,
            now,
        )
        .await?;
        Ok(IssuedTokens {
            access_token,
            expires_in: self.settings.access_token_ttl.as_secs(),
            refresh_token: Some(refresh_token),
            scope: claims.scope,
        })
    }

    /// `grant_type=refresh_token`, rotating: the presented token is spent and a new one issued. A
    /// spent token presented again means it leaked; the whole family is revoked.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
        resource: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, GrantError> {
        let invalid = || GrantError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
        let row = match castellan_schema::oauth::use_refresh_token(&self.db, &credentials::hash(refresh_token), now)
            .await?
        {
            RefreshUse::Rotated(row) => row,
            RefreshUse::Replayed(row) => {
                tracing::warn!(client_id = %row.client_id, grant_id = %row.grant_id, "refresh token replayed; revoking its family");
                self.revoke_grant(&row.grant_id, now).await?;
                return Err(invalid());
            }
            RefreshUse::Revoked(_) | RefreshUse::Expired(_) | RefreshUse::Unknown => return Err(invalid()),
        };
        if row.client_id != client.client_id {
            self.revoke_grant(&row.grant_id, now).await?;
            return Err(invalid());
        }
        let grant = castellan_schema::oauth::find_grant(&self.db, &row.grant_id).await?.ok_or_else(invalid)?;
        if grant.revoked_at.is_some() || grant.expires_at <= now {
            return Err(invalid());
        }
        let scopes = match scope {
            None => grant.scopes.clone(),
            Some(_) => {
                let requested = parse_scope(scope)?;
                if let Some(extra) = requested.iter().find(|scope| !grant.scopes.contains(scope)) {
                    return Err(GrantError::InvalidScope(format!("{extra:?} was not part of the original grant")));
                }
                requested
            }
        };
        let audience = match resource {
            Some(resource) if grant.resources.iter().any(|granted| granted == resource) => resource.to_string(),
            Some(_) => return Err(GrantError::InvalidTarget("resource was not part of the grant".into())),
            None => grant.resources.first().cloned().unwrap_or_else(|| self.mcp_resource(None)),
        };
        let user_id = grant.user_id.ok_or_else(invalid)?;
        let user = castellan_schema::users::find_by_id(&self.db, user_id).await?.ok_or_else(invalid)?;
        if user.disabled {
            return Err(invalid());
        }
        let user_tier = Tier::parse(&user.tier).unwrap_or(Tier::Anonymous);
        self.issue_for_user(
            client,
            &user.name,
            user_tier,
            &scopes,
            &audience,
            &grant.grant_id,
            Some(grant.expires_at),
            now,
        )
        .await
    }

    /// Creates the grant an authorization code will redeem into; returns its id.
    pub async fn create_user_grant(
        &self,
        client_id: &str,
        user_id: i64,
        scopes: &[String],
        resources: &[String],
        now: DateTime<Utc>,
    ) -> Result<String, GrantError> {
        let grant_id = credentials::generate_id("gr_");
        let expires_at =
            now + chrono::Duration::from_std(self.settings.grant_ttl).unwrap_or(chrono::Duration::days(90));
        castellan_schema::oauth::create_grant(
            &self.db,
            &NewGrant { grant_id: &grant_id, client_id, user_id: Some(user_id), scopes, resources, expires_at },
            now,
        )
        .await?;
        Ok(grant_id)
    }

    /// Revokes a grant everywhere: its refresh tokens in the database, its access tokens through the
    /// revoked set (here at once, on other replicas at their next poll).
    pub async fn revoke_grant(&self, grant_id: &str, now: DateTime<Utc>) -> Result<(), GrantError> {
        let forget_after = self.forget_revocation_after(now);
        castellan_schema::oauth::revoke_grant(&self.db, grant_id, forget_after, now).await?;
        self.revocations.note_grant(grant_id, forget_after);
        Ok(())
    }

    /// RFC 7009. Answers the same whether or not the token existed or belonged to the caller, so the
    /// endpoint is no oracle; only the caller's own tokens are affected.
    pub async fn revoke(&self, client: &Client, token: &str, now: DateTime<Utc>) -> Result<(), GrantError> {
        if token.starts_with(credentials::REFRESH_TOKEN_PREFIX) {
            if let Some(row) = castellan_schema::oauth::find_refresh_token(&self.db, &credentials::hash(token)).await?
                && row.client_id == client.client_id
            {
                self.revoke_grant(&row.grant_id, now).await?;
            }
            return Ok(());
        }
        if let Ok(claims) = tokens::verify_any_audience(&self.keys, token, &self.issuer, now)
            && claims.client_id == client.client_id
        {
            let forget_after = self.forget_revocation_after(now);
            castellan_schema::oauth::revoke_jti(&self.db, &claims.jti, forget_after, now).await?;
            self.revocations.note_token_id(&claims.jti, forget_after);
        }
        Ok(())
    }

    /// RFC 7662 for the caller's own tokens; anything else, including another client's valid token,
    /// is exactly `{"active": false}`.
    pub async fn introspect(&self, client: &Client, token: &str, now: DateTime<Utc>) -> Result<Value, GrantError> {
        let inactive = json!({"active": false});
        if token.starts_with(credentials::REFRESH_TOKEN_PREFIX) {
            let Some(row) = castellan_schema::oauth::find_refresh_token(&self.db, &credentials::hash(token)).await?
            else {
                return Ok(inactive);
            };
            if row.client_id != client.client_id
                || row.used_at.is_some()
                || row.revoked_at.is_some()
                || row.expires_at <= now
            {
                return Ok(inactive);
            }
            let Some(grant) = castellan_schema::oauth::find_grant(&self.db, &row.grant_id).await? else {
                return Ok(inactive);
            };
            if grant.revoked_at.is_some() {
                return Ok(inactive);
            }
            return Ok(json!({
                "active": true, "token_type": "refresh_token", "client_id": row.client_id,
                "scope": grant.scopes.join(" "), "exp": row.expires_at.timestamp(), "iat": row.created_at.timestamp(),
                "iss": self.issuer,
            }));
        }
        let Ok(claims) = self.verify_own(token, now).await else { return Ok(inactive) };
        if claims.client_id != client.client_id || self.revocations.is_revoked(claims.gid.as_deref(), &claims.jti) {
            return Ok(inactive);
        }
        Ok(json!({
            "active": true, "token_type": "Bearer", "client_id": claims.client_id, "username": claims.sub,
            "sub": claims.sub, "scope": claims.scope, "aud": claims.aud, "iss": claims.iss, "exp": claims.exp,
            "iat": claims.iat, "jti": claims.jti, "tier": claims.tier,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn client(scopes: &[&str]) -> Client {
        Client {
            client_id: "c".into(),
            name: "c".into(),
            tier: Tier::Service,
            confidential: true,
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
        }
    }

    #[test]
    fn scopes_parse_default_and_refuse_unknown_names() {
        assert_eq!(parse_scope(None).unwrap(), vec!["mcp:tools"], "no scope means the default");
        assert_eq!(parse_scope(Some("  ")).unwrap(), vec!["mcp:tools"], "blank is no scope");
        assert_eq!(parse_scope(Some("mcp:tools offline_access user")).unwrap().len(), 3, "known scopes");
        assert_eq!(parse_scope(Some("mcp:tools mcp:tools")).unwrap(), vec!["mcp:tools"], "duplicates collapse");
        assert!(matches!(parse_scope(Some("mcp:tools root")), Err(GrantError::InvalidScope(_))), "unknown scope");
    }

    #[test]
    fn tier_scopes_above_the_subject_are_dropped_and_client_limits_hold() {
        let requested = parse_scope(Some("admin user mcp:tools")).unwrap();
        let granted = grantable_scopes(&requested, Tier::User, &client(&[])).unwrap();
        assert_eq!(granted, vec!["user", "mcp:tools"], "admin is dropped for a user");
        let limited = client(&["mcp:tools"]);
        assert!(grantable_scopes(&requested, Tier::Admin, &limited).is_err(), "a client limited to mcp:tools");
        assert!(
            grantable_scopes(&parse_scope(Some("mcp:tools offline_access")).unwrap(), Tier::User, &limited).is_ok(),
            "offline_access is always allowed"
        );
    }
}
