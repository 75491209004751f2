//! One request to a sink, with its retries: what an answer means ([`classify`]), how long to wait
//! before trying again ([`retry_delay`]), and the POST itself ([`deliver`]).
//!
//! A connection error, a timeout, 408, 429 and 5xx are transient: tried again within the run, a few
//! times, with exponential backoff and jitter (or the sink's `Retry-After`), then the run fails and
//! the scheduler backs off. 401, 403, 404, 405 and 407 say the sink is misconfigured (credential or
//! address): the run fails at once. Any other 4xx rejects this batch for good: it is reported and
//! passed over, since sending it again would be refused again and hold up everything behind it.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use tokio::time::Instant;

use super::{Sink, SinkKind, otlp};

/// How many times one request is sent at most before the run gives up.
pub const MAX_ATTEMPTS: u32 = 4;
/// The first wait before a retry; it doubles up to [`RETRY_MAX`].
pub const RETRY_INITIAL: Duration = Duration::from_millis(200);
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// The longest one request may take (less when the run's budget ends sooner).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest timeout a request gets, even at the very end of the budget.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How much of an answer's body is read (for an excerpt, or OTLP's partial success).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// How many characters of an answer a report or an error quotes.
pub const EXCERPT_CHARS: usize = 200;

/// What a status code means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Accepted,
    /// Worth trying again later: the sink is down, busy or throttling.
    Transient,
    /// The credential or the address is wrong: nothing will be accepted until someone fixes it.
    Misconfigured,
    /// This batch will never be accepted.
    Rejected,
}

/// The meaning of an HTTP status.
pub fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Accepted,
        408 | 429 | 500..=599 => Class::Transient,
        401 | 403 | 404 | 405 | 407 => Class::Misconfigured,
        400..=499 => Class::Rejected,
        // 1xx and 3xx (redirects are not followed): not the sink's intake.
        _ => Class::Misconfigured,
    }
}

/// The wait before attempt `attempt + 1` after `attempt` failed: exponential from
/// [`RETRY_INITIAL`] with +-20% jitter, capped at [`RETRY_MAX`]; at least the sink's `Retry-After`.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
    let backoff = castellan_actors::mcp_server::backoff_delay(RETRY_INITIAL, RETRY_MAX, attempt, rng);
    retry_after.map_or(backoff, |asked| asked.max(backoff))
}

/// The seconds of a `Retry-After` header (the HTTP-date form is ignored: backoff applies then).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Where and how a sink's requests go.
pub struct Target {
    pub url: String,
    pub content_type: &'static str,
    /// The credential header, marked sensitive (never logged by the HTTP stack).
    pub credential: Option<(HeaderName, HeaderValue)>,
    pub kind: SinkKind,
}

/// Why a sink's URL or token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetProblem {
    /// The URL is not an absolute `http` or `https` URL.
    NotHttp,
    /// The token cannot go in an HTTP header (a control character or a line break).
    TokenNotAHeader,
    /// A token would cross the network in clear: plain `http` is for loopback addresses (or a sink
    /// without a token).
    TokenInClear,
}

impl Target {
    pub fn of(sink: &Sink) -> Result<Target, TargetProblem> {
        let parsed = url::Url::parse(&sink.url).map_err(|_| TargetProblem::NotHttp)?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(address)) => address.is_loopback(),
            Some(url::Host::Ipv6(address)) => address.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => return Err(TargetProblem::NotHttp),
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback || sink.token.is_empty() => {}
            "http" => return Err(TargetProblem::TokenInClear),
            _ => return Err(TargetProblem::NotHttp),
        }
        let base = sink.url.trim_end_matches('/');
        let path = sink.kind.path();
        let url = if base.ends_with(path) { base.to_owned() } else { format!("{base}{path}") };
        let credential = match sink.kind {
            SinkKind::SplunkHec => Some((AUTHORIZATION, format!("Splunk {}", sink.token))),
            SinkKind::DatadogLogs => Some((HeaderName::from_static("dd-api-key"), sink.token.clone())),
            SinkKind::OtlpLogs if sink.token.is_empty() => None,
            SinkKind::OtlpLogs => Some((AUTHORIZATION, format!("Bearer {}", sink.token))),
        };
        let credential = match credential {
            None => None,
            Some((name, value)) => {
                let mut value = HeaderValue::from_str(&value).map_err(|_| TargetProblem::TokenNotAHeader)?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        Ok(Target { url, content_type: "application/json", credential, kind: sink.kind })
    }
}

/// How a request ended that lets the run go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// 2xx; for OTLP, the records a partial success rejected and its message.
    Accepted { rejected_records: Option<(u64, String)> },
    /// A 4xx that rejects the batch for good, with the start of the answer (not yet redacted).
    Rejected { status: u16, answer: String },
}

/// How a request ended that stops the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    Misconfigured {
        status: u16,
        answer: String,
    },
    /// Transient failures until the attempts or the budget ran out; `last` says what the last was.
    Unavailable {
        attempts: u32,
        last: String,
    },
}

/// POSTs `body` to the sink, retrying transient failures until [`MAX_ATTEMPTS`] or `deadline`.
pub async fn deliver(
    client: &reqwest::Client,
    target: &Target,
    body: Bytes,
    deadline: Instant,
) -> Result<Delivered, Undelivered> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = remaining.clamp(MIN_REQUEST_TIMEOUT, REQUEST_TIMEOUT);
        let mut request =
            client.post(&target.url).header(CONTENT_TYPE, target.content_type).timeout(timeout).body(body.clone());
        if let Some((name, value)) = &target.credential {
            request = request.header(name.clone(), value.clone());
        }
        let (failure, retry_after) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(parse_retry_after);
                let answer = read_answer(response).await;
                match classify(status) {
                    Class::Accepted => {
                        let rejected_records =
                            if target.kind == SinkKind::OtlpLogs { otlp::rejected_records(&answer) } else { None };
                        return Ok(Delivered::Accepted { rejected_records });
                    }
                    Class::Rejected => return Ok(Delivered::Rejected { status, answer: lossy(&answer) }),
                    Class::Misconfigured => return Err(Undelivered::Misconfigured { status, answer: lossy(&answer) }),
                    Class::Transient => (format!("HTTP {status}"), retry_after),
                }
            }
            Err(error) => (describe(&error), None),
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(Undelivered::Unavailable { attempts: attempt, last: failure });
        }
        let delay = retry_delay(attempt, retry_after, &mut rand::rng());
        if Instant::now() + delay >= deadline {
            let last = format!("{failure}; the next attempt would pass the run's budget");
            return Err(Undelivered::Unavailable { attempts: attempt, last });
        }
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(attempt, delay_ms, failure = %failure, "forward request failed, retrying");
        tokio::time::sleep(delay).await;
    }
}

/// The start of an answer's body (what a connection that breaks mid-body gave).
async fn read_answer(mut response: reqwest::Response) -> Vec<u8> {
    let mut answer = Vec::new();
    while answer.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    answer.truncate(MAX_ANSWER_BYTES);
    answer
}

fn lossy(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer).into_owned()
}

/// What went wrong, without the URL (which `reqwest`'s own message carries).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "the connection failed".to_owned()
    } else if error.is_body() || error.is_request() {
        "the request failed before an answer".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::forward::ForwardTable;
    use rand::SeedableRng;

    #[test]
    fn statuses_are_classified() {
        let cases = [
            (200, Class::Accepted),
            (202, Class::Accepted),
            (204, Class::Accepted),
            (408, Class::Transient),
            (429, Class::Transient),
            (500, Class::Transient),
            (502, Class::Transient),
            (503, Class::Transient),
            (504, Class::Transient),
            (401, Class::Misconfigured),
            (403, Class::Misconfigured),
            (404, Class::Misconfigured),
            (405, Class::Misconfigured),
            (407, Class::Misconfigured),
            (301, Class::Misconfigured),
            (400, Class::Rejected),
            (413, Class::Rejected),
            (415, Class::Rejected),
            (422, Class::Rejected),
        ];
        for (status, class) in cases {
            assert_eq!(classify(status), class, "HTTP {status}");
        }
    }

    #[test]
    fn retries_back_off_exponentially_and_honour_retry_after() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cases = [
            (1, None, 160, 240),
            (2, None, 320, 480),
            (3, None, 640, 960),
            (10, None, 4000, 5000),
            (1, Some(Duration::from_secs(3)), 3000, 3000),
            (3, Some(Duration::from_millis(100)), 640, 960),
        ];
        for (attempt, retry_after, low_ms, high_ms) in cases {
            let delay = retry_delay(attempt, retry_after, &mut rng).as_millis();
            assert!(
                (low_ms..=high_ms).contains(&delay),
                "attempt {attempt}, Retry-After {retry_after:?}: {delay} ms not in {low_ms}..={high_ms}"
            );
        }
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None, "dates fall back to backoff");
    }

    fn sink(kind: SinkKind, url: &str, token: &str) -> Sink {
        Sink {
            name: "siem".into(),
            kind,
            url: url.into(),
            token: token.into(),
            tables: vec![ForwardTable::Audit],
            batch: 10,
        }
    }

    #[test]
    fn each_kind_posts_to_its_path_with_its_credential_header() {
        let cases = [
            (
                SinkKind::SplunkHec,
                "https://hec:8088",
                "t0k",
                "https://hec:8088/services/collector/event",
                Some(("authorization", "Splunk t0k")),
            ),
            (
                SinkKind::SplunkHec,
                "https://hec:8088/services/collector/event/",
                "t0k",
                "https://hec:8088/services/collector/event",
                Some(("authorization", "Splunk t0k")),
            ),
            (
                SinkKind::DatadogLogs,
                "https://http-intake.logs.datadoghq.eu/",
                "k3y",
                "https://http-intake.logs.datadoghq.eu/api/v2/logs",
                Some(("dd-api-key", "k3y")),
            ),
            (
                SinkKind::OtlpLogs,
                "https://collector:4318",
                "b34r",
                "https://collector:4318/v1/logs",
                Some(("authorization", "Bearer b34r")),
            ),
            (
                SinkKind::SplunkHec,
                "http://127.0.0.1:8088",
                "t0k",
                "http://127.0.0.1:8088/services/collector/event",
                Some(("authorization", "Splunk t0k")),
            ),
            (SinkKind::OtlpLogs, "http://collector:4318", "", "http://collector:4318/v1/logs", None),
        ];
        for (kind, url, token, expected_url, expected_header) in cases {
            let target = Target::of(&sink(kind, url, token)).unwrap();
            assert_eq!(target.url, expected_url, "{kind} {url}");
            assert_eq!(target.content_type, "application/json");
            let header = target.credential.as_ref().map(|(name, value)| (name.as_str(), value.to_str().unwrap()));
            assert_eq!(header, expected_header, "{kind} with token {token:?}");
            assert!(target.credential.as_ref().is_none_or(|(_, value)| value.is_sensitive()), "marked sensitive");
        }
    }

    #[test]
    fn unusable_urls_and_tokens_are_refused() {
        let cases = [
            ("not a url", "t", TargetProblem::NotHttp),
            ("ftp://hec:21", "t", TargetProblem::NotHttp),
            ("https://hec:8088", "line\nbreak", TargetProblem::TokenNotAHeader),
            ("http://hec.example:8088", "t", TargetProblem::TokenInClear),
            ("http://[::2]:8088", "t", TargetProblem::TokenInClear),
        ];
        for (url, token, problem) in cases {
            assert_eq!(Target::of(&sink(SinkKind::SplunkHec, url, token)).err(), Some(problem), "{url}");
        }
    }
}
