//! `fake-sink`: a loopback stand-in for three SIEM intakes that speaks their wire formats, checks
//! their credential headers, refuses malformed bodies with the service's 400, and drops duplicate
//! events by idempotency key while counting them.
//!
//! Usage: `fake-sink --listen 127.0.0.1:0 --token TOKEN [--keys-file PATH] [--no-record]
//! [--echo-credential]`. Prints the bound address (`127.0.0.1:PORT`) as its first stdout line.
//!
//! Intakes (one process serves all three; see formats.rs for what each accepts):
//! - Splunk HEC: `POST /services/collector/event`, `Authorization: Splunk TOKEN` (401 without it,
//!   403 when wrong), concatenated event objects; answers `{"text":"Success","code":0}`
//! - Datadog: `POST /api/v2/logs`, `DD-API-KEY: TOKEN` (403), a JSON array; answers 202 `{}`
//! - OTLP/HTTP JSON: `POST /v1/logs`, `Authorization: Bearer TOKEN` (401), `Content-Type:
//!   application/json` (415 otherwise); answers 200 `{}`
//!
//! An accepted request's keys are added to the set (and appended to `--keys-file`, which a restart
//! on the same file reads back, so the set survives a kill); a key already in the set counts as a
//! duplicate. `--echo-credential` quotes the presented credential in refusals, as a careless proxy
//! might, so a test can check that the sender never repeats it.
//!
//! Admin endpoints:
//! - `GET /_fake/stats`: `requests` (to the intakes), `received` (events in accepted requests),
//!   `unique`, `duplicates`, `without_key`, `statuses` (answers by status code)
//! - `GET /_fake/keys`: every key received, sorted
//! - `GET /_fake/bodies`: every intake request (`intake`, `body` as text), unless `--no-record`
//! - `POST /_fake/fail` `{"status": 503, "after": 0, "count": null, "retry_after": null, "crash":
//!   false}`: after `after` more requests answered normally, answer `count` requests (all, when
//!   null) with `status` (the intake's error body, `Retry-After` when given); with `crash: true` the
//!   next request after `after` is accepted and recorded, then the process exits before answering
//!   (a kill between the sink's commit and its answer). `DELETE /_fake/fail` answers normally again.

mod formats;

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::sync::Mutex;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Value, json};

use crate::formats::{Intake, json_answer};

/// A failure the test asked for.
#[derive(Debug, Clone, Default)]
struct FailurePlan {
    status: u16,
    after: u64,
    count: Option<u64>,
    retry_after: Option<u64>,
    crash: bool,
}

/// What the plan makes of the next request.
enum Action {
    Normal,
    Fail { status: u16, retry_after: Option<u64> },
    Crash,
}

#[derive(Default)]
struct Counters {
    requests: u64,
    received: u64,
    duplicates: u64,
    without_key: u64,
    statuses: BTreeMap<u16, u64>,
}

struct Inner {
    keys: HashSet<String>,
    keys_file: Option<File>,
    counters: Counters,
    bodies: Vec<Value>,
    plan: Option<FailurePlan>,
}

struct State {
    token: String,
    record: bool,
    echo_credential: bool,
    inner: Mutex<Inner>,
}

impl Inner {
    fn next_action(&mut self) -> Action {
        let Some(plan) = self.plan.as_mut() else { return Action::Normal };
        if plan.after > 0 {
            plan.after -= 1;
            return Action::Normal;
        }
        let action = if plan.crash {
            Action::Crash
        } else {
            Action::Fail { status: plan.status, retry_after: plan.retry_after }
        };
        match plan.count.as_mut() {
            Some(0) => {
                self.plan = None;
                return Action::Normal;
            }
            Some(count) => {
                *count -= 1;
                if *count == 0 {
                    self.plan = None;
                }
            }
            None => {}
        }
        action
    }

    /// Adds the keys of an accepted request; new ones are appended to the keys file first.
    fn accept(&mut self, keys: Vec<Option<String>>) -> std::io::Result<()> {
        let mut new_lines = String::new();
        for key in keys {
            self.counters.received += 1;
            let Some(key) = key else {
                self.counters.without_key += 1;
                continue;
            };
            if self.keys.contains(&key) {
                self.counters.duplicates += 1;
            } else {
                new_lines.push_str(&key);
                new_lines.push('\n');
                self.keys.insert(key);
            }
        }
        if let Some(file) = self.keys_file.as_mut() {
            file.write_all(new_lines.as_bytes())?;
            file.flush()?;
        }
        Ok(())
    }
}

fn answered(inner: &mut Inner, response: HttpResponse) -> HttpResponse {
    *inner.counters.statuses.entry(response.status().as_u16()).or_default() += 1;
    response
}

async fn ingest(state: web::Data<State>, request: HttpRequest, body: Bytes, intake: Intake) -> HttpResponse {
    let Ok(mut inner) = state.inner.lock() else { return json_answer(500, json!({"error": "state poisoned"})) };
    inner.counters.requests += 1;
    if state.record {
        let text = String::from_utf8_lossy(&body).into_owned();
        inner.bodies.push(json!({"intake": intake.name(), "body": text}));
    }
    let (header, expected) = intake.credential(&state.token);
    let presented = request.headers().get(header).and_then(|value| value.to_str().ok());
    if presented != Some(expected.as_str()) {
        let echoed = if state.echo_credential { presented } else { None };
        return answered(&mut inner, intake.unauthorized(presented.is_none(), echoed));
    }
    let content_type = request.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
    match inner.next_action() {
        Action::Normal => {}
        Action::Fail { status, retry_after } => {
            let mut response = intake.failure(status);
            if let Some(seconds) = retry_after
                && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds.to_string())
            {
                response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
            }
            return answered(&mut inner, response);
        }
        Action::Crash => {
            if let Ok(keys) = intake.parse(content_type, &body) {
                let _ = inner.accept(keys);
            }
            eprintln!("fake-sink: crashing before the answer, as asked");
            std::process::exit(17);
        }
    }
    let response = match intake.parse(content_type, &body) {
        Ok(keys) => match inner.accept(keys) {
            Ok(()) => intake.accepted(),
            Err(error) => json_answer(500, json!({"error": format!("keys file: {error}")})),
        },
        Err(refusal) => *refusal,
    };
    answered(&mut inner, response)
}

async fn hec(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    ingest(state, request, body, Intake::SplunkHec).await
}

async fn datadog(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    ingest(state, request, body, Intake::Datadog).await
}

async fn otlp(state: web::Data<State>, request: HttpRequest, body: Bytes) -> HttpResponse {
    ingest(state, request, body, Intake::Otlp).await
}

async fn stats(state: web::Data<State>) -> HttpResponse {
    let Ok(inner) = state.inner.lock() else { return json_answer(500, json!({"error": "state poisoned"})) };
    let counters = &inner.counters;
    let statuses: serde_json::Map<String, Value> =
        counters.statuses.iter().map(|(status, count)| (status.to_string(), json!(count))).collect();
    json_answer(
        200,
        json!({
            "requests": counters.requests,
            "received": counters.received,
            "unique": inner.keys.len(),
            "duplicates": counters.duplicates,
            "without_key": counters.without_key,
            "statuses": statuses,
        }),
    )
}

async fn received_keys(state: web::Data<State>) -> HttpResponse {
    let Ok(inner) = state.inner.lock() else { return json_answer(500, json!({"error": "state poisoned"})) };
    let mut keys: Vec<&String> = inner.keys.iter().collect();
    keys.sort();
    json_answer(200, json!(keys))
}

async fn bodies(state: web::Data<State>) -> HttpResponse {
    let Ok(inner) = state.inner.lock() else { return json_answer(500, json!({"error": "state poisoned"})) };
    json_answer(200, Value::Array(inner.bodies.clone()))
}

async fn set_failure(state: web::Data<State>, body: Bytes) -> HttpResponse {
    let Ok(plan) = serde_json::from_slice::<Value>(&body) else {
        return json_answer(400, json!({"error": "the plan is not JSON"}));
    };
    let plan = FailurePlan {
        status: plan["status"].as_u64().and_then(|status| u16::try_from(status).ok()).unwrap_or(503),
        after: plan["after"].as_u64().unwrap_or(0),
        count: plan["count"].as_u64(),
        retry_after: plan["retry_after"].as_u64(),
        crash: plan["crash"].as_bool().unwrap_or(false),
    };
    let Ok(mut inner) = state.inner.lock() else { return json_answer(500, json!({"error": "state poisoned"})) };
    inner.plan = Some(plan);
    HttpResponse::NoContent().finish()
}

async fn clear_failure(state: web::Data<State>) -> HttpResponse {
    let Ok(mut inner) = state.inner.lock() else { return json_answer(500, json!({"error": "state poisoned"})) };
    inner.plan = None;
    HttpResponse::NoContent().finish()
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    json_answer(404, json!({"error": format!("fake-sink serves no {} {}", request.method(), request.path())}))
}

struct Options {
    listen: String,
    token: String,
    keys_file: Option<String>,
    record: bool,
    echo_credential: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        listen: "127.0.0.1:0".to_string(),
        token: String::new(),
        keys_file: None,
        record: true,
        echo_credential: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => options.listen = args.next().ok_or("--listen needs an address")?,
            "--token" => options.token = args.next().ok_or("--token needs a value")?,
            "--keys-file" => options.keys_file = Some(args.next().ok_or("--keys-file needs a path")?),
            "--no-record" => options.record = false,
            "--echo-credential" => options.echo_credential = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.token.is_empty() {
        return Err("--token is required".to_string());
    }
    Ok(options)
}

/// The keys a previous run appended to `path`, and the file opened for appending more.
fn open_keys_file(path: &str) -> std::io::Result<(HashSet<String>, File)> {
    let mut keys = HashSet::new();
    if let Ok(existing) = File::open(path) {
        for line in BufReader::new(existing).lines() {
            let line = line?;
            if !line.is_empty() {
                keys.insert(line);
            }
        }
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok((keys, file))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let options = parse_options().map_err(|message| {
        eprintln!("fake-sink: {message}");
        eprintln!(
            "usage: fake-sink --listen 127.0.0.1:0 --token TOKEN [--keys-file PATH] [--no-record] [--echo-credential]"
        );
        std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
    })?;
    let (keys, keys_file) = match &options.keys_file {
        Some(path) => {
            let (keys, file) = open_keys_file(path)?;
            (keys, Some(file))
        }
        None => (HashSet::new(), None),
    };
    let state = web::Data::new(State {
        token: options.token,
        record: options.record,
        echo_credential: options.echo_credential,
        inner: Mutex::new(Inner { keys, keys_file, counters: Counters::default(), bodies: Vec::new(), plan: None }),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/services/collector/event", web::post().to(hec))
            .route("/api/v2/logs", web::post().to(datadog))
            .route("/v1/logs", web::post().to(otlp))
            .route("/_fake/stats", web::get().to(stats))
            .route("/_fake/keys", web::get().to(received_keys))
            .route("/_fake/bodies", web::get().to(bodies))
            .route("/_fake/fail", web::post().to(set_failure))
            .route("/_fake/fail", web::delete().to(clear_failure))
            .default_service(web::to(not_found))
    })
    .workers(2)
    .shutdown_timeout(1)
    .bind(&options.listen)?;
    let address = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("no address bound"))?;
    println!("{address}");
    server.run().await
}
