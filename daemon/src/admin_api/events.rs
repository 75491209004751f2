//! `GET /api/v1/events`: the event bus as Server-Sent Events, for operators watching live.
//!
//! Each event is written as `id: N`, `event: <type>` and `data: <json>` after the secret redactor has
//! seen every string of it. A connection that falls behind the bus's ring gets a `lost` event with the
//! count and carries on; a quiet connection gets a `: keep-alive` comment every
//! [`KEEP_ALIVE_INTERVAL`]. The stream owns its subscription and nothing else: when actix drops the
//! body (the client went away), the subscription goes with it; no task is spawned per connection.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use castellan_actors::Event;
use castellan_actors::event_bus::{Delivery, Subscription};
use futures_util::Stream;
use futures_util::stream;
use serde_json::{Value, json};

use crate::http::{ApiError, AppState};
use crate::redaction::Redactor;

/// How long a connection may stay silent before a keep-alive comment is written (proxies close idle ones).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

const OPENING: &[u8] = b": connected\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// `GET /api/v1/events[?types=a,b]`: admin tier; 400 for an unknown type name.
pub async fn events(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let principal = match super::admin(&state, &request).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let filter = match TypeFilter::parse(request.query_string()) {
        Ok(filter) => filter,
        Err(message) => return ApiError::BadRequest(message).into_response(),
    };
    // Subscribed before the response leaves, so everything after the 200 is on the stream.
    let subscription = state.gateway.bus.subscribe();
    tracing::info!(user = %principal.subject, "event stream opened");
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(event_stream(subscription, filter, KEEP_ALIVE_INTERVAL))
}

/// The body: an opening comment (so the client sees the headers at once), then messages until the bus
/// is gone or the body is dropped.
fn event_stream(
    subscription: Subscription,
    filter: TypeFilter,
    keep_alive: Duration,
) -> impl Stream<Item = Result<web::Bytes, actix_web::Error>> {
    let connection = Connection { subscription, filter, keep_alive, last_id: 0 };
    let opening = stream::once(async { Ok(web::Bytes::from_static(OPENING)) });
    let messages = stream::unfold(connection, |mut connection| async move {
        let chunk = connection.next_chunk().await?;
        Some((Ok(chunk), connection))
    });
    futures_util::StreamExt::chain(opening, messages)
}

/// One client's position on the bus.
struct Connection {
    subscription: Subscription,
    filter: TypeFilter,
    keep_alive: Duration,
    /// The `id:` of the last message written (per connection, from 1).
    last_id: u64,
}

impl Connection {
    /// The next chunk to write: a message, or a keep-alive after a quiet interval; `None` once the bus
    /// is gone. Events the filter refuses do not reset the keep-alive clock.
    async fn next_chunk(&mut self) -> Option<web::Bytes> {
        let deadline = tokio::time::Instant::now() + self.keep_alive;
        loop {
            let delivery = match tokio::time::timeout_at(deadline, self.subscription.next_delivery()).await {
                Err(_) => return Some(web::Bytes::from_static(KEEP_ALIVE)),
                Ok(None) => return None,
                Ok(Some(delivery)) => delivery,
            };
            let (type_name, data) = match delivery {
                Delivery::Event(event) if !self.filter.admits(&event) => continue,
                Delivery::Event(event) => match serde_json::to_value(&event) {
                    Ok(data) => (event.type_name(), data),
                    Err(error) => {
                        tracing::error!(%error, "an event did not serialize; skipped");
                        continue;
                    }
                },
                // Always written, whatever the filter: the client must know its view has a gap.
                Delivery::Lost(count) => ("lost", json!({ "count": count })),
            };
            self.last_id += 1;
            return Some(sse_message(self.last_id, type_name, data, &crate::redaction::current()));
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        tracing::info!(messages = self.last_id, "event stream closed");
    }
}

/// One SSE message; every string in `data` (keys included) passes through `redactor` first.
fn sse_message(id: u64, type_name: &str, mut data: Value, redactor: &Redactor) -> web::Bytes {
    redactor.redact_value(&mut data);
    // Compact JSON escapes every line break, so `data` is one line.
    web::Bytes::from(format!("id: {id}\nevent: {type_name}\ndata: {data}\n\n"))
}

/// `?types=a,b` (comma-separated, repeatable): the event types a connection wants; all when absent.
#[derive(Debug, Clone, PartialEq, Default)]
struct TypeFilter {
    wanted: Option<Vec<&'static str>>,
}

impl TypeFilter {
    /// Parses a query string; an unknown or empty type list is an error message naming the known ones.
    fn parse(query: &str) -> Result<TypeFilter, String> {
        let known = || Event::TYPE_NAMES.join(", ");
        let mut wanted: Option<Vec<&'static str>> = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key != "types" {
                continue;
            }
            let list = wanted.get_or_insert_with(Vec::new);
            for name in value.split(',').map(str::trim).filter(|name| !name.is_empty()) {
                let Some(type_name) = Event::TYPE_NAMES.iter().copied().find(|known| *known == name) else {
                    return Err(format!("unknown event type `{name}`; known types: {}", known()));
                };
                if !list.contains(&type_name) {
                    list.push(type_name);
                }
            }
        }
        if wanted.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("`types` names no event type; known types: {}", known()));
        }
        Ok(TypeFilter { wanted })
    }

    fn admits(&self, event: &Event) -> bool {
        self.wanted.as_ref().is_none_or(|wanted| wanted.contains(&event.type_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_actors::event_bus::EVENT_RING_CAPACITY;
    use castellan_actors::{EventBus, Metrics};
    use futures_util::StreamExt;

    fn tool_call(tool: &str) -> Event {
        Event::ToolCall {
            server: "customers".into(),
            tool: tool.into(),
            status: "success".into(),
            user: Some("admin".into()),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            duration_ms: 3,
        }
    }

    /// The next chunk as text, failing the test after a second.
    async fn next_text(body: &mut (impl Stream<Item = Result<web::Bytes, actix_web::Error>> + Unpin)) -> String {
        let chunk = tokio::time::timeout(Duration::from_secs(1), body.next()).await.expect("a chunk within a second");
        let bytes = chunk.expect("the stream is open").expect("chunks are not errors");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn a_secret_inside_an_event_leaves_redacted() {
        let secret = "sv-5b1e9d0c-leak-canary";
        let redactor = Redactor::new([("canary", secret)]);
        let event =
            Event::ServerExited { server: "everything".into(), reason: format!("exit: token {secret} refused") };
        let data = serde_json::to_value(&event).expect("serializes");
        let message = sse_message(7, event.type_name(), data, &redactor);
        let text = String::from_utf8(message.to_vec()).expect("utf-8");
        assert!(!text.contains(secret), "the value never leaves: {text}");
        assert!(text.contains("token [REDACTED:canary] refused"), "it is replaced by the secret's name: {text}");
        assert!(text.starts_with("id: 7\nevent: server_exited\ndata: {"), "SSE framing: {text}");
        assert!(text.ends_with("}\n\n") && text.matches('\n').count() == 4, "one data line, blank-line end: {text}");
    }

    #[tokio::test]
    async fn events_are_written_with_an_id_their_type_and_their_json() {
        let bus = EventBus::new(Metrics::new());
        let mut body = Box::pin(event_stream(bus.subscribe(), TypeFilter::default(), KEEP_ALIVE_INTERVAL));
        assert_eq!(next_text(&mut body).await, ": connected\n\n", "an opening comment first");
        bus.publish(tool_call("list_customers"));
        bus.publish(Event::ServerStopped { server: "customers".into() });
        let first = next_text(&mut body).await;
        let data: Value = serde_json::from_str(
            first
                .strip_prefix("id: 1\nevent: tool_call\ndata: ")
                .and_then(|rest| rest.strip_suffix("\n\n"))
                .expect(&first),
        )
        .expect("the data line is JSON");
        assert_eq!(data["tool"], "list_customers", "{data}");
        assert_eq!(data["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{data}");
        let second = next_text(&mut body).await;
        assert!(second.starts_with("id: 2\nevent: server_stopped\n"), "ids count up per connection: {second}");
    }

    #[tokio::test]
    async fn a_lagging_connection_is_told_how_many_it_lost_and_continues() {
        let bus = EventBus::new(Metrics::new());
        let mut body = Box::pin(event_stream(bus.subscribe(), TypeFilter::default(), KEEP_ALIVE_INTERVAL));
        next_text(&mut body).await;
        for index in 0..EVENT_RING_CAPACITY + 5 {
            bus.publish(tool_call(&format!("tool_{index}")));
        }
        assert_eq!(next_text(&mut body).await, "id: 1\nevent: lost\ndata: {\"count\":5}\n\n");
        let next = next_text(&mut body).await;
        assert!(next.contains("\"tool\":\"tool_5\""), "then the oldest event still held: {next}");
    }

    #[tokio::test]
    async fn a_quiet_connection_gets_keep_alives_and_the_stream_ends_with_the_bus() {
        let bus = EventBus::new(Metrics::new());
        let mut body = Box::pin(event_stream(bus.subscribe(), TypeFilter::default(), Duration::from_millis(20)));
        next_text(&mut body).await;
        assert_eq!(next_text(&mut body).await, ": keep-alive\n\n");
        assert_eq!(next_text(&mut body).await, ": keep-alive\n\n", "and again while nothing happens");
        drop(bus);
        let end = tokio::time::timeout(Duration::from_secs(1), body.next()).await.expect("ends promptly");
        assert!(end.is_none(), "no bus, no stream");
    }

    #[tokio::test]
    async fn the_filter_passes_only_the_named_types() {
        let bus = EventBus::new(Metrics::new());
        let filter = TypeFilter::parse("types=tool_call").expect("a known type");
        let mut body = Box::pin(event_stream(bus.subscribe(), filter, KEEP_ALIVE_INTERVAL));
        next_text(&mut body).await;
        bus.publish(Event::ServerStopped { server: "customers".into() });
        bus.publish(tool_call("get_customer"));
        let first = next_text(&mut body).await;
        assert!(first.starts_with("id: 1\nevent: tool_call\n"), "server_stopped was filtered out: {first}");
    }

    #[test]
    fn type_filters_parse_or_name_the_known_types() {
        assert_eq!(TypeFilter::parse(""), Ok(TypeFilter { wanted: None }), "no filter: everything");
        assert_eq!(TypeFilter::parse("other=1"), Ok(TypeFilter { wanted: None }), "other parameters are ignored");
        assert_eq!(
            TypeFilter::parse("types=tool_call,%20server_ready,tool_call&types=auth_decision"),
            Ok(TypeFilter { wanted: Some(vec!["tool_call", "server_ready", "auth_decision"]) }),
            "comma-separated, trimmed, repeatable, without duplicates"
        );
        for query in ["types=tool_call,nope", "types=", "types=,"] {
            let message = TypeFilter::parse(query).expect_err(query);
            assert!(message.contains("known types: server_starting, server_ready"), "{query}: {message}");
        }
        assert!(TypeFilter::parse("types=nope").expect_err("unknown").contains("`nope`"), "names the culprit");
    }
}
