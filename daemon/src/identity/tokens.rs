//! Castellan's access tokens: RFC 9068 JWTs (`typ: at+jwt`), EdDSA-signed, minted by the token
//! endpoint and verified on every governed request. Time is a parameter: nothing here reads the clock.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::signing::{ActiveKey, SigningKeys};

/// Accepted clock difference between replicas and clients, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;

/// The claims of an access token. `gid` names the grant (the refresh-token family) so that revoking
/// a grant revokes its access tokens too; client-credentials tokens have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl AccessClaims {
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split_whitespace().map(str::to_string).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token is signed by a key this server does not trust")]
    UnknownKey,
    #[error("the token signature or algorithm is not valid")]
    BadSignature,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is for another resource")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token is signed with an algorithm its issuer is not trusted to use")]
    AlgorithmNotAllowed,
    #[error("the token is an ID token; present an access token")]
    IdToken,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token does not name its subject")]
    MissingSubject,
    #[error("the token's claims map to no tier at this server")]
    NoTier,
}

/// Signs `claims` with the active key.
pub fn mint(key: &ActiveKey, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_string());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding)
}

/// Whether `typ` names an RFC 9068 access token (media types compare case-insensitively).
pub fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|typ| typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"))
}

/// Verifies one of our access tokens for a resource. `audiences` lists the resource identifiers the
/// endpoint answers to; the token's `aud` must be one of them.
pub fn verify(
    keys: &SigningKeys,
    token: &str,
    issuer: &str,
    audiences: &[&str],
    now: DateTime<Utc>,
) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !is_access_token_type(header.typ.as_deref()) {
        return Err(TokenError::WrongType);
    }
    // Our tokens are EdDSA only: anything else (HS256 keyed with our public key, RS256, none) is
    // refused before a key is even chosen.
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::BadSignature);
    }
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let key = keys.verifying_key(kid).ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    // Expiry is checked below against `now`, not the library's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|error| match error.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
            TokenError::BadSignature
        }
        _ => TokenError::Malformed,
    })?;
    let claims = data.claims;
    check_claims(&claims, issuer, audiences, now)?;
    Ok(claims)
}

/// Like [`verify`] but leaves the audience to the caller (revocation and introspection, which
/// serve every resource of this issuer).
pub fn verify_any_audience(
    keys: &SigningKeys,
    token: &str,
    issuer: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, TokenError> {
    let aud =
        jsonwebtoken::dangerous::insecure_decode_claims::<AccessClaims>(token).map_err(|_| TokenError::Malformed)?.aud;
    verify(keys, token, issuer, &[aud.as_str()], now)
}

fn check_claims(claims: &AccessClaims, issuer: &str, audiences: &[&str], now: DateTime<Utc>) -> Result<(), TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !audiences.contains(&claims.aud.as_str()) {
        return Err(TokenError::WrongAudience);
    }
    let now = now.timestamp();
    if claims.exp + LEEWAY_SECONDS <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat - LEEWAY_SECONDS > now || claims.sub.is_empty() || claims.jti.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://localhost:8080".into(),
            sub: "alice".into(),
            aud: "http://localhost:8080/mcp".into(),
            exp: now + 600,
            iat: now,
            jti: "j1".into(),
            client_id: "c1".into(),
            scope: "mcp:tools".into(),
            tier: "user".into(),
            gid: None,
            auth_time: None,
        }
    }

    #[test]
    fn claim_checks_cover_issuer_audience_and_time() {
        let now = 1_800_000_000;
        let at = DateTime::from_timestamp(now, 0).unwrap();
        let issuer = "http://localhost:8080";
        let audiences = ["http://localhost:8080/mcp"];
        assert_eq!(check_claims(&claims(now), issuer, &audiences, at), Ok(()), "a good token");
        let cases: Vec<(&str, AccessClaims, TokenError)> = vec![
            (
                "issuer differs by a slash",
                AccessClaims { iss: "http://localhost:8080/".into(), ..claims(now) },
                TokenError::WrongIssuer,
            ),
            (
                "another resource",
                AccessClaims { aud: "http://localhost:8080/mcp/x".into(), ..claims(now) },
                TokenError::WrongAudience,
            ),
            (
                "expired beyond the leeway",
                AccessClaims { exp: now - LEEWAY_SECONDS, ..claims(now) },
                TokenError::Expired,
            ),
            ("issued in the future", AccessClaims { iat: now + 120, ..claims(now) }, TokenError::Malformed),
            ("no subject", AccessClaims { sub: String::new(), ..claims(now) }, TokenError::Malformed),
        ];
        for (what, bad, expected) in cases {
            assert_eq!(check_claims(&bad, issuer, &audiences, at), Err(expected), "{what}");
        }
    }

    #[test]
    fn only_rfc_9068_types_are_access_tokens() {
        for (typ, expected) in [
            (Some("at+jwt"), true),
            (Some("AT+JWT"), true),
            (Some("application/at+jwt"), true),
            (Some("JWT"), false),
            (None, false),
        ] {
            assert_eq!(is_access_token_type(typ), expected, "typ {typ:?}");
        }
    }
}
