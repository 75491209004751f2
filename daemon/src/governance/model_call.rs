//! The chain for model requests (the AI gateway's surface): the same steps as a tool call, in the
//! same order, with the model-specific admission (token limit, budgets) and the row written twice
//! (`started` before the request goes upstream, completed when it ends).
//!
//! [`ModelChain::admit`] runs resolve, rate_limit, rbac, budgets, pre_hooks (UserPromptSubmit),
//! audit_health and the started row; a refusal at any step is written as a finished row and comes
//! back as a [`ModelRefusal`]. What it admits is an [`AdmittedCall`]: the surface executes it
//! (streaming or not) and ends it with [`AdmittedCall::finish`], which settles the token limit and
//! the budgets with the real usage and completes the row. Dropping an admitted call without
//! finishing it (the client went away) finishes it as `client_closed` on a spawned task.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_actors::{Decision, Event, EventBus, Metrics, PolicySnapshot};
use castellan_ai::cost::{Prices, Usage, cost_microdollars};
use castellan_ai::format::WireFormat;
use castellan_config::HookEvent;
use castellan_schema::ai_requests::{AiCompletion, AiRequestStatus, NewAiRequest};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::json;

use super::budget_ledger::{BudgetLedger, Charge, Reservation};
use super::ports::{Clock, HookRunner};
use super::rate_limit::{Admission, Limits};
use super::token_limit::{TokenLimits, TokenReservation};
use crate::hooks::HookCall;
use crate::identity::{Credential, Principal};

/// The steps of [`ModelChain::admit`] and [`AdmittedCall::finish`], in order: the tool chain's
/// steps with `budget` after `rbac` and the row written at `audit_start` and `audit`.
pub const MODEL_STEPS: [&str; 11] = [
    "authenticate",
    "resolve",
    "rate_limit",
    "rbac",
    "budget",
    "pre_hooks",
    "audit_health",
    "audit_start",
    "execute",
    "redact",
    "audit",
];

/// One model request, parsed by its surface.
pub struct ModelRequest<'a> {
    pub principal: &'a Principal,
    pub client: IpAddr,
    pub endpoint: WireFormat,
    /// The model as the client named it.
    pub requested_model: &'a str,
    pub streamed: bool,
    pub session_id: Option<&'a str>,
    pub trace_id: &'a str,
    /// The newest user message, for `UserPromptSubmit` hooks.
    pub newest_user_text: Option<&'a str>,
    /// Input tokens counted locally (an over-estimate) plus the output the request may produce.
    pub estimated_input_tokens: u64,
    pub max_output_tokens: u64,
}

/// Where the model's route sends the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTarget {
    /// The `models` key that matched.
    pub route: String,
    pub provider: String,
    pub upstream_model: String,
    /// None when neither the catalog nor `pricing` has the upstream model: its rows carry no cost.
    pub prices: Option<Prices>,
    /// The budget accounts this request is charged to.
    pub charges: Vec<Charge>,
}

/// What the surface found the model name to be.
pub enum ModelResolution {
    Found(ModelTarget),
    /// No route for the name (refused once the limits are charged).
    Unknown(String),
    /// The body is malformed or cannot be translated to the route's provider.
    Invalid {
        target: Option<ModelTarget>,
        message: String,
    },
}

/// A request refused before it went upstream; its row is written.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelRefusal {
    Unknown(String),
    Invalid(String),
    Forbidden(String),
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    BudgetExceeded {
        message: String,
        retry_after: Duration,
    },
    /// The row could not be written, or the database is known to be down: nothing went upstream.
    AuditUnavailable(String),
}

impl ModelRefusal {
    fn status(&self) -> AiRequestStatus {
        match self {
            ModelRefusal::Unknown(_) | ModelRefusal::Invalid(_) | ModelRefusal::AuditUnavailable(_) => {
                AiRequestStatus::Failed
            }
            ModelRefusal::Forbidden(_) => AiRequestStatus::Denied,
            ModelRefusal::RateLimited { .. } => AiRequestStatus::RateLimited,
            ModelRefusal::BudgetExceeded { .. } => AiRequestStatus::BudgetExceeded,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ModelRefusal::Unknown(message)
            | ModelRefusal::Invalid(message)
            | ModelRefusal::Forbidden(message)
            | ModelRefusal::AuditUnavailable(message)
            | ModelRefusal::RateLimited { message, .. }
            | ModelRefusal::BudgetExceeded { message, .. } => message,
        }
    }
}

/// Where AI rows go; `start` and `finish` return once the row is committed.
pub trait AiRequestSink: Send + Sync {
    fn is_available(&self) -> bool;
    fn start(&self, row: NewAiRequest) -> BoxFuture<'_, Result<i64, String>>;
    fn complete(&self, id: i64, completion: AiCompletion) -> BoxFuture<'_, Result<(), String>>;
    fn finish(&self, row: NewAiRequest, completion: AiCompletion) -> BoxFuture<'_, Result<i64, String>>;
}

/// Where a budget account's spend this period comes from when this process has no figure yet.
pub trait SpendSource: Send + Sync {
    fn spent(&self, charge: &Charge) -> BoxFuture<'_, Result<u64, String>>;
}

/// The long-lived collaborators: they outlive a request (a stream ends after its handler).
#[derive(Clone)]
pub struct ModelCallServices {
    pub rows: Arc<dyn AiRequestSink>,
    pub budgets: Arc<BudgetLedger>,
    pub spend: Arc<dyn SpendSource>,
    pub metrics: Metrics,
    pub bus: EventBus,
}

/// The chain for one model request: the snapshot in force and the services.
pub struct ModelChain<'a> {
    pub policy: &'a PolicySnapshot,
    pub limits: &'a Limits,
    pub tokens: &'a Arc<TokenLimits>,
    /// The tier multiplier of `rate_limits.tier_multipliers` for this caller's tier.
    pub tier_multiplier: f64,
    pub hooks: &'a dyn HookRunner,
    pub hook_rows: &'a crate::hooks::writer::HookWriter,
    pub clock: &'a dyn Clock,
    pub services: &'a ModelCallServices,
}

impl ModelChain<'_> {
    /// Runs every step up to the started row; the call goes upstream only when this returns Ok.
    #[tracing::instrument(skip_all, fields(trace_id = %request.trace_id, user = %request.principal.subject, model = %request.requested_model))]
    pub async fn admit(
        &self,
        request: &ModelRequest<'_>,
        resolution: ModelResolution,
    ) -> Result<AdmittedCall, ModelRefusal> {
        let started_at = self.clock.now();
        let row = |target: Option<&ModelTarget>| new_row(request, target, started_at);
        // resolve
        let (target, refusal) = match resolution {
            ModelResolution::Found(target) => (Some(target), None),
            ModelResolution::Unknown(message) => (None, Some(ModelRefusal::Unknown(message))),
            ModelResolution::Invalid { target, message } => (target, Some(ModelRefusal::Invalid(message))),
        };
        // rate_limit: before any refusal, so guessing model names spends the caller's rate too.
        if let Admission::Limited { policy, retry_after } =
            self.limits.check(castellan_config::RateClass::AiRequest, request.principal, request.client)
        {
            let message = format!("rate limited by {}: retry in {} ms", policy.limit, retry_after.as_millis());
            return Err(self.refuse(row(target.as_ref()), ModelRefusal::RateLimited { message, retry_after }).await);
        }
        let target = match (target, refusal) {
            (Some(target), None) => target,
            (target, Some(refusal)) => return Err(self.refuse(row(target.as_ref()), refusal).await),
            (None, None) => return Err(self.refuse(row(None), ModelRefusal::Unknown("unknown model".into())).await),
        };
        // rbac
        if let Decision::Deny { rule } = self.policy.decide_model(request.principal.tier, request.requested_model) {
            let message = format!("forbidden: the model '{}' is denied by rule '{rule}'", request.requested_model);
            return Err(self.refuse(row(Some(&target)), ModelRefusal::Forbidden(message)).await);
        }
        // budget, in tokens: a minute's worth per principal (rate_limits.tokens_per_minute), corrected at the end.
        let estimate = request.estimated_input_tokens.saturating_add(request.max_output_tokens);
        let tokens = match self.tokens.reserve(
            &token_key(request.principal),
            self.tier_multiplier,
            estimate,
            Instant::now(),
        ) {
            Ok(reservation) => reservation,
            Err(retry_after) => {
                let message = format!(
                    "rate limited by tokens_per_minute ({} for this tier): this request may use {estimate} tokens; retry in {} ms",
                    (self.tokens.per_minute() as f64 * self.tier_multiplier) as u64,
                    retry_after.as_millis()
                );
                return Err(self.refuse(row(Some(&target)), ModelRefusal::RateLimited { message, retry_after }).await);
            }
        };
        // ... and in money: the estimate reserved from every matching budget account.
        let budget = match self.reserve_budget(request, &target).await {
            Ok(reservation) => reservation,
            Err(refusal) => {
                self.tokens.settle(tokens, 0, Instant::now());
                return Err(self.refuse(row(Some(&target)), refusal).await);
            }
        };
        let release = |budget: Reservation, tokens: TokenReservation| {
            self.services.budgets.settle(budget, 0);
            self.tokens.settle(tokens, 0, Instant::now());
        };
        // pre_hooks
        if let Err(refusal) = self.user_prompt_submit(request, &target).await {
            release(budget, tokens);
            return Err(self.refuse(row(Some(&target)), refusal).await);
        }
        // audit_health: nothing goes upstream unrecorded.
        if !self.services.rows.is_available() {
            release(budget, tokens);
            let refusal = ModelRefusal::AuditUnavailable(
                "audit unavailable: the request was refused and did not go upstream".into(),
            );
            return Err(self.refuse(row(Some(&target)), refusal).await);
        }
        // audit_start
        let id = match self.services.rows.start(row(Some(&target))).await {
            Ok(id) => id,
            Err(error) => {
                release(budget, tokens);
                tracing::error!(trace_id = request.trace_id, %error, "the started row could not be committed; nothing went upstream");
                return Err(ModelRefusal::AuditUnavailable(
                    "audit unavailable: the request could not be recorded and did not go upstream".into(),
                ));
            }
        };
        Ok(AdmittedCall {
            id: Some(id),
            user: request.principal.subject.clone(),
            endpoint: request.endpoint,
            requested_model: request.requested_model.to_string(),
            trace_id: request.trace_id.to_string(),
            target,
            budget: Some(budget),
            tokens: Some(tokens),
            token_limits: self.tokens.clone(),
            started: Instant::now(),
            services: self.services.clone(),
        })
    }

    /// Admission of a request that costs nothing and writes no row (counting tokens): rate limit
    /// and RBAC only, the same checks as a billed request's.
    pub async fn admit_unbilled(
        &self,
        request: &ModelRequest<'_>,
        resolution: ModelResolution,
    ) -> Result<AdmittedCall, ModelRefusal> {
        if let Admission::Limited { policy, retry_after } =
            self.limits.check(castellan_config::RateClass::AiRequest, request.principal, request.client)
        {
            let message = format!("rate limited by {}: retry in {} ms", policy.limit, retry_after.as_millis());
            return Err(ModelRefusal::RateLimited { message, retry_after });
        }
        let target = match resolution {
            ModelResolution::Found(target) => target,
            ModelResolution::Unknown(message) => return Err(ModelRefusal::Unknown(message)),
            ModelResolution::Invalid { message, .. } => return Err(ModelRefusal::Invalid(message)),
        };
        if let Decision::Deny { rule } = self.policy.decide_model(request.principal.tier, request.requested_model) {
            return Err(ModelRefusal::Forbidden(format!(
                "forbidden: the model '{}' is denied by rule '{rule}'",
                request.requested_model
            )));
        }
        Ok(AdmittedCall {
            id: None,
            user: request.principal.subject.clone(),
            endpoint: request.endpoint,
            requested_model: request.requested_model.to_string(),
            trace_id: request.trace_id.to_string(),
            target,
            budget: None,
            tokens: None,
            token_limits: self.tokens.clone(),
            started: Instant::now(),
            services: self.services.clone(),
        })
    }

    async fn reserve_budget(
        &self,
        request: &ModelRequest<'_>,
        target: &ModelTarget,
    ) -> Result<Reservation, ModelRefusal> {
        if target.charges.is_empty() {
            return Ok(Reservation::default());
        }
        for charge in self.services.budgets.missing(&target.charges) {
            match self.services.spend.spent(charge).await {
                Ok(spent) => self.services.budgets.load_if_absent(charge, spent),
                Err(error) => {
                    tracing::error!(trace_id = request.trace_id, budget = %charge.key.budget, %error, "budget spend could not be read");
                    return Err(ModelRefusal::AuditUnavailable(format!(
                        "audit unavailable: the spend of budget '{}' could not be read; the request did not go upstream",
                        charge.key.budget
                    )));
                }
            }
        }
        // The most this request may cost: its input estimate and all the output it asked for.
        let estimate = target.prices.as_ref().map_or(0, |prices| {
            cost_microdollars(
                prices,
                &Usage { input: request.estimated_input_tokens, output: request.max_output_tokens, ..Usage::default() },
            )
        });
        self.services.budgets.reserve(&target.charges, estimate).map_err(|exceeded| {
            let now = self.clock.now();
            let retry_after = (exceeded.period_end - now).to_std().unwrap_or(Duration::from_secs(1));
            ModelRefusal::BudgetExceeded {
                message: format!(
                    "over budget '{}': {} of {} USD spent this period and {} held by requests in flight; this request may cost up to {} (lower max_tokens to ask for less); the budget resets at {}",
                    exceeded.budget,
                    usd(exceeded.spent_microdollars),
                    usd(exceeded.limit_microdollars),
                    usd(exceeded.reserved_microdollars),
                    usd(exceeded.estimate_microdollars),
                    exceeded.period_end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                retry_after,
            }
        })
    }

    /// UserPromptSubmit on the newest user message; a denial refuses the request.
    async fn user_prompt_submit(&self, request: &ModelRequest<'_>, target: &ModelTarget) -> Result<(), ModelRefusal> {
        let Some(prompt) = request.newest_user_text else { return Ok(()) };
        if !self.hooks.has(HookEvent::UserPromptSubmit) {
            return Ok(());
        }
        let mut input = json!({
            "hook_event_name": HookEvent::UserPromptSubmit.as_str(),
            "prompt": prompt,
            "model": request.requested_model,
        });
        if let Some(session) = request.session_id {
            input["session_id"] = json!(session);
        }
        let call = HookCall {
            event: HookEvent::UserPromptSubmit,
            server: Some(&target.provider),
            tool: None,
            tier: request.principal.tier,
            subject: &request.principal.subject,
            trace_id: request.trace_id,
            input,
        };
        let outcome = self.hooks.run(&call).await;
        self.hook_rows.record(outcome.rows(&call)).await;
        match outcome.denial() {
            Some(denial) => {
                tracing::info!(trace_id = request.trace_id, "prompt denied by a hook");
                Err(ModelRefusal::Forbidden(format!("forbidden: the prompt was denied by hook {denial}")))
            }
            None => Ok(()),
        }
    }

    /// Writes the row of a refused request and hands the refusal back.
    async fn refuse(&self, row: NewAiRequest, refusal: ModelRefusal) -> ModelRefusal {
        let status = refusal.status();
        let completion = AiCompletion {
            status,
            error_message: Some(refusal.message().to_string()),
            ..completion_at(self.clock.now(), 0)
        };
        let provider = row.provider.clone();
        let model = row.model.clone();
        let trace_id = row.trace_id.clone();
        let user = row.user_id.clone();
        let recorded = self.services.rows.finish(row, completion).await;
        publish(self.services, (&provider, &model), status, user, trace_id, (None, None));
        match recorded {
            Ok(_) => refusal,
            Err(error) => {
                tracing::error!(%error, "the row of a refused AI request could not be committed");
                refusal
            }
        }
    }
}

/// A request admitted by the chain, its row `started`: the surface executes it and finishes it.
pub struct AdmittedCall {
    /// The started row; none for an unbilled request (counting tokens), which writes no row.
    id: Option<i64>,
    user: String,
    pub endpoint: WireFormat,
    pub requested_model: String,
    pub trace_id: String,
    pub target: ModelTarget,
    budget: Option<Reservation>,
    tokens: Option<TokenReservation>,
    token_limits: Arc<TokenLimits>,
    started: Instant,
    services: ModelCallServices,
}

/// How an admitted request ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub status: AiRequestStatus,
    pub usage: Option<Usage>,
    /// Time to the first streamed output, for streams.
    pub ttft: Option<Duration>,
    pub error_message: Option<String>,
    /// The provider and upstream model that answered, when a fallback did.
    pub answered_by: Option<(String, String, Option<Prices>)>,
}

impl AdmittedCall {
    /// Settles the token limit and the budgets with the real usage and completes the row.
    pub async fn finish(mut self, ending: Ending) -> Result<(), String> {
        let Some(id) = self.id.take() else { return Ok(()) };
        let completion = self.settle(&ending);
        let rows = self.services.rows.clone();
        rows.complete(id, completion).await
    }

    /// Settles now and completes the row on a task: for answers that need not wait for the commit.
    pub fn finish_in_background(mut self, ending: Ending) {
        let Some(id) = self.id.take() else { return };
        let completion = self.settle(&ending);
        let rows = self.services.rows.clone();
        tokio::spawn(async move {
            if let Err(error) = rows.complete(id, completion).await {
                tracing::error!(%error, "the row of an AI request could not be completed");
            }
        });
    }

    fn settle(&mut self, ending: &Ending) -> AiCompletion {
        let (provider, upstream_model, prices) = match &ending.answered_by {
            Some((provider, model, prices)) => (provider.clone(), model.clone(), *prices),
            None => (self.target.provider.clone(), self.target.upstream_model.clone(), self.target.prices),
        };
        let usage = ending.usage.unwrap_or_default();
        let cost = prices.as_ref().zip(ending.usage.as_ref()).map(|(prices, usage)| cost_microdollars(prices, usage));
        if let Some(budget) = self.budget.take() {
            // A request that went upstream but whose usage is unknown (a stream cut short, a
            // client that turned stream usage off) is charged what it reserved: fail closed.
            let charged = match (cost, ending.usage) {
                (Some(cost), _) => cost,
                (None, None) if went_upstream(ending.status) => budget.amount(),
                (None, _) => 0,
            };
            self.services.budgets.settle(budget, charged);
        }
        if let Some(tokens) = self.tokens.take() {
            let used = usage.input + usage.output + usage.cache_read + usage.cache_write_5m + usage.cache_write_1h;
            self.token_limits.settle(tokens, used, Instant::now());
        }
        let latency = self.started.elapsed();
        let status = ending.status;
        self.services.metrics.ai_request(
            &provider,
            &self.requested_model,
            status.as_str(),
            ending.usage.as_ref(),
            cost,
        );
        publish(
            &self.services,
            (&provider, &self.requested_model),
            status,
            Some(self.user.clone()),
            self.trace_id.clone(),
            (Some(latency.as_millis() as i64), cost),
        );
        tracing::info!(
            trace_id = %self.trace_id,
            user = %self.user,
            provider = %provider,
            model = %self.requested_model,
            upstream_model = %upstream_model,
            status = status.as_str(),
            input_tokens = usage.input,
            output_tokens = usage.output,
            cost_microdollars = cost,
            latency_ms = latency.as_millis() as u64,
            "governed model request"
        );
        AiCompletion {
            provider: Some(provider),
            upstream_model: Some(upstream_model),
            input_tokens: ending.usage.map(|usage| usage.input as i64),
            output_tokens: ending.usage.map(|usage| usage.output as i64),
            cache_read_tokens: ending.usage.map(|usage| usage.cache_read as i64),
            cache_write_tokens: ending.usage.map(|usage| (usage.cache_write_5m + usage.cache_write_1h) as i64),
            cost_microdollars: cost.map(|cost| cost as i64),
            latency_ms: Some(latency.as_millis() as i64),
            ttft_ms: ending.ttft.map(|ttft| ttft.as_millis() as i64),
            status,
            error_message: ending.error_message.clone(),
            completed_at: Utc::now(),
        }
    }
}

impl Drop for AdmittedCall {
    /// A call dropped unfinished: the client went away (the stream's body was dropped), so the
    /// upstream request is gone with it. The row is completed as `client_closed` on a task.
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let ending = Ending {
            status: AiRequestStatus::ClientClosed,
            usage: None,
            ttft: None,
            error_message: Some("the client closed the connection before the answer ended".into()),
            answered_by: None,
        };
        let completion = self.settle(&ending);
        let rows = self.services.rows.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = rows.complete(id, completion).await {
                    tracing::error!(%error, "the row of a closed AI request could not be completed");
                }
            });
        }
    }
}

/// Whether a request that ended this way may have produced output upstream.
fn went_upstream(status: AiRequestStatus) -> bool {
    matches!(status, AiRequestStatus::Success | AiRequestStatus::ClientClosed)
}

/// The token bucket's key: the subject, or for anonymous callers one shared bucket.
fn token_key(principal: &Principal) -> String {
    principal.subject.clone()
}

fn new_row(request: &ModelRequest<'_>, target: Option<&ModelTarget>, started_at: DateTime<Utc>) -> NewAiRequest {
    NewAiRequest {
        user_id: Some(request.principal.subject.clone()),
        api_key_id: match &request.principal.credential {
            Credential::ApiKey { public_id } => Some(public_id.clone()),
            _ => None,
        },
        session_id: request.session_id.map(str::to_string),
        trace_id: request.trace_id.to_string(),
        endpoint: request.endpoint.as_str().to_string(),
        provider: target.map(|target| target.provider.clone()).unwrap_or_default(),
        model: request.requested_model.to_string(),
        upstream_model: target.map(|target| target.upstream_model.clone()).unwrap_or_default(),
        streamed: request.streamed,
        started_at,
    }
}

fn completion_at(completed_at: DateTime<Utc>, latency_ms: i64) -> AiCompletion {
    AiCompletion {
        provider: None,
        upstream_model: None,
        input_tokens: None,
        output_tokens: None,
        cache_read_tokens: None,
        cache_write_tokens: None,
        cost_microdollars: None,
        latency_ms: Some(latency_ms),
        ttft_ms: None,
        status: AiRequestStatus::Failed,
        error_message: None,
        completed_at,
    }
}

fn publish(
    services: &ModelCallServices,
    (provider, model): (&str, &str),
    status: AiRequestStatus,
    user: Option<String>,
    trace_id: String,
    (latency_ms, cost): (Option<i64>, Option<u64>),
) {
    services.bus.publish(Event::AiRequest {
        provider: provider.to_string(),
        model: model.to_string(),
        status: status.as_str().to_string(),
        user,
        trace_id,
        latency_ms,
        cost_microdollars: cost,
    });
}

/// Microdollars as USD with six decimals, exactly.
pub fn usd(microdollars: u64) -> String {
    format!("{}.{:06}", microdollars / 1_000_000, microdollars % 1_000_000)
}
