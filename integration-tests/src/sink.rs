//! `FakeSink`: the `fake-sink` binary of this crate (a loopback Splunk HEC + Datadog logs + OTLP
//! logs intake that dedupes by idempotency key), started on a free port and restartable on the same
//! port with the keys it had received.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::TempDir;

/// Path of the `fake-sink` binary: `FAKE_SINK_BIN`, else next to the test executable's directory
/// (cargo builds it with this crate's tests, or `cargo build -p integration-tests --bin fake-sink`).
pub fn fake_sink_binary() -> PathBuf {
    crate::workspace_binary("FAKE_SINK_BIN", "fake-sink")
}

/// A running `fake-sink`, killed on drop. Its switches are documented at the top of
/// `src/bin/fake_sink/main.rs`.
pub struct FakeSink {
    child: Option<Child>,
    address: String,
    token: String,
    args: Vec<String>,
    dir: TempDir,
    agent: ureq::Agent,
}

impl FakeSink {
    /// Starts the fake accepting `token`, recording bodies.
    pub fn start(token: &str) -> FakeSink {
        FakeSink::start_with(token, &[])
    }

    /// Starts the fake with extra arguments (`--no-record`, `--echo-credential`).
    pub fn start_with(token: &str, args: &[&str]) -> FakeSink {
        let mut sink = FakeSink {
            child: None,
            address: "127.0.0.1:0".to_string(),
            token: token.to_string(),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            dir: TempDir::new(),
            agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build(),
        };
        sink.spawn();
        sink
    }

    fn spawn(&mut self) {
        let binary = fake_sink_binary();
        let keys_file = self.dir.0.join("keys");
        // A port just released by a killed process can take a moment to bind again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(&binary)
                .args(["--listen", &self.address, "--token", &self.token])
                .arg("--keys-file")
                .arg(&keys_file)
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "{} cannot start ({error}); build it with `cargo build -p integration-tests --bin fake-sink`",
                        binary.display()
                    )
                });
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            if let Some(Ok(line)) = lines.next() {
                self.address = line.trim().to_string();
                std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "fake-sink could not bind {}", self.address);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The root URL (`http://127.0.0.1:PORT`): what a sink's `url` is set to for every kind.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for a process that exits on its own (a `crash` plan) to be gone.
    pub fn wait_exit(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(child) = self.child.as_mut() {
            if child.try_wait().expect("fake-sink status").is_some() {
                self.child = None;
                return;
            }
            assert!(Instant::now() < deadline, "fake-sink did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the fake again on the same port, with the keys it had received (the keys file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `requests`, `received`, `unique`, `duplicates`, `without_key`, `statuses` (by code).
    pub fn stats(&self) -> Value {
        self.get_json("/_fake/stats")
    }

    /// Every idempotency key received, sorted.
    pub fn keys(&self) -> Vec<String> {
        match self.get_json("/_fake/keys") {
            Value::Array(keys) => keys.into_iter().map(|key| key.as_str().expect("a key").to_string()).collect(),
            other => panic!("fake-sink /_fake/keys is not an array: {other}"),
        }
    }

    /// Every intake request since the start (not across a restart): `intake` and `body` text.
    pub fn bodies(&self) -> Vec<Value> {
        match self.get_json("/_fake/bodies") {
            Value::Array(bodies) => bodies,
            other => panic!("fake-sink /_fake/bodies is not an array: {other}"),
        }
    }

    /// Sets the failure plan (`status`, `after`, `count`, `retry_after`, `crash`).
    pub fn fail(&self, plan: Value) {
        self.agent
            .post(&format!("{}/_fake/fail", self.url()))
            .send_string(&plan.to_string())
            .expect("POST /_fake/fail");
    }

    /// Answers normally again.
    pub fn recover(&self) {
        self.agent.delete(&format!("{}/_fake/fail", self.url())).call().expect("DELETE /_fake/fail");
    }

    fn get_json(&self, path: &str) -> Value {
        let response = self.agent.get(&format!("{}{path}", self.url())).call().unwrap_or_else(|error| {
            panic!("fake-sink GET {path}: {error}");
        });
        response.into_json().unwrap_or_else(|error| panic!("fake-sink GET {path}: not JSON: {error}"))
    }
}

impl Drop for FakeSink {
    fn drop(&mut self) {
        self.kill();
    }
}
