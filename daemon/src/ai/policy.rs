//! The AI part of one profile, compiled: providers with their HTTP clients, model routes, the price
//! catalog with the profile's `pricing`, the budgets and the token limit. Swapped whole on reload,
//! like the governance snapshot; clients and token buckets carry over when their settings did not
//! change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use castellan_ai::catalog::Catalog;
use castellan_ai::cost::Prices;
use castellan_config::{BudgetPer, BudgetSpec, ModelRoute, Profile, ProviderKind, Template};
use chrono::{DateTime, Utc};

use crate::governance::ModelTarget;
use crate::governance::budget_ledger::{AccountKey, Charge};
use crate::governance::token_limit::TokenLimits;
use crate::identity::{Credential, Principal};

/// The output a request may produce when it does not say (OpenAI and Gemini make `max_tokens`
/// optional): what budgets and the token limit reserve for it.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4_096;

/// One provider of the profile.
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// An extension's provider kind (`kind` is the format it speaks): its key goes in its headers.
    pub extension_kind: Option<String>,
    pub base_url: String,
    pub api_key: Template,
    pub headers: Vec<(String, Template)>,
    pub timeout: Duration,
    connect_timeout: Duration,
    pub client: reqwest::Client,
}

/// One place a request may go: the route's provider, or a fallback's.
#[derive(Clone)]
pub struct Candidate {
    pub route: String,
    pub provider: Arc<Provider>,
    pub upstream_model: String,
}

/// The AI configuration in force.
pub struct AiPolicy {
    providers: BTreeMap<String, Arc<Provider>>,
    routes: Vec<(String, ModelRoute)>,
    catalog: Catalog,
    budgets: Vec<BudgetSpec>,
    pub tokens: Arc<TokenLimits>,
    tier_multipliers: BTreeMap<castellan_config::Tier, f64>,
}

impl AiPolicy {
    /// Compiles the profile's AI sections; `previous` lends its clients and token buckets.
    pub fn compile(profile: &Profile, previous: Option<&AiPolicy>) -> Result<AiPolicy, String> {
        let catalog = Catalog::builtin()
            .map_err(|error| format!("the built-in price catalog is unreadable: {error}"))?
            .with_overrides(profile.pricing.iter().map(|(model, prices)| (model.clone(), *prices)));
        let mut providers = BTreeMap::new();
        for (name, spec) in &profile.providers {
            let reused = previous.and_then(|previous| previous.providers.get(name)).filter(|old| {
                old.connect_timeout == spec.connect_timeout
                    && old.timeout == spec.timeout
                    && old.base_url == spec.base_url
            });
            let client = match reused {
                Some(old) => old.client.clone(),
                // `timeout` bounds the whole exchange, a stream's body included: no request runs
                // longer, which is what lets replicas close rows older than it.
                None => castellan_actors::http_client::builder(spec.connect_timeout)
                    .timeout(spec.timeout)
                    .pool_max_idle_per_host(256)
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|_| format!("the HTTP client of provider '{name}' could not be built"))?,
            };
            let provider = Provider {
                name: name.clone(),
                kind: spec.kind,
                extension_kind: spec.extension_kind.clone(),
                base_url: spec.base_url.clone(),
                api_key: spec.api_key.clone(),
                headers: spec.headers.iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
                timeout: spec.timeout,
                connect_timeout: spec.connect_timeout,
                client,
            };
            providers.insert(name.clone(), Arc::new(provider));
        }
        let per_minute = profile.rate_limits.tokens_per_minute;
        let tokens = match previous {
            Some(previous) if previous.tokens.per_minute() == per_minute => previous.tokens.clone(),
            _ => Arc::new(TokenLimits::new(per_minute)),
        };
        Ok(AiPolicy {
            providers,
            routes: profile.models.iter().map(|(key, route)| (key.clone(), route.clone())).collect(),
            catalog,
            budgets: profile.budgets.clone(),
            tokens,
            tier_multipliers: profile.rate_limits.tier_multipliers.clone(),
        })
    }

    /// The route of `requested` and its fallbacks, in the order they are tried; empty when no
    /// route matches.
    pub fn candidates(&self, requested: &str) -> Vec<Candidate> {
        let Some((key, route)) = self.route(requested) else { return Vec::new() };
        let mut candidates = Vec::with_capacity(1 + route.fallbacks.len());
        candidates.extend(self.candidate(key, route, requested));
        // A fallback is a model name, routed like any request (the profile checked it reaches
        // another route).
        for fallback in &route.fallbacks {
            if let Some((key, route)) = self.route(fallback) {
                candidates.extend(self.candidate(key, route, fallback));
            }
        }
        candidates
    }

    fn route(&self, requested: &str) -> Option<(&str, &ModelRoute)> {
        self.routes
            .iter()
            .find(|(pattern, _)| castellan_config::glob_matches(pattern, requested))
            .map(|(key, route)| (key.as_str(), route))
    }

    fn candidate(&self, key: &str, route: &ModelRoute, requested: &str) -> Option<Candidate> {
        let provider = self.providers.get(&route.provider)?.clone();
        let upstream_model = route.model.clone().unwrap_or_else(|| requested.to_string());
        Some(Candidate { route: key.to_string(), provider, upstream_model })
    }

    pub fn prices(&self, upstream_model: &str) -> Option<Prices> {
        self.catalog.prices(upstream_model)
    }

    pub fn tier_multiplier(&self, tier: castellan_config::Tier) -> f64 {
        self.tier_multipliers.get(&tier).copied().unwrap_or(1.0)
    }

    /// The chain's view of a candidate: where it goes, its prices, the budget accounts it draws on.
    pub fn target(&self, candidate: &Candidate, principal: &Principal, requested: &str) -> ModelTarget {
        ModelTarget {
            route: candidate.route.clone(),
            provider: candidate.provider.name.clone(),
            upstream_model: candidate.upstream_model.clone(),
            prices: self.prices(&candidate.upstream_model),
            charges: self.charges(principal, requested, Utc::now()),
        }
    }

    /// The budget accounts a request of `principal` for `requested` is charged to, now.
    pub fn charges(&self, principal: &Principal, requested: &str, now: DateTime<Utc>) -> Vec<Charge> {
        let key_id = match &principal.credential {
            Credential::ApiKey { public_id } => Some(public_id.as_str()),
            _ => None,
        };
        self.budgets
            .iter()
            .filter(|budget| budget.applies_to(&principal.subject, principal.tier, key_id, requested))
            .map(|budget| {
                let scope = match budget.per {
                    Some(BudgetPer::User) => principal.subject.clone(),
                    Some(BudgetPer::ApiKey) => key_id.unwrap_or("").to_string(),
                    None => String::new(),
                };
                let period_start = castellan_config::period_start(budget.period, now);
                Charge {
                    key: AccountKey { budget: budget.name.clone(), scope },
                    limit_microdollars: budget.usd_microdollars,
                    period_start,
                    period_end: castellan_config::next_period_start(budget.period, now),
                }
            })
            .collect()
    }

    pub fn budgets(&self) -> &[BudgetSpec] {
        &self.budgets
    }

    /// What `GET /v1/models` lists (before RBAC): every exact route, and the catalog models a glob
    /// route matches and can reach.
    pub fn listed_models(&self) -> Vec<String> {
        let mut listed = BTreeSet::new();
        for (pattern, route) in &self.routes {
            if !self.providers.contains_key(&route.provider) {
                continue;
            }
            if !pattern.contains(['*', '?']) {
                listed.insert(pattern.clone());
                continue;
            }
            let kind = self.providers.get(&route.provider).map(|provider| provider.kind);
            for model in self.catalog.models() {
                let same_kind = kind.is_some_and(|kind| provider_kind_name(kind) == model.provider.as_str());
                if (same_kind || route.model.is_some()) && castellan_config::glob_matches(pattern, &model.id) {
                    // The first matching route decides: list a model only where it resolves here.
                    if self.route(&model.id).is_some_and(|(key, _)| key == pattern) {
                        listed.insert(model.id.clone());
                    }
                }
            }
        }
        listed.into_iter().collect()
    }

    /// The provider names and listed models: the label values of the AI metrics.
    pub fn metric_names(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        (self.providers.keys().cloned().collect(), self.listed_models().into_iter().collect())
    }
}

fn provider_kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::OpenAi => "openai",
        ProviderKind::Gemini => "gemini",
    }
}

/// Whether a row group of `ai_requests` counts toward a budget account: the budget's selectors
/// (tier apart: rows do not carry it, and a tier budget is per user) and the account's scope.
pub fn group_counts_for(budget: &BudgetSpec, scope: &str, group: &castellan_schema::ai_requests::SpendGroup) -> bool {
    let user = group.user_id.as_deref().unwrap_or("");
    let key = group.api_key_id.as_deref().unwrap_or("");
    budget.user.as_ref().is_none_or(|wanted| wanted == user)
        && budget.api_key.as_ref().is_none_or(|wanted| wanted == key)
        && (budget.models.is_empty()
            || budget.models.iter().any(|pattern| castellan_config::glob_matches(pattern, &group.model)))
        && match budget.per {
            Some(BudgetPer::User) => scope == user,
            Some(BudgetPer::ApiKey) => scope == key,
            None => true,
        }
}
