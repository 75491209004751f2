//! `castellan budgets`: every budget of the profile with its current period, spent and remaining,
//! summed from `ai_requests` (requests still in flight are not counted until they end).

use std::process::ExitCode;

use super::terminal::{escape, json_line};
use super::{GlobalArgs, load_profile};
use crate::governance::usd;

pub async fn run(global: &GlobalArgs, json: bool) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    if profile.budgets.is_empty() {
        if !json {
            println!("no budgets in the profile");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let db = super::database::open_existing(global, &profile).await?;
    let statuses = crate::ai::budget_status::budget_status(&db, &profile.budgets, None, chrono::Utc::now())
        .await
        .map_err(|error| format!("reading spend failed: {error}"))?;
    if json {
        for status in &statuses {
            let value = serde_json::to_value(status).map_err(|error| error.to_string())?;
            println!("{}", json_line(&value));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<6} {:<20} {:>14} {:>14} {:>14}  RESETS",
        "BUDGET", "PERIOD", "FOR", "LIMIT USD", "SPENT USD", "LEFT USD"
    );
    for status in &statuses {
        let scope = if status.scope.is_empty() { "(all)".to_string() } else { escape(&status.scope) };
        println!(
            "{:<24} {:<6} {:<20} {:>14} {:>14} {:>14}  {}",
            escape(&status.budget),
            status.period,
            scope,
            usd(status.limit_microdollars),
            usd(status.spent_microdollars),
            usd(status.remaining_microdollars),
            status.resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    Ok(ExitCode::SUCCESS)
}
