//! `castellan hook EVENT`: the shim Claude Code runs as a hook. It reads the hook's JSON on stdin,
//! asks the daemon (`POST /hooks/EVENT`), and prints Claude Code's decision JSON. When the daemon
//! cannot be asked, events that gate an action (PreToolUse, UserPromptSubmit) are blocked (exit 2):
//! any other exit code would let the action go ahead.
//!
//! A payload that names a tool use (`tool_use_id`) is sent with a `traceparent` derived from it
//! (`trace_ids::traceparent_for_tool_use`), the trace id the gateway derives from the same id in
//! Claude Code's `tools/call` request, so both records of one call share a trace.
//!
//! Environment: `CASTELLAN_API_KEY` (required), `CASTELLAN_URL` (default: the profile's public URL).

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use super::{GlobalArgs, load_profile};

const MAX_INPUT_BYTES: u64 = 1024 * 1024;

pub async fn run(global: &GlobalArgs, event: &str) -> Result<ExitCode, String> {
    let gates = matches!(event, "PreToolUse" | "UserPromptSubmit");
    let refuse = |message: String| -> Result<ExitCode, String> {
        eprintln!("castellan: {message}");
        Ok(if gates { ExitCode::from(2) } else { ExitCode::SUCCESS })
    };
    let mut input = Vec::new();
    if std::io::stdin().take(MAX_INPUT_BYTES + 1).read_to_end(&mut input).is_err()
        || input.len() as u64 > MAX_INPUT_BYTES
    {
        return refuse("the hook input could not be read (at most 1 MiB)".into());
    }
    let Some(key) = std::env::var("CASTELLAN_API_KEY").ok().filter(|key| !key.is_empty()) else {
        return refuse("CASTELLAN_API_KEY is not set; the action is blocked".into());
    };
    let base = match std::env::var("CASTELLAN_URL").ok().filter(|url| !url.is_empty()) {
        Some(url) => url,
        None => match load_profile(global) {
            Ok((profile, _)) => profile.server.public_url,
            Err(problem) => return refuse(format!("no CASTELLAN_URL and no usable profile: {problem}")),
        },
    };
    // SessionEnd hooks get 1.5 s in all from Claude Code; the gating ones may wait longer.
    let timeout = match event {
        "SessionEnd" => Duration::from_secs(1),
        "UserPromptSubmit" => Duration::from_secs(20),
        _ => Duration::from_secs(10),
    };
    let client = castellan_actors::http_client::builder(timeout).timeout(timeout).build();
    let Ok(client) = client else { return refuse("cannot build an HTTP client".into()) };
    let url = format!("{}/hooks/{event}", base.trim_end_matches('/'));
    let mut request =
        client.post(&url).header("Authorization", format!("Bearer {key}")).header("Content-Type", "application/json");
    if let Some(traceparent) = crate::trace_ids::traceparent_for_hook_input(&input) {
        request = request.header("traceparent", traceparent);
    }
    let response = request.body(input).send().await;
    let response = match response {
        Ok(response) => response,
        Err(_) => return refuse(format!("Castellan at {base} could not be asked; the action is blocked")),
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return refuse(format!("Castellan answered HTTP {}; the action is blocked", status.as_u16()));
    }
    let trimmed = body.trim();
    if !trimmed.is_empty() && trimmed != "null" {
        println!("{trimmed}");
    }
    Ok(ExitCode::SUCCESS)
}
