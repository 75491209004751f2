//! `castellan audit tail` and `castellan audit verify`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::terminal::{escape, json_line, render_json, truncate};
use super::{GlobalArgs, load_profile};

/// How much of a call's arguments the text view shows; `--json` has all of it.
const ARGUMENTS_SHOWN: usize = 160;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print recent tool calls, oldest first. Stored text is shown with control characters escaped
    /// (`\x1b`, `\r`, `\u{9b}`); `--json` prints one JSON object per line instead.
    Tail {
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        tool: Option<String>,
        #[arg(long)]
        json: bool,
        /// How many rows to show before following.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Verify the hash chain; exit 1 with the first broken row if it was tampered with. A pruned
    /// trail continues from its signed checkpoint, which needs the master key.
    Verify,
}

pub async fn run(global: &GlobalArgs, command: AuditCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        AuditCommand::Verify => {
            // The master key is needed only to check a prune checkpoint: a trail never pruned
            // verifies without it.
            let pruned = castellan_schema::audit::has_checkpoint(&db).await.map_err(|error| error.to_string())?;
            let key = match pruned.then(|| crate::secrets::load_existing_master_key(&profile)) {
                None => None,
                Some(Ok(master)) => Some(crate::secrets::audit_checkpoint_key(&master)),
                Some(Err(error)) => {
                    println!(
                        "audit chain NOT VERIFIED: the trail was pruned, and its signed checkpoint can only be \
                         checked with the master key, which could not be loaded: {error}"
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            let report = castellan_schema::audit::verify(&db, key.as_ref()).await.map_err(|error| error.to_string())?;
            match report.first_broken {
                None => {
                    match &report.checkpoint {
                        Some(checkpoint) => println!(
                            "audit chain intact: {} rows verified after a checkpoint at row {} ({} rows pruned)",
                            report.rows_checked, checkpoint.last_pruned_id, checkpoint.pruned_rows
                        ),
                        None => println!("audit chain intact: {} rows verified", report.rows_checked),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("audit chain BROKEN at row {}: {}", broken.id, broken.reason);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Tail { follow, user, server, tool, json, limit } => {
            let fetch = |after_id, limit| {
                let filter = castellan_schema::audit::TailFilter {
                    user: user.clone(),
                    server: server.clone(),
                    tool: tool.clone(),
                    after_id,
                    limit,
                };
                let db = &db;
                async move { castellan_schema::audit::tail(db, &filter).await.map_err(|error| error.to_string()) }
            };
            let print = |row: &castellan_schema::audit::ExecutionRow| {
                if json {
                    println!(
                        "{}",
                        json_line(&json!({
                            "id": row.id, "server": row.server, "tool": row.tool, "kind": row.kind, "status": row.status,
                            "user_id": row.user_id, "session_id": row.session_id, "trace_id": row.trace_id,
                            "started_at": row.started_at.to_rfc3339(), "duration_ms": row.duration_ms,
                            "error_message": row.error_message, "input": row.input, "output": row.output,
                        }))
                    );
                } else {
                    println!("{}", text_line(row));
                }
            };
            super::terminal::tail(follow, limit, fetch, |row| row.id, print).await
        }
    }
}

/// One row for people: time, id, user, server, tool, status, duration, the arguments (escaped, cut
/// at [`ARGUMENTS_SHOWN`] characters) and the error. Every stored string passes through [`escape`]:
/// a client or a server chose them, and a terminal would obey the control sequences in them.
fn text_line(row: &castellan_schema::audit::ExecutionRow) -> String {
    let arguments = serde_json::from_str::<serde_json::Value>(&row.input)
        .map(|value| render_json(&value))
        .unwrap_or_else(|_| escape(&row.input));
    let mut line = format!(
        "{} {:>6} {:<12} {:<16} {:<24} {:<11} {}ms args={}",
        row.started_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        row.id,
        escape(row.user_id.as_deref().unwrap_or("-")),
        escape(&row.server),
        escape(&row.tool),
        escape(&row.status),
        row.duration_ms,
        truncate(&arguments, ARGUMENTS_SHOWN),
    );
    if let Some(error) = &row.error_message {
        line.push_str(" error=");
        line.push_str(&escape(error));
    }
    line
}
