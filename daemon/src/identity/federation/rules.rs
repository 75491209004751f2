//! The checks a federated token must pass and how its claims become a [`Principal`]: plain functions
//! over one issuer's rules, a key set and a `now`, so that every rule is tested without a network.

use std::collections::BTreeMap;
use std::str::FromStr;

use castellan_config::{ExternalIssuer, Tier};
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::identity::tokens::{self, TokenError};
use crate::identity::{Credential, Principal};

/// The claims of a token, as sent.
pub type Claims = Map<String, Value>;

/// The longest subject claim accepted: local user names built from it must stay readable.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// What Castellan accepts from one issuer, parsed from its `identity.issuers` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRules {
    /// The issuer identifier, compared byte for byte.
    pub issuer: String,
    /// The `aud` Castellan's access tokens from this issuer carry.
    pub audience: String,
    /// The pinned signature algorithms: a token signed with anything else is refused before any key
    /// is looked at.
    pub algorithms: Vec<Algorithm>,
    pub subject_claim: String,
    pub tier_claim: Option<String>,
    pub tier_map: BTreeMap<String, Tier>,
    /// Never `admin`: see [`IssuerRules::from_config`].
    pub default_tier: Option<Tier>,
    pub scope_claim: String,
    /// Castellan's client id at this issuer: the audience of the ID tokens it issues to us.
    pub client_id: Option<String>,
    /// The prefix of every subject from this issuer: `display_name` + `/`.
    pub subject_prefix: String,
}

impl IssuerRules {
    /// The rules of one configured issuer. An algorithm name the token library does not know is an
    /// error (the profile parser already limits them to asymmetric ones). `default_tier: admin` is
    /// lowered to `user`: a federated token is admin only where `tier_map` says so explicitly, so a
    /// mistaken default can never make every account of an identity provider an administrator.
    pub fn from_config(configured: &ExternalIssuer) -> Result<IssuerRules, String> {
        let mut algorithms = Vec::new();
        for name in &configured.algorithms {
            let algorithm = Algorithm::from_str(name).map_err(|_| format!("unsupported algorithm {name:?}"))?;
            if matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(format!("{name} is a shared-secret algorithm; federated issuers must sign asymmetrically"));
            }
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            algorithms.push(Algorithm::RS256);
        }
        Ok(IssuerRules {
            issuer: configured.issuer.clone(),
            audience: configured.audience.clone(),
            algorithms,
            subject_claim: configured.subject_claim.clone(),
            tier_claim: configured.tier_claim.clone(),
            tier_map: configured.tier_map.clone(),
            default_tier: configured.default_tier.map(|tier| tier.min(Tier::User)),
            scope_claim: configured.scope_claim.clone(),
            client_id: configured.client_id.clone(),
            subject_prefix: format!("{}/", configured.display_name),
        })
    }

    /// The algorithm and key id of a bearer token's header, if this issuer's rules allow them.
    /// `typ` may be absent, `at+jwt` (RFC 9068) or the generic `JWT`; anything else (a logout token,
    /// a DPoP proof, ...) is not an access token.
    pub fn check_access_token_header(&self, header: &Header) -> Result<(Algorithm, String), TokenError> {
        let typ = header.typ.as_deref();
        let generic =
            typ.is_none_or(|typ| typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt"));
        if !generic && !tokens::is_access_token_type(typ) {
            return Err(TokenError::WrongType);
        }
        self.check_signing_header(header)
    }

    /// The algorithm and key id of any token from this issuer (access or ID token): `alg` must be
    /// pinned and `kid` present.
    pub fn check_signing_header(&self, header: &Header) -> Result<(Algorithm, String), TokenError> {
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let kid = header.kid.as_deref().filter(|kid| !kid.is_empty()).ok_or(TokenError::UnknownKey)?;
        Ok((header.alg, kid.to_string()))
    }

    /// Issuer, ID-token shape, audience and time of a bearer token's (signature-verified) claims.
    /// `typ` is the header's. Expiry is checked against `now` with [`tokens::LEEWAY_SECONDS`].
    pub fn check_access_token_claims(
        &self,
        claims: &Claims,
        typ: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        let audiences = audiences(claims);
        // An ID token carries a nonce (when the client sent one) and is addressed to Castellan's
        // client id; an RFC 9068 access token does neither. Only an explicit `at+jwt` type vouches
        // for the token being an access token.
        let to_our_client = self
            .client_id
            .as_deref()
            .is_some_and(|client_id| client_id != self.audience && audiences.contains(&client_id));
        if claims.contains_key("nonce") || (!tokens::is_access_token_type(typ) && to_our_client) {
            return Err(TokenError::IdToken);
        }
        if !audiences.contains(&self.audience.as_str()) {
            return Err(TokenError::WrongAudience);
        }
        check_times(claims, now)
    }

    /// The principal a verified token (access or ID token) stands for.
    pub fn identity(&self, claims: &Claims) -> Result<FederatedIdentity, TokenError> {
        let subject = match claims.get(&self.subject_claim) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) if number.is_u64() || number.is_i64() => number.to_string(),
            _ => return Err(TokenError::MissingSubject),
        };
        if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS || subject.chars().any(char::is_control) {
            return Err(TokenError::MissingSubject);
        }
        let tier = self.tier(claims).ok_or(TokenError::NoTier)?;
        Ok(FederatedIdentity {
            subject: format!("{}{subject}", self.subject_prefix),
            tier,
            scopes: strings(claims.get(&self.scope_claim), true),
        })
    }

    /// The highest tier `tier_map` gives any value of the tier claim, else the default tier.
    fn tier(&self, claims: &Claims) -> Option<Tier> {
        let mapped = self.tier_claim.as_ref().and_then(|claim| {
            strings(claims.get(claim), false).iter().filter_map(|value| self.tier_map.get(value).copied()).max()
        });
        mapped.or(self.default_tier)
    }
}

/// A bearer token that passed every check: who it stands for, until when, and the key that signed it
/// (a cached token is refused once its key is no longer published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccessToken {
    pub identity: FederatedIdentity,
    pub expires_at: i64,
    pub kid: String,
}

/// Verifies a bearer token from this issuer against `keys`, in the order of docs/identity-notes.md
/// §1.4: header (`typ`, pinned `alg`, `kid`), signature with the key `kid` names, then issuer,
/// ID-token shape, audience and time, then the claims become an identity.
pub fn verify_access_token(
    rules: &IssuerRules,
    keys: &JwkSet,
    token: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedAccessToken, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let (algorithm, kid) = rules.check_access_token_header(&header)?;
    let key = verification_key(keys, &kid, algorithm)?;
    let claims = verified_claims(token, &key, algorithm)?;
    rules.check_access_token_claims(&claims, header.typ.as_deref(), now)?;
    let identity = rules.identity(&claims)?;
    let expires_at = timestamp(&claims, "exp")?.ok_or(TokenError::Malformed)?;
    Ok(VerifiedAccessToken { identity, expires_at, kid })
}

/// A federated user, before it becomes a [`Principal`] (bearer tokens) or a local user row (browser
/// sign-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    /// `<display_name>/<subject claim>`.
    pub subject: String,
    pub tier: Tier,
    pub scopes: Vec<String>,
}

impl FederatedIdentity {
    pub fn into_principal(self, issuer: &str) -> Principal {
        Principal {
            subject: self.subject,
            tier: self.tier,
            scopes: self.scopes,
            credential: Credential::Federated { issuer: issuer.to_string() },
        }
    }
}

/// `aud` as a list: a single string or an array of strings (RFC 7519 §4.1.3).
fn audiences(claims: &Claims) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The string values of a claim: an array of strings, or one string (split on whitespace when
/// `split` is set, the OAuth `scope` convention). Other types give nothing.
fn strings(value: Option<&Value>, split: bool) -> Vec<String> {
    match value {
        Some(Value::String(text)) if split => text.split_whitespace().map(str::to_string).collect(),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn timestamp(claims: &Claims, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        // Seconds may carry a fraction (RFC 7519 NumericDate); the whole seconds are what count.
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|seconds| seconds as i64))
            .map(Some)
            .ok_or(TokenError::Malformed),
        Some(_) => Err(TokenError::Malformed),
    }
}

/// `exp` is required and in the future; `nbf` and `iat`, when present, are not in the future. All
/// with [`tokens::LEEWAY_SECONDS`] for clock differences.
pub fn check_times(claims: &Claims, now: DateTime<Utc>) -> Result<(), TokenError> {
    let now = now.timestamp();
    let leeway = tokens::LEEWAY_SECONDS;
    let exp = timestamp(claims, "exp")?.ok_or(TokenError::Malformed)?;
    if exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired);
    }
    if timestamp(claims, "nbf")?.is_some_and(|nbf| nbf.saturating_sub(leeway) > now) {
        return Err(TokenError::NotYetValid);
    }
    if timestamp(claims, "iat")?.is_some_and(|iat| iat.saturating_sub(leeway) > now) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The verification key `kid` names, if it may verify `algorithm`: a signing key (`use` absent or
/// `sig`) whose own `alg`, when it states one, is that algorithm. Symmetric keys are never used.
pub fn verification_key(keys: &JwkSet, kid: &str, algorithm: Algorithm) -> Result<DecodingKey, TokenError> {
    let jwk = keys.find(kid).ok_or(TokenError::UnknownKey)?;
    if jwk.common.public_key_use.as_ref().is_some_and(|key_use| *key_use != PublicKeyUse::Signature) {
        return Err(TokenError::UnknownKey);
    }
    if jwk.common.key_algorithm.is_some_and(|stated| stated != KeyAlgorithm::from(algorithm)) {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err(TokenError::UnknownKey);
    }
    DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey)
}

/// The claims of `token` if its signature verifies with `key` under `algorithm` (one key family per
/// `Validation`). Time, issuer and audience are left to the caller: they are checked against `now`
/// and the issuer's rules, not the library's clock and defaults.
pub fn verified_claims(token: &str, key: &DecodingKey, algorithm: Algorithm) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims).map_err(|error| {
        match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                TokenError::BadSignature
            }
            _ => TokenError::Malformed,
        }
    })
}

/// Converts a key set as `openidconnect` parsed it into `jsonwebtoken`'s, key by key: a key the
/// token library cannot represent is skipped (and logged), never fatal to the others.
pub fn convert_key_set(value: &Value) -> JwkSet {
    let keys = value.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let keys = keys
        .iter()
        .filter_map(|key| {
            serde_json::from_value(key.clone())
                .map_err(
                    |error| tracing::info!(%error, kid = ?key.get("kid"), "skipping a key the verifier cannot use"),
                )
                .ok()
        })
        .collect();
    JwkSet { keys }
}

#[cfg(test)]
mod tests;
