//! The ingress bounds, measured on the real daemon: a flood of oversized `initialize` calls and a
//! flood of unauthenticated large bodies do not grow its memory (VmRSS from /proc), `initialize` is
//! rate-limited per principal, a body that stops arriving is cut off at `server.body_read_timeout`,
//! and a principal over `server.max_sessions_per_principal` loses its own oldest session, with
//! SessionEnd.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::mcp::{bearer, initialize_body, post_raw, standard_headers};
use integration_tests::{AppOptions, DEFAULT_TEST_PROFILE, Database, TestApp, spawn_app_with};
use serde_json::{Value, json};

/// The daemon's resident set in MiB.
fn rss_mib(app: &TestApp) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).expect("/proc status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    let kib: f64 = line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).expect("VmRSS kB");
    kib / 1024.0
}

/// The default test profile with `extra` added to its `server` section.
fn profile_with_server(extra: &str) -> String {
    DEFAULT_TEST_PROFILE.replace("server:\n", &format!("server:\n{extra}"))
}

/// An initialize whose params are about `bytes` long (in four strings of client capabilities).
fn oversized_initialize(bytes: usize) -> String {
    let quarter = "x".repeat(bytes / 4);
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"experimental": {"a": quarter, "b": quarter, "c": quarter}},
        "clientInfo": {"name": "flood", "version": quarter},
    }})
    .to_string()
}

#[test]
fn a_flood_of_oversized_initialize_calls_does_not_grow_memory() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let url = format!("{}/mcp", app.base_url);
    let authorization = bearer(&app.admin_key);
    let headers = standard_headers(&authorization, None);
    // One ordinary session first, so what the first request allocates is in the baseline.
    assert_eq!(post_raw(&url, &headers, &initialize_body("2025-06-18")).status, 200, "a small initialize");
    let before = rss_mib(&app);
    let body = oversized_initialize(4_000_000);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..150 {
        let reply = post_raw(&url, &headers, &body);
        *statuses.entry(reply.status).or_default() += 1;
        codes.insert(reply.body["error"]["code"].to_string());
    }
    let after = rss_mib(&app);
    eprintln!("initialize flood: VmRSS {before:.0} MiB -> {after:.0} MiB; statuses {statuses:?}");
    assert!(after - before < 150.0, "150 initialize calls of 4 MB grew VmRSS from {before:.0} to {after:.0} MiB");
    assert_eq!(statuses.get(&413), Some(&150), "every oversized initialize is refused: {statuses:?}");
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), ["-32602"], "as a JSON-RPC invalid-params error");
    // 64 KiB of params is still a session.
    let fits = oversized_initialize(60 * 1024);
    assert_eq!(post_raw(&url, &headers, &fits).status, 200, "params within 64 KiB open a session");
}

#[test]
fn initialize_is_rate_limited_per_principal() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let url = format!("{}/mcp", app.base_url);
    let flooding = bearer(&app.user_with_key("flooding", "user"));
    let quiet = bearer(&app.user_with_key("quiet", "user"));
    let started = Instant::now();
    let replies: Vec<_> =
        (0..130).map(|_| post_raw(&url, &standard_headers(&flooding, None), &initialize_body("2025-06-18"))).collect();
    let admitted = replies.iter().filter(|reply| reply.status == 200).count();
    // A user's bucket: 5 per second, a burst of 100, plus what refilled while sending.
    let refilled = (5.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    eprintln!("initialize burst: {admitted} of 130 admitted in {:?}", started.elapsed());
    assert!((100..=100 + refilled + 1).contains(&admitted), "the burst of 100 (+{refilled} refilled): {admitted}");
    let refused = replies.iter().find(|reply| reply.status == 429).expect("a refusal");
    assert_eq!(refused.body["error"]["code"], -32600, "a JSON-RPC error: {}", refused.raw);
    assert!(refused.session_id.is_none(), "no session is opened");
    let other = post_raw(&url, &standard_headers(&quiet, None), &initialize_body("2025-06-18"));
    assert_eq!(other.status, 200, "another principal is not limited by the flood: {}", other.raw);
}

/// Sends `head` and `start` of a body on a raw connection, then waits: returns the status line
/// (if any answer came), how long it took, and whether the connection was then closed.
fn send_partial(app: &TestApp, head: &str, start: &[u8], wait: Duration) -> (Option<String>, Duration, bool) {
    let address = app.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(start).expect("the first bytes");
    stream.flush().expect("flush");
    let sent = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = loop {
        let left = wait.saturating_sub(sent.elapsed());
        if left.is_zero() {
            break false;
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&received);
    (text.lines().next().map(str::to_string), sent.elapsed(), closed)
}

#[test]
fn a_body_that_stops_arriving_is_cut_off_at_the_read_timeout() {
    let app =
        spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile_with_server("  body_read_timeout: 2s\n")));
    let key = app.admin_key.clone();
    let port = app.base_url.rsplit(':').next().expect("port").to_string();
    let mcp = |framing: &str| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{framing}\r\n"
        )
    };
    let cases = [
        ("MCP, Content-Length", mcp("Content-Length: 1000\r\n"), &b"{\"jsonrpc\""[..]),
        ("MCP, chunked", mcp("Transfer-Encoding: chunked\r\n"), &b"a\r\n{\"jsonrpc\"\r\n"[..]),
        (
            "hooks endpoint",
            format!(
                "POST /hooks/Stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            ),
            &b"{\"session"[..],
        ),
        (
            "OAuth token endpoint (unauthenticated)",
            format!(
                "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            ),
            &b"grant_type="[..],
        ),
        (
            "passkey ceremony (before sign-in)",
            format!(
                "POST /webauthn/login/finish HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            ),
            &b"{\"ceremony"[..],
        ),
    ];
    for (what, head, start) in cases {
        let (status, took, closed) = send_partial(&app, &head, start, Duration::from_secs(15));
        eprintln!("{what}: {status:?} after {took:?}, closed: {closed}");
        assert_eq!(status.as_deref(), Some("HTTP/1.1 408 Request Timeout"), "{what}: answered 408");
        assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "{what}: cut off after {took:?}");
        assert!(closed, "{what}: the connection is closed");
    }
}

#[test]
fn an_unauthenticated_body_is_not_read_and_a_flood_of_them_does_not_grow_memory() {
    let app = spawn_app_with(AppOptions::new(Database::Sqlite));
    let port = app.base_url.rsplit(':').next().expect("port").to_string();
    // The answer comes while almost all of the body is still unsent: it was never waited for.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n"
    );
    let (status, took, closed) = send_partial(&app, &head, &[b' '; 1024], Duration::from_secs(10));
    eprintln!("unauthenticated partial body: {status:?} after {took:?}, closed: {closed}");
    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "refused before the body arrives");
    assert!(took < Duration::from_secs(3) && closed, "and the connection closed at once: {took:?}");
    // Chunked, the same: actix would otherwise go on reading (and discarding) it with no deadline.
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (status, took, closed) = send_partial(&app, &chunked, b"a\r\n{\"jsonrpc\"\r\n", Duration::from_secs(10));
    eprintln!("unauthenticated partial chunked body: {status:?} after {took:?}, closed: {closed}");
    assert_eq!(status.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "chunked: refused before the body arrives");
    assert!(took < Duration::from_secs(3) && closed, "chunked: the connection closed at once: {took:?}");

    // The endpoints that read before anyone is authenticated have small bounds of their own.
    let cases = [
        (
            "/oauth/token",
            "application/x-www-form-urlencoded",
            format!("grant_type=client_credentials&pad={}", "x".repeat(17 * 1024)),
        ),
        ("/oauth/register", "application/json", format!("{{\"client_name\":\"{}\"}}", "x".repeat(17 * 1024))),
        ("/webauthn/register/finish", "application/json", format!("{{\"pad\":\"{}\"}}", "x".repeat(65 * 1024))),
    ];
    for (path, content_type, body) in cases {
        let reply = post_raw(&format!("{}{path}", app.base_url), &[("content-type", content_type)], &body);
        assert_eq!(reply.status, 413, "{path}: {}", reply.raw);
    }

    let url = format!("{}/mcp", app.base_url);
    let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(4_000_000));
    let before = rss_mib(&app);
    let flood: Vec<_> = (0..50)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                match ureq::post(&url).set("content-type", "application/json").send_string(&body) {
                    Ok(response) | Err(ureq::Error::Status(_, response)) => Some(response.status()),
                    // The daemon answers 401 and closes without reading: the rest of the upload
                    // may meet a reset.
                    Err(_) => None,
                }
            })
        })
        .collect();
    let statuses: Vec<Option<u16>> =
        flood.into_iter().map(|thread| thread.join().expect("a flooding thread")).collect();
    let after = rss_mib(&app);
    eprintln!("unauthenticated flood: VmRSS {before:.0} MiB -> {after:.0} MiB; statuses {statuses:?}");
    assert!(statuses.iter().flatten().all(|status| *status == 401), "only refusals: {statuses:?}");
    assert!(after - before < 20.0, "50 unauthenticated 4 MB bodies grew VmRSS from {before:.0} to {after:.0} MiB");
}

#[test]
fn a_principal_over_its_session_cap_loses_its_own_oldest_session_with_session_end() {
    let hook = integration_tests::Fixture::start("hook_server.py", &[], "hook-server listening on ");
    let hooks = format!("hooks:\n  SessionEnd:\n    - {{ http: \"{}/hook\" }}\n", hook.url);
    let profile = format!("{}{hooks}", profile_with_server("  max_sessions_per_principal: 2\n"));
    let app = spawn_app_with(AppOptions::new(Database::Sqlite).profile(&profile));
    let url = format!("{}/mcp", app.base_url);
    let admin = bearer(&app.admin_key);
    let other = bearer(&app.user_with_key("other", "user"));
    let open = |authorization: &str| {
        let reply = post_raw(&url, &standard_headers(authorization, None), &initialize_body("2025-06-18"));
        assert_eq!(reply.status, 200, "initialize: {}", reply.raw);
        reply.session_id.expect("a session")
    };
    let others = open(&other);
    let first = open(&admin);
    let second = open(&admin);
    let ping = |authorization: &str, session: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}).to_string();
        post_raw(&url, &standard_headers(authorization, Some(session)), &body).status
    };
    // The first is used again, so the second is the least recently used when a third opens.
    assert_eq!(ping(&admin, &first), 200);
    let third = open(&admin);
    assert_eq!(ping(&admin, &second), 404, "the least recently used session of the principal is ended");
    for (what, authorization, session) in
        [("first", &admin, &first), ("third", &admin, &third), ("other's", &other, &others)]
    {
        assert_eq!(ping(authorization, session), 200, "the {what} session lives");
    }
    let ended = || -> Vec<Value> {
        let log: Value = ureq::get(&format!("{}/log", hook.url)).call().expect("log").into_json().expect("json");
        log.as_array()
            .expect("array")
            .iter()
            .filter(|event| event["hook_event_name"] == "SessionEnd")
            .cloned()
            .collect()
    };
    assert!(integration_tests::eventually(Duration::from_secs(5), || !ended().is_empty()), "SessionEnd is raised");
    let ended = ended();
    assert_eq!(ended.len(), 1, "one session was ended: {ended:?}");
    assert_eq!((ended[0]["session_id"].as_str(), ended[0]["reason"].as_str()), (Some(second.as_str()), Some("other")));
}
