//! Durability under load: the daemon is killed with SIGKILL while clients keep calls in flight.
//! Every call whose answer reached its client has its audit row afterwards, and the chain verifies:
//! the answer leaves only after the row's commit, on the fast append path as on the careful one.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integration_tests::mcp::{Session, bearer};
use integration_tests::{Database, spawn_app};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const CLIENTS: u64 = 8;

/// The calls one client made whose answer (a JSON-RPC result) it received, by the marker in
/// their arguments; it stops at its first transport error (the daemon is gone). The session is
/// opened before the load starts, so a kill can only ever interrupt calls, never an initialize.
fn call_until_the_daemon_dies(url: String, session: Session, client: u64, answered: Arc<AtomicUsize>) -> Vec<u64> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let mut received = Vec::new();
    for call in 0.. {
        let marker = client * 1_000_000 + call;
        let body = json!({"jsonrpc": "2.0", "id": call + 10, "method": "tools/call",
            "params": {"name": "customers__get_customer", "arguments": {"id": marker}}});
        let mut request = agent.post(&url);
        for (name, value) in session.headers() {
            request = request.set(name, value);
        }
        let Ok(response) = request.send_string(&body.to_string()) else { break };
        let Ok(text) = response.into_string() else { break };
        // A plain JSON answer, or the same answer as one SSE event.
        let json_text = text.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or(&text);
        match serde_json::from_str::<Value>(json_text) {
            Ok(answer) if answer.get("result").is_some() => {
                received.push(marker);
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(answer) => panic!("a call was refused while the daemon was healthy: {answer}"),
            Err(_) => break,
        }
    }
    received
}

fn sigkill_under_load_loses_no_answered_call(database: Database) {
    let mut app = spawn_app(database);
    let url = format!("{}/mcp", app.base_url);
    let key = bearer(&app.admin_key);
    let answered = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<Session> = (0..CLIENTS).map(|_| Session::open(&url, &key)).collect();
    let clients: Vec<_> = sessions
        .into_iter()
        .zip(0..CLIENTS)
        .map(|(session, client)| {
            let (url, answered) = (url.clone(), Arc::clone(&answered));
            std::thread::spawn(move || call_until_the_daemon_dies(url, session, client, answered))
        })
        .collect();
    // Well into the load: several hundred answered, commits grouping rows from several clients.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Relaxed) < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    app.signal(Signal::SIGKILL);
    app.wait_exit(Duration::from_secs(5));
    let received: Vec<u64> = clients.into_iter().flat_map(|client| client.join().expect("client thread")).collect();
    assert!(received.len() >= 400, "the load ran: {} answers before the kill", received.len());

    let stored: HashSet<u64> = app
        .audit_rows()
        .iter()
        .filter_map(|row| serde_json::from_str::<Value>(row["input"].as_str()?).ok()?["id"].as_u64())
        .collect();
    let lost: Vec<&u64> = received.iter().filter(|marker| !stored.contains(marker)).collect();
    assert!(lost.is_empty(), "{} of {} answered calls have no audit row: {lost:?}", lost.len(), received.len());
    let verify = app.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "the chain verifies after the kill: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn sigkill_under_load_loses_no_answered_call_on_sqlite() {
    sigkill_under_load_loses_no_answered_call(Database::Sqlite);
}

#[test]
fn sigkill_under_load_loses_no_answered_call_on_postgres() {
    sigkill_under_load_loses_no_answered_call(Database::Postgres);
}
