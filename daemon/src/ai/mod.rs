//! The AI provider gateway: Anthropic Messages, OpenAI Chat Completions and Responses, and Gemini
//! endpoints in front of the profile's providers, every request through the governed chain for
//! model calls (`governance::ModelChain`). The wire formats themselves (SSE, usage, translation,
//! prices) are in the `castellan-ai` crate; this module is the HTTP surface over them.
//!
//! - `http`: the handlers; `models_list`: `GET /v1/models`; `errors`: the one error mapping.
//! - `policy`: the profile's providers, routes, prices and budgets, compiled.
//! - `provider`: one upstream attempt (URL, headers, send); `relay`: streams, event by event.

pub mod budget_status;
pub mod errors;
pub mod http;
pub mod lineage;
pub mod models_list;
pub mod policy;
pub mod provider;
pub mod relay;

use std::sync::Arc;

use arc_swap::ArcSwap;
use castellan_actors::AiRequestsHandle;
use castellan_config::Profile;
use castellan_schema::ai_requests::{AiCompletion, NewAiRequest};
use futures_util::future::BoxFuture;
use sea_orm::DatabaseConnection;

use crate::governance::budget_ledger::{BudgetLedger, Charge};
use crate::governance::{
    AdmittedCall, AiRequestSink, ModelCallServices, ModelChain, ModelRefusal, ModelRequest, ModelResolution,
    SnapshotHooks, SpendSource,
};
use policy::AiPolicy;

/// The AI gateway's state: the compiled configuration in force and the chain's services.
pub struct AiGateway {
    policy: Arc<ArcSwap<AiPolicy>>,
    /// Tool uses in relayed answers, so the tool calls that follow join their prompt's trace.
    pub tool_uses: Arc<lineage::ToolUseTraces>,
    services: ModelCallServices,
    gateway: Arc<crate::mcp::gateway::Gateway>,
    /// The writer behind `services.rows`, for the drain at shutdown.
    log: AiRequestsHandle,
}

impl AiGateway {
    pub fn new(
        profile: &Profile,
        db: DatabaseConnection,
        rows: AiRequestsHandle,
        gateway: Arc<crate::mcp::gateway::Gateway>,
    ) -> Result<Arc<AiGateway>, String> {
        let policy = Arc::new(AiPolicy::compile(profile, None)?);
        let (providers, models) = policy.metric_names();
        gateway.metrics.set_configured_models(providers, models);
        let budgets = Arc::new(BudgetLedger::default());
        let policy = Arc::new(ArcSwap::new(policy));
        let spend = Arc::new(DatabaseSpend { db, policy: policy.clone() });
        let services = ModelCallServices {
            rows: Arc::new(rows.clone()),
            budgets,
            spend,
            metrics: gateway.metrics.clone(),
            bus: gateway.bus.clone(),
        };
        Ok(Arc::new(AiGateway { policy, tool_uses: Arc::default(), services, gateway, log: rows }))
    }

    /// Waits until every queued `ai_requests` write (the completions of answered requests) is
    /// committed, or the database refuses; for shutdown.
    pub async fn drain(&self) {
        self.log.drain().await;
    }

    /// The configuration in force; a request keeps the one it loaded.
    pub fn load(&self) -> Arc<AiPolicy> {
        self.policy.load_full()
    }

    /// Applies a reloaded (already validated) profile.
    pub fn apply(&self, profile: &Profile) -> Result<(), String> {
        let next = Arc::new(AiPolicy::compile(profile, Some(&self.policy.load()))?);
        let (providers, models) = next.metric_names();
        self.services.metrics.set_configured_models(providers, models);
        self.policy.store(next);
        Ok(())
    }

    /// The trace a tool call joins: its prompt's, when this daemon relayed the answer that asked for
    /// the tool use, else the one derived from the tool use id.
    pub fn trace_of_tool_use(&self, tool_use_id: &str) -> Option<String> {
        self.tool_uses
            .prompt_trace(tool_use_id, std::time::Instant::now())
            .or_else(|| crate::trace_ids::trace_id_for_tool_use(tool_use_id))
    }

    /// The budget ledger, for `GET /api/v1/budgets`.
    pub fn budgets(&self) -> &BudgetLedger {
        &self.services.budgets
    }

    /// Runs the chain's admission for one request under the snapshot in force.
    pub async fn admit(
        &self,
        ai: &AiPolicy,
        request: &ModelRequest<'_>,
        resolution: ModelResolution,
        operation: http::Operation,
    ) -> Result<AdmittedCall, ModelRefusal> {
        let snapshot = self.gateway.policies.load();
        let hooks = SnapshotHooks { runner: &self.gateway.hooks, chains: &snapshot.hooks };
        let chain = ModelChain {
            policy: &snapshot.policy,
            limits: &snapshot.limits,
            tokens: &ai.tokens,
            tier_multiplier: ai.tier_multiplier(request.principal.tier),
            hooks: &hooks,
            hook_rows: &self.gateway.hook_writer,
            clock: &crate::governance::SystemClock,
            services: &self.services,
        };
        match operation {
            http::Operation::Generate => chain.admit(request, resolution).await,
            http::Operation::CountTokens => chain.admit_unbilled(request, resolution).await,
        }
    }
}

impl AiRequestSink for AiRequestsHandle {
    fn is_available(&self) -> bool {
        AiRequestsHandle::is_available(self)
    }

    fn start(&self, row: NewAiRequest) -> BoxFuture<'_, Result<i64, String>> {
        Box::pin(async move { AiRequestsHandle::start(self, row).await.map_err(|error| error.to_string()) })
    }

    fn complete(&self, id: i64, completion: AiCompletion) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(
            async move { AiRequestsHandle::complete(self, id, completion).await.map_err(|error| error.to_string()) },
        )
    }

    fn finish(&self, row: NewAiRequest, completion: AiCompletion) -> BoxFuture<'_, Result<i64, String>> {
        Box::pin(
            async move { AiRequestsHandle::finish(self, row, completion).await.map_err(|error| error.to_string()) },
        )
    }
}

/// A budget account's spend this period, summed from `ai_requests`.
struct DatabaseSpend {
    db: DatabaseConnection,
    policy: Arc<ArcSwap<AiPolicy>>,
}

impl SpendSource for DatabaseSpend {
    fn spent(&self, charge: &Charge) -> BoxFuture<'_, Result<u64, String>> {
        let charge = charge.clone();
        Box::pin(async move {
            let groups = castellan_schema::ai_requests::spend_since(&self.db, charge.period_start)
                .await
                .map_err(|error| error.to_string())?;
            let policy = self.policy.load();
            let Some(budget) = policy.budgets().iter().find(|budget| budget.name == charge.key.budget) else {
                return Ok(0);
            };
            let total: i64 = groups
                .iter()
                .filter(|group| policy::group_counts_for(budget, &charge.key.scope, group))
                .map(|group| group.cost_microdollars)
                .sum();
            Ok(total.max(0) as u64)
        })
    }
}
