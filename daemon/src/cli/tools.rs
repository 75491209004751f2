//! `castellan tools`: the pinned definitions of the servers' tools, and approving a changed one.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;

use super::admin::open_database;
use super::{GlobalArgs, load_profile};

#[derive(Subcommand, Debug)]
pub enum ToolsCommand {
    /// List every pinned tool; CHANGED marks a definition that differs from the approved one.
    List,
    /// Approve the definition a server now has for TOOL (after a change).
    Approve { server: String, tool: String },
}

pub async fn run(global: &GlobalArgs, command: ToolsCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = open_database(&profile).await?;
    match command {
        ToolsCommand::List => {
            println!("{:<24} {:<32} {:<8} APPROVED", "SERVER", "TOOL", "STATE");
            for pin in castellan_schema::tool_pins::list(&db).await.map_err(|error| error.to_string())? {
                let state = if pin.approved_hash == pin.observed_hash { "ok" } else { "CHANGED" };
                println!("{:<24} {:<32} {:<8} {}", pin.server, pin.tool, state, pin.approved_at.to_rfc3339());
            }
        }
        ToolsCommand::Approve { server, tool } => {
            if !castellan_schema::tool_pins::approve(&db, &server, &tool, Utc::now())
                .await
                .map_err(|error| error.to_string())?
            {
                return Err(format!("no pinned tool '{tool}' on server '{server}'"));
            }
            println!(
                "approved the current definition of {server}/{tool}; a running daemon offers it again within {}s",
                crate::tool_pins::REFRESH_INTERVAL.as_secs()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
