//! The audit trail's size under abuse: every stored field is capped (`audit.max_field_bytes`) with a
//! marker that keeps the full size and SHA-256, refusals included, and the chain still verifies;
//! and a database that runs out of space fails calls closed, never unaudited.

use std::time::{Duration, Instant};

use integration_tests::mcp::{Session, bearer, post_raw};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, TestApp, eventually, spawn_app_with};
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Random text: PostgreSQL compresses long values, so a row of repeated letters would look small.
fn incompressible(bytes: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..bytes).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// What the audit trail occupies: the SQLite files (database and WAL), or PostgreSQL's table with
/// its TOAST and indexes.
fn audit_bytes(app: &TestApp, database: Database) -> u64 {
    match database {
        Database::Sqlite => {
            let path = app.database.url.trim_start_matches("sqlite://").to_string();
            ["", "-wal"]
                .iter()
                .map(|suffix| std::fs::metadata(format!("{path}{suffix}")).map(|meta| meta.len()).unwrap_or(0))
                .sum()
        }
        Database::Postgres => {
            app.database.query_scalar("SELECT pg_total_relation_size('mcp_tool_executions')").parse().expect("a size")
        }
    }
}

fn profile_with(extra: &str) -> String {
    let base = DEFAULT_TEST_PROFILE.split("# Tests call as fast").next().expect("the default profile");
    format!("{base}{extra}")
}

#[test]
fn a_flood_of_rate_limited_calls_with_large_arguments_stores_capped_rows_that_verify() {
    // 800 such calls (the flood that wrote 213 MB before the cap) took 34 s on SQLite and 74 s on
    // PostgreSQL on a loaded 2-core machine; 300 show the bound as well.
    const CALLS: usize = 300;
    const ARGUMENT_BYTES: usize = 256 * 1024;
    // SQLite with the default cap, PostgreSQL with a configured one.
    for (database, audit_section, cap) in
        [(Database::Sqlite, "", 64 * 1024), (Database::Postgres, "audit:\n  max_field_bytes: 4096\n", 4096)]
    {
        let profile = profile_with(&format!("rate_limits:\n  per_second: {{ mcp_tool_call: 1 }}\n{audit_section}"));
        let app = spawn_app_with(AppOptions::new(database).profile(&profile));
        let key = app.user_with_key("flooder", "user");
        let session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&key));
        let arguments = json!({"blob": incompressible(ARGUMENT_BYTES)});
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "customers__get_customer", "arguments": arguments}})
        .to_string();
        let before = audit_bytes(&app, database);
        let started = Instant::now();
        let mut refused = 0;
        for _ in 0..CALLS {
            if post_raw(&session.url, &session.headers(), &body).status == 429 {
                refused += 1;
            }
        }
        let elapsed = started.elapsed();
        let grown = audit_bytes(&app, database).saturating_sub(before);
        eprintln!(
            "{database:?}: {CALLS} calls ({refused} refused 429) with {ARGUMENT_BYTES}-byte arguments in {:.1} s: \
             the audit trail grew {:.1} MB (cap {cap} bytes)",
            elapsed.as_secs_f64(),
            grown as f64 / 1e6
        );
        // A user's bucket: 1 call a second, a burst of 3.
        let admitted_at_most = 3 + elapsed.as_secs() as usize + 1;
        assert!(refused >= CALLS - admitted_at_most, "{database:?}: the flood is refused: {refused} of {CALLS}");

        let rows = app.audit_rows();
        assert_eq!(rows.len(), CALLS, "{database:?}: every call, refused or not, has its row");
        let full = arguments.to_string();
        let marker = format!("…[truncated: {} bytes, sha256 {}]", full.len(), hex(&Sha256::digest(full.as_bytes())));
        for row in &rows {
            let input = row["input"].as_str().expect("input");
            assert!(input.len() <= cap, "{database:?}: a stored input fits the cap: {} bytes", input.len());
            assert!(input.ends_with(&marker), "{database:?}: the marker keeps size and hash: …{}", tail(input));
        }
        assert!(rows.iter().any(|row| row["status"] == "rate_limited"), "{database:?}: refusals are capped too");
        // Far below the 256 KiB a row stored before: the cap plus the row's overhead, twice on
        // SQLite, whose WAL holds a second copy of the pages until it is reset.
        let copies = if database == Database::Sqlite { 2 } else { 1 };
        let bound = (copies * CALLS * (cap + 8 * 1024)) as u64;
        assert!(grown < bound, "{database:?}: the trail grew {grown} bytes, bound {bound}");

        let verify = app.cli(&["audit", "verify"]);
        assert!(
            verify.status.success(),
            "{database:?}: capped rows verify: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(120);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn error_message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or_default()
}

/// Disk full, simulated with the daemon's file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): writes
/// past it fail with EFBIG, which SQLite reports as SQLITE_IOERR_WRITE where a full disk is
/// SQLITE_FULL; the audit writer treats every failed commit alike. PostgreSQL's
/// disk-full would need a tablespace on a small filesystem, which needs a mount: not tested here.
#[test]
fn a_full_sqlite_disk_fails_calls_closed_and_keeps_every_attempt() {
    const LIMIT: u64 = 4 * 1024 * 1024;
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).file_size_limit(LIMIT));
    assert!(audit_bytes(&app, Database::Sqlite) < LIMIT / 2, "the fresh database leaves room to fill");
    let mut session = Session::open(&format!("{}/mcp", app.base_url), &bearer(&app.admin_key));
    let pad = incompressible(60 * 1024);
    let mut calls = 0;
    let withheld = loop {
        assert!(calls < 400, "the disk never filled after {calls} calls");
        calls += 1;
        let answer = session.call("customers__get_customer", json!({"id": 1, "pad": pad}));
        if answer.get("error").is_some() {
            break answer;
        }
        assert_eq!(answer["result"]["isError"], false, "call {calls} before the disk filled: {answer}");
    };
    eprintln!("the 4 MiB limit was reached at call {calls}: {withheld}");
    assert!(withheld.get("result").is_none(), "no result leaves unaudited: {withheld}");
    assert!(
        error_message(&withheld).starts_with("audit unavailable: the result is withheld"),
        "a clear error: {withheld}"
    );
    for _ in 0..3 {
        calls += 1;
        let answer = session.call("customers__get_customer", json!({"id": 1, "pad": pad}));
        assert!(answer.get("result").is_none(), "still closed: {answer}");
        assert!(error_message(&answer).starts_with("audit unavailable"), "still a clear error: {answer}");
    }
    let logged = app.log_shows("audit commit failed");
    let log = app.log();
    assert!(logged, "the operator's log says what failed:\n{log}");
    // EFBIG from the file-size limit is SQLITE_IOERR_WRITE ("disk I/O error"); a real ENOSPC is
    // SQLITE_FULL ("database or disk is full"). Both take the same path.
    assert!(log.contains("disk I/O error") || log.contains("database or disk is full"), "and why:\n{log}");

    // Space again: the kept rows are written, marked, and calls are served.
    let raised = std::process::Command::new("prlimit")
        .args(["--pid", &app.pid().to_string(), "--fsize=unlimited"])
        .status()
        .expect("prlimit runs");
    assert!(raised.success(), "prlimit --pid raises the limit");
    let served = eventually(Duration::from_secs(20), || {
        calls += 1;
        session.call("customers__get_customer", json!({"id": 1}))["result"]["isError"] == false
    });
    assert!(served, "calls are served once there is space:\n{}", app.log());
    let rows = app.audit_rows();
    assert_eq!(rows.len(), calls, "every attempt is on record, the withheld ones too");
    // Each attempt while the disk was full is a `failed` row saying what the caller got: the tool
    // ran and its result was withheld, or (once the writer knew) the tool did not run.
    let failed: Vec<&Value> = rows.iter().filter(|row| row["status"] == "failed").collect();
    assert!(failed.len() >= 4, "the attempts on the full disk are failed rows: {}", failed.len());
    for row in &failed {
        let message = row["error_message"].as_str().unwrap_or_default();
        assert!(message.contains("withheld") || message.contains("did not run"), "a marked row: {message}");
    }
    let messages: std::collections::BTreeSet<&str> =
        failed.iter().filter_map(|row| row["error_message"].as_str()).collect();
    eprintln!("rows of the attempts on the full disk: {messages:?}");
    let verify = app.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "the chain verifies after the full disk: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
