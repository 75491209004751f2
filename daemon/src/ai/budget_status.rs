//! Every budget with its current period, spent and remaining, from `ai_requests`: what
//! `castellan budgets` prints and `GET /api/v1/budgets` returns. Spend is summed from the rows the
//! database holds (requests in flight are not in it yet; the daemon's ledger also holds their
//! reservations, which `reserved` shows when the daemon answers).

use std::collections::{BTreeMap, HashMap};

use castellan_config::{BudgetPer, BudgetPeriod, BudgetSpec, Tier};
use castellan_schema::ai_requests::SpendGroup;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use crate::governance::budget_ledger::{AccountKey, BudgetLedger};

/// One budget account now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetStatus {
    pub budget: String,
    pub period: &'static str,
    /// Whose account: a user or an API key id for `per` budgets, empty for a shared pool.
    pub scope: String,
    pub period_start: DateTime<Utc>,
    pub resets_at: DateTime<Utc>,
    pub limit_microdollars: u64,
    pub spent_microdollars: u64,
    /// Held by requests in flight (only known to the daemon that holds them).
    pub reserved_microdollars: u64,
    pub remaining_microdollars: u64,
}

pub fn period_name(period: BudgetPeriod) -> &'static str {
    match period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Week => "week",
        BudgetPeriod::Month => "month",
    }
}

/// The accounts of every budget now, from the database (and the ledger's reservations, if given).
pub async fn budget_status(
    db: &DatabaseConnection,
    budgets: &[BudgetSpec],
    ledger: Option<&BudgetLedger>,
    now: DateTime<Utc>,
) -> Result<Vec<BudgetStatus>, castellan_schema::DbError> {
    let mut groups_by_start: BTreeMap<DateTime<Utc>, Vec<SpendGroup>> = BTreeMap::new();
    for budget in budgets {
        let start = castellan_config::period_start(budget.period, now);
        if let std::collections::btree_map::Entry::Vacant(entry) = groups_by_start.entry(start) {
            entry.insert(castellan_schema::ai_requests::spend_since(db, start).await?);
        }
    }
    let tiers: HashMap<String, Tier> = if budgets.iter().any(|budget| budget.tier.is_some()) {
        castellan_schema::users::list(db)
            .await?
            .into_iter()
            .filter_map(|user| Tier::parse(&user.tier).map(|tier| (user.name, tier)))
            .collect()
    } else {
        HashMap::new()
    };
    let mut statuses = Vec::new();
    for budget in budgets {
        let start = castellan_config::period_start(budget.period, now);
        let groups = groups_by_start.get(&start).map(Vec::as_slice).unwrap_or_default();
        statuses.extend(accounts(
            budget,
            groups,
            &tiers,
            start,
            castellan_config::next_period_start(budget.period, now),
            ledger,
        ));
    }
    Ok(statuses)
}

/// One budget's accounts: a shared pool is always shown; per-user and per-key accounts are those
/// with spend this period (and the named user's, for a budget that names one).
fn accounts(
    budget: &BudgetSpec,
    groups: &[SpendGroup],
    tiers: &HashMap<String, Tier>,
    period_start: DateTime<Utc>,
    resets_at: DateTime<Utc>,
    ledger: Option<&BudgetLedger>,
) -> Vec<BudgetStatus> {
    let mut spent: BTreeMap<String, u64> = BTreeMap::new();
    if budget.per.is_none() {
        spent.insert(String::new(), 0);
    }
    if let (Some(BudgetPer::User), Some(user)) = (budget.per, &budget.user) {
        spent.insert(user.clone(), 0);
    }
    for group in groups {
        let user = group.user_id.as_deref().unwrap_or("");
        if budget.tier.is_some_and(|tier| tiers.get(user) != Some(&tier)) {
            continue;
        }
        let scope = match budget.per {
            Some(BudgetPer::User) => user.to_string(),
            Some(BudgetPer::ApiKey) => group.api_key_id.clone().unwrap_or_default(),
            None => String::new(),
        };
        if !super::policy::group_counts_for(budget, &scope, group) {
            continue;
        }
        *spent.entry(scope).or_default() += group.cost_microdollars.max(0) as u64;
    }
    spent
        .into_iter()
        .map(|(scope, database_spent)| {
            let key = AccountKey { budget: budget.name.clone(), scope: scope.clone() };
            // The daemon's ledger knows this period's spend at least as well as the database
            // (it books a cost before the row is committed) and the reservations in flight.
            let (spent, reserved) = ledger
                .and_then(|ledger| ledger.figures(&key, period_start))
                .map_or((database_spent, 0), |(spent, reserved)| (spent.max(database_spent), reserved));
            BudgetStatus {
                budget: budget.name.clone(),
                period: period_name(budget.period),
                scope,
                period_start,
                resets_at,
                limit_microdollars: budget.usd_microdollars,
                spent_microdollars: spent,
                reserved_microdollars: reserved,
                remaining_microdollars: budget.usd_microdollars.saturating_sub(spent + reserved),
            }
        })
        .collect()
}
