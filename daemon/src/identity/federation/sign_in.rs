//! Browser sign-in through a federated issuer, Castellan being its OpenID Connect client: the
//! authorization request (code flow, PKCE S256, nonce) and the verification of the answer (code
//! redeemed at the token endpoint, ID token checked with the issuer's pinned algorithms, issuer,
//! audience = our client id, nonce and time). The HTTP side is `web::federated`.

use castellan_config::ExternalIssuer;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdTokenVerifier, CoreJwsSigningAlgorithm};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse,
};
use url::Url;

use super::transport::{check_transport, error_chain};
use super::{FederatedIdentity, FederatedIssuers, Issuer, lock, rules};
use crate::identity::tokens::TokenError;

/// The client `CoreClient::from_provider_metadata` builds: authorization endpoint set, token and
/// userinfo endpoints as discovered.
type DiscoveredClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Why a browser sign-in through an issuer failed. Messages are for the person; detail is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("this sign-in option does not exist")]
    NotOffered,
    #[error("sign-in through this identity provider is not configured correctly; an operator must check the logs")]
    Misconfigured,
    #[error("the identity provider cannot be reached; try again later")]
    Unreachable,
    #[error("the identity provider did not complete the sign-in")]
    Refused,
    #[error("the identity provider's ID token was not accepted; start again")]
    InvalidIdToken,
    #[error("the identity provider's answer was not accepted: {0}")]
    Token(TokenError),
}

/// The start of a browser sign-in: where to send the person, and what to keep until they return.
#[derive(Debug, Clone)]
pub struct SignInStart {
    pub authorization_url: Url,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub(super) enum BrowserSignIn {
    /// No `client_id`: bearer tokens only.
    NotConfigured,
    /// Configured but unusable; the reason was logged at start.
    Unusable,
    Usable {
        client_id: String,
        client_secret: Option<String>,
    },
}

impl FederatedIssuers {
    /// The label of the issuer at `index`, when it offers browser sign-in.
    pub fn sign_in_label(&self, index: usize) -> Option<&str> {
        let issuer = self.issuers.get(index)?;
        (!matches!(issuer.browser, BrowserSignIn::NotConfigured)).then_some(issuer.display_name.as_str())
    }

    /// The issuer identifier at `index`.
    pub fn issuer_at(&self, index: usize) -> Option<&str> {
        self.issuers.get(index).map(|issuer| issuer.rules.issuer.as_str())
    }

    /// Starts an authorization code flow with PKCE S256 and a nonce; `state` is the caller's.
    pub async fn start_sign_in(
        &self,
        index: usize,
        redirect_uri: &str,
        state: &str,
    ) -> Result<SignInStart, SignInError> {
        let (issuer, client) = self.oidc_client(index, redirect_uri).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let (authorization_url, _, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, move || CsrfToken::new(state), Nonce::new_random)
            .set_pkce_challenge(challenge)
            .url();
        if let Err(error) = check_transport(&authorization_url) {
            tracing::error!(issuer = %issuer.rules.issuer, %error, "the issuer's authorization endpoint is not acceptable");
            return Err(SignInError::Misconfigured);
        }
        Ok(SignInStart { authorization_url, nonce: nonce.secret().clone(), pkce_verifier: verifier.secret().clone() })
    }

    /// Redeems the code and verifies the ID token (signature with a pinned algorithm, issuer,
    /// audience = our client id, nonce, time at `now`); returns who signed in.
    pub async fn finish_sign_in(
        &self,
        index: usize,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<FederatedIdentity, SignInError> {
        let (issuer, client) = self.oidc_client(index, redirect_uri).await?;
        let exchange = client.exchange_code(AuthorizationCode::new(code.to_string())).map_err(|error| {
            tracing::error!(issuer = %issuer.rules.issuer, %error, "the issuer has no token endpoint");
            SignInError::Misconfigured
        })?;
        let response = exchange
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|error| {
                tracing::warn!(issuer = %issuer.rules.issuer, error = %error_chain(&error), "redeeming the code at the issuer failed");
                SignInError::Refused
            })?;
        let id_token = response.id_token().ok_or_else(|| {
            tracing::warn!(issuer = %issuer.rules.issuer, "the issuer's token response has no id_token");
            SignInError::Refused
        })?;
        let compact = id_token.to_string();
        let header = jsonwebtoken::decode_header(&compact).map_err(|_| SignInError::Token(TokenError::Malformed))?;
        let (_, kid) = issuer.rules.check_signing_header(&header).map_err(SignInError::Token)?;
        self.keys_for(issuer, Some(&kid)).await.map_err(|_| SignInError::Unreachable)?;
        let jwks = lock(&issuer.cache).metadata.as_ref().map(|metadata| metadata.jwks().clone()).unwrap_or_default();
        let BrowserSignIn::Usable { client_id, .. } = &issuer.browser else { return Err(SignInError::NotOffered) };
        let issuer_url = IssuerUrl::new(issuer.rules.issuer.clone()).map_err(|_| SignInError::Misconfigured)?;
        let algorithms: Vec<CoreJwsSigningAlgorithm> = issuer
            .rules
            .algorithms
            .iter()
            .filter_map(|algorithm| serde_json::from_value(serde_json::json!(format!("{algorithm:?}"))).ok())
            .collect();
        let verifier = CoreIdTokenVerifier::new_public_client(ClientId::new(client_id.clone()), issuer_url, jwks)
            .set_allowed_algs(algorithms)
            .set_time_fn(move || now);
        if let Err(error) = id_token.claims(&verifier, &Nonce::new(nonce.to_string())) {
            tracing::warn!(issuer = %issuer.rules.issuer, %error, "the issuer's ID token was refused");
            return Err(SignInError::InvalidIdToken);
        }
        // Verified just above: read every claim for the mapping, not only the standard ones.
        let claims: rules::Claims = jsonwebtoken::dangerous::insecure_decode_claims(&compact)
            .map_err(|_| SignInError::Token(TokenError::Malformed))?;
        rules::check_times(&claims, now).map_err(SignInError::Token)?;
        issuer.rules.identity(&claims).map_err(SignInError::Token)
    }

    async fn oidc_client(&self, index: usize, redirect_uri: &str) -> Result<(&Issuer, DiscoveredClient), SignInError> {
        let issuer = self.issuers.get(index).ok_or(SignInError::NotOffered)?;
        let (client_id, client_secret) = match &issuer.browser {
            BrowserSignIn::NotConfigured => return Err(SignInError::NotOffered),
            BrowserSignIn::Unusable => return Err(SignInError::Misconfigured),
            BrowserSignIn::Usable { client_id, client_secret } => (client_id.clone(), client_secret.clone()),
        };
        self.keys_for(issuer, None).await.map_err(|_| SignInError::Unreachable)?;
        let metadata = lock(&issuer.cache).metadata.clone().ok_or(SignInError::Unreachable)?;
        let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|_| SignInError::Misconfigured)?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id),
            client_secret.map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        Ok((issuer, client))
    }
}

pub(super) fn browser_sign_in(entry: &ExternalIssuer) -> BrowserSignIn {
    let Some(client_id) = entry.client_id.clone() else { return BrowserSignIn::NotConfigured };
    match &entry.client_secret {
        None => BrowserSignIn::Usable { client_id, client_secret: None },
        Some(template) => match template.as_literal() {
            Some(secret) => BrowserSignIn::Usable { client_id, client_secret: Some(secret.to_string()) },
            None => {
                tracing::error!(
                    issuer = %entry.issuer,
                    secrets = ?template.secret_names(),
                    "browser sign-in through this issuer is disabled: its client_secret uses ${{secret:...}}, and secrets cannot be resolved yet; give the secret through ${{ENV_VAR}} instead"
                );
                BrowserSignIn::Unusable
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::identity::federation::FederationTiming;
    use crate::identity::federation::tests::{client, issuer};

    #[test]
    fn a_client_secret_that_needs_the_secret_store_disables_browser_sign_in_only() {
        use castellan_config::{Template, TemplatePart};
        let cases = [
            (None, None, "no client id: no browser sign-in"),
            (Some("web"), None, "a public client"),
            (Some("web"), Some(Template::literal("s3cret")), "a literal secret"),
            (Some("web"), Some(Template::from_parts([TemplatePart::Secret("idp".into())])), "a ${secret:...}"),
        ];
        let expected = [None, Some("A"), Some("A"), Some("A")];
        for ((client_id, client_secret, what), label) in cases.into_iter().zip(expected) {
            let entry = ExternalIssuer {
                client_id: client_id.map(str::to_string),
                client_secret,
                ..issuer("https://a.example.com", "A")
            };
            let built = FederatedIssuers::new(&[entry], client(), FederationTiming::default()).unwrap();
            assert_eq!(built.sign_in_label(0), label, "{what}: label");
            let unusable = matches!(built.issuers[0].browser, BrowserSignIn::Unusable);
            assert_eq!(unusable, what.contains("secret:"), "{what}: usable");
        }
    }
}
