//! `castellan audit tail` and `castellan audit verify`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::admin::open_database;
use super::{GlobalArgs, load_profile};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print recent tool calls, oldest first.
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
    /// Verify the hash chain; exit 1 with the first broken row if it was tampered with.
    Verify,
}

pub async fn run(global: &GlobalArgs, command: AuditCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = open_database(&profile).await?;
    match command {
        AuditCommand::Verify => {
            let report = castellan_schema::audit::verify(&db).await.map_err(|error| error.to_string())?;
            match report.first_broken {
                None => {
                    println!("audit chain intact: {} rows verified", report.rows_checked);
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!("audit chain BROKEN at row {}: {}", broken.id, broken.reason);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Tail { follow, user, server, tool, json, limit } => {
            let mut after_id = None;
            let mut first = true;
            loop {
                let filter = castellan_schema::audit::TailFilter {
                    user: user.clone(),
                    server: server.clone(),
                    tool: tool.clone(),
                    after_id,
                    limit: if first { limit } else { 1000 },
                };
                let rows = castellan_schema::audit::tail(&db, &filter).await.map_err(|error| error.to_string())?;
                for row in &rows {
                    if json {
                        println!(
                            "{}",
                            json!({
                                "id": row.id, "server": row.server, "tool": row.tool, "status": row.status,
                                "user_id": row.user_id, "session_id": row.session_id, "trace_id": row.trace_id,
                                "started_at": row.started_at.to_rfc3339(), "duration_ms": row.duration_ms,
                                "error_message": row.error_message, "input": row.input, "output": row.output,
                            })
                        );
                    } else {
                        println!(
                            "{} {:>6} {:<12} {:<16} {:<24} {:<11} {}ms {}",
                            row.started_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                            row.id,
                            row.user_id.as_deref().unwrap_or("-"),
                            row.server,
                            row.tool,
                            row.status,
                            row.duration_ms,
                            row.error_message.as_deref().unwrap_or("")
                        );
                    }
                }
                if let Some(last) = rows.last() {
                    after_id = Some(last.id);
                }
                first = false;
                if !follow {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
