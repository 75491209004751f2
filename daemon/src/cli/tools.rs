//! `castellan tools`: the pinned definitions of the servers' tools, and approving a changed one.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;

use super::terminal::{escape, table};
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
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        ToolsCommand::List => {
            let pins = castellan_schema::tool_pins::list(&db).await.map_err(|error| error.to_string())?;
            // Tool names come from the MCP servers: escaped before they are shown.
            let rows: Vec<Vec<String>> = pins
                .iter()
                .map(|pin| {
                    let state = if pin.approved_hash == pin.observed_hash { "ok" } else { "CHANGED" };
                    vec![escape(&pin.server), escape(&pin.tool), state.to_string(), pin.approved_at.to_rfc3339()]
                })
                .collect();
            print!("{}", table(&["SERVER", "TOOL", "STATE", "APPROVED"], &rows));
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
                crate::governance::tool_pins::REFRESH_INTERVAL.as_secs()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
