//! Federation: the external OpenID Connect issuers of `identity.issuers`. Castellan accepts their
//! access tokens as bearer credentials (they become the same [`Principal`](super::Principal) as
//! everything else before RBAC) and lets people sign in through them in the browser, Castellan
//! being the OIDC client (`web::federated`); those people then get Castellan's own tokens. Foreign
//! tokens are never forwarded to tool backends: the gateway never passes the caller's
//! `Authorization` header on.
//!
//! Decisions (see also [`rules`]):
//! * **Subjects** are `<display_name>/<subject claim>` (`Okta/00u1ab`). `display_name` is part of
//!   the identity: renaming it re-keys every user of that issuer, and two issuers may not share one.
//!   Local user names are free text, so the prefix alone cannot rule out a local user of the same
//!   name; the browser sign-in therefore only ever reuses a `users` row that it created itself
//!   (marked in `castellan_meta`), never a local one.
//! * **Transport**: issuer, key set and token endpoint must be `https`, except on loopback
//!   (`localhost`, `127.0.0.0/8`, `[::1]`), where plain `http` is allowed for tests and for an issuer
//!   on the same host. The SSRF guard is off for these requests (`allow_private_addresses`): the
//!   operator names the issuer, and internal identity providers are common.
//! * **Keys** are fetched at start by discovery (a failure is logged, never fatal; discovery is
//!   retried in the background and on demand), refreshed every [`KEY_REFRESH_INTERVAL`] in the
//!   background and on use once older than that. A token naming an unknown `kid` triggers at most one
//!   key-set fetch per issuer per [`ON_DEMAND_FETCH_INTERVAL`]; a failed fetch keeps the previous set.
//!   A verified token stays cached until it expires, but only while its key is still published.

pub mod rules;
mod sign_in;
mod transport;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use castellan_config::ExternalIssuer;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use openidconnect::IssuerUrl;
use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use url::Url;

use super::AuthError;
use super::outbound::GuardedClient;
use super::tokens::TokenError;
pub use rules::{FederatedIdentity, IssuerRules, VerifiedAccessToken};
use sign_in::{BrowserSignIn, browser_sign_in};
pub use sign_in::{SignInError, SignInStart};
pub use transport::check_transport;
use transport::{IssuerHttp, error_chain};

/// How old a key set may get before it is fetched again.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// The least time between two fetches that requests cause (an unknown `kid`, a stale set, a
/// discovery retry), per issuer and per cause: tokens with made-up key ids cannot drive traffic.
pub const ON_DEMAND_FETCH_INTERVAL: Duration = Duration::from_secs(30);

/// The refresh policy. `Default` is production's; tests shorten the on-demand interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FederationTiming {
    pub key_refresh_interval: Duration,
    pub on_demand_fetch_interval: Duration,
}

impl Default for FederationTiming {
    fn default() -> Self {
        FederationTiming {
            key_refresh_interval: KEY_REFRESH_INTERVAL,
            on_demand_fetch_interval: ON_DEMAND_FETCH_INTERVAL,
        }
    }
}

/// Every configured issuer, in profile order (the index is the one in `/login/federated/{index}`).
pub struct FederatedIssuers {
    issuers: Vec<Issuer>,
    http: IssuerHttp,
    timing: FederationTiming,
}

struct Issuer {
    rules: IssuerRules,
    display_name: String,
    browser: BrowserSignIn,
    cache: Mutex<KeyCache>,
    /// Held while fetching, so that concurrent requests wait for one fetch instead of each starting one.
    fetching: tokio::sync::Mutex<()>,
}

/// One issuer's discovered metadata and keys, and when requests last caused a fetch.
#[derive(Default)]
struct KeyCache {
    /// The discovery document, its key set replaced on every fetch (ID tokens are verified with it).
    metadata: Option<CoreProviderMetadata>,
    /// The same keys in `jsonwebtoken`'s form (access tokens are verified with these).
    keys: Arc<JwkSet>,
    fetched_at: Option<Instant>,
    last_discovery_attempt: Option<Instant>,
    last_unknown_key_fetch: Option<Instant>,
    last_stale_fetch: Option<Instant>,
}

fn elapsed_since(earlier: Option<Instant>, now: Instant, interval: Duration) -> bool {
    earlier.is_none_or(|earlier| now.saturating_duration_since(earlier) >= interval)
}

impl KeyCache {
    fn is_stale(&self, now: Instant, timing: &FederationTiming) -> bool {
        elapsed_since(self.fetched_at, now, timing.key_refresh_interval)
    }

    /// What a request for a token signed with `kid` (or, with `None`, a browser sign-in, which needs
    /// only the metadata) must fetch first, if anything. Records the attempt, so that the limit holds
    /// even while the fetch runs.
    fn plan_on_demand(&mut self, kid: Option<&str>, now: Instant, timing: &FederationTiming) -> Fetch {
        let interval = timing.on_demand_fetch_interval;
        if self.metadata.is_none() {
            if elapsed_since(self.last_discovery_attempt, now, interval) {
                self.last_discovery_attempt = Some(now);
                return Fetch::Discovery;
            }
            return Fetch::Unavailable;
        }
        if self.is_stale(now, timing) && elapsed_since(self.last_stale_fetch, now, interval) {
            self.last_stale_fetch = Some(now);
            return Fetch::Keys;
        }
        let unknown = kid.is_some_and(|kid| self.keys.find(kid).is_none());
        if unknown && elapsed_since(self.last_unknown_key_fetch, now, interval) {
            self.last_unknown_key_fetch = Some(now);
            return Fetch::Keys;
        }
        Fetch::Nothing
    }

    fn store(&mut self, metadata: CoreProviderMetadata, now: Instant) {
        let keys =
            serde_json::to_value(metadata.jwks()).map(|value| rules::convert_key_set(&value)).unwrap_or_default();
        self.keys = Arc::new(keys);
        self.metadata = Some(metadata);
        self.fetched_at = Some(now);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Nothing,
    Discovery,
    Keys,
    /// Not discovered, and a discovery was tried too recently to try again.
    Unavailable,
}

impl FederatedIssuers {
    /// The issuers of the profile. Problems that cannot heal by waiting (an `http` issuer off
    /// loopback, an algorithm the verifier lacks, two issuers with one display name) are errors;
    /// nothing is fetched here.
    pub fn new(
        configured: &[ExternalIssuer],
        client: GuardedClient,
        timing: FederationTiming,
    ) -> Result<FederatedIssuers, String> {
        let mut issuers = Vec::with_capacity(configured.len());
        for (index, entry) in configured.iter().enumerate() {
            let context = format!("identity.issuers[{index}] ({})", entry.issuer);
            let url = Url::parse(&entry.issuer).map_err(|error| format!("{context}: {error}"))?;
            check_transport(&url).map_err(|error| format!("{context}: {error}; plain http is only for loopback"))?;
            if configured[..index].iter().any(|earlier| earlier.display_name == entry.display_name) {
                return Err(format!(
                    "{context}: display_name {:?} is used twice; it prefixes subjects, so it must be unique",
                    entry.display_name
                ));
            }
            let rules = IssuerRules::from_config(entry).map_err(|error| format!("{context}: {error}"))?;
            if entry.default_tier == Some(castellan_config::Tier::Admin) {
                tracing::warn!(issuer = %entry.issuer, "default_tier admin is lowered to user: only tier_map can grant admin");
            }
            issuers.push(Issuer {
                rules,
                display_name: entry.display_name.clone(),
                browser: browser_sign_in(entry),
                cache: Mutex::new(KeyCache::default()),
                fetching: tokio::sync::Mutex::new(()),
            });
        }
        Ok(FederatedIssuers { issuers, http: IssuerHttp(client), timing })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The index of the issuer whose identifier is exactly `iss`.
    pub fn index_of(&self, iss: &str) -> Option<usize> {
        self.issuers.iter().position(|issuer| issuer.rules.issuer == iss)
    }

    /// Verifies a bearer token from the issuer at `index`, fetching keys first when the policy says so.
    /// An issuer never discovered yet is `Unavailable` (a 503: try again), not a bad token.
    pub async fn verify_access_token(
        &self,
        index: usize,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedAccessToken, AuthError> {
        let issuer = self.issuers.get(index).ok_or(AuthError::Token(TokenError::WrongIssuer))?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Token(TokenError::Malformed))?;
        let (_, kid) = issuer.rules.check_access_token_header(&header).map_err(AuthError::Token)?;
        let keys = self.keys_for(issuer, Some(&kid)).await?;
        rules::verify_access_token(&issuer.rules, &keys, token, now).map_err(AuthError::Token)
    }

    /// Whether the key `kid` of the issuer at `index` is still published (as last fetched): a cached
    /// token whose key was withdrawn is refused.
    pub fn still_publishes(&self, index: usize, kid: &str) -> bool {
        self.issuers.get(index).is_some_and(|issuer| lock(&issuer.cache).keys.find(kid).is_some())
    }

    /// The current keys, after whatever fetch the on-demand policy allows for a token signed by `kid`.
    async fn keys_for(&self, issuer: &Issuer, kid: Option<&str>) -> Result<Arc<JwkSet>, AuthError> {
        {
            let cache = lock(&issuer.cache);
            let known = kid.is_none_or(|kid| cache.keys.find(kid).is_some());
            if cache.metadata.is_some() && !cache.is_stale(Instant::now(), &self.timing) && known {
                return Ok(Arc::clone(&cache.keys));
            }
        }
        let _fetching = issuer.fetching.lock().await;
        // Decided after the wait: whoever held the lock may just have fetched what this request needs.
        let plan = lock(&issuer.cache).plan_on_demand(kid, Instant::now(), &self.timing);
        match plan {
            Fetch::Nothing => {}
            Fetch::Unavailable => return Err(AuthError::Unavailable),
            Fetch::Discovery => {
                if self.discover(issuer).await.is_err() {
                    return Err(AuthError::Unavailable);
                }
            }
            Fetch::Keys => {
                tracing::info!(issuer = %issuer.rules.issuer, kid = kid.unwrap_or_default(), "fetching the issuer's keys on demand");
                let _ = self.fetch_keys(issuer).await;
            }
        }
        Ok(Arc::clone(&lock(&issuer.cache).keys))
    }

    /// Discovery and key set; on success the cache holds both.
    async fn discover(&self, issuer: &Issuer) -> Result<(), ()> {
        let url = IssuerUrl::new(issuer.rules.issuer.clone()).map_err(|_| ())?;
        match CoreProviderMetadata::discover_async(url, &self.http).await {
            Ok(metadata) => {
                let mut cache = lock(&issuer.cache);
                cache.store(metadata, Instant::now());
                tracing::info!(issuer = %issuer.rules.issuer, keys = cache.keys.keys.len(), "federated issuer discovered");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(issuer = %issuer.rules.issuer, error = %error_chain(&error), "federated issuer discovery failed; will retry");
                Err(())
            }
        }
    }

    /// A fresh key set from the discovered `jwks_uri`; a failure keeps the previous set.
    async fn fetch_keys(&self, issuer: &Issuer) -> Result<(), ()> {
        let Some(mut metadata) = lock(&issuer.cache).metadata.clone() else { return Err(()) };
        match CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http).await {
            Ok(jwks) => {
                metadata = metadata.set_jwks(jwks);
                let mut cache = lock(&issuer.cache);
                cache.store(metadata, Instant::now());
                tracing::info!(issuer = %issuer.rules.issuer, keys = cache.keys.keys.len(), "federated issuer keys fetched");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(issuer = %issuer.rules.issuer, error = %error_chain(&error), "fetching federated keys failed; keeping the previous set");
                Err(())
            }
        }
    }

    /// One background pass: discovers issuers not yet discovered and refreshes stale key sets.
    /// Independent of the on-demand limits, which exist to stop requests from driving traffic.
    pub async fn refresh(&self) {
        for issuer in &self.issuers {
            let _fetching = issuer.fetching.lock().await;
            let (discovered, stale) = {
                let cache = lock(&issuer.cache);
                (cache.metadata.is_some(), cache.is_stale(Instant::now(), &self.timing))
            };
            if !discovered {
                let _ = self.discover(issuer).await;
            } else if stale {
                let _ = self.fetch_keys(issuer).await;
            }
        }
    }

    /// Discovers every issuer now (without holding up the caller) and keeps them fresh.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if self.is_empty() {
            return;
        }
        let issuers = Arc::clone(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(issuers.timing.on_demand_fetch_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                issuers.refresh().await;
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn timing() -> FederationTiming {
        FederationTiming {
            key_refresh_interval: Duration::from_secs(600),
            on_demand_fetch_interval: Duration::from_secs(30),
        }
    }

    fn discovered_cache(at: Instant, kids: &[&str]) -> KeyCache {
        let metadata: CoreProviderMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/authorize",
            "jwks_uri": "https://idp.example.com/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }))
        .unwrap();
        let mut cache = KeyCache::default();
        cache.store(metadata, at);
        let keys = kids
            .iter()
            .map(|kid| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": kid}))
            .collect();
        cache.keys = Arc::new(rules::convert_key_set(&serde_json::json!({"keys": serde_json::Value::Array(keys)})));
        cache
    }

    #[test]
    fn an_unknown_kid_causes_at_most_one_fetch_per_interval() {
        let start = Instant::now();
        let mut cache = discovered_cache(start, &["a"]);
        let timing = timing();
        assert_eq!(cache.plan_on_demand(Some("a"), start, &timing), Fetch::Nothing, "a known kid fetches nothing");
        assert_eq!(cache.plan_on_demand(Some("b"), start, &timing), Fetch::Keys, "the first unknown kid fetches");
        for seconds in [0, 1, 29] {
            let at = start + Duration::from_secs(seconds);
            assert_eq!(
                cache.plan_on_demand(Some("c"), at, &timing),
                Fetch::Nothing,
                "no second fetch after {seconds}s"
            );
        }
        let later = start + Duration::from_secs(30);
        assert_eq!(cache.plan_on_demand(Some("c"), later, &timing), Fetch::Keys, "again once the interval has passed");
        assert_eq!(
            cache.plan_on_demand(Some("a"), later, &timing),
            Fetch::Nothing,
            "known kids never wait on the limit"
        );
    }

    #[test]
    fn a_stale_set_is_refreshed_on_use_at_most_once_per_interval() {
        let start = Instant::now();
        let mut cache = discovered_cache(start, &["a"]);
        let timing = timing();
        let stale = start + Duration::from_secs(600);
        assert!(!cache.is_stale(start + Duration::from_secs(599), &timing), "fresh just before the refresh interval");
        assert_eq!(cache.plan_on_demand(Some("a"), stale, &timing), Fetch::Keys, "a stale set is fetched on use");
        let failed_meanwhile = stale + Duration::from_secs(5);
        assert_eq!(
            cache.plan_on_demand(Some("a"), failed_meanwhile, &timing),
            Fetch::Nothing,
            "a failing issuer is not hammered"
        );
        cache.fetched_at = Some(failed_meanwhile);
        assert_eq!(
            cache.plan_on_demand(Some("a"), failed_meanwhile, &timing),
            Fetch::Nothing,
            "fresh again after a fetch"
        );
    }

    #[test]
    fn an_undiscovered_issuer_is_retried_at_most_once_per_interval() {
        let start = Instant::now();
        let mut cache = KeyCache::default();
        let timing = timing();
        assert_eq!(cache.plan_on_demand(Some("a"), start, &timing), Fetch::Discovery, "first request discovers");
        let soon = start + Duration::from_secs(10);
        assert_eq!(
            cache.plan_on_demand(Some("a"), soon, &timing),
            Fetch::Unavailable,
            "then it is unavailable for a while"
        );
        let later = start + Duration::from_secs(30);
        assert_eq!(cache.plan_on_demand(Some("a"), later, &timing), Fetch::Discovery, "and retried after the interval");
    }

    pub(super) fn issuer(issuer: &str, display_name: &str) -> ExternalIssuer {
        ExternalIssuer {
            issuer: issuer.into(),
            audience: "castellan".into(),
            algorithms: vec!["RS256".into()],
            subject_claim: "sub".into(),
            tier_claim: None,
            tier_map: Default::default(),
            default_tier: Some(castellan_config::Tier::User),
            scope_claim: "scope".into(),
            client_id: None,
            client_secret: None,
            display_name: display_name.into(),
        }
    }

    pub(super) fn client() -> GuardedClient {
        GuardedClient::new(crate::identity::outbound::OutboundPolicy {
            allow_private_addresses: true,
            require_https: false,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn configuration_problems_that_cannot_heal_are_errors() {
        let timing = FederationTiming::default();
        let good = [issuer("https://a.example.com", "A"), issuer("http://127.0.0.1:9", "B")];
        let built = FederatedIssuers::new(&good, client(), timing).expect("https and loopback http are fine");
        assert_eq!(built.index_of("http://127.0.0.1:9"), Some(1), "found by exact identifier");
        assert_eq!(built.index_of("http://127.0.0.1:9/"), None, "byte for byte");
        let cases = [
            (vec![issuer("http://idp.example.com", "A")], "plain http"),
            (vec![issuer("https://a.example.com", "Same"), issuer("https://b.example.com", "Same")], "used twice"),
        ];
        for (configured, expected) in cases {
            let error = FederatedIssuers::new(&configured, client(), timing).err().expect("refused");
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }
}
