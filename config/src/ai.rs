//! The parsed AI-gateway sections: `providers`, `models`, `pricing` and `budgets`, with the pure
//! helpers the gateway decides with (which route a requested model takes, when a budget period
//! starts). Nothing here reads the clock: the time comes in as a parameter.

use std::time::Duration;

use chrono::{DateTime, Datelike, Days, Months, NaiveTime, Utc};

use crate::model::Profile;
use crate::names::{glob_matches, is_model_glob};
use crate::template::Template;
use crate::tier::Tier;

/// `connect_timeout` of a provider when not given.
pub const DEFAULT_PROVIDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `timeout` of a provider when not given: a long generation may stream for minutes.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(600);
/// `rate_limits.tokens_per_minute` when not given.
pub const DEFAULT_TOKENS_PER_MINUTE: u64 = 1_000_000;
/// The longest budget name.
pub const BUDGET_NAME_MAX_LEN: usize = 64;

/// The wire format a provider speaks, which also fixes how its key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderKind {
    /// Anthropic Messages (`x-api-key`).
    Anthropic,
    /// OpenAI Chat Completions and Responses (`Authorization: Bearer`).
    OpenAi,
    /// Google Gemini (`x-goog-api-key`).
    Gemini,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [ProviderKind::Anthropic, ProviderKind::OpenAi, ProviderKind::Gemini];

    /// The name in profiles (`kind:`), also the provider name that implies the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Gemini => "gemini",
        }
    }

    pub fn parse(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The `base_url` when not given, in each SDK's convention: Anthropic and Gemini without a
    /// version path (the gateway adds `/v1/...`, `/v1beta/...`), OpenAI with `/v1`.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
        }
    }
}

/// One entry of `providers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    /// `kind`: the provider's wire format. Defaults to the entry's name when that is `anthropic`,
    /// `openai` or `gemini`; required otherwise.
    pub kind: ProviderKind,
    /// The extension's provider kind when `kind` names one (`kind` is then the format it speaks).
    pub extension_kind: Option<String>,
    /// `base_url`: an http(s) URL without secrets, query or fragment, kept without a trailing `/`.
    /// Defaults to [`ProviderKind::default_base_url`].
    pub base_url: String,
    /// `api_key`: the provider's key, usually `${secret:NAME}`; sent the way `kind` sends keys.
    /// Required.
    pub api_key: Template,
    /// `headers`: extra request headers (name to template; secrets allowed). Empty by default.
    pub headers: std::collections::BTreeMap<String, Template>,
    /// `connect_timeout`: how long connecting may take. Default 10 s.
    pub connect_timeout: Duration,
    /// `timeout`: how long the whole request may take, streaming included. Default 600 s.
    pub timeout: Duration,
}

/// One entry of `models`: where requests for the model names its key matches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// `provider`: the name of an entry of `providers`. Required.
    pub provider: String,
    /// `model`: the upstream model name sent to the provider. `None`: the name the client asked for.
    pub model: Option<String>,
    /// `fallbacks`: model names (no globs) tried in order when this route fails with a connection
    /// error, a timeout, 429 or 5xx. Each is routed like a request for it ([`Profile::route`]: the
    /// first matching key, whose `provider` and `model` apply) and reaches a route other than this
    /// one. Empty by default.
    pub fallbacks: Vec<String>,
}

impl ModelRoute {
    /// The model name sent upstream for a request of `requested`.
    pub fn upstream_model<'a>(&'a self, requested: &'a str) -> &'a str {
        self.model.as_deref().unwrap_or(requested)
    }
}

/// `budgets[].period`: calendar periods in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetPeriod {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the first of the month, 00:00 UTC.
    Month,
}

impl BudgetPeriod {
    pub const ALL: [BudgetPeriod; 3] = [BudgetPeriod::Day, BudgetPeriod::Week, BudgetPeriod::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Week => "week",
            BudgetPeriod::Month => "month",
        }
    }
}

/// `budgets[].per`: what gets a pool of its own among the requests a budget matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetPer {
    /// One pool per user (subject).
    User,
    /// One pool per API key; requests made without an API key belong to none of them.
    ApiKey,
}

impl BudgetPer {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPer::User => "user",
            BudgetPer::ApiKey => "api_key",
        }
    }
}

/// One entry of `budgets`. A request is charged to every budget whose selectors all match it; over
/// any of them it is refused (429 naming the budget) until the period turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    /// `name`: `[a-z0-9-]{1,64}`, unique; errors and `GET /api/v1/budgets` cite it.
    pub name: String,
    /// `usd`: the limit per period and pool, in integer microdollars (exact: at most 6 decimals).
    pub usd_microdollars: u64,
    /// `period`: `day`, `week` (from Monday) or `month`, in UTC.
    pub period: BudgetPeriod,
    /// `per`: a pool per user or per API key; `None`: one pool shared by every matching request.
    /// Default `user` when `tier` is given, else `None`.
    pub per: Option<BudgetPer>,
    /// `user`: only requests of this subject.
    pub user: Option<String>,
    /// `tier`: only requests of principals of exactly this tier.
    pub tier: Option<Tier>,
    /// `api_key`: only requests made with the API key of this public id.
    pub api_key: Option<String>,
    /// `models`: only requests for a model name (as asked) matching one of these globs
    /// ([`glob_matches`]). Empty: every model.
    pub models: Vec<String>,
}

impl BudgetSpec {
    /// Whether every selector the budget names matches a request.
    pub fn applies_to(&self, user: &str, tier: Tier, api_key: Option<&str>, requested_model: &str) -> bool {
        self.user.as_deref().is_none_or(|wanted| wanted == user)
            && self.tier.is_none_or(|wanted| wanted == tier)
            && self.api_key.as_deref().is_none_or(|wanted| Some(wanted) == api_key)
            && (self.per != Some(BudgetPer::ApiKey) || api_key.is_some())
            && (self.models.is_empty() || self.models.iter().any(|pattern| glob_matches(pattern, requested_model)))
    }
}

/// The start of the budget period that contains `now`.
pub fn period_start(period: BudgetPeriod, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.date_naive();
    let first_day = match period {
        BudgetPeriod::Day => Some(today),
        BudgetPeriod::Week => today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday()))),
        BudgetPeriod::Month => today.with_day(1),
    };
    // Only dates at the very edge of chrono's range have no period start; the day itself is then
    // the closest honest answer.
    first_day.unwrap_or(today).and_time(NaiveTime::MIN).and_utc()
}

/// The start of the period after the one that contains `now`: when a spent budget is available
/// again (for `Retry-After`).
pub fn next_period_start(period: BudgetPeriod, now: DateTime<Utc>) -> DateTime<Utc> {
    let start = period_start(period, now).date_naive();
    let next = match period {
        BudgetPeriod::Day => start.checked_add_days(Days::new(1)),
        BudgetPeriod::Week => start.checked_add_days(Days::new(7)),
        BudgetPeriod::Month => start.checked_add_months(Months::new(1)),
    };
    next.map_or(DateTime::<Utc>::MAX_UTC, |date| date.and_time(NaiveTime::MIN).and_utc())
}

impl Profile {
    /// The route a request for `requested` takes: the first key of `models`, in file order, that
    /// matches it ([`glob_matches`]), with the key.
    pub fn route(&self, requested: &str) -> Option<(&str, &ModelRoute)> {
        self.models
            .iter()
            .find(|(pattern, _)| glob_matches(pattern, requested))
            .map(|(key, route)| (key.as_str(), route))
    }

    /// The upstream model names whose price is known from the profile alone: the `model` of every
    /// route that sets one, and the key of every exact route that does not. `profile check` warns
    /// about those with neither a `pricing` entry nor a catalog price (the catalog lives in
    /// `castellan_ai`, so the lookup is the caller's). Sorted, each once, without those `pricing`
    /// already covers.
    pub fn priced_models_to_check(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .models
            .iter()
            .filter_map(|(key, route)| match &route.model {
                Some(model) => Some(model.as_str()),
                None if !is_model_glob(key) => Some(key.as_str()),
                None => None,
            })
            .filter(|name| !self.pricing.contains_key(*name))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}
