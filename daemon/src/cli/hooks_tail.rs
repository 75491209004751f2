//! `castellan hooks tail`: the hook decisions in `hook_events`, built like `audit tail`.

use std::process::ExitCode;

use castellan_config::HookEvent;
use clap::Subcommand;
use serde_json::json;

use super::terminal::{escape, json_line};
use super::{GlobalArgs, load_profile};

#[derive(Subcommand, Debug)]
pub enum HooksCommand {
    /// Print recent hook decisions, oldest first: time, id, event, decision, handler, user, server,
    /// tool, trace id and reason (control characters escaped). `--json`: one JSON object per line.
    Tail {
        /// Keep printing new decisions as they are stored (polls every second).
        #[arg(long)]
        follow: bool,
        /// Only this event: PreToolUse, PostToolUse, PostToolUseFailure, UserPromptSubmit,
        /// Notification, Stop, SubagentStart, SubagentStop, SessionStart or SessionEnd.
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        json: bool,
        /// How many rows to show before following.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

pub async fn run(global: &GlobalArgs, command: HooksCommand) -> Result<ExitCode, String> {
    let HooksCommand::Tail { follow, event, json, limit } = command;
    if let Some(event) = &event
        && !HookEvent::ALL.iter().any(|known| known.as_str() == event)
    {
        let known: Vec<&str> = HookEvent::ALL.iter().map(|known| known.as_str()).collect();
        return Err(format!("unknown hook event '{}': use one of {}", escape(event), known.join(", ")));
    }
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    let fetch = |after_id, limit| {
        let filter = castellan_schema::hook_events::HookTailFilter { event: event.clone(), after_id, limit };
        let db = &db;
        async move { castellan_schema::hook_events::tail(db, &filter).await.map_err(|error| error.to_string()) }
    };
    let print = |row: &castellan_schema::hook_events::HookEventRow| {
        if json {
            println!(
                "{}",
                json_line(&json!({
                    "id": row.id, "event": row.event, "decision": row.decision, "handler": row.handler,
                    "reason": row.reason, "server": row.server, "tool": row.tool, "user_id": row.user_id,
                    "trace_id": row.trace_id, "created_at": row.created_at.to_rfc3339(),
                }))
            );
        } else {
            println!("{}", text_line(row));
        }
    };
    super::terminal::tail(follow, limit, fetch, |row| row.id, print).await
}

fn text_line(row: &castellan_schema::hook_events::HookEventRow) -> String {
    let optional = |value: &Option<String>| escape(value.as_deref().unwrap_or("-"));
    let mut line = format!(
        "{} {:>6} {:<18} {:<5} {:<28} {:<12} {:<16} {:<24} {}",
        row.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        row.id,
        escape(&row.event),
        escape(&row.decision),
        escape(&row.handler),
        optional(&row.user_id),
        optional(&row.server),
        optional(&row.tool),
        escape(&row.trace_id),
    );
    if let Some(reason) = &row.reason {
        line.push_str(" reason=");
        line.push_str(&escape(reason));
    }
    line
}
