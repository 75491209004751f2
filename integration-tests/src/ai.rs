//! AI gateway test helpers: `FakeProvider` (the `fake-provider` binary of this crate, a loopback
//! Anthropic + OpenAI + Gemini that records what it is sent) and `run_ai_sdk` (the official Python
//! SDKs driven by `clients/ai_sdks.py`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::run_python_client;

/// Path of the `fake-provider` binary: `FAKE_PROVIDER_BIN`, else next to the castellan binary (cargo
/// builds it with this crate's tests, or `cargo build -p integration-tests --bin fake-provider`).
pub fn fake_provider_binary() -> PathBuf {
    crate::workspace_binary("FAKE_PROVIDER_BIN", "fake-provider")
}

/// A running `fake-provider` on a free loopback port, killed on drop. Its switches (model names
/// containing `fail-429`, `stall`, `tool`, `cached`, ...) and usage numbers are documented at the
/// top of `src/bin/fake_provider/main.rs`.
pub struct FakeProvider {
    child: Child,
    address: String,
    agent: ureq::Agent,
}

impl FakeProvider {
    /// Starts the fake with request recording on.
    pub fn start() -> FakeProvider {
        FakeProvider::start_with(&[])
    }

    /// Starts the fake with extra arguments (`--no-record`, `--workers N`).
    pub fn start_with(args: &[&str]) -> FakeProvider {
        let binary = fake_provider_binary();
        let mut child = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "{} cannot start ({error}); build it with `cargo build -p integration-tests --bin fake-provider`",
                    binary.display()
                )
            });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = match lines.next() {
            Some(Ok(line)) => line.trim().to_string(),
            other => {
                let _ = child.kill();
                panic!("fake-provider printed no address: {other:?}");
            }
        };
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
        FakeProvider { child, address, agent }
    }

    /// The root URL (`http://127.0.0.1:PORT`): what a provider's `base_url` is set to for Anthropic
    /// and Gemini, and with `/v1` appended for OpenAI.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request received since the start or the last `clear()`, oldest first: objects with
    /// `method`, `path` (with the query), `headers` (lower-case names; repeated ones joined with
    /// ", ") and `body` (the text).
    pub fn requests(&self) -> Vec<Value> {
        match self.get_json("/_fake/requests") {
            Value::Array(requests) => requests,
            other => panic!("fake-provider /_fake/requests is not an array: {other}"),
        }
    }

    /// The recorded requests whose path (without the query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|request| request["path"].as_str().unwrap_or_default().split('?').next() == Some(path))
            .collect()
    }

    pub fn clear(&self) {
        self.agent.delete(&format!("{}/_fake/requests", self.url())).call().expect("DELETE /_fake/requests");
    }

    /// Counters: `requests_total`, `requests_recorded`, `streams_started`, `streams_completed`,
    /// `streams_cancelled` (the client went away before the stream ended) and `stalls_abandoned`
    /// (the client hung up on a `stall` model before the fake answered).
    pub fn stats(&self) -> Value {
        self.get_json("/_fake/stats")
    }

    fn get_json(&self, path: &str) -> Value {
        let response = self.agent.get(&format!("{}{path}", self.url())).call().unwrap_or_else(|error| {
            panic!("fake-provider GET {path}: {error}");
        });
        response.into_json().unwrap_or_else(|error| panic!("fake-provider GET {path}: not JSON: {error}"))
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one scenario of `clients/ai_sdks.py` (e.g. `anthropic.stream`, or `openai.chat=gpt-fail-429`
/// to pick the model) against `base_url` (the server root) with the py2 venv, and returns what the
/// SDK saw: `ok`, `text`, `usage`, `stop_reason`, `tool`, `deltas`, `events`, or `error` with the
/// exception's `class`, `classes` and `status`. `extra_args` are the script's options
/// (`--max-retries`, `--timeout`, `--header`, `--anthropic-auth`, `--prompt`, ...).
pub fn run_ai_sdk(scenario: &str, base_url: &str, key: &str, extra_args: &[&str]) -> Value {
    let mut args = vec!["--base-url", base_url, "--key", key, "--scenario", scenario];
    args.extend_from_slice(extra_args);
    run_python_client("py2", "ai_sdks.py", &args)
}

/// Runs several scenarios in one Python process (starting Python and importing the three SDKs
/// costs about a second; a scenario against loopback takes milliseconds) and returns an object
/// keyed by each scenario string as given.
pub fn run_ai_sdks(scenarios: &[&str], base_url: &str, key: &str, extra_args: &[&str]) -> Value {
    let mut args = vec!["--base-url", base_url, "--key", key];
    for scenario in scenarios {
        args.extend_from_slice(&["--scenario", scenario]);
    }
    args.extend_from_slice(extra_args);
    let report = run_python_client("py2", "ai_sdks.py", &args);
    match scenarios {
        [only] => serde_json::json!({ *only: report }),
        _ => report,
    }
}
